"""Motion priors: what a world's state does in one step by the rules the world can state, at its nominal physics.

A learned model of a world whose bodies mostly move freely spends most of its capacity relearning that
free motion (a spring-driven pusher is a linear map of its state and force; a sliding cup slows at a
constant rate) and still gets it only roughly. Where a world can write its motion down (in closed form,
or substep by substep as its simulator's rules go, contacts included), it names a prior here. A model
that uses one predicts the next state as the prior's plus a learned residual (residual physics, as in
Zeng et al.'s TossingBot, 2019, and Ajay et al., IROS 2018), so the network's capacity goes to what the
prior leaves out (Tabletop: falls and floor impacts). A prior reads the
observation and the step's action only, with the world's nominal physics, never the simulator's hidden
state, so the model is still a model of P(s' | s, a).

As with feature sets, a checkpoint stores the prior's name, and a released prior is never changed (a new
version gets a new name).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import torch

from wmkit.errors import WmkitError


@dataclass(frozen=True)
class MotionPrior:
    name: str
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # obs [..., D], action [..., A] -> next obs [..., D]
    about: str
    worlds: tuple[str, ...]
    """the worlds whose observations it reads"""

    def __call__(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.fn(obs, action)


_TABLETOP_WORLDS = ("Tabletop-v0", "Tabletop-Memory-v0")  # the memory variant's observation adds one cue at the end
_WEIGHTS: dict = {}


def _pusher_end_weights(device, dtype) -> torch.Tensor:
    """[2, 3]: the pusher's position and velocity along one axis at the step's end, as weights of its
    start position, start velocity and force."""
    key = (device, dtype)
    if key not in _WEIGHTS:
        from wmkit.worlds.features import pusher_free_weights

        xs, vs = pusher_free_weights()
        _WEIGHTS[key] = torch.stack([xs[:, -1], vs[:, -1]]).to(device=device, dtype=dtype)
    return _WEIGHTS[key]


def _tabletop_free_v1(obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    from wmkit.worlds.tabletop import PUSHER_STRENGTH, Tabletop

    n, h = Tabletop.frame_skip, Tabletop.dt / Tabletop.frame_skip
    w = _pusher_end_weights(obs.device, obs.dtype)
    x, v, force = obs[..., 0:2], obs[..., 5:7], PUSHER_STRENGTH * action.clamp(-1.0, 1.0)
    pusher = w[0, 0] * x + w[0, 1] * v + w[0, 2] * force
    v_pusher = w[1, 0] * x + w[1, 1] * v + w[1, 2] * force
    # the cup slides on, its slides' dry friction taking (friction / mass) * h off each axis's speed
    # every substep until that axis stops; its position moves by the speed after each substep
    cup, v_cup = obs[..., 2:4], obs[..., 7:9]
    mass, friction = _nominal_cup()
    speed, loss = v_cup.abs(), friction / mass * h
    moving = torch.floor(speed / loss).clamp(max=n)  # substeps that end with the axis still moving
    travel = h * (moving * speed - loss * moving * (moving + 1) / 2)
    cup = cup + torch.sign(v_cup) * travel
    v_cup = torch.sign(v_cup) * (speed - n * loss).clamp_min(0.0)
    # the cup's height keeps its speed: resting, the table holds it; falling, the model adds gravity
    z, vz = obs[..., 4:5], obs[..., 9:10]
    return torch.cat([pusher, cup, z + n * h * vz, v_pusher, v_cup, vz, obs[..., 10:]], -1)


_TABLETOP_FREE_V1 = MotionPrior(
    "tabletop-free-v1", _tabletop_free_v1,
    "the pusher on its spring and damper under the action, the cup sliding on against its dry friction, "
    "as if they did not touch (exact off the rail ends at the nominal physics)", _TABLETOP_WORLDS)

# MuJoCo's soft constraints (its documentation, Computation: Soft constraints): a constraint at distance r
# (< 0: violated) whose distance changes at speed v asks for the acceleration aref = -b v - k d(r) r along
# it, with b = 2 / (dmax tc), k = 1 / (dmax tc zeta)^2 from its solref (tc, zeta) and the impedance d(r)
# from its solimp (here MuJoCo's default, d rising from 0.9 to dmax = 0.95 over the first millimetre).
# Its force f solves (A + R) f = aref - a0 within its bounds, where A is the inverse inertia along the
# constraint, R = (1 - d) / d A its softness and a0 the acceleration without it.
_D0, _DMAX, _WIDTH = 0.9, 0.95, 0.001  # solimp
_CONTACT_TC, _JOINT_TC = 0.04, 0.02  # solref time constants: the pusher-cup pair (assets/tabletop.xml), joints
_PUSHER_Z, _HEIGHTS = 0.445, 0.075  # m: the pusher's centre height, its half-height plus the cup's (the xml)
_SWEEPS = 2  # projected Gauss-Seidel sweeps over the coupled constraints per substep


@functools.cache
def _nominal_cup() -> tuple[float, float]:
    """The cup's mass (kg) and its slides' dry friction (N) at Tabletop's default physics, as tabletop.py
    sets the frictionloss: the mean of the two friction coefficients times the cup's weight."""
    from wmkit.worlds.tabletop import Tabletop

    v = Tabletop.physics_space.defaults()
    return v["cup_mass"], 0.5 * (v["cup_friction"] + v["table_friction"]) * v["cup_mass"] * v["gravity"]


def _impedance(r: torch.Tensor) -> torch.Tensor:
    """solimp's d(r) for r <= 0 (its midpoint 0.5 and power 2): 2 x^2 below the midpoint, 1 - 2 (1 - x)^2 above."""
    x = (r / -_WIDTH).clamp(0.0, 1.0)
    return _D0 + (_DMAX - _D0) * (2 * x**2 - 4 * (x - 0.5).clamp_min(0.0) ** 2)


def _gains(tc: float) -> tuple[float, float]:
    return 2 / (_DMAX * tc), 1 / (_DMAX * tc) ** 2


_MARGIN = 0.005  # m: how far a body's path within a step may bow away from the straight line between its ends


def _constraints_may_act(obs: torch.Tensor, free: torch.Tensor, level: torch.Tensor,
                         saturated: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Three [...] bools: whether, in this step, the pusher may come within reach of the cup, whether it may
    come within reach of a rail end, and whether the cup's dry friction may act as less than its full
    force (below `saturated` m/s MuJoCo's soft friction slows a moving cup by less than the free prior's
    constant deceleration). Where none of these can happen, the soft prior's next state is the free prior's."""
    from wmkit.worlds.tabletop import CUP_RADIUS, PUSHER_RADIUS, PUSHER_RANGE

    start, end = obs[..., 2:4] - obs[..., 0:2], free[..., 2:4] - free[..., 0:2]
    moved = (end - start).norm(dim=-1)
    # along a straight relative path no point is farther than half its length from the nearer end
    least = torch.minimum(start.norm(dim=-1), end.norm(dim=-1)) - moved / 2 - (PUSHER_RADIUS + CUP_RADIUS)
    meets = (least < _MARGIN) & level[..., 0]
    rail = torch.maximum(obs[..., 0:2].abs(), free[..., 0:2].abs()) > PUSHER_RANGE - _MARGIN
    # friction: a resting axis stays at rest, a fast one slows at the full force all step long
    speed, speed_end = obs[..., 7:9].abs(), free[..., 7:9].abs()
    soft = (speed > 1e-4) & (speed_end < saturated)
    return meets, rail.any(-1), soft.any(-1)


def _tabletop_soft_v1(obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    from wmkit.worlds.tabletop import (CUP_RADIUS, PUSHER_DAMPING, PUSHER_MASS, PUSHER_RADIUS, PUSHER_RANGE,
                                       PUSHER_STIFFNESS, PUSHER_STRENGTH, Tabletop)

    n, h = Tabletop.frame_skip, Tabletop.dt / Tabletop.frame_skip
    mp, kp, dp = PUSHER_MASS, PUSHER_STIFFNESS, PUSHER_DAMPING
    mc, limit = _nominal_cup()  # limit: the cup slides' dry friction (frictionloss), N
    b_touch, k_touch = _gains(_CONTACT_TC)
    b_joint, k_joint = _gains(_JOINT_TC)
    a_touch, a_rail = 1 / mp + 1 / mc, 1 / mp  # inverse inertia along the contact's normal and along a rail
    cup_gain = _D0 * mc  # 1 / (A + R) for the cup's friction: no distance, so its impedance is d(0)
    x, v, force = obs[..., 0:2], obs[..., 5:7], PUSHER_STRENGTH * action.clamp(-1.0, 1.0)
    c, vc, z, vz = obs[..., 2:4], obs[..., 7:9], obs[..., 4:5], obs[..., 9:10]
    level = (z - _PUSHER_Z).abs() < _HEIGHTS  # the pusher and the cup at heights where they can meet
    free = _tabletop_free_v1(obs, action)
    meets, rails, slows = (bool(m.any()) for m in _constraints_may_act(obs, free, level, limit / (mc * b_joint * _D0)))
    if not (meets or rails or slows):
        return free  # what the loop below would give, to 1e-6, at a twentieth of the cost
    # the loop leaves out what no row of the batch can meet this step (its force would be zero)
    push = f_rail = side = 0.0
    for _ in range(n):
        spring = force - kp * x
        a_pusher = (spring - dp * v) / mp  # without constraints (MuJoCo's solver sees damping explicitly)
        if rails:
            # a rail end alone (it meets the cup only once the cup is off the table): its force in closed form
            side = torch.sign(x)
            to_end = PUSHER_RANGE - x.abs()  # < 0: past it
            d_rail = _impedance(to_end)
            f_rail = ((b_joint * side * v - k_joint * d_rail * to_end + side * a_pusher) * (d_rail / a_rail))
            f_rail = f_rail.clamp_min(0.0) * (to_end < 0)
        aref_cup = -b_joint * vc
        if meets:
            offset = c - x
            dist = offset.norm(dim=-1, keepdim=True)
            normal = offset / dist.clamp_min(1e-9)  # the contact pushes the cup along it, the pusher against it
            gap = dist - (PUSHER_RADIUS + CUP_RADIUS)  # < 0: touching
            d_touch = _impedance(gap)
            # the contact and the cup's friction together, by projected Gauss-Seidel: each in turn against the
            # acceleration the other's force gives it (rhs: aref - a0 of the contact, gain: 1 / (A + R))
            rhs = (-b_touch * ((vc - v) * normal).sum(-1, keepdim=True) - k_touch * d_touch * gap
                   + (a_pusher * normal).sum(-1, keepdim=True))
            gain = d_touch / a_touch * ((gap < 0) & level)
            f_touch = (rhs * gain).clamp_min(0.0)
            f_cup = ((aref_cup - normal * (f_touch / mc)) * cup_gain).clamp(-limit, limit)
            for _ in range(_SWEEPS - 1):
                f_touch = ((rhs - (f_cup * normal).sum(-1, keepdim=True) / mc) * gain).clamp_min(0.0)
                f_cup = ((aref_cup - normal * (f_touch / mc)) * cup_gain).clamp(-limit, limit)
            push = normal * f_touch
        else:
            f_cup = (aref_cup * cup_gain).clamp(-limit, limit)  # the friction alone
        v = (mp * v + h * (spring - push - side * f_rail)) / (mp + h * dp)  # implicit damping, as implicitfast
        x = x + h * v
        vc = vc + (h / mc) * (push + f_cup)
        c = c + h * vc
    return torch.cat([x, c, z + n * h * vz, v, vc, vz, obs[..., 10:]], -1)


_TABLETOP_SOFT_V1 = MotionPrior(
    "tabletop-soft-v1", _tabletop_soft_v1,
    "tabletop-free-v1 with what MuJoCo does when they touch, at the nominal physics: the pusher's soft "
    "contact with the cup, the cup's dry friction and the pusher's rail ends, as MuJoCo's soft "
    "constraints, solved together substep by substep; the cup's height is left to the model", _TABLETOP_WORLDS)

PRIORS: dict[str, MotionPrior] = {p.name: p for p in (_TABLETOP_FREE_V1, _TABLETOP_SOFT_V1)}
WORLD_PRIORS: dict[str, str] = {"Tabletop-v0": _TABLETOP_SOFT_V1.name, "Tabletop-Memory-v0": _TABLETOP_SOFT_V1.name}


def resolve_prior(choice: str, world: str) -> str:
    """The prior a model of `world` uses: 'auto' (the world's own, or 'none'), 'none' or a prior's name."""
    from wmkit.worlds.features import resolve_choice

    return resolve_choice(choice, world, PRIORS, WORLD_PRIORS, "motion prior")


def motion_prior(name: str, world: str | None = None) -> MotionPrior | None:
    """The prior called `name` (None for 'none'); with `world`, refused unless made for that world."""
    if name == "none":
        return None
    if name not in PRIORS:
        raise WmkitError(f"unknown motion prior {name!r} (a checkpoint from another wmkit version?); "
                         f"known: {', '.join(PRIORS)}")
    prior = PRIORS[name]
    if world is not None and world not in prior.worlds:
        raise WmkitError(f"motion prior {name!r} reads observations of {', '.join(prior.worlds)}, not {world}; "
                         f"use prior=none or auto")
    return prior
