"""The cross-entropy method (CEM) as a model-predictive controller over any WorldModel.

Each control step: sample `samples` action sequences of `horizon` steps from a Gaussian per step
and dimension (clipped to the action bounds), imagine them all in one batched `rollout` from the
current state, score each by its predicted return, refit the Gaussian to the best `elites`, and
repeat `iterations` times; then act with the first action of the mean, and keep the rest of the
mean, shifted by one step, as the next step's starting guess (warm start, as in PETS).

The predicted return sums predicted rewards, each weighted by the predicted chance the episode is
still running (so a model that foresees a fall counts nothing after it). A model with no reward
head cannot be planned with; the error says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from wmkit.errors import WmkitError, check_fields


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


class CEMPlanner:
    def __init__(self, model, config: CEMConfig | None = None):
        if "reward" not in model.spec.predicts:
            raise WmkitError(f"the {model.family!r} model predicts no reward, so it cannot score plans; "
                             f"train a family with a reward head (e.g. ensemble)")
        self.model = model
        self.config = config or CEMConfig()
        dev = model.device
        self.low = torch.tensor(model.spec.action_low, dtype=torch.float32, device=dev)
        self.high = torch.tensor(model.spec.action_high, dtype=torch.float32, device=dev)
        self.generator = torch.Generator(device=dev).manual_seed(self.config.seed)
        self.reset()

    def reset(self) -> None:
        """Forget the warm start (call at the start of each episode)."""
        c = self.config
        mid, half = (self.high + self.low) / 2, (self.high - self.low) / 2
        self.mean = mid.expand(c.horizon, -1).clone()
        self.std0 = half * c.init_std

    @torch.no_grad()
    def plan(self, state) -> torch.Tensor:
        """The action [A] to take now from `state` (a batch-1 State from `observe`)."""
        if state.batch_size != 1:
            raise WmkitError(f"plan() takes one state (batch 1), got a batch of {state.batch_size}")
        c, m = self.config, self.model
        starts = state.repeat(c.samples)
        mean, std = self.mean, self.std0.expand(c.horizon, -1).clone()
        half = (self.high - self.low) / 2
        for _ in range(c.iterations):
            noise = torch.randn((c.samples, c.horizon, mean.shape[-1]), generator=self.generator, device=mean.device)
            actions = torch.maximum(torch.minimum(mean + std * noise, self.high), self.low)
            actions[0] = mean  # the current mean is always a candidate
            score = predicted_return(m.rollout(starts, actions))
            elite = actions[torch.topk(score, c.elites).indices]
            mean, std = elite.mean(0), elite.std(0).clamp_min(c.min_std * float(half.min()))
        self.mean = torch.cat([mean[1:], mean[-1:]])  # warm start for the next step
        return mean[0]


def predicted_return(pred) -> torch.Tensor:
    """[N]: sum over steps of reward x the chance the episode has not ended before that step."""
    reward = pred.reward
    if pred.terminated is None:
        return reward.sum(1)
    alive = torch.cumprod(1 - pred.terminated.clamp(0, 1), dim=1)
    alive = torch.cat([torch.ones_like(alive[:, :1]), alive[:, :-1]], dim=1)
    return (reward * alive).sum(1)
