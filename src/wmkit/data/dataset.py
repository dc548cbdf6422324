"""`load_dataset`: episodes in memory, split by episode, sampled as fixed-length windows.

A window of `context` + `horizon` steps holds obs o_0..o_L and actions a_0..a_{L-1} (L = context +
horizon): a model observes o_0..o_C with a_0..a_{C-1}, then predicts o_{C+1}..o_L from a_C..a_{L-1}.
Windows never cross an episode boundary. Everything lives in a few flat tensors, so sampling a batch is
one gather (no per-sample Python), and training never waits on data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from wmkit.data.format import DatasetMeta, Episode, episode_files, read_episode
from wmkit.errors import WmkitError


@dataclass
class Batch:
    obs: torch.Tensor  # [B, L+1, D]
    actions: torch.Tensor  # [B, L, A]
    rewards: torch.Tensor  # [B, L]
    terminated: torch.Tensor  # [B, L] float 0/1
    episode: torch.Tensor | None = None  # [B] index into `Windows.episodes` (the split's long-enough episodes)
    sim_state: torch.Tensor | None = None  # [B, L+1, S] float64 exact simulator states (evaluation only)
    frames: torch.Tensor | None = None  # [B, L+1, H, W, 3] uint8, when the dataset was loaded with frames

    def to(self, device) -> Batch:
        moved = (t.to(device) for t in (self.obs, self.actions, self.rewards, self.terminated))
        frames = self.frames.to(device) if self.frames is not None else None
        return Batch(*moved, self.episode, self.sim_state, frames)

    def __len__(self) -> int:
        return self.obs.shape[0]


class Windows:
    """All windows of one length over a set of episodes."""

    def __init__(self, episodes: list[Episode], length: int):
        if length < 1:
            raise WmkitError(f"window length {length} must be at least 1")
        lengths = np.array([len(e) for e in episodes])
        keep = lengths >= length
        if not keep.any():
            longest = int(lengths.max()) if len(lengths) else 0
            raise WmkitError(
                f"no episode is long enough for windows of {length} steps (longest: {longest}); "
                f"shorten context/horizon or collect longer episodes"
            )
        eps = [e for e, k in zip(episodes, keep) if k]
        self.episodes = eps
        self.length = length
        self.obs = torch.from_numpy(np.concatenate([e.obs for e in eps])).float()
        # actions/rewards padded by one row per episode so obs and actions share offsets
        pad = lambda arr: np.concatenate([arr, np.zeros((1, *arr.shape[1:]), arr.dtype)])  # noqa: E731
        self.actions = torch.from_numpy(np.concatenate([pad(e.actions) for e in eps])).float()
        self.rewards = torch.from_numpy(np.concatenate([pad(e.rewards) for e in eps])).float()
        self.terminated = torch.from_numpy(np.concatenate([pad(e.terminated) for e in eps])).float()
        # frames of one camera, decoded once into one uint8 tensor: a batch of windows is one gather
        frames = [next(iter(e.frames.values())) for e in eps if e.frames]  # (the dataset loaded one camera)
        self.frames = torch.from_numpy(np.concatenate(frames)) if len(frames) == len(eps) else None
        has_state = all(e.sim_state is not None for e in eps)
        self.sim_state = torch.from_numpy(np.concatenate([e.sim_state for e in eps])) if has_state else None
        offsets = np.cumsum([0] + [len(e.obs) for e in eps[:-1]])
        starts = [off + np.arange(len(e) - length + 1) for off, e in zip(offsets, eps)]
        self.starts = torch.from_numpy(np.concatenate(starts)).long()
        self.start_episode = torch.from_numpy(np.concatenate([np.full(len(s), i) for i, s in enumerate(starts)]))
        self.weights: torch.Tensor | None = None  # sampling weights (None: uniform); see focus_on_change
        self._cdf: torch.Tensor | None = None  # their running sum, normalised: a batch is one binary search

    def __len__(self) -> int:
        return len(self.starts)

    def _gather(self, pick: torch.Tensor, with_state: bool = False) -> Batch:
        steps = torch.arange(self.length + 1)
        idx = self.starts[pick][:, None] + steps[None, :]  # [B, L+1]
        return Batch(
            obs=self.obs[idx],
            actions=self.actions[idx[:, :-1]],
            rewards=self.rewards[idx[:, :-1]],
            terminated=self.terminated[idx[:, :-1]],
            episode=self.start_episode[pick],
            sim_state=self.sim_state[idx] if with_state and self.sim_state is not None else None,
            frames=self.frames[idx] if self.frames is not None else None,
        )

    def physics_of(self, batch: Batch) -> list[dict]:
        """The physics parameters of each window's episode."""
        return [self.episodes[int(i)].physics for i in batch.episode]

    def focus_on_change(self, strength: float) -> None:
        """Sample windows with weight 1 + strength * c / mean(c), c = the size of their first step's change.

        c is the root-mean-square of the one-step change over state dimensions, each divided by its
        spread. Contacts and falls change the state most and are rare, yet they carry most of the
        error; strength 0 samples uniformly.
        """
        if not (0 <= strength < float("inf")):
            raise WmkitError(f"focus strength {strength!r} must be a finite number >= 0")
        if strength == 0:
            self.weights = self._cdf = None
            return
        change = self.obs[self.starts + 1] - self.obs[self.starts]  # [N, D]
        size = (change / change.std(0).clamp_min(1e-6)).pow(2).mean(1).sqrt()
        self.weights = 1 + strength * size / size.mean().clamp_min(1e-12)
        cdf = torch.cumsum(self.weights.double(), 0)
        self._cdf = cdf / cdf[-1]

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> Batch:
        if self.weights is None:
            pick = torch.randint(len(self.starts), (batch_size,), generator=generator)
        else:
            # inverse-CDF sampling: the same draw as multinomial with replacement, without re-summing
            # hundreds of thousands of weights at every step
            u = torch.rand(batch_size, generator=generator, dtype=torch.float64)
            pick = torch.searchsorted(self._cdf, u, right=True).clamp_max(len(self.starts) - 1)
        return self._gather(pick)

    def take(self, n: int, with_state: bool = True) -> Batch:
        """`n` windows spread evenly (deterministic), for evaluation; with exact simulator states."""
        if n < 1:
            raise WmkitError(f"asked for {n} windows; ask for at least 1")
        n = min(n, len(self.starts))
        pick = torch.linspace(0, len(self.starts) - 1, n).round().long()
        return self._gather(pick, with_state=with_state)


class Dataset:
    """A dataset directory loaded into memory (state vectors; frames of one camera when asked).

    `frames=True` decodes the first stored camera's frames, a camera name picks one; windows then carry
    `Batch.frames` [B, L+1, H, W, 3] uint8. 64x64 frames take 12 KiB each in memory.
    """

    def __init__(self, root: str | Path, val_fraction: float = 0.1, frames: bool | str = False):
        self.root = Path(root)
        if not self.root.is_dir():
            raise WmkitError(f"dataset folder {self.root} does not exist; create it with `wmkit collect`")
        self.meta = DatasetMeta.read(self.root)
        self.files = episode_files(self.root)
        if not self.files:
            raise WmkitError(f"{self.root} holds no finished episodes; run `wmkit collect --out {self.root}`")
        if not 0.0 <= val_fraction < 1.0:
            raise WmkitError(f"val_fraction={val_fraction} must be in [0, 1)")
        camera = self._camera(frames)
        self.episodes = [read_episode(p, frames=camera is not None, cameras=(camera,) if camera else None)
                         for p in self.files]
        for p, e in zip(self.files, self.episodes):
            if e.obs.shape[1] != self.meta.obs_dim or e.actions.shape[1] != self.meta.action_dim:
                raise WmkitError(f"episode {p} has shapes {e.obs.shape}/{e.actions.shape}, unlike dataset.json")
        self.val_ids = validation_ids([int(p.stem) for p in self.files], val_fraction)

    def _camera(self, frames: bool | str) -> str | None:
        if frames is False or frames is None:
            return None
        if not self.meta.cameras:
            raise WmkitError(f"{self.root} holds no frames; collect with --render SIZE to store them")
        if frames is True:
            return self.meta.cameras[0]
        if frames not in self.meta.cameras:
            raise WmkitError(f"camera {frames!r} is not in {self.root}; it has: {', '.join(self.meta.cameras)}")
        return frames

    @property
    def world(self) -> str:
        return self.meta.world

    def split(self, name: str) -> list[Episode]:
        if name == "train":
            return [e for i, e in enumerate(self.episodes) if i not in self.val_ids]
        if name in ("val", "validation"):
            return [e for i, e in enumerate(self.episodes) if i in self.val_ids]
        if name == "all":
            return list(self.episodes)
        raise WmkitError(f"unknown split {name!r}; use train, val or all")

    def windows(self, context: int, horizon: int, split: str = "train") -> Windows:
        episodes = self.split(split)
        if not episodes:
            raise WmkitError(f"the {split!r} split of {self.root} is empty; collect more episodes")
        return Windows(episodes, context + horizon)

    def stats(self, split: str = "train") -> dict[str, torch.Tensor]:
        """Mean and std of observations, actions, one-step deltas and rewards (for normalising)."""
        eps = self.split(split) or self.episodes  # (an empty split falls back on every episode)
        obs = np.concatenate([e.obs for e in eps]).astype(np.float64)
        act = np.concatenate([e.actions for e in eps]).astype(np.float64)
        delta = np.concatenate([np.diff(e.obs, axis=0) for e in eps]).astype(np.float64)
        rewards = np.concatenate([e.rewards for e in eps]).astype(np.float64)
        t = lambda x: torch.tensor(x, dtype=torch.float32)  # noqa: E731
        return {
            "obs_mean": t(obs.mean(0)), "obs_std": t(obs.std(0)), "obs_min": t(obs.min(0)), "obs_max": t(obs.max(0)),
            "act_mean": t(act.mean(0)), "act_std": t(act.std(0)),
            "delta_mean": t(delta.mean(0)), "delta_std": t(delta.std(0)),
            "reward_std": t(rewards.std(ddof=1) if len(rewards) > 1 else 1.0),
            # what reward heads predict in units of: the spread, or 1 where every reward is the same
            # (CartPole, InvertedPendulum: +1 a step), which would otherwise blow the reward loss up
            "reward_scale": t(_reward_scale(rewards)),
        }

    def summary(self) -> dict:
        lengths = [len(e) for e in self.episodes]
        terminated = sum(bool(e.terminated[-1]) for e in self.episodes if len(e))
        return {
            "path": str(self.root), "world": self.meta.world, "schema_version": self.meta.version,
            "episodes": len(self.episodes), "transitions": int(sum(lengths)),
            "episode_length": {"min": min(lengths), "mean": float(np.mean(lengths)), "max": max(lengths)},
            "terminated_episodes": terminated, "obs_dim": self.meta.obs_dim, "action_dim": self.meta.action_dim,
            "dt": self.meta.dt, "frames": {"size": self.meta.frame_size, "cameras": self.meta.cameras},
            "policies": sorted({e.policy for e in self.episodes}),
            "train_episodes": len(self.episodes) - len(self.val_ids), "val_episodes": len(self.val_ids),
        }


def _reward_scale(rewards: np.ndarray) -> float:
    std = float(rewards.std(ddof=1)) if len(rewards) > 1 else 0.0
    return std if std > 1e-6 * max(1.0, float(np.abs(rewards).max(initial=0.0))) else 1.0


def validation_ids(numbers: list[int], val_fraction: float) -> set[int]:
    """Positions of held-out episodes: episode number i is held out when i % k == 1, k = round(1 / val_fraction).

    That is episodes 1, 11, 21, ... for the default 0.1: appending episodes (or deleting a broken
    one) never moves an episode between splits, and any dataset of two or more episodes has one.
    """
    if val_fraction <= 0:
        return set()
    k = max(2, round(1 / val_fraction))
    return {pos for pos, i in enumerate(numbers) if i % k == 1}


def load_dataset(path: str | Path, val_fraction: float = 0.1, frames: bool | str = False) -> Dataset:
    """Open a dataset directory written by `wmkit collect`; `frames` loads one camera's frames too."""
    return Dataset(path, val_fraction=val_fraction, frames=frames)
