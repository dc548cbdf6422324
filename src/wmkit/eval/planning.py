"""Planning usefulness: does planning inside the model act as well as planning inside the true simulator?

The same CEM planner (control/cem.py, budgets from the suite) drives the true world from the same
starting states twice: once imagining with the model, once with the `oracle` (the true simulator
behind the same verbs). A coloured-noise policy from the same starts gives the floor. Reported: the
mean return of each, and

    planning_ratio = (R_model - R_random) / (R_oracle - R_random)

1 means the model plans as well as the simulator itself; 0 means no better than random actions
(returns are often negative, so a plain R_model / R_oracle would not mean the same on every world).
When planning with the simulator does not beat random actions by 5% (a budget too small for the
task), the ratio is null with a note saying so.
Where the world defines success (Tabletop: the cup ends within 5 cm of the target spot and never
fell), the success rate of each too.
"""

from __future__ import annotations

import numpy as np
import torch

from wmkit.control.base import PlannerPolicy
from wmkit.control.cem import CEMConfig, CEMPlanner
from wmkit.data.policies import make_policy
from wmkit.errors import WmkitError
from wmkit.eval.scorecard import Skip

MIN_SPAN = 0.05  # the simulator planner must beat random by 5% of the random return for a ratio


def section(ctx) -> dict:
    from wmkit.models import reference_model

    m, s = ctx.model, ctx.suite
    if "reward" not in m.spec.predicts:
        raise Skip(f"the {m.family!r} model predicts no reward, so a planner cannot score plans with it")
    world = ctx.world
    val = ctx.dataset.split("val") or ctx.dataset.episodes
    cfg = CEMConfig(horizon=s.plan_horizon, samples=s.plan_samples, iterations=s.plan_iterations,
                    elites=max(2, s.plan_samples // 8), seed=ctx.seed)
    oracle = m if m.family == "oracle" else reference_model("oracle", m.spec.world)
    starts, seed = [], ctx.seed * 1000
    while len(starts) < s.plan_episodes:  # starts where there is something to do (not already a success)
        obs0, _ = world.reset(seed=seed, options={"physics": val[len(starts) % len(val)].physics})
        seed += 1
        if hasattr(world, "success") and world.success() and seed < ctx.seed * 1000 + 100:
            continue
        starts.append((world.get_state(), dict(world.physics), obs0))
    rows = {"model": [], "oracle": [], "random": []}
    for name, runner in (("model", m), ("oracle", oracle), ("random", None)):
        for i, (sim, physics, obs0) in enumerate(starts):
            rows[name].append(_episode(ctx, world, runner, cfg, sim, physics, obs0, s.plan_steps, seed=i))
    mean = {k: float(np.mean([r["return"] for r in v])) for k, v in rows.items()}
    span = mean["oracle"] - mean["random"]
    out = {"returns": mean, "episodes": s.plan_episodes, "steps": s.plan_steps,
           "planner": {"name": "cem", **{k: getattr(cfg, k) for k in ("horizon", "samples", "iterations", "elites")}}}
    # the ratio means something only where planning with the simulator itself beats random actions
    if span > MIN_SPAN * max(abs(mean["random"]), 1e-9):
        out["planning_ratio"] = (mean["model"] - mean["random"]) / span
    else:
        out["planning_ratio"] = None
        out["note"] = (f"planning with the true simulator did not beat random actions at this budget "
                       f"({mean['oracle']:.2f} vs {mean['random']:.2f}), so the ratio is undefined; "
                       f"use --suite full")
    if rows["model"][0].get("success") is not None:
        out["success_rate"] = {k: float(np.mean([r["success"] for r in v])) for k, v in rows.items()}
    return out


def _episode(ctx, world, model, cfg, sim, physics, obs0, steps, seed) -> dict:
    world.set_physics(physics)
    world.set_state(sim)
    obs = np.asarray(obs0, dtype=np.float32)
    if model is None:
        policy = make_policy("noise", world.action_space, np.random.default_rng([ctx.seed, seed, 51]))
    else:
        policy = PlannerPolicy(CEMPlanner(model, cfg))
    policy.reset()
    total, terminated = 0.0, False
    for _ in range(steps):
        if model is None:
            action = np.asarray(policy(obs), dtype=np.float32)
        else:
            try:
                action = policy(obs, physics=[physics], sim_state=torch.from_numpy(world.get_state())[None])
            except WmkitError as e:
                raise Skip(f"the model could not observe the planning context: {e}") from None
        obs, reward, terminated, _, _ = world.step(action.astype(world.action_space.dtype))
        obs = np.asarray(obs, dtype=np.float32)
        total += reward
        if terminated:
            break
    success = world.success() if hasattr(world, "success") else None
    return {"return": total, "terminated": bool(terminated), "success": success}
