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


@dataclass
class Interventions:
    true: torch.Tensor  # [S, K, H, D]
    pred: torch.Tensor  # [S, K, H, D]
    actions: torch.Tensor  # [S, K, H, A]


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
    true = true_rollouts(ctx.world, starts, [p for p in physics for _ in range(K)],
                         actions.reshape(S * K, H, -1).numpy()).reshape(S, K, H, -1)
    m = ctx.model
    rep = lambda x: x.repeat_interleave(K, dim=0)  # noqa: E731
    try:
        state = m.observe(rep(batch.obs[:, : C + 1]).to(m.device), rep(batch.actions[:, :C]).to(m.device),
                          physics=[p for p in physics for _ in range(K)],
                          sim_state=rep(batch.sim_state[:, C]))
        pred = m.rollout(state, actions.reshape(S * K, H, -1).to(m.device)).obs
    except WmkitError as e:
        raise Skip(f"the model could not imagine the interventions: {e}") from None
    return Interventions(true=torch.from_numpy(true).to(m.device), pred=pred.reshape(S, K, H, -1),
                         actions=actions)


def true_rollouts(world, starts: np.ndarray, physics: list[dict], actions: np.ndarray) -> np.ndarray:
    """True observations [N, H, D] from exact states [N, S] with each row's physics, under actions [N, H, A].

    All rows of one physics go through `simulate_batch` at once where the world supports it (MuJoCo's
    threaded rollout), else row by row through `step`; stepping goes on past terminations.
    """
    N, H = actions.shape[:2]
    actions = actions.astype(world.action_space.dtype)
    out = np.empty((N, H, *world.observation_space.shape), dtype=np.float32)
    groups: dict[tuple, list[int]] = {}
    for i, p in enumerate(physics):
        groups.setdefault(tuple(sorted(p.items())), []).append(i)
    for key, idx in groups.items():
        world.set_physics(dict(key))
        if getattr(world, "batch_simulation", False):
            out[idx] = world.simulate_batch(starts[idx], actions[idx])["obs"]
            continue
        for i in idx:
            world.set_state(starts[i])
            for t in range(H):
                out[i, t], *_ = world.step(actions[i, t])
    return out


def pair_differences(x: torch.Tensor) -> torch.Tensor:
    """[S, K, D] -> [S, K(K-1)/2, D]: x_i - x_j for every pair i < j of sequences from the same start."""
    K = x.shape[1]
    i, j = torch.triu_indices(K, K, offset=1)
    return x[:, i] - x[:, j]
