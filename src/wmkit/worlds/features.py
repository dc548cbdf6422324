"""Features of a world's state that a learned model reads besides the state itself.

A world knows its geometry; a small MLP learns it only roughly. Where a world's next state hangs on a
threshold of its state (Tabletop: the pusher touches the cup when their centres come within the sum of
their radii; the cup drops when its centre passes the table's edge), the world names a feature set that
computes those quantities exactly from the observation: PETS's per-environment `obs_preproc` (sines
and cosines of angles for its cartpole), in wmkit one named, versioned function per world. A feature is
a function of the observation (and, from v4 on, the step's action) only, never of the simulator's
hidden state, so a model that reads them is still a model of P(s' | s, a).

A checkpoint stores the feature set's name; a set is never changed once released (a new version gets a
new name), so a saved model always reads what it was trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from wmkit.errors import WmkitError


@dataclass(frozen=True)
class FeatureSet:
    name: str
    names: tuple[str, ...]
    fn: Callable[..., torch.Tensor]  # obs [..., D] (and action [..., A]) -> features [..., F], each of order 1
    reads_action: bool = False
    """whether `fn` reads the step's action too: what the state would do under it if nothing touched"""

    @property
    def dim(self) -> int:
        return len(self.names)

    def __call__(self, obs: torch.Tensor, action: torch.Tensor | None = None) -> torch.Tensor:
        if not self.reads_action:
            return self.fn(obs)
        if action is None:
            raise WmkitError(f"feature set {self.name!r} reads the step's action; pass it")
        return self.fn(obs, action)


def _tabletop_geometry(obs: torch.Tensor) -> dict[str, torch.Tensor]:
    """The distances and speeds Tabletop's thresholds are made of, in metres and m/s; each [..., 1] or [..., 2]."""
    from wmkit.worlds.tabletop import CUP_RADIUS, PUSHER_RADIUS, PUSHER_RANGE, TABLE_HALF, Tabletop

    pusher, cup = obs[..., 0:2], obs[..., 2:4]
    v_pusher, v_cup = obs[..., 5:7], obs[..., 7:9]
    offset = cup - pusher
    dist = offset.norm(dim=-1, keepdim=True).clamp_min(1e-6)
    normal = offset / dist  # from the pusher's centre towards the cup's
    gap = dist - (PUSHER_RADIUS + CUP_RADIUS)  # < 0: touching
    closing = -((v_cup - v_pusher) * normal).sum(-1, keepdim=True)  # > 0: they approach
    edgeward = torch.sign(cup) * v_cup  # > 0: moving towards the nearer edge in x, y
    to_edge = TABLE_HALF - cup.abs()  # < 0: the cup's centre is past the edge (x, y)
    to_rail = PUSHER_RANGE - pusher.abs()  # 0: the pusher at the end of its rail (x, y)
    dt = Tabletop.dt  # "after one step": where each goes in one step at the current speeds
    return {"gap": gap, "closing": closing, "gap_after": gap - closing * dt, "normal": normal,
            "to_edge": to_edge, "edgeward": edgeward, "edge_after": to_edge - edgeward * dt,
            "to_rail": to_rail, "rail_after": to_rail - torch.sign(pusher) * v_pusher * dt}


def _v1_terms(g: dict[str, torch.Tensor]) -> torch.Tensor:
    out = torch.cat([g["gap"] / 0.05, g["closing"] / 0.5, g["gap_after"] / 0.05, g["normal"], g["to_edge"] / 0.1,
                     g["edgeward"] / 0.3], -1)
    return out.clamp(-5.0, 5.0)


def _tabletop_contact_v1(obs: torch.Tensor) -> torch.Tensor:
    return _v1_terms(_tabletop_geometry(obs))


_V1_NAMES = ("pusher-cup gap", "closing speed", "gap after one step", "normal x", "normal y",
             "cup to edge x", "cup to edge y", "cup speed edgeward x", "cup speed edgeward y")
SHARP = 0.01  # metres: v2's thresholds in units of 1 cm, so a millimetre is 0.1 of an input


def _tabletop_contact_v2(obs: torch.Tensor) -> torch.Tensor:
    """v1, plus each threshold the next state hangs on, scaled in centimetres and clipped to +-3 (sharp
    near the threshold, flat away from it): where the cup's centre is against the edge now and after one
    step at its speed, the pusher-cup gap now and after one step, and where the pusher is against the end
    of its rails now and after one step (at full force its spring would carry it past them)."""
    g = _tabletop_geometry(obs)
    sharp = torch.cat([g[n] for n in ("to_edge", "edge_after", "gap", "gap_after", "to_rail", "rail_after")], -1)
    return torch.cat([_v1_terms(g), (sharp / SHARP).clamp(-3.0, 3.0)], -1)


CUP_HALF_HEIGHT = 0.05  # metres: the cup's centre stands this high above whatever holds it (assets/tabletop.xml)
NOMINAL_GRAVITY = 9.81  # m/s^2: for the height of a falling cup later in the step (a feature reads obs only)


def _tabletop_contact_v3(obs: torch.Tensor) -> torch.Tensor:
    """v2, plus the floor: how high the cup's underside is above the floor now, and as the last of the
    step's physics substeps begins (free fall at its speed, integrated substep by substep as MuJoCo's
    semi-implicit Euler does), in centimetres and clipped to +-3, and the latter once more in millimetres
    (a cup that misses the floor by 3 mm falls freely for one more step). A falling cup meets the floor part way
    through a step; it is slowed within the step only when it touches before that last substep (a contact
    found there acts in the next step), and by how much hangs on how early it touched. The largest
    one-step errors of a v2 model were these impacts."""
    from wmkit.worlds.tabletop import Tabletop

    z, vz = obs[..., 4:5], obs[..., 9:10]
    n, h = Tabletop.frame_skip - 1, Tabletop.dt / Tabletop.frame_skip  # substeps before the last, their length
    clearance = z - CUP_HALF_HEIGHT
    before_last = clearance + vz * n * h - NOMINAL_GRAVITY * h**2 * n * (n + 1) / 2
    floor = (torch.cat([clearance, before_last], -1) / SHARP).clamp(-3.0, 3.0)
    touch = (before_last / (0.1 * SHARP)).clamp(-3.0, 3.0)  # the same in millimetres: whether it touches at all
    return torch.cat([_tabletop_contact_v2(obs), floor, touch], -1)


def _substep_trajectories(obs: torch.Tensor, action: torch.Tensor):
    """Where the pusher and the cup would be after each of the step's physics substeps if they did not
    touch, in metres, [..., n, 2] each: the pusher under the action on its spring and damper (MuJoCo's
    implicit damping, substep by substep, at the nominal strength: exact for a pusher that touches nothing
    and stays off its rail ends), the cup coasting at its speed against the nominal dry friction on each
    of its slides until it stops."""
    coef = _pusher_coefficients(obs.device, obs.dtype)  # [4, n]: the weights of x, v and force in x, and the time
    x, v = obs[..., 0:2, None], obs[..., 5:7, None]  # [..., 2, 1]
    from wmkit.worlds.tabletop import PUSHER_STRENGTH

    force = PUSHER_STRENGTH * action.clamp(-1.0, 1.0)[..., None]
    pusher = (x * coef[0] + v * coef[1] + force * coef[2]).transpose(-1, -2)  # [..., n, 2]
    cup, v_cup = obs[..., 2:4, None], obs[..., 7:9, None]  # [..., 2, 1]
    speed = v_cup.abs()
    stop = speed / NOMINAL_SLIDE_DECEL  # when friction would stop each axis (its slides' dry friction acts per axis)
    t = torch.minimum(coef[3], stop)  # [..., 2, n]
    cup_path = (cup + torch.sign(v_cup) * (speed * t - 0.5 * NOMINAL_SLIDE_DECEL * t**2)).transpose(-1, -2)
    return pusher, cup_path


NOMINAL_SLIDE_DECEL = 0.25 * 9.81  # m/s^2: dry friction's slowing of a sliding cup at the nominal coefficients
_COEF: dict = {}


def pusher_free_weights() -> tuple[torch.Tensor, torch.Tensor]:
    """The pusher's free motion along one axis, substep by substep, from its mass, stiffness and damping
    (MuJoCo's implicitfast takes damping implicitly): float64 weights [3, n] of its start position, start
    velocity and force in its position after each of the step's n substeps, and the same for its velocity."""
    from wmkit.worlds.tabletop import PUSHER_DAMPING, PUSHER_MASS, PUSHER_STIFFNESS, Tabletop

    m, k, d = PUSHER_MASS, PUSHER_STIFFNESS, PUSHER_DAMPING
    n, h = Tabletop.frame_skip, Tabletop.dt / Tabletop.frame_skip
    xs, vs, state = [], [], torch.eye(3, dtype=torch.float64)  # rows: x, v, F; columns: weights of x0, v0, F
    for _ in range(n):
        v = (m * state[1] + h * (state[2] - k * state[0])) / (m + h * d)
        state = torch.stack([state[0] + h * v, v, state[2]])
        xs.append(state[0])
        vs.append(state[1])
    return torch.stack(xs, 1), torch.stack(vs, 1)


def _pusher_coefficients(device, dtype) -> torch.Tensor:
    """[4, n]: x_i = c0_i x + c1_i v + c2_i F for the pusher's free motion along one axis after i substeps,
    and row 3 the time after i substeps."""
    key = (device, dtype)
    if key not in _COEF:
        from wmkit.worlds.tabletop import Tabletop

        n, h = Tabletop.frame_skip, Tabletop.dt / Tabletop.frame_skip
        times = torch.arange(1, n + 1, dtype=torch.float64)[None] * h
        _COEF[key] = torch.cat([pusher_free_weights()[0], times]).to(device=device, dtype=dtype)
    return _COEF[key]


def _tabletop_contact_v4(obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    """v3, plus the step's action: the pusher's path through the step's substeps under it, against the
    cup's, each as if they did not touch. A push that starts within the step is a matter of the action
    (at full force the pusher closes 2 cm in a step): the smallest pusher-cup gap along the paths and the
    gap at the step's end (cm, clipped to +-3), how deep and how long they would overlap (the mean
    overlap over the substeps in cm, and the share of substeps in contact), the overlap's direction
    weighted by its depth, and where the pusher ends against its rail ends under the action (cm)."""
    from wmkit.worlds.tabletop import CUP_RADIUS, PUSHER_RADIUS, PUSHER_RANGE

    pusher, cup = _substep_trajectories(obs, action)
    offset = cup - pusher
    dist = offset.norm(dim=-1).clamp_min(1e-6)  # [..., n]
    gap = dist - (PUSHER_RADIUS + CUP_RADIUS)
    overlap = (-gap).clamp_min(0.0)
    normal = offset / dist[..., None]
    push = (overlap[..., None] * normal).mean(-2) / SHARP  # [..., 2]
    sharp = torch.stack([gap.min(-1).values, gap[..., -1]], -1) / SHARP
    rail = (PUSHER_RANGE - pusher[..., -1, :].abs()) / SHARP
    new = torch.cat([sharp.clamp(-3.0, 3.0), (overlap.mean(-1, keepdim=True) / SHARP).clamp(max=5.0),
                     (overlap > 0).to(obs.dtype).mean(-1, keepdim=True), push.clamp(-5.0, 5.0),
                     rail.clamp(-3.0, 3.0)], -1)
    return torch.cat([_tabletop_contact_v3(obs), new], -1)


_TABLETOP_V1 = FeatureSet("tabletop-contact-v1", _V1_NAMES, _tabletop_contact_v1)
_TABLETOP_V2 = FeatureSet("tabletop-contact-v2", _V1_NAMES + tuple(f"{name} (cm)" for name in (
    "cup to edge x", "cup to edge y", "cup to edge after one step x", "cup to edge after one step y",
    "pusher-cup gap", "gap after one step", "pusher to rail end x", "pusher to rail end y",
    "pusher to rail end after one step x", "pusher to rail end after one step y")), _tabletop_contact_v2)

_TABLETOP_V3 = FeatureSet("tabletop-contact-v3", _TABLETOP_V2.names + (
    "cup above floor (cm)", "cup above floor at the step's last substep (cm)",
    "cup above floor at the step's last substep (mm)"), _tabletop_contact_v3)

_TABLETOP_V4 = FeatureSet("tabletop-contact-v4", _TABLETOP_V3.names + (
    "least pusher-cup gap in the step under the action (cm)", "pusher-cup gap at the step's end under the action (cm)",
    "mean pusher-cup overlap under the action (cm)", "share of substeps in contact under the action",
    "overlap-weighted normal x", "overlap-weighted normal y", "pusher to rail end under the action x (cm)",
    "pusher to rail end under the action y (cm)"), _tabletop_contact_v4, reads_action=True)

# v1 and v2 stay for the checkpoints trained on them; new models of a Tabletop world read v3. v4 is opt-in
# (features="tabletop-contact-v4"): with the demo's recipe (18,000 steps, one seed, 1,024 windows) it scored
# 0.934 / 0.929 / 0.796 at k = 1 / 10 / 50 against v3's 0.924 / 0.940 / 0.825, and trains 5% slower
FEATURE_SETS: dict[str, FeatureSet] = {s.name: s for s in (_TABLETOP_V1, _TABLETOP_V2, _TABLETOP_V3, _TABLETOP_V4)}
WORLD_FEATURES: dict[str, str] = {"Tabletop-v0": _TABLETOP_V3.name, "Tabletop-Memory-v0": _TABLETOP_V3.name}


def resolve_choice(choice: str, world: str, known: dict, by_world: dict[str, str], what: str) -> str:
    """What a model of `world` uses of `known` (feature sets, motion priors): 'auto' (the world's own in
    `by_world`, or 'none'), 'none' or a name in `known`."""
    if choice == "auto":
        return by_world.get(world, "none")
    if choice == "none" or choice in known:
        return choice
    raise WmkitError(f"unknown {what} {choice!r}; use auto, none or one of: {', '.join(known)}")


def resolve_features(choice: str, world: str) -> str:
    """The feature set a model of `world` reads: 'auto' (the world's own, or 'none'), 'none' or a set's name."""
    return resolve_choice(choice, world, FEATURE_SETS, WORLD_FEATURES, "feature set")


def feature_set(name: str) -> FeatureSet | None:
    """The set called `name` (None for 'none')."""
    if name == "none":
        return None
    if name not in FEATURE_SETS:
        raise WmkitError(f"unknown feature set {name!r} (a checkpoint from another wmkit version?); "
                         f"known: {', '.join(FEATURE_SETS)}")
    return FEATURE_SETS[name]
