"""Exact counterfactuals: from one simulator state, several action sequences, in the model and in truth.

From each of `suite.starts` held-out moments (a context the model observes, and the exact simulator
state at its end), `suite.sequences` action sequences of `suite.intervention_horizon` steps are
played twice: imagined by the model, and run in the true simulator restored with `set_state` to that
very state (with that episode's physics). Sequence 0 is the logged one; the others are logged
sequences of other held-out windows, so every intervention stays inside the data's action
distribution. Causality (interventional fidelity) and controllability (sensitivity) read these.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from wmkit.errors import WmkitError
from wmkit.worlds.base import simulate_rows


@dataclass
class Interventions:
    true: torch.Tensor  # [S, K, H, D]
    pred: torch.Tensor  # [S, K, H, D]


def run_interventions(ctx) -> Interventions:
    from wmkit.eval.scorecard import Skip

    s = ctx.suite
    H, K = s.intervention_horizon, s.sequences
    win = ctx.windows(H)
    batch = win.take(s.starts)
    if batch.sim_state is None:
        raise Skip(f"{ctx.dataset.root} stores no simulator states; collect it again with `wmkit collect`")
    S, C = len(batch), ctx.context
    if S < 2:
        raise Skip(f"only {S} held-out start state(s); collect more episodes")
    g = ctx.generator(11)
    pool = win.take(max(4 * S, K * 2), with_state=False).actions[:, C:]  # logged sequences to swap in
    pick = torch.randint(len(pool), (S, K - 1), generator=g)
    actions = torch.cat([batch.actions[:, None, C:], pool[pick]], dim=1)  # [S, K, H, A]
    physics = win.physics_of(batch)
    starts = batch.sim_state[:, C].numpy().repeat(K, axis=0)
    true = simulate_rows(ctx.world, starts, [p for p in physics for _ in range(K)],
                         actions.reshape(S * K, H, -1).numpy())["obs"].astype(np.float32).reshape(S, K, H, -1)
    m = ctx.model
    rep = lambda x: x.repeat_interleave(K, dim=0)  # noqa: E731
    try:
        state = m.observe(rep(batch.obs[:, : C + 1]).to(m.device), rep(batch.actions[:, :C]).to(m.device),
                          physics=[p for p in physics for _ in range(K)],
                          sim_state=rep(batch.sim_state[:, C]))
        pred = m.rollout(state, actions.reshape(S * K, H, -1).to(m.device)).obs
    except WmkitError as e:
        raise Skip(f"the model could not imagine the interventions: {e}") from None
    return Interventions(true=torch.from_numpy(true).to(m.device), pred=pred.reshape(S, K, H, -1))


def pair_differences(x: torch.Tensor) -> torch.Tensor:
    """[S, K, D] -> [S, K(K-1)/2, D]: x_i - x_j for every pair i < j of sequences from the same start."""
    K = x.shape[1]
    i, j = torch.triu_indices(K, K, offset=1)
    return x[:, i] - x[:, j]


@dataclass
class Pushes:
    true: torch.Tensor  # [S, 2, D]: the outcome without and with the push
    pred: torch.Tensor  # [S, 2, D]
    body: str
    force: float
    push_step: int
    horizon: int


def run_pushes(ctx) -> Pushes:
    """Mid-rollout pushes: the same logged actions from one exact state, once as logged and once with the
    world's pushable body knocked sideways during step m = H // 2 (a MuJoCo applied force). The model is
    shown the true state right after step m in each branch (an intervention on its state, through
    `observe`) and imagines on to H."""
    from wmkit.eval.scorecard import Skip

    world, s, m_ = ctx.world, ctx.suite, ctx.model
    bodies = getattr(world, "push_bodies", ())
    if not bodies:
        raise Skip(f"{m_.spec.world} defines no body to push (MujocoWorld.push_bodies)")
    H, C = s.intervention_horizon, ctx.context
    mid = H // 2
    win = ctx.windows(H)
    batch = win.take(s.starts)
    if batch.sim_state is None:
        raise Skip(f"{ctx.dataset.root} stores no simulator states; collect it again with `wmkit collect`")
    S, D = len(batch), m_.spec.obs_dim
    physics = win.physics_of(batch)
    angle = torch.rand(S, generator=ctx.generator(61)).double().numpy() * 2 * np.pi
    forces = np.stack([np.cos(angle), np.sin(angle), np.zeros(S)], axis=1) * world.push_force
    true = np.empty((S, 2, H, D), dtype=np.float32)
    after = np.empty((S, 2, batch.sim_state.shape[-1]))  # exact state right after step `mid`
    acts = batch.actions[:, C:].numpy().astype(world.action_space.dtype)
    for i in range(S):
        world.set_physics(physics[i])
        for branch in (0, 1):
            world.set_state(batch.sim_state[i, C].numpy())
            for t in range(H):
                if branch and t == mid:
                    obs, *_ = world.step_with_push(acts[i, t], bodies[0], forces[i])
                else:
                    obs, *_ = world.step(acts[i, t])
                true[i, branch, t] = obs
                if t == mid:
                    after[i, branch] = world.get_state()
    dev = m_.device
    pred = []
    for branch in (0, 1):
        seen = torch.cat([batch.obs[:, : C + 1], torch.from_numpy(true[:, branch, : mid + 1])], dim=1)
        state = m_.observe(seen.to(dev), batch.actions[:, : C + mid + 1].to(dev), physics=physics,
                           sim_state=torch.from_numpy(after[:, branch]))
        pred.append(m_.rollout(state, batch.actions[:, C + mid + 1:].to(dev)).obs[:, -1])
    return Pushes(true=torch.from_numpy(true[:, :, -1]).to(dev), pred=torch.stack(pred, dim=1), body=bodies[0],
                  force=float(world.push_force), push_step=mid + 1, horizon=H)
