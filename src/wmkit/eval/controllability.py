"""Interactive controllability: actions change what the model imagines, by the right amount.

- delta_db (after Genie's delta-PSNR): the error of imagining k steps under the logged actions and
  under the actions of another held-out window, both against the truth of the logged ones, as
  decibels of normalised state error: 10 log10(mse_other / mse_logged), at k = 4 and 16. An
  action-blind model scores 0 dB; the better a model follows actions, the higher.
- sensitivity: from one exact simulator state, for pairs of action sequences, the size of the
  imagined outcome difference over the true one, |s^(a) - s^(a')| / |s(a) - s(a')| (median over
  pairs whose true outcomes differ). Ideal 1; 0 is blind to actions, above 1 overreacts.
- action recovery: an inverse-dynamics probe (a small MLP from (s_t, s_{t+1}) to a_t) trained on
  real transitions, then asked to recover a_t from real and from imagined next states. Part of an
  action can be guessed from s_t alone (a coloured-noise push persists, and shows in the pusher's
  velocity), so a second probe sees s_t only, and the score counts what the next state adds:
  (R^2 imagined - R^2 state only) / (R^2 real - R^2 state only). 1 means imagined transitions carry
  the action as clearly as real ones; 0 means they carry nothing beyond the state they start from.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from wmkit.eval.interventions import pair_differences
from wmkit.eval.scorecard import Skip, guarded

DELTA_KS = (4, 16)
MSE_FLOOR = 1e-8  # a perfect model's error, for the decibel ratio (caps it near 80 dB)


def section(ctx) -> dict:
    return {"delta_db": guarded(delta_db, ctx), "sensitivity": guarded(sensitivity, ctx),
            "action_recovery": guarded(action_recovery, ctx)}


@torch.no_grad()
def delta_db(ctx) -> dict:
    m, C, dev = ctx.model, ctx.context, ctx.model.device
    rows = []
    for k in DELTA_KS:
        win = ctx.windows(k)
        batch = win.take(ctx.suite.windows, with_state=True)
        if len(batch) < 2:
            raise Skip(f"delta_db at k={k} needs at least 2 held-out windows")
        phys = win.physics_of(batch)
        truth = batch.obs[:, C + 1:].to(dev)
        perm = torch.roll(torch.arange(len(batch)), 1)  # each window gets its neighbour's actions

        def mse(actions):
            state = m.observe(batch.obs[:, : C + 1].to(dev), batch.actions[:, :C].to(dev), physics=phys,
                              sim_state=None if batch.sim_state is None else batch.sim_state[:, C])
            pred = m.rollout(state, actions.to(dev)).obs
            return float((((pred - truth) / ctx.std) ** 2).mean())

        logged, other = mse(batch.actions[:, C:]), mse(batch.actions[perm, C:])
        delta = 10 * math.log10(max(other, MSE_FLOOR) / max(logged, MSE_FLOOR))
        rows.append({"k": k, "delta_db": delta, "mse_logged_actions": logged, "mse_other_actions": other})
    return {"by_k": rows}


@torch.no_grad()
def sensitivity(ctx) -> dict:
    iv = ctx.interventions
    d_true = pair_differences(iv.true[:, :, -1] / ctx.std).norm(dim=-1).flatten()
    d_pred = pair_differences(iv.pred[:, :, -1] / ctx.std).norm(dim=-1).flatten()
    keep = d_true > 0.1
    if not keep.any():
        raise Skip("no pair of action sequences changed the true outcome by more than 0.1; nothing to compare")
    ratio = d_pred[keep] / d_true[keep]
    return {"median_ratio": float(ratio.median()), "mean_ratio": float(ratio.mean()), "pairs": int(keep.sum()),
            "ideal": 1.0}


def action_recovery(ctx) -> dict:
    m, C, dev = ctx.model, ctx.context, ctx.model.device
    ds = ctx.dataset
    try:
        train = ds.windows(0, 1, "train").sample(20000, generator=ctx.generator(31))
    except Exception as e:  # noqa: BLE001 - any shortage of data is a skip, with its reason
        raise Skip(f"no training transitions for the probe: {e}") from None
    stats = ds.stats("train")
    s_mean, s_std = stats["obs_mean"], stats["obs_std"].clamp_min(1e-6)
    d_std = stats["delta_std"].clamp_min(1e-6)
    low = torch.tensor(m.spec.action_low, dtype=torch.float32)
    high = torch.tensor(m.spec.action_high, dtype=torch.float32)

    def features(s, s_next):
        return torch.cat([(s - s_mean) / s_std, (s_next - s) / d_std], dim=-1)

    def target(a):
        return (a - (high + low) / 2) / ((high - low) / 2)

    x, y = features(train.obs[:, 0], train.obs[:, 1]), target(train.actions[:, 0])
    probe = _fit_probe(x, y, ctx, salt=32)
    state_only = _fit_probe(x[:, : s_mean.shape[0]], y, ctx, salt=33)
    win = ctx.windows(1)
    val = win.take(max(ctx.suite.windows, 512), with_state=True)
    with torch.no_grad():
        s, a, s_real = val.obs[:, C], val.actions[:, C], val.obs[:, C + 1]
        state = m.observe(val.obs[:, : C + 1].to(dev), val.actions[:, :C].to(dev), physics=win.physics_of(val),
                          sim_state=None if val.sim_state is None else val.sim_state[:, C])
        _, pred = m.step(state, a.to(dev))
        s_imag = pred.obs.float().cpu()
        r2_real = _r2(probe(features(s, s_real)), target(a))
        r2_imag = _r2(probe(features(s, s_imag)), target(a))
        r2_state = _r2(state_only((s - s_mean) / s_std), target(a))
    gain = r2_real - r2_state
    if gain <= 0.05:
        raise Skip(f"the next state adds too little to recover the action (R^2 {r2_real:.3f} with it, "
                   f"{r2_state:.3f} from the state alone); this metric cannot separate models here")
    return {"r2_real": r2_real, "r2_imagined": r2_imag, "r2_state_only": r2_state,
            "ratio": (r2_imag - r2_state) / gain, "transitions": len(val)}


def _fit_probe(x, y, ctx, salt: int):
    with torch.random.fork_rng():
        torch.manual_seed(ctx.seed * 1_000 + salt)
        probe = nn.Sequential(nn.Linear(x.shape[1], 128), nn.SiLU(), nn.Linear(128, 128), nn.SiLU(),
                              nn.Linear(128, y.shape[1]))
    opt = torch.optim.Adam(probe.parameters(), lr=3e-3)
    g = ctx.generator(salt)
    for _ in range(ctx.suite.probe_steps):
        i = torch.randint(len(x), (512,), generator=g)
        loss = ((probe(x[i]) - y[i]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return probe


def _r2(pred, target) -> float:
    ss_res = float(((pred - target) ** 2).sum())
    ss_tot = float(((target - target.mean(0)) ** 2).sum())
    return 1.0 - ss_res / max(ss_tot, 1e-12)
