"""Model-predictive path integral control (MPPI) over any WorldModel.

Williams et al., "Information Theoretic MPC for Model-Based Reinforcement Learning" (ICRA 2017).
Kept: Gaussian perturbations of the current action sequence, each imagined and scored, and the new
sequence as the average of the candidates weighted by exp(score / temperature), so every sample
counts, the good ones most. Here the temperature is in units of the candidates' score spread (so
one setting suits rewards of any size), the current sequence is always a candidate, and `iterations`
> 1 repeats the update from the new sequence (as TD-MPC does). The warm start is shifted by one step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from wmkit.control.base import Objective, Planner
from wmkit.control.safety import REJECTED
from wmkit.errors import WmkitError, check_fields


@dataclass
class MPPIConfig:
    horizon: int = 8
    samples: int = 64
    iterations: int = 2
    temperature: float = 0.5
    """softness of the weighting, in units of the candidates' score spread (smaller: greedier)"""
    noise_std: float = 0.5
    """spread of the perturbations, as a fraction of each action's half-range"""
    particles: str = "members"
    """'members': every candidate imagined by each ensemble member; 'one': by one member in turn (E times
    less compute, no disagreement: no uncertainty penalty or safety filter)"""
    seed: int = 0

    def __post_init__(self):
        check_fields(self, "MPPI config", positive_ints=("horizon", "samples", "iterations"),
                     nonnegative=("noise_std",))
        if not self.temperature > 0:
            raise WmkitError(f"MPPI config: temperature={self.temperature!r} must be positive")


class MPPIPlanner(Planner):
    name = "mppi"

    def __init__(self, model, config: MPPIConfig | None = None, objective: Objective | None = None, safety=None,
                 prior=None):
        super().__init__(model, config or MPPIConfig(), objective, safety, prior)

    def _search(self, state) -> torch.Tensor:
        c = self.config
        starts = state.repeat(c.samples + len(self.proposed))  # a prior's sequences join every weighted average
        mean, std = self.mean, self.half_range * c.noise_std
        for _ in range(c.iterations):
            noise = torch.randn((c.samples, c.horizon, mean.shape[-1]), generator=self.generator, device=mean.device)
            actions = torch.cat([self.clip(mean + std * noise), self.proposed])
            actions[0] = mean
            score = self.imagine(starts, actions)
            allowed = score > -REJECTED / 2  # the spread of the sequences a safety filter let through
            spread = (score[allowed] if allowed.sum() > 1 else score).std().clamp_min(1e-8)
            weight = torch.softmax((score - score.max()) / (c.temperature * spread), dim=0)  # [N]
            mean = (weight[:, None, None] * actions).sum(0)
        return mean
