"""The world registry: versioned ids with lazy string entry points (nothing imported until made).

Behaviour never changes under an existing id: a changed world gets a new version (`-v1`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import import_module

from wmkit.errors import WmkitError


@dataclass(frozen=True)
class WorldEntry:
    id: str
    entry_point: str  # "module:Class"
    description: str
    kwargs: dict = field(default_factory=dict)

    def load(self):
        module, cls = self.entry_point.split(":")
        return getattr(import_module(module), cls)


_GYM = "wmkit.worlds.gym_worlds"
REGISTRY: dict[str, WorldEntry] = {
    e.id: e
    for e in (
        WorldEntry("Tabletop-v0", "wmkit.worlds.tabletop:Tabletop",
                   "a cup pushed across a table by a 2-D force; past the edge it falls (default world)"),
        WorldEntry("Tabletop-Memory-v0", "wmkit.worlds.tabletop:TabletopMemory",
                   "Tabletop whose target spot is shown only in the first 4 steps (the memory probe's world)"),
        WorldEntry("InvertedPendulum-v5", f"{_GYM}:InvertedPendulum", "Gymnasium MuJoCo: balance a pole on a cart"),
        WorldEntry("Reacher-v5", f"{_GYM}:Reacher", "Gymnasium MuJoCo: a 2-link arm reaches a target"),
        WorldEntry("HalfCheetah-v5", f"{_GYM}:HalfCheetah", "Gymnasium MuJoCo: a planar cheetah runs"),
        WorldEntry("Pendulum-v1", f"{_GYM}:Pendulum", "Gymnasium classic control: swing a pendulum up"),
    )
}
GYM_PREFIX = "gym:"  # any Gymnasium id, e.g. gym:Hopper-v5


def world_ids() -> list[str]:
    return list(REGISTRY)


def resolve(world_id: str):
    """The class (and extra kwargs) that builds `world_id`."""
    if not isinstance(world_id, str):
        raise WmkitError(f"world id must be a string, got {world_id!r}")
    if world_id.startswith(GYM_PREFIX):
        from wmkit.worlds.gym_worlds import GymWorld

        return GymWorld, {"gym_id": world_id[len(GYM_PREFIX):]}
    if world_id.startswith("wmkit/"):
        world_id = world_id[len("wmkit/"):]
    if world_id not in REGISTRY:
        known = ", ".join(REGISTRY)
        raise WmkitError(f"unknown world {world_id!r}; known: {known} (or gym:<any Gymnasium id>)")
    entry = REGISTRY[world_id]
    return entry.load(), dict(entry.kwargs)


def register_gymnasium() -> None:
    """Register every world with Gymnasium as `wmkit/<id>` (string entry points: cheap)."""
    from gymnasium.envs.registration import register, registry

    for entry in REGISTRY.values():
        gid = f"wmkit/{entry.id}"
        if gid not in registry:
            register(id=gid, entry_point=entry.entry_point, kwargs=dict(entry.kwargs),
                     disable_env_checker=False, order_enforce=True)
