"""Worlds: the true simulators. `make(world_id, physics=..., render_size=...)` returns a Gymnasium env."""

from __future__ import annotations

from wmkit.worlds.registry import REGISTRY, resolve, world_ids


def make(world_id: str, *, physics=None, render_size: int = 64, render_mode: str | None = None,
         camera: str | None = None, max_episode_steps: int | None = None):
    """Build a world. `physics` is None (defaults), a dict of values, or a split name to sample at each reset."""
    cls, extra = resolve(world_id)
    return cls(physics=physics, render_size=render_size, render_mode=render_mode, camera=camera,
               max_episode_steps=max_episode_steps, **extra)


def list_worlds() -> list[dict]:
    """Each registered world with its physics parameters, ranges and splits."""
    rows = []
    for wid, entry in REGISTRY.items():
        cls = entry.load()
        rows.append({"id": wid, "description": entry.description, "dt": cls.dt,
                     "physics": cls.physics_space.describe()})
    return rows


__all__ = ["make", "list_worlds", "world_ids"]
