"""Frame loading: windows of 64x64 frames per second, from memory vs straight from the episode files.

    python benchmarks/frame_loading.py [--episodes 40] [--size 64] [--window 16] [--batch 64]

Collects a small pixel dataset into a temporary folder (`wmkit collect --render SIZE`: uint8 frames,
gzip-compressed in chunks of 16 frames per HDF5 episode file), then measures, in this one run:
- disk: bytes per stored frame against raw uint8;
- load: `load_dataset(frames=True)` decoding every frame once, in frames/s;
- windows: `Windows.sample` batches of `window + 1` frames from memory (what a trainer sees), in frames/s;
- baseline: the same windows read one by one from the HDF5 files (h5py slicing, files kept open).
Target (issue 4): windows load at 2,000 frames/s or more. Prints a table and writes
benchmarks/results/frame_loading.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch

os.environ.setdefault("MUJOCO_GL", "egl")

import wmkit  # noqa: E402
from wmkit.data.collect import collect  # noqa: E402
from wmkit.data.format import episode_files  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--episodes", type=int, default=40)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--window", type=int, default=16)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--batches", type=int, default=50)
    args = ap.parse_args()
    L = args.window
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "pixels"
        t0 = time.perf_counter()
        collect("Tabletop-v0", args.episodes, data, policy="noise", seed=0, render=args.size, progress=False)
        collect_s = time.perf_counter() - t0
        files = episode_files(data)
        frames_total = sum(len(e.obs) for e in wmkit.load_dataset(data).episodes)
        stored = sum(f.stat().st_size for f in files)
        raw = frames_total * args.size * args.size * 3

        t0 = time.perf_counter()
        ds = wmkit.load_dataset(data, frames=True)
        load_s = time.perf_counter() - t0
        win = ds.windows(0, L, "all")
        g = torch.Generator().manual_seed(0)
        win.sample(args.batch, g)  # warm up
        t0 = time.perf_counter()
        for _ in range(args.batches):
            b = win.sample(args.batch, g)
        memory_fps = args.batches * args.batch * (L + 1) / (time.perf_counter() - t0)
        assert b.frames.shape == (args.batch, L + 1, args.size, args.size, 3) and b.frames.dtype == torch.uint8

        # baseline: each window sliced from its episode file
        handles = [h5py.File(f, "r") for f in files]
        cam = ds.meta.cameras[0]
        lengths = [len(e.obs) for e in ds.episodes]
        rng = np.random.default_rng(0)
        n = max(args.batches // 5, 2)
        t0 = time.perf_counter()
        for _ in range(n):
            for _ in range(args.batch):
                e = int(rng.integers(len(handles)))
                s = int(rng.integers(lengths[e] - L))
                handles[e][f"frames/{cam}"][s:s + L + 1]
        file_fps = n * args.batch * (L + 1) / (time.perf_counter() - t0)
        for h in handles:
            h.close()

    rows = [
        ("collect (render + write)", f"{frames_total / collect_s:,.0f} frames/s", ""),
        ("stored size", f"{stored / frames_total / 1024:.2f} KiB/frame", f"raw {raw / frames_total / 1024:.1f} KiB"),
        ("load_dataset(frames=True)", f"{frames_total / load_s:,.0f} frames/s", "decodes every frame once"),
        (f"windows of {L + 1} frames, batch {args.batch}", f"{memory_fps:,.0f} frames/s", "target >= 2,000"),
        ("baseline: windows read from the files", f"{file_fps:,.0f} frames/s", ""),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"frame loading, Tabletop-v0 at {args.size}x{args.size}, {args.episodes} episodes ({frames_total} frames)")
    for name, value, note in rows:
        print(f"  {name:<{width}}  {value:>20}  {note}")
    result = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__},
        "size": args.size, "episodes": args.episodes, "frames": frames_total,
        "collect_frames_per_s": frames_total / collect_s, "stored_bytes_per_frame": stored / frames_total,
        "raw_bytes_per_frame": raw / frames_total, "load_frames_per_s": frames_total / load_s,
        "window_frames_per_s": memory_fps, "baseline_file_window_frames_per_s": file_fps,
        "target_window_frames_per_s": 2000, "meets_target": memory_fps >= 2000,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "frame_loading.json").write_text(json.dumps(result, indent=2))
    print(f"wrote {RESULTS / 'frame_loading.json'}")


if __name__ == "__main__":
    main()
