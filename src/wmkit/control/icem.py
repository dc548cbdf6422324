"""The improved cross-entropy method (iCEM) over any WorldModel.

Pinneri et al., "Sample-efficient Cross-Entropy Method for Real-time Planning" (CoRL 2020). Kept:
temporally coloured noise (power spectrum 1/f^beta: beta = 0 is CEM's white noise, 2 is smooth
like a pushing hand), a population that shrinks by `decay` at each iteration, a fraction of the
elites carried into the next iteration and, shifted by one step, into the next control step, the
mean added as a candidate at the last iteration, momentum on the mean, and acting with the best
sequence seen rather than the mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from wmkit.control.base import Objective, Planner
from wmkit.errors import WmkitError, check_fields


@dataclass
class ICEMConfig:
    horizon: int = 8
    samples: int = 64
    """population of the first iteration"""
    iterations: int = 3
    elites: int = 8
    decay: float = 1.25
    """population of iteration i: samples / decay^i (at least 2 x elites)"""
    noise_beta: float = 2.0
    """colour of the noise along time: 0 white, 1 pink, 2 brown (smoother)"""
    keep_elites: float = 0.3
    """fraction of the elites carried over to the next iteration and the next step"""
    momentum: float = 0.1
    init_std: float = 0.5
    """starting spread, as a fraction of each action's half-range"""
    min_std: float = 0.05
    particles: str = "members"
    """'members': every candidate imagined by each ensemble member; 'one': by one member in turn (E times
    less compute, no disagreement: no uncertainty penalty or safety filter)"""
    seed: int = 0

    def __post_init__(self):
        check_fields(self, "iCEM config", positive_ints=("horizon", "samples", "iterations", "elites"),
                     nonnegative=("noise_beta", "init_std", "min_std"))
        if self.elites > self.samples:
            raise WmkitError(f"iCEM config: elites={self.elites} exceeds samples={self.samples}")
        if not self.decay >= 1:
            raise WmkitError(f"iCEM config: decay={self.decay!r} must be >= 1")
        if not (0 <= self.keep_elites <= 1 and 0 <= self.momentum < 1):
            raise WmkitError(f"iCEM config: keep_elites={self.keep_elites!r} must be in [0, 1] and "
                             f"momentum={self.momentum!r} in [0, 1)")


def coloured_noise(n: int, horizon: int, dims: int, beta: float, generator: torch.Generator) -> torch.Tensor:
    """[n, horizon, dims] Gaussian noise with power spectrum 1/f^beta along time, unit variance overall."""
    device = generator.device
    freqs = torch.fft.rfftfreq(horizon, device=device)
    freqs[0] = freqs[1] if horizon > 1 else 1.0  # the constant term gets the lowest frequency's weight
    amp = freqs ** (-beta / 2)
    shape = (n, dims, freqs.shape[0])
    re = torch.randn(shape, generator=generator, device=device)
    im = torch.randn(shape, generator=generator, device=device)
    x = torch.fft.irfft(torch.complex(re, im) * amp, n=horizon)  # [n, dims, horizon]
    return (x / x.std().clamp_min(1e-8)).transpose(1, 2)


class ICEMPlanner(Planner):
    name = "icem"

    def __init__(self, model, config: ICEMConfig | None = None, objective: Objective | None = None, safety=None,
                 prior=None):
        super().__init__(model, config or ICEMConfig(), objective, safety, prior)

    def reset(self) -> None:
        super().reset()
        self._kept = None  # elites of the last step, for the next one

    def _search(self, state) -> torch.Tensor:
        c = self.config
        A = self.mean.shape[-1]
        mean, std = self.mean, (self.half_range * c.init_std).expand(c.horizon, -1).clone()
        keep = int(round(c.keep_elites * c.elites))
        best, best_score, elites = mean, -torch.inf, None
        for i in range(c.iterations):
            n = max(int(c.samples / c.decay ** i), 2 * c.elites)
            candidates = [self.clip(mean + std * coloured_noise(n, c.horizon, A, c.noise_beta, self.generator))]
            if i == 0 and self._kept is not None and keep:
                candidates.append(torch.cat([self._kept[:keep, 1:], self._kept[:keep, -1:]], dim=1))
            if i > 0 and keep:
                candidates.append(elites[:keep])
            if i == c.iterations - 1:
                candidates.append(mean[None])
            candidates.append(self.proposed)  # a prior's sequences compete at every iteration
            actions = torch.cat(candidates)
            score = self.imagine(state.repeat(actions.shape[0]), actions)
            top = torch.topk(score, c.elites)
            elites = actions[top.indices]  # best first
            if float(top.values[0]) > best_score:
                best, best_score = elites[0], float(top.values[0])
            mean = (1 - c.momentum) * elites.mean(0) + c.momentum * mean
            std = elites.std(0).clamp_min(c.min_std * float(self.half_range.min()))
        self._kept = elites
        return best
