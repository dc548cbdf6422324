"""The CUDA path, checked against the CPU in one run: does each family train, keep its contract and
predict the same on a GPU, and how much faster is it there?

    python benchmarks/cuda_check.py [--episodes 40] [--steps 300] [--pixel-steps 60]

On a machine without CUDA it says so and exits 0 (nothing to compare). Otherwise, on a small Tabletop
dataset collected here (frames at 64 x 64 too, where MuJoCo can render), for each family (state
vectors, and pixels where frames exist):
- train: `wmkit.train` for the same steps and seed on cuda and on cpu, steps/s of each (the trainer's
  own clock, without loading the data);
- contract: `check_world_model` on the cuda model (causality, determinism, save and load, shapes);
- agreement: the cuda-trained weights evaluated on cuda and on cpu (`evaluate_accuracy`, the same
  windows): the largest difference in nRMSE over the horizons, which should be float noise;
- imagination: rollout steps/s over 25 steps at batch 1,024 (pixel models 64, decoding frames), cuda
  against cpu, same weights.
Prints a table and writes benchmarks/results/cuda_check.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
import traceback
from pathlib import Path

import torch

os.environ.setdefault("MUJOCO_GL", "egl")

from wmkit.data import load_dataset  # noqa: E402
from wmkit.data.collect import collect  # noqa: E402
from wmkit.eval.accuracy import evaluate_accuracy  # noqa: E402
from wmkit.models import load_model, preset_config  # noqa: E402
from wmkit.models.checker import check_world_model  # noqa: E402
from wmkit.train.loop import TrainConfig, train  # noqa: E402

RESULTS = Path(__file__).parent / "results"
FAMILIES = [("ensemble", False), ("rssm", False), ("transformer", False), ("rssm", True), ("transformer", True)]


def train_rate(data, out, family, frames, steps, device) -> float:
    cfg = TrainConfig(steps=steps, device=device, seed=0, checkpoint_every=10 ** 9,
                      batch_size=16 if frames else 64)
    model_config = preset_config(family, "small", frames=frames)  # what `wmkit train [--frames]` trains
    train(data, out, family, cfg, model_config=model_config, progress=False)
    last = json.loads((Path(out) / "log.jsonl").read_text().splitlines()[-1])
    return last["step"] / last["elapsed_s"]  # the training steps' own time (no loading, no imports)


@torch.no_grad()
def imagine_rate(model, dataset, batch, horizon=25) -> float:
    dev, C = model.device, max(model.spec.context - 1, 0)
    ctx = dataset.windows(C, 1, "val").take(64).to(dev)
    pick = torch.arange(batch, device=dev) % ctx.obs.shape[0]
    kw = {"frames": ctx.frames[pick, :C + 1]} if ctx.frames is not None else {}
    state = model.observe(ctx.obs[pick, :C + 1], ctx.actions[pick, :C], **kw)
    low = torch.tensor(model.spec.action_low, device=dev)
    high = torch.tensor(model.spec.action_high, device=dev)
    actions = low + (high - low) * torch.rand(batch, horizon, model.spec.action_dim, device=dev)
    model.rollout(state, actions)  # warm-up
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    model.rollout(state, actions)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return batch * horizon / (time.perf_counter() - t0)


def check_family(root, data, dataset, family, frames, steps, device) -> dict:
    name = f"{family}{' (pixels)' if frames else ''}"
    row = {"family": name}
    try:
        row["train_steps_s_cuda"] = train_rate(data, root / f"{family}{frames}_cuda", family, frames, steps, device)
        row["train_steps_s_cpu"] = train_rate(data, root / f"{family}{frames}_cpu", family, frames, steps, "cpu")
        on_cuda = load_model(root / f"{family}{frames}_cuda", device=device)
        on_cpu = load_model(root / f"{family}{frames}_cuda", device="cpu")
        check_world_model(on_cuda)
        row["contract_on_cuda"] = "kept"
        a = evaluate_accuracy(on_cuda, dataset, windows=256)
        b = evaluate_accuracy(on_cpu, dataset, windows=256)
        row["horizons"] = a.horizons
        row["nrmse_cuda"], row["nrmse_cpu"] = a.nrmse, b.nrmse
        row["max_nrmse_diff"] = max(abs(x - y) for x, y in zip(a.nrmse, b.nrmse))
        batch = 64 if frames else 1024  # a pixel model decodes a frame per imagined step
        row["imagine_batch"] = batch
        row["imagined_steps_s_cuda"] = imagine_rate(on_cuda, dataset, batch)
        row["imagined_steps_s_cpu"] = imagine_rate(on_cpu, dataset, batch)
    except Exception as e:  # a failure is a result here: report it and go on to the next family
        row["error"] = f"{type(e).__name__}: {e}"
        traceback.print_exc()
    return row


def run_checks(root: Path, args) -> tuple[list[dict], str]:
    data = root / "data"
    rendered = True
    try:
        collect("Tabletop-v0", args.episodes, data, render=64, progress=False)
    except Exception as e:
        print(f"cuda_check: rendering failed ({type(e).__name__}: {e}); state-vector models only")
        rendered = False
        collect("Tabletop-v0", args.episodes, data, progress=False)
    name = torch.cuda.get_device_name(0) if args.device == "cuda" else args.device
    datasets = {False: load_dataset(data), True: load_dataset(data, frames=True) if rendered else None}
    rows = []
    for family, frames in FAMILIES:
        if f"{family}{'-pixels' if frames else ''}" not in args.families:
            continue
        if frames and not rendered:
            rows.append({"family": f"{family} (pixels)", "error": "skipped: no frames (rendering failed)"})
            continue
        rows.append(check_family(root, data, datasets[frames], family, frames, args.pixel_steps if frames else args.steps, args.device))
        print(json.dumps(rows[-1]), flush=True)
    return rows, name


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=40)
    ap.add_argument("--steps", type=int, default=300, help="training steps per state-vector model and device")
    ap.add_argument("--pixel-steps", type=int, default=60, help="training steps per pixel model and device")
    ap.add_argument("--out", type=Path, default=RESULTS / "cuda_check.json")
    ap.add_argument("--families", nargs="+", default=[f"{f}{'-pixels' if p else ''}" for f, p in FAMILIES],
                    help="which to check (default: all)")
    ap.add_argument("--device", default="cuda", help="the device compared with the cpu (cpu: a dry run of this script)")
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("cuda_check: no CUDA device here (torch.cuda.is_available() is False); nothing to compare")
        return 0
    torch.set_num_threads(max(1, min(os.cpu_count() or 1, 16)))
    with tempfile.TemporaryDirectory(prefix="wmkit_cuda_") as tmp:
        rows, name = run_checks(Path(tmp), args)
    print(f"\n{name}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    head = f"{'family':22} {'train/s cuda':>12} {'cpu':>8} {'contract':>9} {'max dnRMSE':>11} {'imagine/s cuda':>15} {'cpu':>10}"
    print(head)
    for r in rows:
        if "error" in r:
            print(f"{r['family']:22} {r['error'][:90]}")
            continue
        print(f"{r['family']:22} {r['train_steps_s_cuda']:12.1f} {r['train_steps_s_cpu']:8.1f} "
              f"{r['contract_on_cuda']:>9} {r['max_nrmse_diff']:11.2e} {r['imagined_steps_s_cuda']:15,.0f} "
              f"{r['imagined_steps_s_cpu']:10,.0f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"device": name, "torch": torch.__version__,
                                    "python": platform.python_version(), "episodes": args.episodes,
                                    "rows": rows}, indent=1))
    print(f"wrote {args.out}")
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
