"""The on-disk episode format (schema version 1), documented in docs/data-format.md.

A dataset is a directory:

    dataset.json          format name, schema version, world id, spaces, control period, frames
    episodes/000000.h5    one HDF5 file per finished episode

An episode is written to `.NNNNNN.h5.partial` and renamed when complete, so a crash loses at most
the episode in flight, and the next `collect` into the same folder removes the leftover and appends.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import h5py
import numpy as np

from wmkit.actions import KINDS as ACTION_KINDS
from wmkit.errors import WmkitError
from wmkit.files import atomic_write_text

FORMAT_NAME = "wmkit-episodes"
SCHEMA_VERSION = 1
META_FILE = "dataset.json"
EPISODE_DIR = "episodes"


@dataclass
class DatasetMeta:
    world: str
    obs_dim: int
    action_dim: int
    dt: float
    action_low: list[float]
    action_high: list[float]
    action_kind: str = "continuous"  # "discrete": each action row is the one-hot vector of action_dim choices
    frame_size: int | None = None  # side of the square frames stored, None when no frames
    cameras: list[str] = field(default_factory=list)
    format: str = FORMAT_NAME
    version: int = SCHEMA_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def read(cls, root: Path) -> DatasetMeta:
        path = Path(root) / META_FILE
        if not path.is_file():
            raise WmkitError(f"{root} is not a wmkit dataset (no {META_FILE}); create one with `wmkit collect`")
        try:
            raw = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise WmkitError(f"{path} is not valid JSON ({e}); restore it or collect the dataset again") from None
        if raw.get("format") != FORMAT_NAME:
            raise WmkitError(f"{path} has format {raw.get('format')!r}, expected {FORMAT_NAME!r}")
        if raw.get("version") != SCHEMA_VERSION:
            raise WmkitError(
                f"{path} has schema version {raw.get('version')!r}; this wmkit reads version {SCHEMA_VERSION}"
            )
        try:
            meta = cls(**raw)
        except TypeError as e:
            raise WmkitError(f"{path} has unexpected fields ({e})") from None
        if meta.action_kind not in ACTION_KINDS:
            raise WmkitError(f"{path} has action_kind={meta.action_kind!r}; expected one of {', '.join(ACTION_KINDS)}")
        return meta

    def write(self, root: Path) -> None:
        atomic_write_text(Path(root) / META_FILE, self.to_json())


@dataclass
class Episode:
    """One episode in memory. T transitions: obs has T+1 rows, actions/rewards/flags T rows."""

    obs: np.ndarray  # [T+1, D] float32
    actions: np.ndarray  # [T, A] float32
    rewards: np.ndarray  # [T] float32
    terminated: np.ndarray  # [T] bool
    truncated: np.ndarray  # [T] bool
    sim_state: np.ndarray | None = None  # [T+1, S] float64, exact simulator state
    frames: dict[str, np.ndarray] = field(default_factory=dict)  # camera -> [T+1, H, W, 3] uint8
    annotations: dict[str, np.ndarray] = field(default_factory=dict)  # path -> [T+1, ...]
    physics: dict[str, float] = field(default_factory=dict)
    seed: int = 0
    policy: str = ""

    def __len__(self) -> int:
        return len(self.actions)


def episode_files(root: Path) -> list[Path]:
    """Finished episode files in episode order (by number, not by name)."""
    return sorted((Path(root) / EPISODE_DIR).glob("[0-9]*.h5"), key=lambda p: int(p.stem))


def write_episode(root: Path, index: int, ep: Episode) -> Path:
    """Write atomically: a partial file is renamed only once it is complete and flushed."""
    folder = Path(root) / EPISODE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{index:06d}.h5"
    partial = folder / f".{index:06d}.h5.partial"
    with h5py.File(partial, "w") as f:
        f.create_dataset("obs", data=ep.obs.astype(np.float32))
        f.create_dataset("actions", data=ep.actions.astype(np.float32))
        f.create_dataset("rewards", data=ep.rewards.astype(np.float32))
        f.create_dataset("terminated", data=ep.terminated.astype(bool))
        f.create_dataset("truncated", data=ep.truncated.astype(bool))
        if ep.sim_state is not None:
            f.create_dataset("sim_state", data=ep.sim_state.astype(np.float64))
        for cam, frames in ep.frames.items():
            chunk = (min(16, len(frames)), *frames.shape[1:])
            f.create_dataset(f"frames/{cam}", data=frames, chunks=chunk, compression="gzip", compression_opts=4)
        for path, values in ep.annotations.items():
            f.create_dataset(f"annotations/{path}", data=values)
        f.attrs["physics"] = json.dumps(ep.physics)
        f.attrs["seed"] = int(ep.seed)
        f.attrs["policy"] = ep.policy
        f.attrs["length"] = len(ep)
        f.flush()
    with open(partial, "rb+") as fh:  # on disk before it is renamed, so a power cut cannot leave it empty
        os.fsync(fh.fileno())
    os.replace(partial, final)
    return final


def read_episode(path: Path, frames: bool = False, annotations: bool = False,
                 cameras: tuple[str, ...] | None = None) -> Episode:
    try:
        with h5py.File(path, "r") as f:
            ep = Episode(
                obs=f["obs"][()],
                actions=f["actions"][()],
                rewards=f["rewards"][()],
                terminated=f["terminated"][()],
                truncated=f["truncated"][()],
                sim_state=f["sim_state"][()] if "sim_state" in f else None,
                physics=json.loads(f.attrs["physics"]),
                seed=int(f.attrs["seed"]),
                policy=str(f.attrs["policy"]),
            )
            if frames and "frames" in f:
                ep.frames = {cam: f[f"frames/{cam}"][()] for cam in f["frames"] if cameras is None or cam in cameras}
            if annotations and "annotations" in f:
                f["annotations"].visititems(
                    lambda name, obj: ep.annotations.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None
                )
    except (OSError, KeyError, ValueError) as e:
        raise WmkitError(
            f"episode file {path} is unreadable or incomplete ({e}); delete it to keep the rest of the dataset"
        ) from None
    if len(ep.obs) != len(ep.actions) + 1:
        raise WmkitError(f"episode file {path} is inconsistent: {len(ep.obs)} observations for {len(ep.actions)} actions")
    return ep


def remove_partials(root: Path) -> int:
    """Delete episodes left in flight by a crash; returns how many."""
    stale = list((Path(root) / EPISODE_DIR).glob(".*.h5.partial"))
    for p in stale:
        p.unlink()
    return len(stale)

