"""`Session`: step a world model interactively, with a true twin, forks, rewinds and interventions.

A session holds one imagined world (the model's state) and, when the model's world can be simulated,
its **twin**: the true simulator stepped with the same actions, for side-by-side comparison. Every
step records the imagined observation, the model's reward, termination and uncertainty where it
predicts them, the twin's observation, their divergence (normalised distance) and the step's latency.

- `fork()` branches a counterfactual: an independent session from the same moment.
- `rewind(t)` returns to step t (within the last `max_history` steps).
- `intervene(obs={index: value}, physics={...})` edits the world mid-rollout: it sets observation
  dimensions (move the cup) in both the imagination and the twin, and physics values in the twin.
  The model re-observes the edited observation (a model with memory restarts its memory there).

Pixel models (`spec.frame_size`) start from a frame: `image=`, or the twin's first frame rendered
from the model's camera; the imagined view is then the model's own decoded frame, and an
intervention re-observes the twin's frame of the edited state.

`step_together(sessions, actions)` steps many sessions at once: one batched model call per group
of sessions whose states stack, then each twin (what the server does with steps that arrive together).

Memory stays bounded however long a session runs: only the last `max_history` steps are kept.
Everything is deterministic under the seed.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

import numpy as np
import torch

from wmkit.errors import WmkitError


@dataclass
class StepResult:
    t: int
    obs: np.ndarray
    reward: float | None
    terminated: float | None  # the model's probability that the episode has ended
    uncertainty: float | None  # mean predicted std over dimensions, in units of the data's spread
    twin_obs: np.ndarray | None
    twin_reward: float | None
    divergence: float | None  # RMS over dimensions of (imagined - twin) / spread
    latency_ms: float

    def to_json(self) -> dict:
        f = lambda x: None if x is None else float(x)  # noqa: E731
        return {"t": self.t, "obs": self.obs.tolist(), "reward": f(self.reward), "terminated": f(self.terminated),
                "uncertainty": f(self.uncertainty),
                "twin_obs": None if self.twin_obs is None else self.twin_obs.tolist(),
                "twin_reward": f(self.twin_reward), "divergence": f(self.divergence), "latency_ms": self.latency_ms}


@dataclass
class _Moment:
    t: int
    state: object  # the model's State
    obs: np.ndarray
    twin: np.ndarray | None  # the twin's exact simulator state
    twin_obs: np.ndarray | None
    twin_physics: dict | None
    image: np.ndarray | None  # a pixel model's imagined frame, uint8 [S, S, 3]


class Session:
    def __init__(self, model, *, seed: int = 0, physics=None, twin: bool = True, obs=None, context=None,
                 sim_state=None, image=None, scale=None, max_history: int = 1024):
        """Start from the world's own reset (seeded); or from an observation `obs`; or from a recorded
        episode prefix `context=(obs [T+1, D], actions [T, A])`, which the model observes whole (a model
        with memory keeps it); or from an exact simulator state `sim_state`. The twin starts from the
        same moment (exactly from `sim_state`, else rebuilt from the last observation).

        `scale` (per-dimension spread, e.g. `Dataset.stats()["obs_std"]`) sets the units of uncertainty
        and divergence; by default 1 for every dimension.
        """
        from wmkit.worlds import make

        if not isinstance(max_history, int) or max_history < 1:
            raise WmkitError(f"max_history={max_history!r} must be a positive integer")
        self.model = model.eval()
        self.spec = model.spec
        self.seed = seed
        self.max_history = max_history
        D = self.spec.obs_dim
        self.pixels = bool(self.spec.frame_size)
        if self.pixels and context is not None:
            raise WmkitError("a pixel model starts from one frame (image=) or the world's reset; a recorded "
                             "state-vector context cannot feed it")
        if image is not None and not self.pixels:
            raise WmkitError(f"the {model.family} model reads state vectors, not images; drop image=")
        self.scale = np.ones(D) if scale is None else np.asarray(scale, dtype=np.float64).clip(1e-6)
        if self.scale.shape != (D,):
            raise WmkitError(f"scale has shape {self.scale.shape}; expected ({D},)")
        self.world = None
        try:
            self.world = make(self.spec.world, physics=physics)
        except WmkitError:
            if obs is None:
                raise
        ctx_obs = ctx_act = None
        if context is not None:
            ctx_obs, ctx_act = (np.asarray(x, dtype=np.float64) for x in context)
            if ctx_obs.ndim != 2 or ctx_act.ndim != 2 or len(ctx_act) != len(ctx_obs) - 1:
                raise WmkitError(f"context must be (obs [T+1, D], actions [T, A]); got shapes {ctx_obs.shape} and "
                                 f"{ctx_act.shape}")
            obs = ctx_obs[-1]
        if self.world is not None:
            self.world.annotate = False  # the twin's steps need no per-step annotations (a third of a step's time)
            first, _ = self.world.reset(seed=seed)
            if sim_state is not None:
                self.world.set_state(np.asarray(sim_state, dtype=np.float64))
                first = self.world._observe()
            elif obs is not None:
                self.world.state_from_obs(self._check_obs(obs))
                first = np.asarray(obs, dtype=np.float64)
            self.has_twin = twin and self._can_restore()
        else:
            first, self.has_twin = self._check_obs(obs), False
        self.t = 0
        self.obs = np.asarray(first, dtype=np.float64)
        self._twin_obs = self.obs.copy() if self.has_twin else None
        self.image = self._check_image(image) if image is not None else self._twin_image()
        self.state = self._observe(self.obs, ctx_obs, ctx_act)
        self.history: deque[_Moment] = deque(maxlen=max_history)
        self.latencies: deque[float] = deque(maxlen=1000)
        self._remember()

    # ---- helpers -------------------------------------------------------------------------------
    def _can_restore(self) -> bool:
        try:
            self.world.get_state()
            return True
        except (WmkitError, NotImplementedError, AttributeError):
            return False

    def _check_obs(self, obs) -> np.ndarray:
        o = np.asarray(obs, dtype=np.float64)
        if o.shape != (self.spec.obs_dim,) or not np.all(np.isfinite(o)):
            raise WmkitError(f"observation has shape {o.shape} or non-finite values; expected {self.spec.obs_dim} "
                             f"finite numbers")
        return o

    def _check_image(self, image) -> np.ndarray:
        S = self.spec.frame_size
        im = np.asarray(image)
        if im.shape != (S, S, 3) or im.dtype != np.uint8:
            raise WmkitError(f"image has shape {im.shape} and dtype {im.dtype}; this model reads uint8 RGB frames "
                             f"of shape ({S}, {S}, 3)")
        return im

    def _twin_image(self) -> np.ndarray | None:
        """For a pixel model: the true world's frame now, from the model's camera at its frame size."""
        if not self.pixels:
            return None
        if self.world is None:
            raise WmkitError(f"{self.spec.world} cannot be rendered here: start the pixel model from image=")
        return self.world.render_frame(self.spec.frame_camera, self.spec.frame_size)

    def _observe(self, obs: np.ndarray, ctx_obs=None, ctx_act=None):
        if ctx_obs is not None:
            o = torch.as_tensor(ctx_obs, dtype=torch.float32)[None]
            acts = torch.as_tensor(ctx_act, dtype=torch.float32)[None]
        else:
            o = torch.as_tensor(obs, dtype=torch.float32)[None, None]
            acts = torch.zeros(1, 0, self.spec.action_dim)
        sim = None
        if self.world is not None and self._can_restore() and self.model.family == "oracle":
            sim = torch.from_numpy(self.world.get_state())[None]
        physics = [dict(self.world.physics)] if self.world is not None else None
        frames = torch.from_numpy(self.image.copy())[None, None].to(self.model.device) if self.pixels else None
        with torch.no_grad():
            return self.model.observe(o.to(self.model.device), acts.to(self.model.device), frames=frames,
                                      physics=physics, sim_state=sim)

    def _remember(self) -> None:
        twin = self.world.get_state() if self.has_twin else None
        self.history.append(_Moment(self.t, self.state.clone(), self.obs.copy(), twin,
                                    None if self._twin_obs is None else self._twin_obs.copy(),
                                    dict(self.world.physics) if self.world is not None else None, self.image))

    def check_action(self, action) -> np.ndarray:
        a = np.asarray(action, dtype=np.float64)
        if a.shape != (self.spec.action_dim,):
            raise WmkitError(f"action has shape {a.shape}; {self.spec.world} expects ({self.spec.action_dim},)")
        if not np.all(np.isfinite(a)):
            raise WmkitError(f"action {a.tolist()} contains NaN or inf; send finite numbers")
        return np.clip(a, self.spec.action_low, self.spec.action_high)

    # ---- the verbs of a session ----------------------------------------------------------------
    def step(self, action) -> StepResult:
        return step_together([self], [action])[0]

    def _advance(self, a: np.ndarray, state, pred, latency: float) -> StepResult:
        """Take the model's step (`state` and `pred` for this session's row), step the twin, remember."""
        self.state = state
        self.obs = pred.obs[0].double().cpu().numpy()
        if self.pixels:
            self.image = (pred.frame[0] * 255).round().clamp(0, 255).to(torch.uint8).cpu().numpy()
        scalar = lambda x: None if x is None else float(x[0])  # noqa: E731
        unc = None if pred.obs_std is None else float(np.mean(pred.obs_std[0].double().cpu().numpy() / self.scale))
        twin_obs = twin_reward = divergence = None
        if self.has_twin:
            twin_obs, twin_reward, *_ = self.world.step(a.astype(self.world.action_space.dtype))
            twin_obs = np.asarray(twin_obs, dtype=np.float64)
            divergence = float(np.sqrt(np.mean(((self.obs - twin_obs) / self.scale) ** 2)))
        self._twin_obs = twin_obs
        self.t += 1
        self.latencies.append(latency)
        self._remember()
        return StepResult(self.t, self.obs.copy(), scalar(pred.reward), scalar(pred.terminated), unc, twin_obs,
                          twin_reward, divergence, latency)

    def fork(self) -> Session:
        """An independent session from this moment (a counterfactual branch)."""
        other = object.__new__(Session)
        other.__dict__.update(self.__dict__)
        other.state = self.state.clone()
        other.obs = self.obs.copy()
        other.history = deque((m for m in self.history), maxlen=self.max_history)
        other.latencies = deque(self.latencies, maxlen=1000)
        if self.world is not None:
            from wmkit.worlds import make

            other.world = make(self.spec.world, physics=dict(self.world.physics))
            other.world.annotate = False
            other.world.reset(seed=self.seed)
            other.world.set_physics(dict(self.world.physics))
            if self.has_twin:
                other.world.set_state(self.world.get_state())
        return other

    def rewind(self, t: int) -> None:
        """Go back to step `t` (one of the last `max_history` steps)."""
        kept = [m.t for m in self.history]
        if not isinstance(t, int) or isinstance(t, bool) or t not in kept:
            raise WmkitError(f"cannot rewind to step {t!r}; steps kept: {kept[0]}..{kept[-1]}")
        while self.history[-1].t != t:
            self.history.pop()
        m = self.history[-1]
        self.t, self.state, self.obs, self.image = m.t, m.state.clone(), m.obs.copy(), m.image
        if self.has_twin:
            self.world.set_physics(m.twin_physics)
            self.world.set_state(m.twin)
            self._twin_obs = m.twin_obs

    def intervene(self, obs: dict | None = None, physics: dict | None = None) -> None:
        """Set observation dimensions {index: value} in the imagination and the twin; physics values in the twin."""
        if not obs and not physics:
            raise WmkitError("intervene needs obs={index: value} and/or physics={name: value}")
        edited = self.obs.copy()
        for key, value in (obs or {}).items():
            try:
                i, v = int(key), float(value)
            except (TypeError, ValueError):
                raise WmkitError(f"intervene obs: {key!r}: {value!r} must map a dimension index to a number") from None
            if not (0 <= i < self.spec.obs_dim) or not np.isfinite(v):
                raise WmkitError(f"intervene obs: index {i} must be in [0, {self.spec.obs_dim}) and value finite")
            edited[i] = v
        if physics:
            if self.world is None:
                raise WmkitError("this session has no true world to change physics in")
            self.world.set_physics({**self.world.physics, **physics})
        if obs and self.has_twin:
            twin = np.array(self._twin_obs if self._twin_obs is not None else edited)
            for key, value in obs.items():
                twin[int(key)] = float(value)
            self.world.state_from_obs(twin)
            self._twin_obs = twin
        self.obs = edited
        if self.pixels:  # a pixel model sees the edit through the twin's frame of the edited world
            saved = self.world.get_state() if self.has_twin else None
            self.world.state_from_obs(edited)
            self.image = self._twin_image()
            if saved is not None:
                self.world.set_state(saved)
        self.state = self._observe(edited)
        if self.history:
            self.history.pop()
        self._remember()

    def frame(self, which: str = "imagined", camera: str | None = None, size: int = 128) -> np.ndarray:
        """An RGB frame of the imagined state (a pixel model's decoded frame; for a state model, the true
        simulator's rendering of the predicted state) or of the twin."""
        if which == "imagined" and self.pixels:  # the model's own frame, scaled to the size asked for
            from PIL import Image

            return np.asarray(Image.fromarray(self.image).resize((size, size), Image.NEAREST))
        if self.world is None:
            raise WmkitError(f"{self.spec.world} cannot be rendered here")
        if which == "twin":
            if not self.has_twin:
                raise WmkitError("this session has no twin")
            return self.world.render_frame(camera, size)
        if which != "imagined":
            raise WmkitError(f"frame {which!r}: choose imagined or twin")
        saved = self.world.get_state() if self.has_twin else None
        physics = dict(self.world.physics)
        try:
            self.world.state_from_obs(self.obs)
            return self.world.render_frame(camera, size)
        finally:
            self.world.set_physics(physics)
            if saved is not None:
                self.world.set_state(saved)

    def close(self) -> None:
        """Free the twin's renderers (call from the thread that rendered)."""
        if self.world is not None:
            self.world.close()

    def latency_ms(self) -> dict:
        lat = np.asarray(self.latencies) if self.latencies else np.zeros(1)
        return {"p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99)), "steps": len(self.latencies)}


def step_together(sessions: list[Session], actions) -> list[StepResult]:
    """Step several sessions at once, one action each: the model steps every group of sessions that
    share a model and whose states stack (`State.row_shapes`) as one batch, then each twin steps.

    This is what lets one server keep up with many sessions: a batch of 32 costs about what one step
    costs. Each result equals that session's own `step` up to the rounding of batched arithmetic
    (1e-5). Every action is checked before anything steps, so a bad one leaves all sessions as they were.
    Each `StepResult.latency_ms` is the time of its group's model step.
    """
    from wmkit.models.base import State

    if len(sessions) != len(actions):
        raise WmkitError(f"{len(sessions)} sessions and {len(actions)} actions: give one action per session")
    if len({id(s) for s in sessions}) != len(sessions):
        raise WmkitError("a session appears twice in one step_together call; step it in the next call")
    checked = [s.check_action(a) for s, a in zip(sessions, actions)]
    groups: dict[tuple, list[int]] = {}
    for i, s in enumerate(sessions):
        groups.setdefault((id(s.model), s.state.row_shapes), []).append(i)
    results: list[StepResult | None] = [None] * len(sessions)
    for rows in groups.values():
        model = sessions[rows[0]].model
        state = State.cat([sessions[i].state for i in rows]) if len(rows) > 1 else sessions[rows[0]].state
        action = torch.as_tensor(np.stack([checked[i] for i in rows]), dtype=torch.float32).to(model.device)
        t0 = time.perf_counter()
        with torch.no_grad():
            state, pred = model.step(state, action)
        latency = (time.perf_counter() - t0) * 1e3
        for row, i in enumerate(rows):
            one = slice(row, row + 1)
            results[i] = sessions[i]._advance(checked[i], state.select(one), pred.select(one), latency)
    return results
