"""What every planner shares: the objective it scores imagined futures by, and the MPC loop's frame.

A planner sees a model through its verbs only: it repeats `state` over its candidates, imagines
them all in one batched `rollout` per iteration, scores each future with an `Objective`, and acts
with the first action of its best guess, keeping the rest (shifted by one step) as the next step's
starting guess.

An `Objective` adds up to three terms, each summed over the imagined steps and weighted by the
predicted chance that the episode is still running at that step:

- `reward`: the model's predicted reward (needs a reward head);
- `goal`: minus the distance of the predicted state to a goal state, over the dimensions `goal_dims`
  (e.g. only where the cup should be), in units of `goal_scale`;
- `goal_frame`: for pixel models, minus the mean absolute difference between the predicted frame and a
  goal frame ([S, S, 3], uint8 or floats in [0, 1]), in units of `goal_frame_scale`;
- `uncertainty`: minus `uncertainty_penalty` x the model's mean predicted spread (its `obs_std`,
  ensemble disagreement), so plans stay where the model knows the world.

A `task` (a function of actions [..., A] and the observations that follow them [..., D] returning
(reward, terminated), e.g. a world's `known_task`) replaces the model's reward and termination heads:
each imagined future is scored by the true task function of its predicted observations, per
ensemble member and averaged (PETS plans with known cost functions, MBPO ends rollouts with known
termination functions); the model then only has to get the dynamics right.

A `terminal_value` (a function of predicted observations [N, D] -> [N], e.g. a critic learned in
imagination: `ImaginedActorCritic.terminal_value()`) adds what lies beyond the horizon: its value of
the last imagined observation, discounted by `value_discount` ** H and weighted by the chance the
episode is still running after the last step (TD-MPC's and LOOP's MPC with a learned value). Without
it a planner is blind past H steps (InvertedPendulum's cart drifts into the end of its rail, 0.6 s
ahead at H = 15, too late to stop).

A planner given a `SafetyFilter` (control/safety.py) rejects the sequences whose imagined futures
reach the filter's unsafe event too often.

A planner given a `prior` (a function (state, observation [1, D], horizon) -> action sequences
[K, H, A], e.g. `ImaginedActorCritic.prior()`: a policy acting through the model from the current
state) imagines those K sequences beside its own samples at every iteration, so a policy's proposals
compete with the search's (TD-MPC's and TD-MPC2's policy samples, LOOP's); it then plans with
`plan(state, obs)`, the observation the policy acts on.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
import torch

from wmkit.errors import WmkitError
from wmkit.models.base import Prediction


@dataclass
class Objective:
    reward: float = 1.0
    """weight of the predicted reward (0: ignore it, e.g. a goal-only task)"""
    goal: tuple[float, ...] | None = None
    """a goal state: values for the dimensions `goal_dims` (all dimensions when goal_dims is None)"""
    goal_dims: tuple[int, ...] | None = None
    goal_scale: tuple[float, ...] | None = None
    """per goal dimension, the distance that counts as 1 (default 1)"""
    goal_frame: object | None = None
    """a goal image [S, S, 3] (uint8, or floats in [0, 1]) for models that decode frames"""
    goal_frame_scale: float = 0.1
    """the mean absolute pixel difference (in [0, 1] units) that counts as 1"""
    uncertainty_penalty: float = 0.0
    task: object | None = None
    """a function (actions [..., A], next observations [..., D]) -> (reward [...], terminated [...]) scoring
    imagined futures instead of the model's reward and termination heads (e.g. a world's known_task)"""
    terminal_value: object | None = None
    """a function of observations [N, D] -> values [N] (in reward units) scored at the horizon's end"""
    value_discount: float = 0.99

    def __post_init__(self):
        if self.task is not None and not callable(self.task):
            raise WmkitError(f"objective: task={self.task!r} must be a function (actions, next observations) -> "
                             f"(reward, terminated), e.g. the world's known_task")
        if self.terminal_value is not None and not callable(self.terminal_value):
            raise WmkitError(f"objective: terminal_value={self.terminal_value!r} must be a function of observations "
                             f"[N, D] returning values [N] (e.g. ImaginedActorCritic.terminal_value())")
        if not (0 < self.value_discount <= 1):
            raise WmkitError(f"objective: value_discount={self.value_discount!r} must be in (0, 1]")
        if not (self.reward >= 0 and self.uncertainty_penalty >= 0):
            raise WmkitError(f"objective: reward={self.reward!r} and uncertainty_penalty="
                             f"{self.uncertainty_penalty!r} must be numbers >= 0")
        if self.goal is None and self.goal_frame is None and self.reward == 0:
            raise WmkitError("objective: with reward=0 there is nothing to plan for; give a goal= or goal_frame=")
        if not self.goal_frame_scale > 0:
            raise WmkitError(f"objective: goal_frame_scale={self.goal_frame_scale!r} must be positive")


def predicted_return(pred) -> torch.Tensor:
    """[N]: sum over steps of reward x the chance the episode has not ended before that step."""
    return (pred.reward * alive_weights(pred)).sum(1)


def alive_weights(pred) -> torch.Tensor:
    """[N, H]: the predicted chance that the episode is still running at each imagined step (1 where the
    model predicts no termination)."""
    ref = pred.reward if pred.reward is not None else pred.obs[..., 0]
    if pred.terminated is None:
        return torch.ones_like(ref)
    alive = torch.cumprod(1 - pred.terminated.clamp(0, 1), dim=1)
    return torch.cat([torch.ones_like(alive[:, :1]), alive[:, :-1]], dim=1)


class Planner(ABC):
    """Model-predictive control over any WorldModel. Subclasses implement `_search`."""

    name = ""
    action_kind = "continuous"  # the kind of action this planner searches

    def __init__(self, model, config, objective: Objective | None = None, safety=None, prior=None):
        self.model, self.config = model, config
        kind = getattr(model.spec, "action_kind", "continuous")
        if kind != self.action_kind:
            instead = "cem (it searches discrete choices on such a model)" if kind == "discrete" else "cem, icem or mppi"
            raise WmkitError(f"the {self.name} planner searches {self.action_kind} actions, but the {model.spec.world} "
                             f"model's actions are {kind}; use {instead}")
        self.objective = objective or Objective()
        self.particles = getattr(config, "particles", "members")
        if self.particles not in ("members", "one"):
            raise WmkitError(f"particles={self.particles!r}; use 'members' or 'one'")
        if self.particles == "one":
            if not hasattr(model, "one_member_each"):
                raise WmkitError(f"particles='one' needs a model with members (ensemble); the {model.family!r} model "
                                 f"imagines each candidate once already: use particles='members'")
            if safety is not None or self.objective.uncertainty_penalty > 0:
                raise WmkitError("particles='one' imagines each candidate with one member, so there is no "
                                 "disagreement for a safety filter or an uncertainty penalty to read; use "
                                 "particles='members'")
        self.safety = safety  # a SafetyFilter: sequences whose futures reach its event too often are rejected
        if prior is not None and not callable(prior):
            raise WmkitError(f"prior={prior!r} must be a function (state, observation [1, D], horizon) -> action "
                             f"sequences [K, horizon, A], e.g. ImaginedActorCritic.prior()")
        if prior is not None and self.action_kind != "continuous":
            raise WmkitError(f"the {self.name} planner takes no prior; a policy's proposals join the continuous "
                             f"planners (cem, icem, mppi)")
        self.prior = prior
        if safety is not None and safety.model is not model:
            raise WmkitError("the safety filter must imagine with the planner's own model")
        spec, o = model.spec, self.objective
        readers = [n for n, f in (("a task function", o.task), ("a terminal value", o.terminal_value)) if f is not None]
        if readers and "state" not in spec.decodes:
            verb = "read" if len(readers) > 1 else "reads"
            raise WmkitError(f"{' and '.join(readers)} {verb} predicted state vectors; the {model.family!r} model "
                             f"does not decode them")
        if o.reward > 0 and o.task is None and "reward" not in spec.predicts:
            raise WmkitError(f"the {model.family!r} model predicts no reward, so it cannot score plans; "
                             f"train a family with a reward head (e.g. ensemble), or plan toward a goal= "
                             f"with reward=0")
        if o.uncertainty_penalty > 0 and "uncertainty" not in spec.predicts:
            raise WmkitError(f"the {model.family!r} model predicts no uncertainty; set uncertainty_penalty=0")
        dev = model.device
        self._goal = self._goal_index = self._goal_scale = None
        if o.goal is not None:
            if "state" not in spec.decodes:
                raise WmkitError(f"the {model.family!r} model does not decode state vectors, so a goal state "
                                 f"cannot be compared with its predictions")
            dims = tuple(range(spec.obs_dim)) if o.goal_dims is None else tuple(o.goal_dims)
            if len(o.goal) != len(dims) or any(not (0 <= d < spec.obs_dim) for d in dims):
                raise WmkitError(f"goal has {len(o.goal)} values for dimensions {list(dims)}; the model's state "
                                 f"has {spec.obs_dim} dimensions (0..{spec.obs_dim - 1}): give one value per "
                                 f"goal dimension")
            scale = o.goal_scale or (1.0,) * len(dims)
            if len(scale) != len(dims) or min(scale) <= 0:
                raise WmkitError(f"goal_scale {list(scale)} must hold {len(dims)} positive numbers")
            self._goal = torch.tensor(o.goal, dtype=torch.float32, device=dev)
            self._goal_index = torch.tensor(dims, device=dev)
            self._goal_scale = torch.tensor(scale, dtype=torch.float32, device=dev)
        self._goal_frame = None
        if o.goal_frame is not None:
            if "frame" not in spec.decodes:
                raise WmkitError(f"the {model.family!r} model does not decode frames, so a goal frame cannot be "
                                 f"compared with its predictions; give a goal state (goal=) or use a pixel model")
            frame = torch.as_tensor(np.asarray(o.goal_frame), device=dev)
            S = spec.frame_size
            if tuple(frame.shape) != (S, S, 3):
                raise WmkitError(f"goal_frame has shape {tuple(frame.shape)}; this model decodes [{S}, {S}, 3] frames "
                                 f"(RGB, from the {spec.frame_camera!r} camera)")
            frame = frame.float() / 255.0 if frame.dtype == torch.uint8 else frame.float()
            if not (torch.isfinite(frame).all() and frame.min() >= 0 and frame.max() <= 1):
                raise WmkitError("goal_frame floats must lie in [0, 1] (or pass uint8 pixels)")
            self._goal_frame = frame
        self.low = torch.tensor(spec.action_low, dtype=torch.float32, device=dev)
        self.high = torch.tensor(spec.action_high, dtype=torch.float32, device=dev)
        self.generator = torch.Generator(device=dev).manual_seed(config.seed)
        self.reset()

    def reset(self) -> None:
        """Forget the warm start (call at the start of each episode)."""
        mid = (self.high + self.low) / 2
        self.mean = mid.expand(self.config.horizon, -1).clone()

    @property
    def half_range(self) -> torch.Tensor:
        return (self.high - self.low) / 2

    def clip(self, actions: torch.Tensor) -> torch.Tensor:
        return torch.maximum(torch.minimum(actions, self.high), self.low)

    def score(self, pred, actions: torch.Tensor | None = None) -> torch.Tensor:
        """[N]: the objective of each imagined future (`actions` [N, H, A]: what led to it, for a `task`)."""
        o = self.objective
        if o.task is not None:
            pred = self._task_scored(pred, actions)
        alive = alive_weights(pred)
        total = torch.zeros_like(alive[:, 0])
        if o.reward > 0:
            total = total + o.reward * (pred.reward * alive).sum(1)
        if self._goal is not None:
            gap = (pred.obs[..., self._goal_index] - self._goal) / self._goal_scale  # [N, H, G]
            total = total - (gap.norm(dim=-1) * alive).sum(1)
        if self._goal_frame is not None:
            gap = (pred.frame - self._goal_frame).abs().mean((-3, -2, -1)) / o.goal_frame_scale  # [N, H]
            total = total - (gap * alive).sum(1)
        if o.uncertainty_penalty > 0:
            total = total - o.uncertainty_penalty * (pred.obs_std.mean(-1) * alive).sum(1)
        if o.terminal_value is not None:
            last = pred.obs[:, -1]
            after = alive[:, -1] * (1 - pred.terminated[:, -1].clamp(0, 1)) if pred.terminated is not None else 1.0
            value = o.terminal_value(last)
            if not isinstance(value, torch.Tensor) or value.shape != total.shape:
                raise WmkitError(f"terminal_value returned shape {tuple(getattr(value, 'shape', ()))} for {last.shape[0]} "
                                 f"observations; it must return one value per observation")
            total = total + o.value_discount ** alive.shape[1] * after * value
        return total

    def _task_scored(self, pred, actions):
        """`pred` with its reward and termination from the objective's task function, per member and averaged."""
        if actions is None:
            raise WmkitError("a task objective scores futures by their actions too: call score(pred, actions)")
        obs, acts = pred.obs, actions
        if pred.members is not None:  # [N, H, M, D]: each member's future, scored apart
            obs, acts = pred.members, actions[:, :, None].expand(-1, -1, pred.members.shape[2], -1)
        out = self.objective.task(acts, obs)
        if not (isinstance(out, tuple) and len(out) == 2 and all(isinstance(t, torch.Tensor) for t in out)
                and out[0].shape == obs.shape[:-1] and out[1].shape == obs.shape[:-1]):
            raise WmkitError(f"the task function must return (reward, terminated), two tensors of shape "
                             f"{tuple(obs.shape[:-1])} for observations of shape {tuple(obs.shape)}")
        reward, ended = out[0], out[1].float()
        if pred.members is not None:
            reward, ended = reward.mean(-1), ended.mean(-1)
        return Prediction(obs=pred.obs, reward=reward, terminated=ended, obs_std=pred.obs_std,
                          frame=pred.frame, members=pred.members)

    def imagine(self, starts, actions: torch.Tensor) -> torch.Tensor:
        """Scores [N] of action sequences [N, H, A] from `starts` (the state repeated N times), less the
        safety filter's rejections."""
        if self.particles == "one":
            starts = self.model.one_member_each(starts)
        pred = self.model.rollout(starts, actions)
        score = self.score(pred, actions)
        return score if self.safety is None else score - self.safety.penalty(pred)

    @torch.no_grad()
    def plan(self, state, obs=None) -> torch.Tensor:
        """The action [A] to take now from `state` (a batch-1 State from `observe`); `obs` [D] (or [1, D]), the
        current observation, is what a prior's policy acts on (needed with a prior, ignored without)."""
        if state.batch_size != 1:
            raise WmkitError(f"plan() takes one state (batch 1), got a batch of {state.batch_size}")
        # the prior's sequences [K, H, A] for this step (K = 0 without a prior), joining the planner's candidates
        self.proposed = self.low.new_zeros(0, *self.mean.shape) if self.prior is None else self._propose(state, obs)
        mean = self._search(state)
        self.mean = torch.cat([mean[1:], mean[-1:]])  # warm start for the next step
        return mean[0]

    def _propose(self, state, obs) -> torch.Tensor:
        """The prior's action sequences [K, H, A] from `state`, clipped to the action bounds."""
        spec, H = self.model.spec, self.config.horizon
        if obs is None:
            raise WmkitError("this planner has a prior, a policy that acts on the current observation: call "
                             "plan(state, obs) (PlannerPolicy does)")
        obs = torch.as_tensor(obs, dtype=torch.float32, device=self.model.device)
        if obs.numel() != spec.obs_dim:
            raise WmkitError(f"plan(state, obs): obs has shape {tuple(obs.shape)}; give the current observation, "
                             f"{spec.obs_dim} values")
        proposed = self.prior(state, obs.reshape(1, -1), H)
        if not (isinstance(proposed, torch.Tensor) and proposed.ndim == 3
                and tuple(proposed.shape[1:]) == (H, spec.action_dim)):
            raise WmkitError(f"the prior returned {tuple(getattr(proposed, 'shape', ()))}; it must return action "
                             f"sequences [K, {H}, {spec.action_dim}] (K proposals of the horizon's length)")
        return self.clip(proposed.to(self.low.device, torch.float32))

    @abstractmethod
    def _search(self, state) -> torch.Tensor:
        """The best action sequence [H, A] found from `state`, starting from `self.mean`."""


class PlannerPolicy:
    """A planner as a policy (for `collect`, the Dyna loop and the scorecard): it observes the last
    observations and actions it saw (as many as the model needs), plans, and returns the action.
    Keywords of a call (e.g. `physics=`, `sim_state=` for the oracle) go on to the model's `observe`."""

    def __init__(self, planner: Planner, name: str | None = None):
        self.planner = planner
        self.name = name or planner.name
        self.reset()

    def reset(self) -> None:
        self.planner.reset()
        self.seen_obs, self.seen_act = [], []

    def __call__(self, obs, **observe_kw) -> np.ndarray:
        model = self.planner.model
        C = max(model.spec.context, 1)
        self.seen_obs = (self.seen_obs + [np.asarray(obs, dtype=np.float32)])[-C:]
        acts = self.seen_act[len(self.seen_act) - (len(self.seen_obs) - 1):] if len(self.seen_obs) > 1 else []
        o = torch.as_tensor(np.asarray(self.seen_obs), device=model.device)[None]
        a = torch.as_tensor(np.asarray(acts, dtype=np.float32).reshape(len(acts), model.spec.action_dim),
                            device=model.device)[None]
        with torch.no_grad():
            action = self.planner.plan(model.observe(o, a, **observe_kw), o[0, -1]).cpu().numpy().astype(np.float32)
        self.seen_act = (self.seen_act + [action])[-C:]  # no more than the next context needs
        return action
