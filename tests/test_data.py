"""Datasets: the on-disk format, append-safety under a real kill, windows, and bad input."""

import json
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
import torch

import wmkit
from wmkit import WmkitError
from wmkit.data.collect import collect
from wmkit.data.format import episode_files, read_episode


def test_episodes_carry_everything(tabletop_data):
    ds = wmkit.load_dataset(tabletop_data)
    assert ds.meta.world == "Tabletop-v0" and ds.meta.version == 1
    ep = read_episode(ds.files[0], annotations=True)
    T = len(ep)
    assert ep.obs.shape == (T + 1, 10) and ep.actions.shape == (T, 2)
    assert ep.sim_state.shape[0] == T + 1 and ep.sim_state.dtype == np.float64
    assert set(ep.physics) == {"cup_mass", "cup_friction", "table_friction", "pusher_strength", "gravity"}
    for name in ("events/pusher_touches_cup", "events/cup_leaves_table", "events/cup_hits_floor",
                 "bodies/cup/pos", "bodies/pusher/vel", "n_contacts"):
        assert ep.annotations[name].shape[0] == T + 1, name
    # annotations agree with the observation: the cup body position is obs[2:5]
    np.testing.assert_allclose(ep.annotations["bodies/cup/pos"], ep.obs[:, 2:5], atol=1e-5)


def test_noise_policy_meets_the_cup(tabletop_data, tmp_path):
    ds = wmkit.load_dataset(tabletop_data)
    touched = [read_episode(p, annotations=True).annotations["events/pusher_touches_cup"].any() for p in ds.files]
    assert np.mean(touched) >= 0.5, f"the pusher met the cup in only {np.mean(touched):.0%} of episodes"
    # white noise averages out on the spring-held pusher; coloured noise sweeps it across the table
    collect("Tabletop-v0", 6, tmp_path / "white", policy="random", seed=0, max_steps=80, progress=False)
    spread = lambda d: np.mean([e.obs[:, :2].std(0).mean() for e in wmkit.load_dataset(d).episodes])  # noqa: E731
    assert spread(tabletop_data) > 2 * spread(tmp_path / "white"), (spread(tabletop_data), spread(tmp_path / "white"))


def test_append_continues_without_repeating(tmp_path):
    out = tmp_path / "d"
    collect("Pendulum-v1", 2, out, seed=3, max_steps=20, progress=False)
    collect("Pendulum-v1", 3, out, seed=3, max_steps=20, progress=False)
    ds = wmkit.load_dataset(out)
    assert len(ds.episodes) == 5
    assert len({e.seed for e in ds.episodes}) == 5
    assert len({e.obs[0].tobytes() for e in ds.episodes}) == 5


def test_killed_collect_keeps_finished_episodes(tmp_path):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "wmkit.cli", "collect", "--world", "Tabletop-v0", "--episodes", "500",
           "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while len(episode_files(out)) < 3 and time.time() < deadline:
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    n = len(episode_files(out))
    assert n >= 3
    ds = wmkit.load_dataset(out)  # every finished episode readable, the one in flight ignored
    assert len(ds.episodes) == n
    collect("Tabletop-v0", 1, out, seed=0, max_steps=10, progress=False)
    assert len(wmkit.load_dataset(out).episodes) == n + 1
    assert not list((out / "episodes").glob(".*partial"))


def test_windows_stay_inside_episodes(tabletop_data):
    ds = wmkit.load_dataset(tabletop_data)
    win = ds.windows(context=2, horizon=5, split="train")
    batch = win.take(64)
    assert batch.obs.shape == (64, 8, 10) and batch.actions.shape == (64, 7, 2)
    for b in range(0, 64, 7):
        ep = win.episodes[int(batch.episode[b])]
        # find the window in its episode: every step must match consecutively
        start = int(np.argmin(np.abs(ep.obs - batch.obs[b, 0].numpy()).sum(1)))
        np.testing.assert_array_equal(ep.obs[start:start + 8], batch.obs[b].numpy())
        np.testing.assert_array_equal(ep.actions[start:start + 7], batch.actions[b].numpy())
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    assert torch.equal(win.sample(32, g1).obs, win.sample(32, g2).obs)


def test_split_is_by_episode(tabletop_data):
    ds = wmkit.load_dataset(tabletop_data)
    train, val = ds.split("train"), ds.split("val")
    assert len(train) + len(val) == len(ds.episodes) and len(val) >= 1
    assert not {e.seed for e in train} & {e.seed for e in val}


def test_frames_are_stored_compressed(tmp_path):
    out = tmp_path / "pix"
    collect("Tabletop-v0", 1, out, render=32, max_steps=10, progress=False)
    ep = read_episode(episode_files(out)[0], frames=True)
    frames = ep.frames["top"]
    assert frames.shape == (11, 32, 32, 3) and frames.dtype == np.uint8 and frames.std() > 5
    with h5py.File(episode_files(out)[0]) as f:
        assert f["frames/top"].compression == "gzip"


def test_windows_carry_frames_aligned_with_states(tmp_path, tabletop_data):
    out = tmp_path / "pix"
    collect("Tabletop-v0", 3, out, render=32, cameras=["top", "side"], max_steps=12, progress=False)
    ds = wmkit.load_dataset(out, frames="side")
    win = ds.windows(2, 3, "all")
    batch = win.take(5)
    assert batch.frames.shape == (5, 6, 32, 32, 3) and batch.frames.dtype == torch.uint8
    # frame t of a window is the frame stored with observation t of its episode
    ep_files = episode_files(out)
    for row in range(5):
        ep = win.episodes[int(batch.episode[row])]
        start = next(s for s in range(len(ep.obs)) if np.allclose(ep.obs[s], batch.obs[row, 0].numpy()))
        index = next(i for i, e in enumerate(ds.episodes) if e is ep)
        stored = read_episode(ep_files[index], frames=True).frames["side"]
        assert np.array_equal(stored[start:start + 6], batch.frames[row].numpy())
    assert wmkit.load_dataset(out).windows(2, 3).take(2).frames is None  # state-only unless asked
    with pytest.raises(WmkitError, match="camera 'front' is not in"):
        wmkit.load_dataset(out, frames="front")
    with pytest.raises(WmkitError, match="holds no frames; collect with --render"):
        wmkit.load_dataset(tabletop_data, frames=True)


def test_bad_datasets_get_clear_errors(tmp_path, tabletop_data):
    with pytest.raises(WmkitError, match="does not exist"):
        wmkit.load_dataset(tmp_path / "nope")
    (tmp_path / "plain").mkdir()
    with pytest.raises(WmkitError, match="not a wmkit dataset"):
        wmkit.load_dataset(tmp_path / "plain")
    # a file corrupted mid-way: the error names the file
    out = tmp_path / "corrupt"
    collect("Pendulum-v1", 2, out, max_steps=10, progress=False)
    victim = episode_files(out)[1]
    victim.write_bytes(victim.read_bytes()[:300])
    with pytest.raises(WmkitError, match=victim.name):
        wmkit.load_dataset(out)
    # appending different settings to an existing dataset is refused, nothing is lost
    with pytest.raises(WmkitError, match="world"):
        collect("Pendulum-v1", 1, tabletop_data, progress=False)
    assert len(wmkit.load_dataset(tabletop_data).episodes) == 24
    with pytest.raises(WmkitError, match="unknown policy"):
        collect("Pendulum-v1", 1, tmp_path / "p", policy="greedy", progress=False)
    meta = json.loads((out / "dataset.json").read_text())
    (out / "dataset.json").write_text(json.dumps({**meta, "version": 99}))
    with pytest.raises(WmkitError, match="schema version 99"):
        wmkit.load_dataset(out)


def test_same_seed_same_data(tmp_path):
    for name in ("a", "b"):
        collect("Tabletop-v0", 2, tmp_path / name, seed=7, max_steps=30, progress=False)
    a, b = (wmkit.load_dataset(tmp_path / n).episodes for n in ("a", "b"))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.obs, y.obs)
        np.testing.assert_array_equal(x.actions, y.actions)


def test_focus_samples_big_changes_more_often(tabletop_data):
    win = wmkit.load_dataset(tabletop_data).windows(0, 1, "train")
    change = (win.obs[win.starts + 1] - win.obs[win.starts]).abs().sum(1)

    def share_of_big(batch):
        c = (batch.obs[:, 1] - batch.obs[:, 0]).abs().sum(1)
        return (c > change.quantile(0.9)).float().mean().item()
    uniform = share_of_big(win.sample(20000, torch.Generator().manual_seed(0)))
    win.focus_on_change(3.0)
    focused = share_of_big(win.sample(20000, torch.Generator().manual_seed(0)))
    assert uniform == pytest.approx(0.1, abs=0.02) and focused > 1.5 * uniform
    with pytest.raises(WmkitError, match="focus"):
        win.focus_on_change(-1)
