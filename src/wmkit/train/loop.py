"""`train`: the one training loop. Typed config, progress bar, JSONL log, checkpoints, exact resume.

A run directory holds:

    run.json              what was asked: data, family, model config, train config
    model/                the latest checkpoint (config.json, weights.safetensors, meta.json)
    trainer/              optimizer and random-generator state for exact resume
    log.jsonl             one JSON object per logged step

Running `train` again on the same folder resumes where it stopped; the result is bit-identical to an
uninterrupted run (same data order, same optimizer state).
"""

from __future__ import annotations

import json
import math
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from wmkit.errors import WmkitError
from wmkit.files import atomic_write_json, atomic_write_text
from wmkit.models.checkpoint import save_model
from wmkit.progress import progress_bar
from wmkit.train.state import load_trainer, save_trainer


@dataclass
class TrainConfig:
    steps: int = 3000
    """gradient steps in total (the run stops at whichever of steps/minutes comes first)"""
    minutes: float | None = None
    """wall-clock budget in minutes, counted across resumes"""
    batch_size: int = 256
    """windows per gradient step (per ensemble member for the ensemble)"""
    lr: float = 1e-3
    lr_end: float = 1.0
    """the learning rate at the end of the budget, as a share of `lr`: below 1 it falls along a cosine from
    `lr` (over `steps`, or over `minutes` when that ends the run first); 1 keeps it constant"""
    focus: float = 3.0
    """sample each window with weight 1 + focus * (its first step's change / the mean change): contacts and
    falls, rare but where most error lies, come up more often; 0 samples uniformly"""
    weight_decay: float = 1e-5
    grad_clip: float = 10.0
    seed: int = 0
    device: str = "auto"
    """'auto' (CUDA when present), 'cpu' or 'cuda'"""
    log_every: int = 50
    checkpoint_every: int = 500
    val_fraction: float = 0.1

    def __post_init__(self):
        if not isinstance(self.steps, int) or self.steps < 1:
            raise WmkitError(f"train config: steps={self.steps!r} must be a positive integer")
        if self.minutes is not None and not (self.minutes > 0):
            raise WmkitError(f"train config: minutes={self.minutes!r} must be positive")
        if not (0 <= self.focus < math.inf):
            raise WmkitError(f"train config: focus={self.focus!r} must be a finite number >= 0")
        if self.batch_size < 1:
            raise WmkitError(f"train config: batch_size={self.batch_size!r} must be positive")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise WmkitError(f"train config: lr={self.lr!r} must be a positive number")
        if not (0 < self.lr_end <= 1):
            raise WmkitError(f"train config: lr_end={self.lr_end!r} must be in (0, 1] (a share of lr)")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise WmkitError(f"train config: device={self.device!r}; use auto, cpu or cuda")

    def resolved_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise WmkitError(f"device={self.device!r} but CUDA is not available here; use --device cpu")
        return torch.device(self.device)


def train(data: str | Path, out: str | Path, family: str = "ensemble", config: TrainConfig | None = None,
          model_config: dict | None = None, progress: bool = True, stop_after: int | None = None) -> Path:
    """Train `family` on the dataset at `data` into the run folder `out` (resuming if it exists).

    `stop_after` ends this call after that many steps as if interrupted (for tests of resume).
    """
    from wmkit.data import load_dataset
    from wmkit.models import make_model
    from wmkit.models.registry import TRAINABLE, model_class

    if family not in TRAINABLE:
        raise WmkitError(f"family {family!r} is not trainable; choose one of: {', '.join(TRAINABLE)}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise WmkitError(f"--out {out} is a file; give a folder for the run")
    cfg = config or TrainConfig()
    run_file = out / "run.json"
    request = {"data": str(Path(data).resolve()), "family": family, "model_config": model_config or {},
               "train_config": asdict(cfg)}
    resuming = (out / "trainer" / "trainer.json").is_file()
    if resuming:
        previous = _read_run(run_file)
        for key in ("family", "model_config"):
            if previous.get(key) != request[key]:
                raise WmkitError(f"{out} was trained with {key}={previous.get(key)!r}, not {request[key]!r}; "
                                 f"use a new --out folder or the same settings to resume")
        # a resumed run keeps its own settings; only how long it runs and where may change
        request["train_config"] = {**previous["train_config"], "steps": cfg.steps, "minutes": cfg.minutes,
                                   "device": cfg.device}
        cfg = TrainConfig(**request["train_config"])
    elif out.exists() and any(out.iterdir()):
        raise WmkitError(f"{out} exists and is not a run that can be resumed; choose a new --out folder")

    pixels = model_class(family).reads_frames(model_config or {})  # a pixel model: load the frames too
    dataset = load_dataset(data, val_fraction=cfg.val_fraction, frames=pixels)
    device = cfg.resolved_device()
    torch.manual_seed(cfg.seed)
    spec = _spec_for(dataset, pixels)
    model = make_model(family, spec, **(model_config or {})).to(device)
    model.set_normalizer({k: v.to(device) for k, v in dataset.stats("train").items()})
    context = model.spec.context - 1
    train_windows = dataset.windows(context, model.train_window, "train")
    train_windows.focus_on_change(cfg.focus)
    per_step = cfg.batch_size * getattr(model.config, "members", 1)
    val_batch = _val_batch(dataset, context, model, per_step, device)
    fingerprint = _fingerprint(dataset)
    # fused: one kernel for all parameters, 5x faster than the per-tensor loop on CPU, where the update
    # of a small model costs as much as its backward pass
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                                  fused=device.type in ("cpu", "cuda"))
    generator = torch.Generator().manual_seed(cfg.seed)
    step, elapsed = 0, 0.0
    if resuming:
        step, elapsed = _resume(out, model, optimizer, generator, fingerprint, len(dataset.episodes))
    else:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(run_file, request)

    budget_s = cfg.minutes * 60 if cfg.minutes else math.inf
    stopping = _StopFlag()
    log = (out / "log.jsonl").open("a")
    # the bar shows how fast training eats data (frames/s for pixel models, transitions/s for state models)
    # and an ETA that respects a --minutes budget
    unit = "frames/s" if pixels else "transitions/s"
    per_window = model.spec.context + model.train_window  # observations in one training window
    bar = progress_bar(progress, "loss {task.fields[loss]:.4f}", "{task.fields[rate]:,.0f} " + unit,
                       "ETA {task.fields[eta]}", time_left=False)
    task = bar.add_task(f"train {family}", total=cfg.steps, completed=step, loss=float("nan"), rate=0.0, eta="-")
    rate_window = []  # (time, step) of recent steps, for the rate and the ETA
    t_start, last_log, steps_since_log = time.perf_counter() - elapsed, time.perf_counter(), 0
    this_call = 0
    try:
        with bar, stopping:
            model.train()
            while step < cfg.steps and elapsed < budget_s and not stopping.set:
                if cfg.lr_end < 1:
                    for group in optimizer.param_groups:
                        group["lr"] = cfg.lr * _cosine(max(step / cfg.steps, elapsed / budget_s), cfg.lr_end)
                batch = train_windows.sample(per_step, generator).to(device)
                loss, metrics = model.loss(batch)
                if not math.isfinite(loss.item()):  # before the update: the last checkpoint stays good
                    raise WmkitError(f"loss became {loss.item()} at step {step + 1}; lower --lr or check the data "
                                     f"(the run resumes from its last checkpoint)")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                _clip_grad_norm(model, cfg.grad_clip)
                optimizer.step()
                step += 1
                this_call += 1
                steps_since_log += 1
                elapsed = time.perf_counter() - t_start
                if step % cfg.log_every == 0 or step == cfg.steps:
                    now = time.perf_counter()
                    row = {"step": step, "loss": loss.item(), **metrics, "elapsed_s": round(elapsed, 2),
                           "samples_per_s": round(steps_since_log * per_step / max(now - last_log, 1e-9), 1),
                           "frames_per_s" if pixels else "transitions_per_s":
                               round(steps_since_log * per_step * per_window / max(now - last_log, 1e-9), 1)}
                    if val_batch is not None:
                        row["val_loss"] = _val_loss(model, val_batch)
                    log.write(json.dumps(row) + "\n")
                    log.flush()
                    last_log, steps_since_log = now, 0
                rate_window = [*rate_window[-49:], (time.perf_counter(), step)]
                if len(rate_window) > 1:
                    (t0, s0), (t1, s1) = rate_window[0], rate_window[-1]
                    steps_per_s = (s1 - s0) / max(t1 - t0, 1e-9)
                    left = min((cfg.steps - step) / max(steps_per_s, 1e-9), budget_s - elapsed)
                    bar.update(task, rate=steps_per_s * per_step * per_window, eta=_clock(left))
                bar.update(task, completed=step, loss=loss.item())
                if step % cfg.checkpoint_every == 0:
                    _checkpoint(out, model, optimizer, generator, step, elapsed, dataset, fingerprint)
                if stop_after is not None and this_call >= stop_after:
                    break
    finally:
        log.close()
    # reached only without an exception: a step that failed is never written over a good checkpoint
    _checkpoint(out, model, optimizer, generator, step, elapsed, dataset, fingerprint)
    return out


def _clip_grad_norm(model, limit: float) -> None:
    """Scale the gradients down to norm `limit` only when they exceed it (torch's clip_grad_norm_ rescales
    every gradient at every step, a pass over all of them that costs a tenth of a small model's step)."""
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    if norm > limit:
        torch._foreach_mul_(grads, limit / (norm + 1e-6))


def _cosine(progress: float, end: float) -> float:
    """Share of the learning rate at `progress` (0 to 1) of the budget: from 1 down to `end` along a cosine."""
    return end + (1 - end) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def _clock(seconds: float) -> str:
    s = int(max(seconds, 0))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _read_run(run_file: Path) -> dict:
    try:
        previous = json.loads(run_file.read_text())
        previous["train_config"]  # noqa: B018 - must exist
        return previous
    except (OSError, json.JSONDecodeError, KeyError) as e:
        raise WmkitError(f"{run_file} is missing or malformed ({e}); delete the run folder to start over") from None


def _resume(out: Path, model, optimizer, generator, fingerprint: str, n_episodes: int) -> tuple[int, float]:
    """Load weights, optimizer and generator state; check they belong together and to this data."""
    from wmkit.models.checkpoint import load_model

    saved = load_model(out / "model")  # the checkpoint checks: config, shapes, unreadable files
    model.load_state_dict(saved.state_dict())
    info = load_trainer(out / "trainer", optimizer, generator)
    try:
        meta = json.loads((out / "model" / "meta.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise WmkitError(f"{out}/model/meta.json is missing or malformed ({e}); delete the run folder to start over") \
            from None
    if meta.get("step") != info["step"]:
        raise WmkitError(f"{out}: the weights (step {meta.get('step')}) and the optimizer state (step {info['step']}) "
                         f"do not belong together (interrupted while saving); delete the run folder to start over")
    if info.get("data_fingerprint") != fingerprint:
        raise WmkitError(f"the dataset differs from the one this run started on ({info.get('episodes')} -> "
                         f"{n_episodes} episodes, or other episodes); resuming would not repeat the same "
                         f"run: start a new --out folder")
    log = out / "log.jsonl"
    if log.is_file():  # drop rows logged after the checkpoint we resume from
        rows = [r for r in log.read_text().splitlines() if r and json.loads(r)["step"] <= info["step"]]
        atomic_write_text(log, "".join(r + "\n" for r in rows))
    return info["step"], info["elapsed_s"]


def _spec_for(dataset, pixels: bool = False):
    from wmkit.models import ModelSpec

    meta = dataset.meta
    return ModelSpec.from_dataset_meta(meta, latent_dim=meta.obs_dim, frame_size=meta.frame_size if pixels else None,
                                       frame_camera=meta.cameras[0] if pixels and meta.cameras else None)


def _val_batch(dataset, context, model, n, device):
    """The fixed held-out batch the log reports a loss on (whole groups per ensemble member), or None."""
    try:
        batch = dataset.windows(context, model.train_window, "val").take(n, with_state=False)
    except WmkitError:
        return None
    keep = len(batch) - len(batch) % getattr(model.config, "members", 1)
    if keep == 0:
        return None
    frames = batch.frames[:keep] if batch.frames is not None else None
    return type(batch)(batch.obs[:keep], batch.actions[:keep], batch.rewards[:keep], batch.terminated[:keep],
                       frames=frames).to(device)


@torch.no_grad()
def _val_loss(model, batch) -> float:
    model.eval()
    loss, _ = model.loss(batch)
    model.train()
    return round(loss.item(), 5)


def _checkpoint(out, model, optimizer, generator, step, elapsed, dataset, fingerprint):
    meta = {"step": step, "elapsed_s": round(elapsed, 2), "data": str(dataset.root.resolve()),
            "world": dataset.world, "episodes": len(dataset.episodes)}
    save_model(model, out / "model", meta=meta)
    # trainer.json is written last: it marks a complete checkpoint
    save_trainer(out / "trainer", optimizer, generator,
                 {"step": step, "elapsed_s": elapsed, "episodes": len(dataset.episodes),
                  "data_fingerprint": fingerprint})


def _fingerprint(dataset) -> str:
    """Which episodes a run trains on (numbers, seeds, lengths), wherever the folder has moved."""
    import hashlib

    rows = [(int(p.stem), e.seed, len(e)) for p, e in zip(dataset.files, dataset.episodes)]
    return hashlib.sha1(json.dumps(rows).encode()).hexdigest()


class _StopFlag:
    """Ctrl-C or SIGTERM ends the loop cleanly after the current step, then the run is checkpointed."""

    def __init__(self):
        self.set = False

    def __enter__(self):
        self._old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            for s in self._old:
                signal.signal(s, self._handle)
        except ValueError:  # not the main thread: leave signals alone
            self._old = {}
        return self

    def _handle(self, signum, frame):
        self.set = True

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)
        return False

