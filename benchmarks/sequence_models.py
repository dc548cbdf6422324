"""The families side by side: step latency, imagination throughput, training speed, the KV cache.

    python benchmarks/sequence_models.py [--iters 300] [--train-steps 30]

On Tabletop-v0's state vectors (12 numbers, 2 actions), each family at its default (`small`) preset,
with freshly initialised weights (speed does not depend on training), in this one run:
- batch-1 `step` latency p50/p99 (ms), the batch-1 budget of a 20 Hz robot, a game and VR;
- imagined steps/s at batch 1,024 (rollouts of 16 steps);
- training samples/s (window steps per second) at batch 64;
- the transformer with its KV cache and without (re-running the history every step) at context
  16, 64 and 256 (a window of 256): per-step latency;
- a 1,000-step imagined rollout at batch 1: the process's resident memory before, at its peak and
  after, which stays flat when the state is bounded;
- the pixel models (rssm and transformer at their `small` pixel presets, 64 x 64): batch-1 step latency
  with the frame decoded (target p99 <= 10 ms), imagined frames/s at batch 64, training frames/s at
  batch 16, and resident memory over a 1,000-step imagined rollout.
Prints a table and writes benchmarks/results/sequence_models.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from wmkit.data.dataset import Batch
from wmkit.models import ModelSpec, make_model, preset_config

RESULTS = Path(__file__).parent / "results"
SPEC = ModelSpec(world="Tabletop-v0", obs_dim=12, action_dim=2, dt=0.05, latent_dim=0,
                 action_low=(-1.0, -1.0), action_high=(1.0, 1.0))
FAMILIES = ("ensemble", "rssm", "transformer")


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentiles(times_s):
    t = np.asarray(times_s) * 1000
    return float(np.percentile(t, 50)), float(np.percentile(t, 99))


@torch.no_grad()
def step_latency(model, iters):
    g = torch.Generator().manual_seed(0)
    state = model.observe(torch.zeros(1, 1, 12), torch.zeros(1, 0, 2))
    times = []
    for i in range(iters + 20):
        a = torch.rand(1, 2, generator=g) * 2 - 1
        t0 = time.perf_counter()
        state, _ = model.step(state, a)
        if i >= 20:
            times.append(time.perf_counter() - t0)
    return percentiles(times)


@torch.no_grad()
def imagined_throughput(model, batch=1024, horizon=16):
    state = model.observe(torch.zeros(batch, 1, 12), torch.zeros(batch, 0, 2))
    actions = torch.rand(batch, horizon, 2) * 2 - 1
    model.rollout(state, actions[:, :2])
    t0 = time.perf_counter()
    model.rollout(state, actions)
    return batch * horizon / (time.perf_counter() - t0)


def train_throughput(model, steps, batch=64):
    L = model.train_window
    members = getattr(model.config, "members", 1)
    B = batch * members
    g = torch.Generator().manual_seed(0)
    data = Batch(obs=torch.randn(B, L + 1, 12, generator=g), actions=torch.rand(B, L, 2, generator=g) * 2 - 1,
                 rewards=torch.randn(B, L, generator=g), terminated=torch.zeros(B, L))
    return steps * B * L / timed_updates(model, data, steps)


def timed_updates(model, data, steps, warmup=3) -> float:
    """Seconds that `steps` optimiser updates on one fixed batch take, after `warmup` untimed ones."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()
    for i in range(steps + warmup):
        if i == warmup:
            t0 = time.perf_counter()
        loss, _ = model.loss(data)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return time.perf_counter() - t0


@torch.no_grad()
def kv_cache(contexts, iters):
    model = make_model("transformer", SPEC, window=max(contexts) + 1).eval()
    rows = []
    for c in contexts:
        obs, ctx = torch.randn(1, c + 1, 12) * 0.1, torch.rand(1, c, 2) * 2 - 1
        state = model.observe(obs, ctx)
        a = torch.rand(1, 1, 2) * 2 - 1
        cached = []
        for i in range(iters + 10):
            t0 = time.perf_counter()
            model.step(state, a[:, 0])  # the same step from the same state: the cache holds c tokens
            if i >= 10:
                cached.append(time.perf_counter() - t0)
        uncached = []
        for i in range(max(iters // 5, 10) + 3):
            t0 = time.perf_counter()
            model.rollout_uncached(obs, ctx, a)  # one step, re-running all c context tokens
            if i >= 3:
                uncached.append(time.perf_counter() - t0)
        rows.append({"context": c, "cached_p50_ms": percentiles(cached)[0], "cached_p99_ms": percentiles(cached)[1],
                     "uncached_p50_ms": percentiles(uncached)[0], "uncached_p99_ms": percentiles(uncached)[1]})
    return rows


@torch.no_grad()
def long_rollout_memory(model, steps=1000):
    g = torch.Generator().manual_seed(1)
    state = model.observe(torch.zeros(1, 1, 12), torch.zeros(1, 0, 2))
    before = peak = rss_mib()
    for _ in range(steps):
        state, _ = model.step(state, torch.rand(1, 2, generator=g) * 2 - 1)
        peak = max(peak, rss_mib())
    return {"steps": steps, "rss_before_mib": before, "rss_peak_mib": peak, "rss_after_mib": rss_mib()}


PIXEL_FAMILIES = ("rssm", "transformer")


def pixel_rows(iters, train_steps, size=64):
    """Each family's default (`small`) pixel preset at size x size: batch-1 step latency with the frame
    decoded, imagined frames/s at batch 64, training frames/s, and resident memory over 1,000 steps."""
    rows = []
    spec = SPEC.with_(frame_size=size, frame_camera="top")
    g = torch.Generator().manual_seed(0)
    for family in PIXEL_FAMILIES:
        torch.manual_seed(0)
        model = make_model(family, spec, **preset_config(family, "small", frames=True)).eval()
        C = model.spec.context
        frames = torch.randint(0, 256, (1, C, size, size, 3), generator=g, dtype=torch.uint8)
        with torch.no_grad():
            state = model.observe(torch.zeros(1, C, 12), torch.zeros(1, C - 1, 2), frames=frames)
            times = []
            for i in range(iters + 20):
                t0 = time.perf_counter()
                state, pred = model.step(state, torch.rand(1, 2, generator=g) * 2 - 1)
                if i >= 20:
                    times.append(time.perf_counter() - t0)
            assert pred.frame.shape == (1, size, size, 3)
            p50, p99 = percentiles(times)
            big = model.observe(torch.zeros(64, C, 12), torch.zeros(64, C - 1, 2),
                                frames=frames.expand(64, -1, -1, -1, -1))
            t0 = time.perf_counter()
            model.rollout(big, torch.rand(64, 8, 2, generator=g) * 2 - 1)
            fps = 64 * 8 / (time.perf_counter() - t0)
            before = peak = rss_mib()
            for _ in range(1000):
                state, _ = model.step(state, torch.rand(1, 2, generator=g) * 2 - 1)
                peak = max(peak, rss_mib())
            memory = {"steps": 1000, "rss_before_mib": before, "rss_peak_mib": peak, "rss_after_mib": rss_mib()}
        L, B = model.train_window, 16
        n = C + L  # frames in one training window
        data = Batch(obs=torch.randn(B, n, 12, generator=g), actions=torch.rand(B, n - 1, 2, generator=g) * 2 - 1,
                     rewards=torch.zeros(B, n - 1), terminated=torch.zeros(B, n - 1),
                     frames=torch.randint(0, 256, (B, n, size, size, 3), generator=g, dtype=torch.uint8))
        train_fps = train_steps * B * n / timed_updates(model, data, train_steps, warmup=2)
        rows.append({"family": family, "size": size, "context": C, "parameters": sum(p.numel() for p in model.parameters()),
                     "step_p50_ms": p50, "step_p99_ms": p99, "imagined_frames_per_s_batch_64": fps,
                     "train_frames_per_s_batch_16": train_fps, "long_rollout": memory})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iters", type=int, default=300)
    ap.add_argument("--train-steps", type=int, default=30)
    args = ap.parse_args()
    torch.manual_seed(0)
    families = {}
    for name in FAMILIES:
        model = make_model(name, SPEC).eval()
        p50, p99 = step_latency(model, args.iters)
        families[name] = {
            "parameters": sum(p.numel() for p in model.parameters()),
            "step_p50_ms": p50, "step_p99_ms": p99,
            "imagined_steps_per_s_batch_1024": imagined_throughput(model),
            "train_samples_per_s": train_throughput(model, args.train_steps),
            "long_rollout": long_rollout_memory(model),
        }
    cache = kv_cache((16, 64, 256), args.iters)
    pixels = pixel_rows(args.iters, max(args.train_steps // 3, 5))

    print(f"families at the small preset, Tabletop state vectors, {os.cpu_count()} CPUs, torch {torch.__version__}")
    print(f"  {'family':<12}{'params':>10}{'step p50':>11}{'step p99':>11}{'imagined/s':>13}{'train/s':>11}"
          f"{'RSS 1k steps (MiB)':>22}")
    for name, r in families.items():
        m = r["long_rollout"]
        print(f"  {name:<12}{r['parameters']:>10,}{r['step_p50_ms']:>9.2f}ms{r['step_p99_ms']:>9.2f}ms"
              f"{r['imagined_steps_per_s_batch_1024']:>13,.0f}{r['train_samples_per_s']:>11,.0f}"
              f"{m['rss_before_mib']:>8.0f} -> {m['rss_peak_mib']:.0f} -> {m['rss_after_mib']:.0f}")
    print("transformer, one step at batch 1 (window 257): KV cache vs re-running the context")
    print(f"  {'context':>8}{'cached p50':>13}{'p99':>9}{'uncached p50':>15}{'p99':>9}{'speed-up':>10}")
    for r in cache:
        print(f"  {r['context']:>8}{r['cached_p50_ms']:>11.2f}ms{r['cached_p99_ms']:>7.2f}ms"
              f"{r['uncached_p50_ms']:>13.2f}ms{r['uncached_p99_ms']:>7.2f}ms"
              f"{r['uncached_p50_ms'] / r['cached_p50_ms']:>9.1f}x")
    print("pixel models at 64x64 (small pixel preset): one step at batch 1 with the frame decoded (target p99 <= 10 ms)")
    print(f"  {'family':<12}{'params':>10}{'step p50':>11}{'step p99':>11}{'frames/s @64':>14}{'train frames/s':>16}"
          f"{'RSS 1k steps (MiB)':>22}")
    for r in pixels:
        m = r["long_rollout"]
        print(f"  {r['family']:<12}{r['parameters']:>10,}{r['step_p50_ms']:>9.2f}ms{r['step_p99_ms']:>9.2f}ms"
              f"{r['imagined_frames_per_s_batch_64']:>14,.0f}{r['train_frames_per_s_batch_16']:>16,.0f}"
              f"{m['rss_before_mib']:>8.0f} -> {m['rss_peak_mib']:.0f} -> {m['rss_after_mib']:.0f}")
    result = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__},
              "budgets_ms": {"vr": 20, "games": 100, "control_20hz": 50},
              "families": families, "transformer_kv_cache": cache, "pixel_models": pixels}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "sequence_models.json").write_text(json.dumps(result, indent=2))
    print(f"wrote {RESULTS / 'sequence_models.json'}")


if __name__ == "__main__":
    main()
