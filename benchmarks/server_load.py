"""Server load: N concurrent WebSocket sessions stepping at 30 Hz against the demo model.

    python benchmarks/server_load.py [--run runs/demo/model] [--seconds 60] [--sessions 1 8 32] [--twin]
                                     [--baseline 32]

The server is `wmkit serve` in its own process on 127.0.0.1 (so its memory is its own); the clients
are asyncio tasks in this process, each sending one step, waiting for the reply, and keeping a 30 Hz
schedule. Per N: round-trip p50/p99 (ms), steps answered, errors (error frames, dropped connections,
replies later than a tick are counted as misses), and the server's resident memory at the start and
the end of the run. Without --twin, sessions step the model only (what an agent needs); with it,
each session also steps its true twin (what the play page shows). The server steps the sessions
whose steps arrive together as one batch; the `--baseline` rows (default N = 32) run the same load
against a server that steps each alone (`wmkit serve --no-batch`), side by side. Prints a table and writes
benchmarks/results/server_load.json. Needs the demo model: run `make demo` first.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
HZ = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def one_client(url: str, ws_url: str, seconds: float, twin: bool, rtts: list, errors: list, seed: int):
    import httpx
    import websockets

    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        r = await http.post("/api/sessions", json={"seed": seed, "twin": twin})
        if r.status_code != 201:
            errors.append(f"create: {r.status_code} {r.text[:80]}")
            return
        sid = r.json()["id"]
        rng = np.random.default_rng(seed)
        try:
            async with websockets.connect(f"{ws_url}/ws/sessions/{sid}") as ws:
                start = time.perf_counter()
                tick = 0
                while time.perf_counter() - start < seconds:
                    t0 = time.perf_counter()
                    await ws.send(json.dumps({"op": "step", "action": rng.uniform(-1, 1, 2).tolist()}))
                    reply = json.loads(await ws.recv())
                    rtts.append((time.perf_counter() - t0) * 1e3)
                    if "error" in reply:
                        errors.append(reply["error"])
                    tick += 1
                    await asyncio.sleep(max(0.0, start + tick / HZ - time.perf_counter()))
        except Exception as e:  # noqa: BLE001 - a dropped connection is a counted error, not a crash
            errors.append(f"{type(e).__name__}: {e}")
        await http.delete(f"/api/sessions/{sid}")


async def load(url, ws_url, n, seconds, twin):
    rtts, errors = [], []
    await asyncio.gather(*(one_client(url, ws_url, seconds, twin, rtts, errors, seed=i) for i in range(n)))
    return rtts, errors


def serve_and_load(args, sessions: list[int], batch: bool) -> list[dict]:
    """Start `wmkit serve` (batching on or off) and run one row per N in `sessions` against it."""
    import httpx

    port = free_port()
    url, ws_url = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}"
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    server = subprocess.Popen([sys.executable, "-m", "wmkit.cli", "serve", args.run, "--port", str(port),
                               "--data", args.data, "--max-sessions", str(max(sessions) + 8),
                               "--batch" if batch else "--no-batch"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    rows = []
    try:
        for _ in range(300):
            try:
                httpx.get(f"{url}/api/info", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        for n in sessions:
            before, cpu0, mine0 = rss_mb(server.pid), cpu_s(server.pid), sum(os.times()[:2])
            info0 = httpx.get(f"{url}/api/info").json()
            samples, done = [], threading.Event()

            def sample(pid=server.pid):
                while not done.wait(1.0):
                    samples.append(rss_mb(pid))

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            t0 = time.perf_counter()
            rtts, errors = asyncio.run(load(url, ws_url, n, args.seconds, args.twin))
            wall = time.perf_counter() - t0
            done.set()
            sampler.join()
            after, server_cpu, client_cpu = rss_mb(server.pid), cpu_s(server.pid) - cpu0, sum(os.times()[:2]) - mine0
            info1 = httpx.get(f"{url}/api/info").json()
            steps, batches = info1["ws_steps"] - info0["ws_steps"], info1["ws_step_batches"] - info0["ws_step_batches"]
            tail = samples[2 * len(samples) // 3:] or [after]  # after the histories have filled
            lat = np.asarray(rtts) if rtts else np.full(1, np.nan)
            expected = n * args.seconds * HZ
            rows.append({"sessions": n, "batched": batch, "seconds": round(wall, 1), "steps": len(rtts),
                         "steps_per_s": round(len(rtts) / wall, 1), "expected_steps": int(expected),
                         "rtt_p50_ms": round(float(np.percentile(lat, 50)), 2),
                         "rtt_p99_ms": round(float(np.percentile(lat, 99)), 2),
                         "errors": len(errors), "first_errors": errors[:3],
                         # steps per model call: the server steps those that arrive together as one batch
                         "mean_batch": round(steps / batches, 2) if batches else 1.0,
                         "server_rss_mb_before": round(before, 1), "server_rss_mb_after": round(after, 1),
                         # sessions keep their last 1,024 steps (34 s at 30 Hz): memory rises while histories fill,
                         # then stays; this is the growth over the last third of the row
                         "server_rss_mb_growth_last_third": round(max(tail) - tail[0], 1),
                         "server_cpu_share": round(server_cpu / wall, 2), "client_cpu_share": round(client_cpu / wall, 2)})
    finally:
        server.terminate()
        server.wait(timeout=10)
    return rows


def ten_thousand_steps(run: str) -> dict:
    """One session stepped 10,000 times in this process: resident memory after every 1,000 steps."""
    import wmkit
    from wmkit.interactive import Session

    session = Session(wmkit.load_model(run), twin=False)
    rng = np.random.default_rng(0)
    rss = []
    for i in range(1, 10_001):
        session.step(rng.uniform(-1, 1, 2))
        if i % 1000 == 0:
            rss.append(round(rss_mb(os.getpid()), 1))
    return {"rss_mb_every_1000": rss, "history": len(session.history), "latency_ms": session.latency_ms()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", default="runs/demo/model")
    ap.add_argument("--data", default="runs/demo/data")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--sessions", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--twin", action="store_true", help="step each session's true twin too")
    ap.add_argument("--baseline", type=int, nargs="*", default=[32],
                    help="also run these N with the server's batching off (wmkit serve --no-batch), side by side")
    ap.add_argument("--out", default=str(RESULTS / "server_load.json"))
    args = ap.parse_args()
    if not Path(args.run).exists():
        sys.exit(f"error: no model at {args.run}; run `make demo` first (or pass --run RUN)")
    rows = serve_and_load(args, args.sessions, batch=True)
    if args.baseline:
        rows += serve_and_load(args, args.baseline, batch=False)
    long_session = ten_thousand_steps(args.run)
    machine = {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()}
    result = {"benchmark": "server_load", "model": args.run, "twin": args.twin, "hz": HZ, "machine": machine,
              "target": "p99 <= 50 ms at N = 32, zero errors, memory flat", "rows": rows,
              "session_10000_steps": long_session}
    print(f"server load: {args.run}, {'with' if args.twin else 'without'} twin, {HZ:.0f} Hz per session, "
          f"{args.seconds:.0f} s per row, {machine['cpus']} CPUs")
    print(f"{'N':>4} {'server':>10} {'steps/s':>9} {'of':>7} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'batch':>6}"
          f" {'RSS MB start':>13} {'end':>7} {'last 3rd +MB':>13} {'server CPU':>11} {'client CPU':>11}")
    for r in rows:
        print(f"{r['sessions']:>4} {'batched' if r['batched'] else 'one-by-one':>10} {r['steps_per_s']:>9.1f} "
              f"{r['expected_steps'] / args.seconds:>7.0f} {r['rtt_p50_ms']:>8.2f} {r['rtt_p99_ms']:>8.2f} "
              f"{r['errors']:>7} {r['mean_batch']:>6.2f} {r['server_rss_mb_before']:>13.1f} "
              f"{r['server_rss_mb_after']:>7.1f} {r['server_rss_mb_growth_last_third']:>13.1f} "
              f"{r['server_cpu_share']:>11.2f} {r['client_cpu_share']:>11.2f}")
    print("one session, 10,000 steps in this process (MB resident after each 1,000): "
          + " ".join(f"{v:.0f}" for v in long_session["rss_mb_every_1000"]))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
