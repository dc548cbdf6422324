"""`collect`: run a policy in a world and append finished episodes to a dataset directory."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
from gymnasium import spaces

from wmkit.actions import decode as decode_action
from wmkit.actions import encode as encode_action
from wmkit.actions import layout as action_layout
from wmkit.data.format import DatasetMeta, Episode, episode_files, remove_partials, write_episode
from wmkit.data.policies import POLICIES, make_policy
from wmkit.errors import WmkitError
from wmkit.progress import progress_bar


def collect(world: str, episodes: int, out: str | Path, *, policy="noise", seed: int = 0,
            render: int | None = None, cameras: list[str] | None = None, physics=None,
            max_steps: int | None = None, progress: bool = True, stats: list | None = None) -> Path:
    """Collect `episodes` episodes of `world` into `out`, appending when it already holds some.

    Episode i (counted over the whole dataset) is seeded from (seed, i), so appending never repeats
    an episode. `render` stores frames of that size from `cameras` (default: the world's first camera).
    `policy` is a name (`random`, `noise`) or an object with `reset()` and `__call__(obs) -> action`
    (e.g. a planner acting through `control.PlannerPolicy`), recorded under its `name`.
    Returns `out`; `stats` (a list, if given) gets one dict per episode: index, steps, return, terminated,
    success (where the world defines it) and the count of each event.
    """
    from wmkit.worlds import make

    if not isinstance(episodes, int) or episodes < 1:
        raise WmkitError(f"episodes={episodes!r} must be a positive integer")
    if render is not None and not (isinstance(render, int) and 8 <= render <= 1024):
        raise WmkitError(f"render={render!r}: give a frame size between 8 and 1024 pixels, e.g. 64")
    if cameras and render is None:
        raise WmkitError("cameras were named but no frame size: add --render SIZE (e.g. --render 64)")
    if max_steps is not None and (not isinstance(max_steps, int) or max_steps < 1):
        raise WmkitError(f"max_steps={max_steps!r} must be a positive integer")
    out = Path(out)
    env = make(world, physics=physics, render_size=render or 64, max_episode_steps=max_steps)
    actions = action_layout(env.action_space, world)  # Box, or Discrete stored one-hot
    if not isinstance(env.observation_space, spaces.Box):
        env.close()
        raise WmkitError(f"{world} has a {type(env.observation_space).__name__} observation space; wmkit models "
                         f"observations that are arrays of numbers (a Box space)")
    if isinstance(policy, str):
        make_policy(policy, env.action_space, np.random.default_rng(0))  # a bad policy name fails before any write
    elif not (callable(policy) and hasattr(policy, "reset")):
        raise WmkitError(f"policy {policy!r} must be a name ({', '.join(POLICIES)}) or an object with reset() and "
                         f"__call__(obs)")
    if render is not None and not env.cameras:
        raise WmkitError(f"{world} has no cameras to render from; collect without --render")
    cameras = list(cameras or (env.cameras[:1] if render else []))
    for cam in cameras:
        if cam not in env.cameras:
            raise WmkitError(f"unknown camera {cam!r} for {world}; known: {', '.join(env.cameras)}")
    meta = DatasetMeta(
        world=env.world_id, obs_dim=int(np.prod(env.observation_space.shape)),
        action_dim=actions.dim, dt=float(env.dt), action_low=list(actions.low), action_high=list(actions.high),
        action_kind=actions.kind, frame_size=render, cameras=cameras,
    )
    start = _open_for_append(out, meta)
    bar = progress_bar(progress)
    try:
        with bar:
            task = bar.add_task(f"collect {world}", total=episodes)
            for i in range(start, start + episodes):
                ep = run_episode(env, policy, seed=episode_seed(seed, i), cameras=cameras, size=render)
                write_episode(out, i, ep)
                if stats is not None:
                    stats.append({"index": i, "steps": len(ep.actions), "return": float(ep.rewards.sum()),
                                  "terminated": bool(ep.terminated[-1]) if len(ep.terminated) else False,
                                  "success": env.success() if hasattr(env, "success") else None,
                                  "events": {k.split("/", 1)[1]: int(v.sum()) for k, v in ep.annotations.items()
                                             if k.startswith("events/")}})
                bar.update(task, advance=1)
    finally:
        env.close()
    return out


def run_episode(env, policy, seed: int, cameras=(), size=None) -> Episode:
    """One episode of `policy` (a name, or an object with reset() and __call__(obs)) from a seeded reset."""
    if isinstance(policy, str):
        policy_name = policy
        policy = make_policy(policy, env.action_space, np.random.default_rng([seed, 1]))  # apart from the reset seed
    else:
        policy_name = getattr(policy, "name", type(policy).__name__)
    policy.reset()
    obs, info = env.reset(seed=seed)
    observations, states, actions, rewards, terms, truncs = [obs], [_state_or_none(env)], [], [], [], []
    frames = {cam: [env.render_frame(cam, size)] for cam in cameras}
    notes = _Annotations(env.events)
    notes.add(info["annotations"])
    done = False
    while not done:
        action = encode_action(env.action_space, policy(obs))  # what the dataset stores (one-hot if discrete)
        obs, reward, terminated, truncated, info = env.step(decode_action(env.action_space, action))
        observations.append(obs)
        states.append(_state_or_none(env))
        actions.append(action)
        rewards.append(reward)
        terms.append(terminated)
        truncs.append(truncated)
        for cam in cameras:
            frames[cam].append(env.render_frame(cam, size))
        notes.add(info["annotations"])
        done = terminated or truncated
    return Episode(
        obs=np.asarray(observations, dtype=np.float32), actions=np.asarray(actions, dtype=np.float32),
        rewards=np.asarray(rewards, dtype=np.float32), terminated=np.asarray(terms), truncated=np.asarray(truncs),
        sim_state=None if states[0] is None else np.asarray(states),
        frames={cam: np.asarray(f, dtype=np.uint8) for cam, f in frames.items()},
        annotations=notes.arrays(), physics=dict(info["physics"]), seed=seed, policy=policy_name,
    )


class _Annotations:
    """Per-step annotation dicts -> arrays: bodies/<name>/pos|vel, n_contacts, events/<name>."""

    def __init__(self, event_names):
        self.event_names = tuple(event_names)
        self.rows: dict[str, list] = defaultdict(list)

    def add(self, notes: dict) -> None:
        for name, body in notes.get("bodies", {}).items():
            self.rows[f"bodies/{name}/pos"].append(body["pos"])
            self.rows[f"bodies/{name}/vel"].append(body["vel"])
        self.rows["n_contacts"].append(len(notes.get("contacts", ())))
        fired = set(notes.get("events", ()))
        for ev in self.event_names:
            self.rows[f"events/{ev}"].append(ev in fired)

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: np.asarray(v) for k, v in self.rows.items()}


def _state_or_none(env):
    try:
        return env.get_state()
    except WmkitError:
        return None


def episode_seed(seed: int, index: int) -> int:
    """The reset seed of episode `index` of a collection seeded `seed` (so another policy can start from the same states)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def _open_for_append(out: Path, meta: DatasetMeta) -> int:
    """Create the dataset or check it matches; returns the index of the next episode."""
    if out.exists() and not out.is_dir():
        raise WmkitError(f"--out {out} is a file; give a directory")
    if (out / "dataset.json").exists():
        old = DatasetMeta.read(out)
        for key in ("world", "obs_dim", "action_dim", "action_kind", "dt", "action_low", "action_high", "frame_size",
                    "cameras"):
            if getattr(old, key) != getattr(meta, key):
                raise WmkitError(
                    f"{out} holds {key}={getattr(old, key)!r} but this run has {getattr(meta, key)!r}; "
                    f"collect into a new folder or match the existing settings"
                )
        remove_partials(out)
        files = episode_files(out)
        return int(files[-1].stem) + 1 if files else 0
    if out.exists() and any(out.iterdir()):
        raise WmkitError(f"{out} exists, is not empty and is not a wmkit dataset; choose a new folder")
    out.mkdir(parents=True, exist_ok=True)
    meta.write(out)
    return 0

