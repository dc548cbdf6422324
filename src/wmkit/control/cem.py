"""The cross-entropy method (CEM) as a model-predictive controller over any WorldModel.

Each control step: sample `samples` action sequences of `horizon` steps from a Gaussian per step
and dimension (clipped to the action bounds), imagine them all in one batched `rollout` from the
current state, score each with the planner's `Objective` (by default the predicted return), refit
the Gaussian to the best `elites`, and repeat `iterations` times; then act with the first action of
the mean, and keep the rest of the mean, shifted by one step, as the next step's starting guess
(warm start, as in PETS).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from wmkit.control.base import Objective, Planner, predicted_return
from wmkit.errors import WmkitError, check_fields

__all__ = ["CEMConfig", "CEMPlanner", "predicted_return"]


@dataclass
class CEMConfig:
    horizon: int = 8
    samples: int = 64
    iterations: int = 3
    elites: int = 8
    init_std: float = 0.5
    """starting spread, as a fraction of each action's half-range"""
    min_std: float = 0.05
    particles: str = "members"
    """'members': every candidate imagined by each ensemble member; 'one': by one member in turn (E times
    less compute, no disagreement: no uncertainty penalty or safety filter)"""
    seed: int = 0

    def __post_init__(self):
        check_fields(self, "CEM config", positive_ints=("horizon", "samples", "iterations", "elites"),
                     nonnegative=("init_std", "min_std"))
        if self.elites > self.samples:
            raise WmkitError(f"CEM config: elites={self.elites} exceeds samples={self.samples}")


class CEMPlanner(Planner):
    name = "cem"

    def __init__(self, model, config: CEMConfig | None = None, objective: Objective | None = None, safety=None,
                 prior=None):
        super().__init__(model, config or CEMConfig(), objective, safety, prior)

    def _search(self, state) -> torch.Tensor:
        c = self.config
        starts = state.repeat(c.samples + len(self.proposed))  # a prior's sequences compete at every iteration
        mean, std = self.mean, (self.half_range * c.init_std).expand(c.horizon, -1).clone()
        for _ in range(c.iterations):
            noise = torch.randn((c.samples, c.horizon, mean.shape[-1]), generator=self.generator, device=mean.device)
            actions = torch.cat([self.clip(mean + std * noise), self.proposed])
            actions[0] = mean  # the current mean is always a candidate
            elite = actions[torch.topk(self.imagine(starts, actions), c.elites).indices]
            mean, std = elite.mean(0), elite.std(0).clamp_min(c.min_std * float(self.half_range.min()))
        return mean


@dataclass
class DiscreteCEMConfig:
    horizon: int = 8
    samples: int = 64
    iterations: int = 3
    elites: int = 8
    smoothing: float = 0.2
    """each refit keeps this share of the previous distribution (Rubinstein's smoothed CEM)"""
    min_prob: float = 0.02
    """floor on every choice's probability at every step, so no choice is ruled out for good"""
    particles: str = "members"
    """'members': every candidate imagined by each ensemble member; 'one': by one member in turn (E times
    less compute, no disagreement: no uncertainty penalty or safety filter)"""
    seed: int = 0

    def __post_init__(self):
        check_fields(self, "discrete CEM config", positive_ints=("horizon", "samples", "iterations", "elites"),
                     nonnegative=("smoothing", "min_prob"))
        if self.elites > self.samples:
            raise WmkitError(f"discrete CEM config: elites={self.elites} exceeds samples={self.samples}")
        if self.smoothing >= 1:
            raise WmkitError(f"discrete CEM config: smoothing={self.smoothing} must be below 1")


class DiscreteCEMPlanner(Planner):
    """CEM over sequences of discrete choices: a categorical distribution per step, sampled, imagined
    (as one-hot vectors, what the model was trained on), and refit to the elites' choice frequencies."""

    name = "cem-discrete"
    action_kind = "discrete"

    def __init__(self, model, config: DiscreteCEMConfig | None = None, objective: Objective | None = None,
                 safety=None, prior=None):
        super().__init__(model, config or DiscreteCEMConfig(), objective, safety, prior)  # a prior is refused

    def reset(self) -> None:
        n = self.model.spec.action_dim
        self.mean = torch.full((self.config.horizon, n), 1.0 / n, device=self.model.device)  # choice probabilities

    def plan(self, state, obs=None) -> torch.Tensor:
        probs = super().plan(state, obs)  # keeps the shifted probabilities as the next warm start
        n = self.model.spec.action_dim
        self.mean[-1] = 1.0 / n  # the step newly in view starts undecided
        return torch.nn.functional.one_hot(probs.argmax(), n).float()

    def _search(self, state) -> torch.Tensor:
        c = self.config
        n = self.model.spec.action_dim
        starts = state.repeat(c.samples)
        probs = self._floor(self.mean)
        for _ in range(c.iterations):
            picks = torch.multinomial(probs, c.samples, replacement=True, generator=self.generator).T  # [N, H]
            picks[0] = probs.argmax(-1)  # the most likely sequence is always a candidate
            actions = torch.nn.functional.one_hot(picks, n).float()
            elite = actions[torch.topk(self.imagine(starts, actions), c.elites).indices]
            probs = self._floor(c.smoothing * probs + (1 - c.smoothing) * elite.mean(0))
        return probs

    def _floor(self, probs: torch.Tensor) -> torch.Tensor:
        probs = probs.clamp_min(self.config.min_prob)
        return probs / probs.sum(-1, keepdim=True)
