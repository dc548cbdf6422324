"""Checkpoints are directories: `config.json` (family, config, spec), `weights.safetensors`, `meta.json`.

No pickle: weights go through safetensors, everything else is JSON.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, fields
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from wmkit.errors import WmkitError
from wmkit.files import atomic_write_json

CONFIG_FILE, WEIGHTS_FILE, META_FILE = "config.json", "weights.safetensors", "meta.json"
FORMAT_VERSION = 1


def save_model(model, path: str | Path, meta: dict | None = None) -> Path:
    """Write a model directory atomically per file (a crash never leaves a half-written weights file)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    config = {
        "family": model.family,
        "config": asdict(model.config) if model.config is not None else {},
        "spec": model.spec.to_dict(),
        "format_version": FORMAT_VERSION,
    }
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = path / f".{WEIGHTS_FILE}.tmp"
    save_file(tensors, str(tmp))
    os.replace(tmp, path / WEIGHTS_FILE)
    atomic_write_json(path / CONFIG_FILE, config)
    if meta is not None:
        atomic_write_json(path / META_FILE, meta)
    return path


def load_model(path: str | Path, device: str | torch.device = "cpu"):
    """Load a model directory written by `save_model` (or by `wmkit train`: the run's `model/`)."""
    from wmkit.models.registry import model_class
    from wmkit.models.base import ModelSpec

    path = Path(path)
    if (path / "model" / CONFIG_FILE).is_file():  # a training run: use its model
        path = path / "model"
    cfg_path, w_path = path / CONFIG_FILE, path / WEIGHTS_FILE
    if not cfg_path.is_file():
        raise WmkitError(f"{path} is not a wmkit model (no {CONFIG_FILE}); pass a run or model directory")
    try:
        cfg = json.loads(cfg_path.read_text())
        if cfg.get("format_version") != FORMAT_VERSION:
            raise WmkitError(f"{cfg_path} has checkpoint format {cfg.get('format_version')!r}; this wmkit reads "
                             f"format {FORMAT_VERSION}")
        family, spec = cfg["family"], ModelSpec.from_dict(cfg["spec"])
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise WmkitError(f"{cfg_path} is malformed ({e}); re-save the model") from None
    cls = model_class(family)
    config_cls = getattr(cls, "config_class", None)
    config = None
    if config_cls is not None:
        known = {f.name for f in fields(config_cls)}
        unknown = set(cfg.get("config", {})) - known
        if unknown:
            raise WmkitError(f"{cfg_path}: unknown {family} config fields {sorted(unknown)}")
        # a field added after a checkpoint was saved takes the value that reproduces the saved model
        saved = {**getattr(config_cls, "before_field_existed", {}), **cfg.get("config", {})}
        config = config_cls(**saved)
    model = cls(spec, config)
    if not w_path.is_file():
        raise WmkitError(f"{path} has no {WEIGHTS_FILE}; the checkpoint is incomplete")
    try:
        weights = load_file(str(w_path))
    except (SafetensorError, OSError) as e:
        raise WmkitError(f"{w_path} is unreadable ({e}); the checkpoint is corrupted") from None
    own = model.state_dict()
    missing = sorted(set(own) - set(weights))
    extra = sorted(set(weights) - set(own))
    wrong = sorted(k for k in set(own) & set(weights) if own[k].shape != weights[k].shape)
    if missing or extra or wrong:
        parts = []
        if missing:
            parts.append(f"missing {missing[:5]}")
        if extra:
            parts.append(f"unexpected {extra[:5]}")
        if wrong:
            parts.append("shape mismatch " + ", ".join(
                f"{k} {tuple(weights[k].shape)} vs {tuple(own[k].shape)}" for k in wrong[:5]))
        raise WmkitError(f"{w_path} does not match the {family} config in {cfg_path}: " + "; ".join(parts))
    model.load_state_dict(weights)
    return model.to(device).eval()

