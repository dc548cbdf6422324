"""Perceive, predict, score: a trained world model against the truth, with the public API only.

    python examples/predict_and_score.py [RUN] [DATA]      (defaults: runs/demo/model runs/demo/data)

For held-out windows, the model observes one step, imagines 10 steps under the logged actions, and we
score it ourselves (no wmkit.eval): per-dimension RMSE over the dataset's spread, and skill against
predicting that nothing moves.
"""

import sys

import torch

import wmkit


def main(run="runs/demo/model", data="runs/demo/data", horizon=10):
    model = wmkit.load_model(run)
    dataset = wmkit.load_dataset(data)
    batch = dataset.windows(context=0, horizon=horizon, split="val").take(256)

    state = model.observe(batch.obs[:, :1], batch.actions[:, :0])  # perceive
    pred = model.rollout(state, batch.actions)  # predict, open loop

    truth = batch.obs[:, 1:]
    still = batch.obs[:, :1].expand_as(truth)  # copy-last: nothing moves
    scale = dataset.stats("all")["obs_std"].clamp_min(1e-6)
    nrmse = lambda p: (((p - truth) ** 2).mean(0).sqrt() / scale).mean(-1)  # noqa: E731  [H]
    skill = 1 - nrmse(pred.obs) / nrmse(still)
    for k in (1, 5, horizon):
        print(f"k={k:>2}  skill {skill[k - 1]:.3f}   ensemble disagreement {pred.obs_std[:, k - 1].mean():.4f}")
    return skill


if __name__ == "__main__":
    with torch.no_grad():
        main(*sys.argv[1:3])
