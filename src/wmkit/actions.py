"""How actions travel between worlds, datasets, models and planners.

A continuous (Box) action is a float vector and stays one. A discrete action (a Gymnasium
`Discrete(n)` choice) is an integer for the world, but everywhere else (datasets, models, planners)
it is the one-hot vector of its n choices: every model then reads float vectors of a fixed size, and
a planner searching discrete sequences hands the model exactly what it was trained on. `encode`
turns what a policy returns (an integer, or a vector whose largest entry is the choice) into the
stored vector; `decode` turns a stored vector back into what the world's `step` takes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from gymnasium import spaces

from wmkit.errors import WmkitError

CONTINUOUS, DISCRETE = "continuous", "discrete"
KINDS = (CONTINUOUS, DISCRETE)


@dataclass(frozen=True)
class ActionLayout:
    kind: str  # "continuous" or "discrete"
    dim: int  # the length of the vector a model reads (the number of choices when discrete)
    low: tuple[float, ...]
    high: tuple[float, ...]


def layout(space: spaces.Space, world: str = "the world") -> ActionLayout:
    if isinstance(space, spaces.Box):
        return ActionLayout(CONTINUOUS, int(np.prod(space.shape)), tuple(np.asarray(space.low, float).ravel()),
                            tuple(np.asarray(space.high, float).ravel()))
    if isinstance(space, spaces.Discrete):
        n = int(space.n)
        return ActionLayout(DISCRETE, n, (0.0,) * n, (1.0,) * n)
    raise WmkitError(f"{world} has a {type(space).__name__} action space; wmkit handles Box (continuous) and "
                     f"Discrete action spaces")


def encode(space: spaces.Space, action) -> np.ndarray:
    """The stored float32 vector of `action` (for a Discrete space: an integer choice, or a vector of
    scores whose largest entry is the choice)."""
    if isinstance(space, spaces.Discrete):
        onehot = np.zeros(int(space.n), dtype=np.float32)
        onehot[choice(space, action)] = 1.0
        return onehot
    return np.asarray(action, dtype=np.float32)


def decode(space: spaces.Space, vector):
    """What the world's `step` takes for a stored or planned action vector."""
    if isinstance(space, spaces.Discrete):
        return int(space.start) + choice(space, vector)
    return np.asarray(vector).astype(space.dtype)


def choice(space: spaces.Discrete, action) -> int:
    """The index (0..n-1) of a discrete action given as an integer or as a vector of n scores."""
    n = int(space.n)
    a = np.asarray(action)
    if a.ndim == 0:
        if not np.issubdtype(a.dtype, np.integer) and not float(a).is_integer():
            raise WmkitError(f"discrete action {a.item()!r} is not a whole number; give one of "
                             f"{int(space.start)}..{int(space.start) + n - 1}")
        i = int(a) - int(space.start)
        if not 0 <= i < n:
            raise WmkitError(f"discrete action {int(a)} is out of range; give one of "
                             f"{int(space.start)}..{int(space.start) + n - 1}")
        return i
    if a.shape != (n,) or not np.all(np.isfinite(a)):
        raise WmkitError(f"a discrete action of {n} choices is an integer or a vector of {n} finite scores, "
                         f"got shape {a.shape}")
    return int(np.argmax(a))
