"""The one interface every world model implements; planners, metrics and sessions use only this.

| verb | meaning |
|---|---|
| `spec` | spaces, control period, latent size, what the model decodes and predicts |
| `observe(obs[B,T+1,D], actions[B,T,A]) -> State` | perceive: fold a context window into a state, causally |
| `step(state, action[B,A]) -> (State, Prediction)` | predict one step |
| `rollout(state, actions[B,H,A]) -> Prediction` | batched imagination, fields shaped [B,H,...] |
| `loss(batch) -> (scalar, metrics)` | what the trainer minimises |

Pixel models read `frames` [B, T+1, H, W, 3] (uint8, or floats in [0, 1]) in `observe`, beside or
instead of `obs`, and put decoded frames in `Prediction.frame`.
`observe` also takes what only the true simulator can use, when the caller knows it: `physics` (the
parameters of each sequence) and `sim_state` (the exact simulator state at the last context step,
[B, S] float64). Learned models ignore both; the `oracle` (the true simulator behind these verbs)
uses them to be exact, and falls back on rebuilding its state from the observation.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
from torch import nn

from wmkit.errors import WmkitError


@dataclass(frozen=True)
class ModelSpec:
    world: str
    obs_dim: int
    action_dim: int
    dt: float
    latent_dim: int
    action_low: tuple[float, ...]
    action_high: tuple[float, ...]
    decodes: tuple[str, ...] = ("state",)  # what `Prediction` can carry: "state" and/or "frame"
    predicts: tuple[str, ...] = ()  # extras: "reward", "termination", "uncertainty"
    context: int = 1  # observations `observe` needs at least (a Markov model needs 1)
    frame_size: int | None = None  # side of the square frames a pixel model reads and decodes
    frame_camera: str | None = None  # the camera those frames come from
    action_kind: str = "continuous"  # "discrete": actions are one-hot vectors of action_dim choices

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelSpec:
        d = dict(d)
        for k in ("action_low", "action_high", "decodes", "predicts"):
            d[k] = tuple(d[k])
        return cls(**d)

    @classmethod
    def from_dataset_meta(cls, meta, latent_dim: int, **kw) -> ModelSpec:
        return cls(world=meta.world, obs_dim=meta.obs_dim, action_dim=meta.action_dim, dt=meta.dt,
                   latent_dim=latent_dim, action_low=tuple(meta.action_low), action_high=tuple(meta.action_high),
                   action_kind=getattr(meta, "action_kind", "continuous"), **kw)

    def with_(self, **kw) -> ModelSpec:
        return replace(self, **kw)


class State:
    """A batched latent state: named tensors whose first dimension is the batch."""

    def __init__(self, **tensors: torch.Tensor):
        self.tensors = tensors

    def __getitem__(self, key: str) -> torch.Tensor:
        return self.tensors[key]

    @property
    def batch_size(self) -> int:
        return next(iter(self.tensors.values())).shape[0]

    def map(self, fn) -> State:
        return State(**{k: fn(v) for k, v in self.tensors.items()})

    def select(self, index) -> State:
        """Rows `index` of the batch (a slice, a list or a tensor of indices)."""
        return self.map(lambda t: t[index])

    def repeat(self, n: int) -> State:
        """Each row repeated n times in place: [B,...] -> [B*n,...] (for sampling planners)."""
        return self.map(lambda t: t.repeat_interleave(n, dim=0))

    def clone(self) -> State:
        return self.map(lambda t: t.clone())

    @property
    def row_shapes(self) -> tuple:
        """Names, per-row shapes and dtypes: states with equal `row_shapes` can be stacked by `cat`."""
        return tuple((k, tuple(v.shape[1:]), v.dtype, v.device) for k, v in self.tensors.items())

    @staticmethod
    def cat(states: list[State]) -> State:
        """The rows of several states as one batch, in order: [B1 + B2 + ..., ...]."""
        shapes = {s.row_shapes for s in states}
        if len(shapes) != 1:
            raise WmkitError(f"cannot stack states whose rows differ: {sorted(map(str, shapes))}")
        return State(**{k: torch.cat([s.tensors[k] for s in states]) for k in states[0].tensors})


@dataclass
class Prediction:
    """What a model says about the next step(s). Shapes [B,D] from `step`, [B,H,D] from `rollout`."""

    obs: torch.Tensor | None = None  # predicted observation (state vector)
    reward: torch.Tensor | None = None
    terminated: torch.Tensor | None = None  # probability the episode ends
    obs_std: torch.Tensor | None = None  # uncertainty: ensemble disagreement or predicted std
    frame: torch.Tensor | None = None  # decoded frame [B, H, W, 3] in [0, 1] (models that decode frames)
    members: torch.Tensor | None = None  # each member's (or sample's) observation: [B, M, D], [B, H, M, D]

    _FIELDS = ("obs", "reward", "terminated", "obs_std", "frame", "members")

    def select(self, index) -> Prediction:
        """Rows `index` of the batch (a slice, a list or a tensor of indices)."""
        return Prediction(**{n: None if getattr(self, n) is None else getattr(self, n)[index] for n in self._FIELDS})

    @staticmethod
    def stack(steps: list[Prediction]) -> Prediction:
        """Stack per-step predictions along a new time axis (dim 1)."""
        out = {}
        for name in Prediction._FIELDS:
            vals = [getattr(p, name) for p in steps]
            out[name] = None if vals[0] is None else torch.stack(vals, dim=1)
        return Prediction(**out)


class WorldModel(nn.Module, ABC):
    """Base of every family. Subclasses set `family`, build `spec`, and implement the verbs."""

    family: str = ""

    def __init__(self, spec: ModelSpec, config=None):
        super().__init__()
        self.spec = spec
        self.config = config

    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        for b in self.buffers():
            return b.device
        return torch.device("cpu")

    @classmethod
    def reads_frames(cls, config: dict) -> bool:
        """Whether a model built with these config fields reads frames (the trainer then loads them)."""
        return False

    # ---- the verbs -----------------------------------------------------------------------------
    @abstractmethod
    def observe(self, obs, actions, *, frames=None, physics=None, sim_state=None) -> State: ...

    @abstractmethod
    def step(self, state: State, action) -> tuple[State, Prediction]: ...

    def rollout(self, state: State, actions) -> Prediction:
        """Imagine H steps open-loop. Families override this with a faster batched version."""
        actions = self.check_actions(actions, ndim=3)
        preds = []
        for t in range(actions.shape[1]):
            state, p = self.step(state, actions[:, t])
            preds.append(p)
        return Prediction.stack(preds)

    @property
    def train_window(self) -> int:
        """Steps in each training window (after the `spec.context` observations)."""
        return 1

    def loss(self, batch) -> tuple[torch.Tensor, dict[str, float]]:
        raise WmkitError(f"the {self.family!r} model is not trainable")

    # ---- input checks shared by every family ---------------------------------------------------
    def as_tensor(self, x) -> torch.Tensor:
        if isinstance(x, np.ndarray):
            x = torch.from_numpy(x)
        if not isinstance(x, torch.Tensor):
            x = torch.as_tensor(x)
        return x.to(device=self.device, dtype=torch.float32)

    def check_actions(self, actions, ndim: int) -> torch.Tensor:
        a = self.as_tensor(actions)
        want = "[B, A]" if ndim == 2 else "[B, H, A]"
        if a.ndim != ndim or a.shape[-1] != self.spec.action_dim:
            raise WmkitError(f"actions have shape {tuple(a.shape)}; expected {want} with A={self.spec.action_dim}")
        if not torch.isfinite(a).all():
            raise WmkitError("actions contain NaN or inf; pass finite values")
        return a

    def check_frames(self, frames) -> torch.Tensor:
        """A pixel model's context frames [B, T+1, S, S, 3] at its frame size, on its device."""
        S = self.spec.frame_size
        if frames is None:
            raise WmkitError(f"this model reads frames: pass frames=[B, T+1, {S}, {S}, 3] to observe")
        f = frames if isinstance(frames, torch.Tensor) else torch.as_tensor(frames)
        if f.ndim != 5 or tuple(f.shape[2:]) != (S, S, 3):
            raise WmkitError(f"frames have shape {tuple(f.shape)}; expected [B, T+1, {S}, {S}, 3] (RGB, the size "
                             f"the model was trained on)")
        return f.to(self.device)

    def check_frame_context(self, frames, actions) -> tuple[torch.Tensor, torch.Tensor]:
        """A pixel model's context: frames [B, T+1, S, S, 3] and actions [B, T, A], checked together."""
        f, a = self.check_frames(frames), self.check_actions(actions, ndim=3)
        if a.shape[:2] != (f.shape[0], f.shape[1] - 1) or a.shape[-1] != self.spec.action_dim:
            raise WmkitError(f"context actions have shape {tuple(a.shape)}; expected [{f.shape[0]}, {f.shape[1] - 1}, "
                             f"{self.spec.action_dim}] (one action fewer than frames)")
        return f, a

    def check_context(self, obs, actions) -> tuple[torch.Tensor, torch.Tensor]:
        o, a = self.as_tensor(obs), self.as_tensor(actions)
        D, A = self.spec.obs_dim, self.spec.action_dim
        if o.ndim != 3 or o.shape[-1] != D:
            raise WmkitError(f"observations have shape {tuple(o.shape)}; expected [B, T+1, {D}]")
        if a.ndim != 3 or a.shape[-1] != A or a.shape[:2] != (o.shape[0], o.shape[1] - 1):
            raise WmkitError(
                f"context actions have shape {tuple(a.shape)}; expected [{o.shape[0]}, {o.shape[1] - 1}, {A}] "
                f"(one action fewer than observations)"
            )
        if not (torch.isfinite(o).all() and torch.isfinite(a).all()):
            raise WmkitError("the context contains NaN or inf")
        return o, a
