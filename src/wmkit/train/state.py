"""Trainer state on disk for exact resume: optimizer tensors in safetensors, the rest in JSON."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from wmkit.errors import WmkitError
from wmkit.files import atomic_write_json

OPTIM_FILE, TRAINER_FILE = "optimizer.safetensors", "trainer.json"


def save_trainer(folder: Path, optimizer: torch.optim.Optimizer, generator: torch.Generator, info: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for idx, slots in sd["state"].items():
        for key, value in slots.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{idx}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"state.{idx}.{key}"] = value
    tensors["generator"] = generator.get_state()
    tensors["torch_rng"] = torch.get_rng_state()
    tmp = folder / f".{OPTIM_FILE}.tmp"
    save_file(tensors, str(tmp))
    os.replace(tmp, folder / OPTIM_FILE)
    atomic_write_json(folder / TRAINER_FILE, {**info, "param_groups": sd["param_groups"], "scalars": scalars})


def load_trainer(folder: Path, optimizer: torch.optim.Optimizer, generator: torch.Generator) -> dict:
    try:
        info = json.loads((folder / TRAINER_FILE).read_text())
        tensors = load_file(str(folder / OPTIM_FILE))
        info["scalars"], info["param_groups"], info["step"], info["elapsed_s"]  # noqa: B018 - must exist
    except (OSError, json.JSONDecodeError, KeyError, SafetensorError) as e:
        raise WmkitError(f"cannot resume from {folder} ({e}); delete the run folder to start over") from None
    state: dict[int, dict] = {}
    for name, value in [*tensors.items(), *info["scalars"].items()]:
        if not name.startswith("state."):
            continue
        _, idx, key = name.split(".", 2)
        state.setdefault(int(idx), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": info["param_groups"]})
    generator.set_state(tensors["generator"])
    torch.set_rng_state(tensors["torch_rng"])
    return info
