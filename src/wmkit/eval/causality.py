"""Causality: predictions never depend on the future, and interventions change them the way they change truth.

- leak: imagine H steps, then again with every action from step t on replaced by random ones.
  Predictions of steps 1..t must not move at all (max abs difference; passes at <= 1e-5).
- interventional fidelity: from one exact simulator state, K action sequences in the model and in
  truth (`interventions`). For every pair of sequences, the outcome difference (final state under
  one minus under the other, in units of each dimension's spread) predicted vs true: R^2, and the
  share of (pair, dimension) entries whose true difference is clear (> 0.05) that the model orders
  the same way (the sign of the difference).
- pushes (worlds with `push_bodies`; Tabletop: the cup): the logged actions from one exact state,
  once as logged and once with the cup knocked sideways (3 N for one step) halfway through. The model
  is shown the true state right after the push in each branch and imagines on; R^2 and order
  agreement of the predicted vs true outcome differences, as above.
- exposure gap: open-loop error at k = 25 over teacher-forced error at the same step (the model
  given the true state one step before). 1 means errors do not compound; copy-last and a model that
  drifts score far above 1.
"""

from __future__ import annotations

import torch

from wmkit.eval.interventions import pair_differences
from wmkit.eval.scorecard import Skip, guarded

LEAK_TOLERANCE = 1e-5
EXPOSURE_K = 25


def section(ctx) -> dict:
    return {"leak": guarded(leak, ctx), "interventional": guarded(interventional, ctx),
            "pushes": guarded(pushes, ctx), "exposure_gap": guarded(exposure_gap, ctx)}


@torch.no_grad()
def leak(ctx, horizon: int = 20) -> dict:
    m, C = ctx.model, ctx.context
    batch = ctx.windows(horizon).take(min(ctx.suite.windows, 64), with_state=True)
    t = horizon // 2
    g = ctx.generator(21)
    low = torch.tensor(m.spec.action_low, dtype=torch.float32)
    high = torch.tensor(m.spec.action_high, dtype=torch.float32)
    acts = batch.actions[:, C:].clone()
    changed = acts.clone()
    noise = torch.rand(changed[:, t:].shape, generator=g)
    changed[:, t:] = low + (high - low) * noise

    def imagine(a):
        state = m.observe(batch.obs[:, : C + 1].to(m.device), batch.actions[:, :C].to(m.device),
                          sim_state=None if batch.sim_state is None else batch.sim_state[:, C])
        return m.rollout(state, a.to(m.device))

    p1, p2 = imagine(acts), imagine(changed)
    diff = 0.0
    for name in ("obs", "reward", "terminated", "obs_std"):
        a, b = getattr(p1, name), getattr(p2, name)
        if a is not None:
            diff = max(diff, float((a[:, :t] - b[:, :t]).abs().max()))
    later = float((p1.obs[:, t:] - p2.obs[:, t:]).abs().max())
    return {"max_abs_diff": diff, "tolerance": LEAK_TOLERANCE, "passed": diff <= LEAK_TOLERANCE,
            "changed_from_step": t, "horizon": horizon, "later_steps_moved": later}


@torch.no_grad()
def interventional(ctx) -> dict:
    iv = ctx.interventions
    if iv.true.shape[1] < 2:
        raise Skip("interventional fidelity needs at least two action sequences per start")
    d_true = pair_differences(iv.true[:, :, -1] / ctx.std).flatten()
    d_pred = pair_differences(iv.pred[:, :, -1] / ctx.std).flatten()
    S, K, H, _ = iv.true.shape
    return {**_fidelity(d_true, d_pred, "the action sequences tried"), "starts": S, "sequences": K, "horizon": H,
            "pairs": S * K * (K - 1) // 2}


@torch.no_grad()
def pushes(ctx) -> dict:
    from wmkit.eval.interventions import run_pushes

    p = run_pushes(ctx)
    d_true = ((p.true[:, 1] - p.true[:, 0]) / ctx.std).flatten()
    d_pred = ((p.pred[:, 1] - p.pred[:, 0]) / ctx.std).flatten()
    return {**_fidelity(d_true, d_pred, "the pushes"), "starts": int(p.true.shape[0]), "body": p.body,
            "force_n": p.force, "push_step": p.push_step, "horizon": p.horizon}


def _fidelity(d_true: torch.Tensor, d_pred: torch.Tensor, what: str) -> dict:
    """R^2 of predicted vs true outcome differences, and the share of clear (> 0.05) ones ordered right."""
    ss_tot = float(((d_true - d_true.mean()) ** 2).sum())
    if ss_tot < 1e-12:
        raise Skip(f"{what} did not change the true outcome; nothing to compare")
    clear = d_true.abs() > 0.05
    order = float((torch.sign(d_pred[clear]) == torch.sign(d_true[clear])).float().mean()) if clear.any() else None
    return {"r2": 1.0 - float(((d_pred - d_true) ** 2).sum()) / ss_tot, "order_agreement": order}


@torch.no_grad()
def exposure_gap(ctx, k: int = EXPOSURE_K) -> dict:
    m, C = ctx.model, ctx.context
    win = ctx.windows(k)
    batch = win.take(ctx.suite.windows, with_state=True)
    dev, sim, phys = m.device, batch.sim_state, win.physics_of(batch)
    state = m.observe(batch.obs[:, : C + 1].to(dev), batch.actions[:, :C].to(dev), physics=phys,
                      sim_state=None if sim is None else sim[:, C])
    open_loop = m.rollout(state, batch.actions[:, C:].to(dev)).obs[:, -1]
    j = C + k - 1  # teacher forcing: the truth up to step j, then one step
    state = m.observe(batch.obs[:, : j + 1].to(dev), batch.actions[:, :j].to(dev), physics=phys,
                      sim_state=None if sim is None else sim[:, j])
    _, one = m.step(state, batch.actions[:, j].to(dev))
    truth = batch.obs[:, -1].to(dev)
    e_open = _nrmse(open_loop, truth, ctx.std)
    e_tf = _nrmse(one.obs, truth, ctx.std)
    gap = 1.0 if e_open < 1e-9 and e_tf < 1e-9 else e_open / max(e_tf, 1e-9)
    return {"k": k, "open_loop_nrmse": e_open, "teacher_forced_nrmse": e_tf, "ratio": gap}


def _nrmse(pred, truth, std) -> float:
    return float((((pred - truth) ** 2).mean(0).sqrt() / std).mean())
