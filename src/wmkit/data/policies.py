"""Data-collection policies: `random` (uniform, independent steps) and `noise` (coloured noise).

`noise` is an AR(1) process per action dimension, a_t = rho a_{t-1} + sqrt(1 - rho^2) eps_t, scaled to
the action bounds: pushes persist for about 1 / (1 - rho) steps, so a pusher travels far enough to
meet the cup instead of jittering in place (white noise barely moves a damped body).

In a world with discrete actions, `random` picks a choice uniformly at each step and `noise` keeps
its last choice with probability rho (so a choice lasts about 1 / (1 - rho) steps) and otherwise
picks anew; both return the integer the world takes.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from wmkit.errors import WmkitError

POLICIES = ("random", "noise")


class RandomPolicy:
    def __init__(self, low: np.ndarray, high: np.ndarray, rng: np.random.Generator):
        self.low, self.high, self.rng = low, high, rng

    def reset(self) -> None:
        pass

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return self.rng.uniform(self.low, self.high)


class ColouredNoisePolicy(RandomPolicy):
    def __init__(self, low, high, rng, rho: float = 0.9):
        super().__init__(low, high, rng)
        self.rho = rho
        self.z = np.zeros_like(low)

    def reset(self) -> None:
        self.z = self.rng.normal(size=self.low.shape)

    def __call__(self, obs):
        self.z = self.rho * self.z + np.sqrt(1.0 - self.rho**2) * self.rng.normal(size=self.z.shape)
        mid, half = (self.high + self.low) / 2, (self.high - self.low) / 2
        return np.clip(mid + half * self.z, self.low, self.high)


class RandomChoice:
    def __init__(self, n: int, start: int, rng: np.random.Generator):
        self.n, self.start, self.rng = n, start, rng

    def reset(self) -> None:
        pass

    def __call__(self, obs) -> int:
        return self.start + int(self.rng.integers(self.n))


class StickyChoice(RandomChoice):
    def __init__(self, n, start, rng, rho: float = 0.8):
        super().__init__(n, start, rng)
        self.rho, self.last = rho, None

    def reset(self) -> None:
        self.last = None

    def __call__(self, obs) -> int:
        if self.last is None or self.rng.random() >= self.rho:
            self.last = super().__call__(obs)
        return self.last


def make_policy(name: str, action_space, rng: np.random.Generator):
    if isinstance(action_space, spaces.Discrete):
        if name not in POLICIES:
            raise WmkitError(f"unknown policy {name!r}; choose one of: {', '.join(POLICIES)}")
        kind = RandomChoice if name == "random" else StickyChoice
        return kind(int(action_space.n), int(action_space.start), rng)
    low = np.asarray(action_space.low, dtype=np.float64)
    high = np.asarray(action_space.high, dtype=np.float64)
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        raise WmkitError("the world's action space is unbounded; random policies need finite bounds")
    if name == "random":
        return RandomPolicy(low, high, rng)
    if name == "noise":
        return ColouredNoisePolicy(low, high, rng)
    raise WmkitError(f"unknown policy {name!r}; choose one of: {', '.join(POLICIES)}")
