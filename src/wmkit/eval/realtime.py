"""Real-time responsiveness: how fast the model answers one action, and how much it can imagine.

- step latency: wall time of one batch-1 `step` (after warm-up), p50 and p99 in milliseconds, on
  the machine named in the scorecard's `machine` entry;
- budgets: which it meets at p99: VR (20 ms), games (100 ms) and the world's own control period;
- throughput: imagined steps per second for a batch of 1,024 rollouts.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from wmkit.eval.scorecard import guarded

BUDGETS_MS = {"vr": 20.0, "games": 100.0}
THROUGHPUT_BATCH = 1024


def section(ctx) -> dict:
    out = {"latency": guarded(latency, ctx), "throughput": guarded(throughput, ctx)}
    return out


def _start(ctx, n: int):
    m, C = ctx.model, ctx.context
    win = ctx.windows(1, split="all")  # any real state will do to time from
    batch = win.take(1, with_state=True)
    rep = lambda x: x.repeat_interleave(n, dim=0)  # noqa: E731
    sim = None if batch.sim_state is None else rep(batch.sim_state[:, C])
    state = m.observe(rep(batch.obs[:, : C + 1]).to(m.device), rep(batch.actions[:, :C]).to(m.device),
                      physics=win.physics_of(batch) * n, sim_state=sim)
    return state, batch.actions[:, C].to(m.device)


def _sync(m):
    if m.device.type == "cuda":
        torch.cuda.synchronize()


@torch.no_grad()
def latency(ctx) -> dict:
    m = ctx.model
    state, a = _start(ctx, 1)
    for _ in range(10):
        state, _ = m.step(state, a)
    times = []
    for _ in range(ctx.suite.latency_steps):
        _sync(m)
        t0 = time.perf_counter()
        state, _ = m.step(state, a)
        _sync(m)
        times.append((time.perf_counter() - t0) * 1e3)
    p50, p99 = float(np.percentile(times, 50)), float(np.percentile(times, 99))
    budgets = {**BUDGETS_MS, "control_period": m.spec.dt * 1e3}
    return {"p50_ms": p50, "p99_ms": p99, "steps": len(times), "device": str(m.device),
            "budgets_ms": budgets, "meets": {k: p99 <= v for k, v in budgets.items()}}


@torch.no_grad()
def throughput(ctx) -> dict:
    m = ctx.model
    state, a = _start(ctx, THROUGHPUT_BATCH)
    one = a.expand(THROUGHPUT_BATCH, -1)
    _sync(m)
    t0 = time.perf_counter()
    m.rollout(state, one[:, None])  # one step first: sizes the timed run to about a second
    _sync(m)
    first = time.perf_counter() - t0
    H = int(np.clip(1.0 / max(first, 1e-6), 1, 50))
    _sync(m)
    t0 = time.perf_counter()
    m.rollout(state, one[:, None].expand(-1, H, -1).contiguous())
    _sync(m)
    seconds = time.perf_counter() - t0
    return {"batch": THROUGHPUT_BATCH, "horizon": H, "steps_per_s": THROUGHPUT_BATCH * H / seconds}
