"""Ensemble speed: training throughput and batch-1 `step` latency, side by side with baselines.

    python benchmarks/ensemble_speed.py [--steps 200] [--latency-iters 2000]

Rows, all measured in this one run on this machine:
- data: training windows sampled per second by `Windows.sample`, against what the trainer consumes.
- train: the ensemble (E members in one batched matmul) vs the same E MLPs as separate nn.Sequential
  modules trained in a Python loop (the naive way), in samples/s; and the ensemble with the demo's
  motion prior (`tabletop-soft-v1`, ten substeps of soft-constraint physics in every forward pass).
- step latency at batch 1: the ensemble, with the prior, the prior alone (`motion-prior`), copy-last
  (the floor: no compute) and the oracle (MuJoCo stepping the true simulator), p50/p99 in ms.
Prints a table and writes benchmarks/results/ensemble_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

os.environ.setdefault("MUJOCO_GL", "egl")

import wmkit  # noqa: E402
from wmkit.data.collect import collect  # noqa: E402
from wmkit.models import make_model, reference_model  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def train_throughput(model, windows, steps, per_step) -> float:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    for i in range(steps + 10):
        if i == 10:
            t0 = time.perf_counter()
        loss, _ = model.loss(windows.sample(per_step, g))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return steps * per_step / (time.perf_counter() - t0)


def naive_throughput(spec, windows, members, hidden, layers, steps, batch) -> float:
    D, A = spec.obs_dim, spec.action_dim

    def mlp():
        dims = [D + A] + [hidden] * layers
        mods = []
        for i, o in zip(dims[:-1], dims[1:]):
            mods += [nn.Linear(i, o), nn.SiLU()]
        return nn.Sequential(*mods, nn.Linear(hidden, 2 * D + 2))

    nets = nn.ModuleList(mlp() for _ in range(members))
    opt = torch.optim.AdamW(nets.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    for i in range(steps + 10):
        if i == 10:
            t0 = time.perf_counter()
        loss = 0.0
        for net in nets:
            b = windows.sample(batch, g)
            out = net(torch.cat([b.obs[:, 0], b.actions[:, 0]], -1))
            target = b.obs[:, 1] - b.obs[:, 0]
            mean, logstd = out[:, :D], out[:, D:2 * D].clamp(-5, 0.5)
            loss = loss + (((mean - target) / logstd.exp()) ** 2 / 2 + logstd).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return steps * batch * members / (time.perf_counter() - t0)


@torch.no_grad()
def step_latency(model, obs, iters) -> tuple[float, float]:
    state = model.observe(obs[None, None], torch.zeros(1, 0, model.spec.action_dim))
    action = torch.zeros(1, model.spec.action_dim)
    times = []
    for i in range(iters + 50):
        t0 = time.perf_counter()
        state, _ = model.step(state, action)
        if i >= 50:
            times.append(time.perf_counter() - t0)
    ms = np.array(times) * 1e3
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=200, help="gradient steps timed per trainer")
    ap.add_argument("--latency-iters", type=int, default=2000)
    ap.add_argument("--out", type=Path, default=RESULTS / "ensemble_speed.json")
    args = ap.parse_args()
    torch.manual_seed(0)

    with tempfile.TemporaryDirectory() as tmp:
        collect("Tabletop-v0", 20, Path(tmp) / "d", seed=0, progress=False)
        ds = wmkit.load_dataset(Path(tmp) / "d")
    spec = reference_model("copy-last", ds.world).spec
    model = make_model("ensemble", spec)
    model.set_normalizer({**ds.stats("train"), "reward_std": torch.tensor(1.0)})
    with_prior = make_model("ensemble", spec, prior="tabletop-soft-v1")  # the demo's: a residual on MuJoCo's rules
    with_prior.set_normalizer({**ds.stats("train"), "reward_std": torch.tensor(1.0)})
    cfg = model.config
    windows = ds.windows(0, 1, "train")
    batch = 256
    rows = {
        "train_ensemble_batched_samples_per_s": train_throughput(model, windows, args.steps, batch * cfg.members),
        "train_ensemble_with_prior_samples_per_s": train_throughput(with_prior, windows, args.steps,
                                                                    batch * cfg.members),
        "train_naive_loop_samples_per_s": naive_throughput(spec, windows, cfg.members, cfg.hidden, cfg.layers,
                                                           args.steps, batch),
    }
    g = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    for _ in range(200):
        windows.sample(batch * cfg.members, g)
    rows["data_windows_sampled_per_s"] = 200 * batch * cfg.members / (time.perf_counter() - t0)
    obs = torch.as_tensor(ds.episodes[0].obs[0])
    model.eval()
    with_prior.eval()
    named = (("ensemble", model), ("ensemble+prior", with_prior), ("motion-prior", reference_model("motion-prior", ds.world)),
             ("copy-last", reference_model("copy-last", ds.world)), ("oracle", reference_model("oracle", ds.world)))
    for name, m in named:
        iters = args.latency_iters if name != "oracle" else max(200, args.latency_iters // 10)
        p50, p99 = step_latency(m, obs, iters)
        rows[f"step_b1_{name}_p50_ms"], rows[f"step_b1_{name}_p99_ms"] = p50, p99

    result = {
        "benchmark": "ensemble_speed",
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
                    "threads": torch.get_num_threads(), "device": "cpu"},
        "config": {"members": cfg.members, "hidden": cfg.hidden, "layers": cfg.layers, "batch_per_member": batch,
                   "timed_steps": args.steps},
        "results": {k: round(v, 4) for k, v in rows.items()},
    }
    print(f"\nensemble speed on {os.cpu_count()} CPU cores, torch {torch.__version__}")
    print(f"{'measurement':<50}{'value':>14}")
    ens, naive = rows["train_ensemble_batched_samples_per_s"], rows["train_naive_loop_samples_per_s"]
    print(f"{'train, ensemble (batched), samples/s':<50}{ens:>14,.0f}")
    print(f"{'train, the same with the soft prior':<50}{rows['train_ensemble_with_prior_samples_per_s']:>14,.0f}")
    print(f"{'train, 5 separate MLPs in a loop, samples/s':<50}{naive:>14,.0f}   ({ens / naive:.1f}x)")
    data = rows["data_windows_sampled_per_s"]
    print(f"{'data: training windows sampled, per s':<50}{data:>14,.0f}   ({data / ens:.0f}x what training uses)")
    for name, _ in named:
        p50, p99 = rows[f"step_b1_{name}_p50_ms"], rows[f"step_b1_{name}_p99_ms"]
        print(f"{'step latency b=1, ' + name + ', p50 / p99 ms':<50}{p50:>7.3f} / {p99:.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
