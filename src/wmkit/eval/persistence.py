"""Persistence: how long imagination stays close to the truth, and whether it stays plausible after that.

From `suite.drift_rollouts` held-out moments (exact simulator states), the model and the true
simulator both run `suite.drift_horizon` steps (1,000 in the full suite: far past the episodes the
model was trained on) under the same coloured-noise actions; truth keeps stepping after an episode
would have ended. Reported:

- error vs step: normalised RMSE (mean over dimensions of RMSE / spread) at each step;
- first_over_threshold: the first step whose error passes THRESHOLD (half a standard deviation of
  the data), or null if it never does within the horizon; steps_within_threshold: the steps before
  it (the whole horizon if never);
- memory probe (worlds that define a memory cue, e.g. Tabletop-Memory-v0, where which target spot
  counts is shown only in the first 4 observations): the model observes an episode from its start,
  cue included, through a blind span of N = 16, 64, 256 more steps, then imagines 10 steps. The
  same again with the cue flipped (and, for the truth and the oracle, the hidden property flipped).
  recall(N) = mean |r^ - r^_flipped| / mean |r - r_flipped| over those 10 predicted rewards: 1 when
  the model remembers the cue exactly as it matters, 0 when it has forgotten it (a memoryless
  model always scores 0). Passes at >= MEMORY_PASS.
- distribution distance vs step: per-dimension 1-Wasserstein distance between the set of imagined
  states and the set of true states at that step, over the spread, averaged over dimensions. On a
  chaotic world the pointwise error saturates whatever the model does; this distance still tells a
  model that stays on the world's manifold (small) from one that drifts off it (large).
"""

from __future__ import annotations

import numpy as np
import torch

from wmkit.data.policies import make_policy
from wmkit.eval.scorecard import Skip, guarded
from wmkit.worlds.base import simulate_rows

THRESHOLD = 0.5
CHECKPOINTS = (1, 10, 50, 100, 250, 500, 1000)


BLIND_SPANS = (16, 64, 256)
PROBE_K = 10
MEMORY_PASS = 0.5


def section(ctx) -> dict:
    return {"drift": guarded(drift, ctx), "memory": guarded(memory, ctx)}


@torch.no_grad()
def drift(ctx) -> dict:
    m, C, s = ctx.model, ctx.context, ctx.suite
    H, M = s.drift_horizon, s.drift_rollouts
    win = ctx.windows(1)
    batch = win.take(M, with_state=True)
    if batch.sim_state is None:
        raise Skip(f"{ctx.dataset.root} stores no simulator states; collect it again with `wmkit collect`")
    M = len(batch)
    physics = win.physics_of(batch)
    world = ctx.world
    rng = np.random.default_rng([ctx.seed, 41])
    actions = np.empty((M, H, m.spec.action_dim), dtype=np.float32)
    for i in range(M):  # coloured noise, as in the data (it does not look at the state)
        policy = make_policy("noise", world.action_space, rng)
        policy.reset()
        actions[i] = [policy(None) for _ in range(H)]
    true = simulate_rows(world, batch.sim_state[:, C].numpy(), physics, actions)["obs"].astype(np.float32)
    dev = m.device
    state = m.observe(batch.obs[:, : C + 1].to(dev), batch.actions[:, :C].to(dev), physics=physics,
                      sim_state=batch.sim_state[:, C])
    pred = m.rollout(state, torch.from_numpy(actions).to(dev)).obs.float()
    truth = torch.from_numpy(true).to(dev)
    std = ctx.std
    err = ((((pred - truth) ** 2).mean(0)).sqrt() / std).mean(-1)  # [H]
    err = torch.nan_to_num(err, nan=float("inf"))
    over = torch.nonzero(err > THRESHOLD)
    first = int(over[0, 0]) + 1 if len(over) else None
    steps = [h for h in CHECKPOINTS if h <= H]
    w1 = [_wasserstein(pred[:, h - 1], truth[:, h - 1], std) for h in steps]
    curve_steps = sorted(set(np.unique(np.geomspace(1, H, 40).round().astype(int)).tolist()))
    return {"horizon": H, "rollouts": M, "threshold": THRESHOLD, "first_over_threshold": first,
            "steps_within_threshold": H if first is None else first - 1,
            "nrmse_at": {str(h): float(err[h - 1]) for h in steps},
            "distribution_distance_at": {str(h): d for h, d in zip(steps, w1)},
            "curve": {"step": curve_steps, "nrmse": [float(err[h - 1]) for h in curve_steps]}}


def _wasserstein(a: torch.Tensor, b: torch.Tensor, std: torch.Tensor) -> float:
    """Mean over dimensions of the 1-Wasserstein distance between two equal-size samples [N, D], over the spread."""
    a, _ = torch.sort(a, dim=0)
    b, _ = torch.sort(b, dim=0)
    d = ((a - b).abs().mean(0) / std).mean()
    return float(torch.nan_to_num(d, nan=float("inf")))


@torch.no_grad()
def memory(ctx) -> dict:
    m, world = ctx.model, ctx.world
    cue = getattr(world, "memory_cue", None)
    if cue is None:
        raise Skip(f"{m.spec.world} shows no early cue to remember; score a model trained on Tabletop-Memory-v0 "
                   f"(`wmkit collect --world Tabletop-Memory-v0`) for the memory probe")
    if "reward" not in m.spec.predicts:
        raise Skip(f"the memory probe reads predicted rewards, and the {m.family!r} model predicts none")
    episodes = ctx.dataset.split("val") or ctx.dataset.episodes
    rows = []
    for n in BLIND_SPANS:
        T = cue["steps"] + n  # the last observed step
        long = [e for e in episodes if len(e) >= T + PROBE_K and e.sim_state is not None][: ctx.suite.windows]
        if len(long) < 2:
            rows.append({"blind_span": n, "skipped": f"fewer than 2 held-out episodes last {T + PROBE_K} steps"})
            continue
        obs = torch.from_numpy(np.stack([e.obs[: T + 1] for e in long]))
        acts = torch.from_numpy(np.stack([e.actions[: T + PROBE_K] for e in long]))
        sims = np.stack([e.sim_state[T] for e in long])
        physics = [dict(e.physics) for e in long]
        flipped_obs = obs.clone()
        flipped_obs[:, : cue["steps"], cue["dim"]] *= -1
        flipped = [{**p, cue["param"]: -p[cue["param"]]} for p in physics]
        dev = m.device

        def imagine(o, phys):
            state = m.observe(o.to(dev), acts[:, :T].to(dev), physics=phys, sim_state=torch.from_numpy(sims))
            return m.rollout(state, acts[:, T:].to(dev)).reward.float().cpu()

        r_hat, r_hat_flip = imagine(obs, physics), imagine(flipped_obs, flipped)
        r = simulate_rows(world, sims, physics, acts[:, T:].numpy())["reward"]
        r_flip = simulate_rows(world, sims, flipped, acts[:, T:].numpy())["reward"]
        truth_gap = float(np.abs(r - r_flip).mean())
        recall = float((r_hat - r_hat_flip).abs().mean()) / max(truth_gap, 1e-9)
        rows.append({"blind_span": n, "recall": recall, "passed": recall >= MEMORY_PASS, "episodes": len(long)})
    if all("skipped" in r for r in rows):
        raise Skip(f"no held-out episode is long enough for the shortest blind span ({rows[0]['skipped']})")
    return {"by_span": rows, "k": PROBE_K, "pass_at": MEMORY_PASS}

