"""Open-loop accuracy vs horizon: normalised RMSE and skill against the copy-last baseline.

For each horizon k, from up to `windows` held-out windows of context + k steps (spread evenly over the
split, so the ends of episodes count too), the model observes the context, then imagines k steps under
the logged actions, never seeing the truth again:

    nrmse(k) = mean over state dimensions of RMSE_d(k) / std_d     (std_d over the whole dataset)
    skill(k) = 1 - nrmse_model(k) / nrmse_copy_last(k)

Skill 1 is perfect, 0 is no better than predicting that nothing moves, below 0 is worse.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from wmkit.errors import WmkitError

HORIZONS = (1, 5, 10, 25, 50)


@dataclass
class AccuracyResult:
    horizons: list[int]
    nrmse: list[float]
    nrmse_copy_last: list[float]
    skill: list[float]
    per_dim_nrmse: list[list[float]]  # [k][d]
    windows: int
    context: int

    def to_json(self) -> list[dict]:
        return [{"k": k, "nrmse": round(e, 6), "nrmse_copy_last": round(c, 6), "skill": round(s, 6)}
                for k, e, c, s in zip(self.horizons, self.nrmse, self.nrmse_copy_last, self.skill)]

    def skill_at(self, k: int) -> float:
        return self.skill[self.horizons.index(k)]


@torch.no_grad()
def open_loop(model, windows, batch, context: int):
    """Predicted and true observations [B, H, D] for a batch of windows after `context` steps."""
    C = context
    physics = windows.physics_of(batch) if batch.episode is not None else None
    sim_state = batch.sim_state[:, C] if batch.sim_state is not None else None
    frames = batch.frames[:, : C + 1] if batch.frames is not None and model.spec.frame_size else None
    state = model.observe(batch.obs[:, : C + 1], batch.actions[:, :C], frames=frames, physics=physics,
                          sim_state=sim_state)
    pred = model.rollout(state, batch.actions[:, C:])
    return pred, batch.obs[:, C + 1:]


@torch.no_grad()
def evaluate_accuracy(model, dataset, horizons=HORIZONS, split: str = "val", windows: int = 256,
                      context: int | None = None, std: torch.Tensor | None = None) -> AccuracyResult:
    """Accuracy of `model` on `dataset`'s `split` (episodes never used for training).

    `std` (per dimension) sets the error scale; by default each dimension's spread over the whole dataset.
    """
    horizons = sorted(set(int(k) for k in horizons))
    if not horizons or horizons[0] < 1:
        raise WmkitError(f"horizons {horizons} must be positive integers")
    if model.spec.obs_dim != dataset.meta.obs_dim or model.spec.action_dim != dataset.meta.action_dim:
        raise WmkitError(
            f"model {model.spec.world} (obs {model.spec.obs_dim}, action {model.spec.action_dim}) does not match "
            f"dataset {dataset.world} (obs {dataset.meta.obs_dim}, action {dataset.meta.action_dim})"
        )
    if not isinstance(windows, int) or windows < 1:
        raise WmkitError(f"windows={windows!r} must be a positive integer")
    C = max(model.spec.context - 1, 0) if context is None else context
    # scales from all episodes: a dimension that barely moves in training (a cup that never fell)
    # must not turn one held-out fall into an error of thousands
    if std is None:
        std = dataset.stats("all")["obs_std"]
    std = std.clamp_min(1e-6).to(model.device)
    err, base, used = [], [], []
    for k in horizons:  # windows of exactly C + k steps, so short horizons also score the ends of episodes
        try:
            win = dataset.windows(C, k, split)
        except WmkitError as e:
            raise WmkitError(f"accuracy at k={k}: {e}") from None
        batch = win.take(windows).to(model.device)
        pred, truth = open_loop(model, win, batch, C)
        last = batch.obs[:, C]  # copy-last: the last observed state, held
        err.append(_nrmse_per_dim(pred.obs[:, -1], truth[:, -1], std))
        base.append(_nrmse_per_dim(last, truth[:, -1], std))
        used.append(len(batch))
    err, base = torch.stack(err), torch.stack(base)  # [K, D]
    e, b = err.mean(1), base.mean(1)
    skill = 1.0 - e / b.clamp_min(1e-12)
    return AccuracyResult(horizons=horizons, nrmse=e.tolist(), nrmse_copy_last=b.tolist(), skill=skill.tolist(),
                          per_dim_nrmse=err.tolist(), windows=min(used), context=C)


Z90 = 1.6449  # half-width of a central 90% Gaussian band, in standard deviations


def accuracy_section(ctx) -> dict:
    """The scorecard's accuracy section: error and skill vs horizon, and calibration where the model has uncertainty."""
    from wmkit.eval.scorecard import Skip, guarded

    try:
        acc = evaluate_accuracy(ctx.model, ctx.dataset, windows=ctx.suite.windows, context=ctx.context, std=ctx.std)
    except WmkitError as e:
        raise Skip(f"too little held-out data: {e}") from None
    return {"by_k": acc.to_json(), "windows": acc.windows, "context": acc.context,
            "calibration": guarded(calibration, ctx)}


@torch.no_grad()
def calibration(ctx, horizons=(1, 10)) -> dict:
    """Share of true states inside the model's predicted 90% band (mean +- 1.645 obs_std); ideal 0.9."""
    from wmkit.eval.scorecard import Skip

    m, C = ctx.model, ctx.context
    if "uncertainty" not in m.spec.predicts:
        raise Skip(f"the {m.family!r} model predicts no uncertainty (obs_std), so there is no band to check")
    rows = []
    for k in horizons:
        win = ctx.windows(k)
        batch = win.take(ctx.suite.windows).to(m.device)
        pred, truth = open_loop(m, win, batch, C)
        if pred.obs_std is None:
            raise Skip(f"the {m.family!r} model returned no obs_std")
        inside = ((pred.obs[:, -1] - truth[:, -1]).abs() <= Z90 * pred.obs_std[:, -1]).float()
        rows.append({"k": k, "coverage_90": float(inside.mean()), "ideal": 0.9,
                     "mean_band_over_spread": float((2 * Z90 * pred.obs_std[:, -1] / ctx.std).mean())})
    return {"by_k": rows}


def _nrmse_per_dim(pred, truth, std):
    """[B, D] x2 -> [D]: RMSE over windows, divided by each dimension's std."""
    return ((pred - truth) ** 2).mean(0).sqrt() / std


def plot_accuracy(results: dict[str, AccuracyResult], path) -> None:
    """Error and skill vs horizon for one or more models, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4))
    first = next(iter(results.values()))
    ax1.plot(first.horizons, first.nrmse_copy_last, "k--", marker="o", label="copy-last")
    for name, r in results.items():
        ax1.plot(r.horizons, r.nrmse, marker="o", label=name)
        ax2.plot(r.horizons, r.skill, marker="o", label=name)
    ax1.set(xlabel="horizon k (steps)", ylabel="normalised RMSE", title="open-loop error", xscale="log")
    ax2.set(xlabel="horizon k (steps)", ylabel="skill vs copy-last", title="skill (1 = perfect)", xscale="log")
    ax2.axhline(0, color="k", lw=0.8)
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
