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
    seed: int = 0

    def __post_init__(self):
        check_fields(self, "CEM config", positive_ints=("horizon", "samples", "iterations", "elites"),
                     nonnegative=("init_std", "min_std"))
        if self.elites > self.samples:
            raise WmkitError(f"CEM config: elites={self.elites} exceeds samples={self.samples}")


class CEMPlanner(Planner):
    name = "cem"

    def __init__(self, model, config: CEMConfig | None = None, objective: Objective | None = None, safety=None):
        super().__init__(model, config or CEMConfig(), objective, safety)

    def _search(self, state) -> torch.Tensor:
        c = self.config
        starts = state.repeat(c.samples)
        mean, std = self.mean, (self.half_range * c.init_std).expand(c.horizon, -1).clone()
        for _ in range(c.iterations):
            noise = torch.randn((c.samples, c.horizon, mean.shape[-1]), generator=self.generator, device=mean.device)
            actions = self.clip(mean + std * noise)
            actions[0] = mean  # the current mean is always a candidate
            elite = actions[torch.topk(self.imagine(starts, actions), c.elites).indices]
            mean, std = elite.mean(0), elite.std(0).clamp_min(c.min_std * float(self.half_range.min()))
        return mean
