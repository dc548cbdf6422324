"""`check_world`: the public checker every wmkit world must pass (the contract test runs it on the registry).

It runs Gymnasium's `check_env`, then checks what wmkit adds, in the spirit of dm_control's suite test:

- seeding: the same seed gives the same first observation; another seed gives another;
- observations: inside the observation space, finite, and no element constant over a random rollout
  (a world lists in `obs_constant_in_episode` the elements fixed within an episode, e.g. Reacher's
  target; those must instead vary across resets);
- exact state: `get_state` at step t, `set_state` later, replaying the same actions gives bit-identical
  observations and rewards; a world without restorable state must say so with a `WmkitError`;
- `state_from_obs`, where supported: obs -> state -> `set_state` gives back obs within 1e-9;
- physics: `info["physics"]` equals explicit values, and a split name samples inside that split;
  a random episode with every parameter at the low end of its range, and one at the high end, stays
  finite and free of MuJoCo's instability warnings;
- annotations: `info["annotations"]` has `bodies`, `contacts` and `events` (only declared events);
- frames: every camera gives non-blank uint8 frames at 32 and 64 pixels in one process (reopening a
  renderer at another size once returned black frames).

Failures raise `AssertionError` (or the world's own `WmkitError`) with a message naming the world.
"""

from __future__ import annotations

import mujoco
import numpy as np
from gymnasium.utils.env_checker import check_env

from wmkit.errors import WmkitError
from wmkit.worlds.base import MujocoWorld, World

FRAME_SIZES = (32, 64, 32)  # the second 32 comes from a renderer opened before the 64 one
MIN_FRAME_STD = 2.0  # grey levels; a blank or single-colour frame has std near 0
STATE_FROM_OBS_TOL = 1e-9


def check_world(env_or_id, seed: int = 0, steps: int = 50) -> None:
    """Check a world (an env, possibly wrapped, or a world id); raise on the first failure."""
    if isinstance(env_or_id, str):
        import wmkit

        env = wmkit.make(env_or_id, render_mode="rgb_array")
        try:
            check_world(env, seed=seed, steps=steps)
        finally:
            env.close()
        return
    world = env_or_id.unwrapped
    assert isinstance(world, World), f"{world!r} is not a wmkit World (subclass wmkit.worlds.base.World)"
    assert steps >= 4, f"steps={steps} is too few to check a world; use at least 4"
    name = world.world_id or type(world).__name__

    check_env(world, skip_render_check=False)
    _check_seeding(world, name, seed)
    _check_rollout_observations(world, name, seed, steps)
    _check_exact_replay(world, name, seed, steps)
    _check_state_from_obs(world, name, seed, steps)
    _check_physics(world, name, seed)
    _check_stable_at_range_ends(world, name, seed, steps)
    _check_frames(world, name, seed)
    world.reset(seed=seed, options={"physics": world.physics_request})  # leave it as we found it


def _random_rollout(world: World, seed: int, steps: int) -> tuple[list, list, list, list]:
    """Observations (reset included), actions, rewards and infos of one seeded random episode."""
    world.action_space.seed(seed)
    obs, info = world.reset(seed=seed)
    observations, actions, rewards, infos = [obs], [], [], [info]
    for _ in range(steps):
        action = world.action_space.sample()
        obs, reward, terminated, truncated, info = world.step(action)
        observations.append(obs)
        actions.append(action)
        rewards.append(reward)
        infos.append(info)
        if terminated or truncated:
            break
    return observations, actions, rewards, infos


def _check_seeding(world, name, seed):
    first, _ = world.reset(seed=seed)
    again, _ = world.reset(seed=seed)
    other, _ = world.reset(seed=seed + 1)
    assert np.array_equal(first, again), f"{name}: reset(seed={seed}) twice gave different first observations"
    assert not np.array_equal(first, other), (
        f"{name}: reset(seed={seed}) and reset(seed={seed + 1}) gave the same first observation; "
        "resets must be randomised from the seed"
    )


def _check_annotations(world, name, info, where):
    assert "physics" in info and "annotations" in info, f"{name}: info from {where} lacks 'physics' or 'annotations'"
    notes = info["annotations"]
    missing = {"bodies", "contacts", "events"} - set(notes)
    assert not missing, f"{name}: info['annotations'] from {where} lacks {sorted(missing)}"
    for body, value in notes["bodies"].items():
        assert len(value["pos"]) == 3 and len(value["vel"]) == 3, f"{name}: body {body!r} needs 3-D 'pos' and 'vel'"
        assert np.all(np.isfinite(value["pos"])), f"{name}: body {body!r} has a non-finite position at {where}"
    for pair in notes["contacts"]:
        assert len(pair) == 2, f"{name}: contact {pair!r} at {where} is not a pair of geom names"
    unknown = set(notes["events"]) - set(world.events)
    assert not unknown, f"{name}: events {sorted(unknown)} at {where} are not declared in {name}.events"


def _check_rollout_observations(world, name, seed, steps):
    observations, _, rewards, infos = _random_rollout(world, seed, steps)
    for t, (obs, info) in enumerate(zip(observations, infos)):
        where = "reset" if t == 0 else f"step {t}"
        assert obs in world.observation_space, f"{name}: observation at {where} is outside the observation space"
        assert np.all(np.isfinite(obs)), f"{name}: observation at {where} is not finite: {obs}"
        _check_annotations(world, name, info, where)
    assert np.all(np.isfinite(rewards)), f"{name}: a reward in the random rollout is not finite"
    assert len(observations) >= 3, f"{name}: a random episode ended after {len(observations) - 1} steps"

    fixed = set(getattr(world, "obs_constant_in_episode", ()))
    episode = np.stack(observations)  # (T, obs_dim)
    constant = [i for i in range(episode.shape[1]) if i not in fixed and np.ptp(episode[:, i]) == 0]
    assert not constant, (
        f"{name}: observation elements {constant} stay constant over a random episode; "
        "if that is intended, list them in obs_constant_in_episode"
    )
    if fixed:
        starts = np.stack([world.reset(seed=seed + k)[0] for k in range(4)])  # (4, obs_dim)
        still = [i for i in sorted(fixed) if np.ptp(starts[:, i]) == 0]
        assert not still, f"{name}: observation elements {still} are the same after every reset"


def _check_exact_replay(world, name, seed, steps):
    try:
        world.reset(seed=seed)
        world.get_state()
    except WmkitError:
        return  # the world says it has no restorable state, as it should when it has none
    observations, actions, rewards, _ = _random_rollout(world, seed, steps)
    start = len(actions) // 2
    world.action_space.seed(seed)
    world.reset(seed=seed)
    for action in actions[:start]:
        world.step(action)
    state = world.get_state()
    assert state.dtype == np.float64 and state.ndim == 1, f"{name}: get_state must give a flat float64 vector"
    for action in actions[start:]:  # move on, so set_state has something to undo
        world.step(action)
    world.set_state(state.copy())
    assert np.array_equal(world.get_state(), state), f"{name}: get_state after set_state differs from the state set"
    for t, action in enumerate(actions[start:], start + 1):
        obs, reward, _, _, _ = world.step(action)
        assert np.array_equal(obs, observations[t]), (
            f"{name}: replay from a restored state diverged at step {t}: "
            f"max |diff| = {np.max(np.abs(obs - observations[t])):.3g} (must be bit-exact)"
        )
        assert reward == rewards[t - 1], f"{name}: replayed reward at step {t} differs: {reward} != {rewards[t - 1]}"
    try:
        world.set_state(np.zeros(state.size + 1))
    except WmkitError:
        pass
    else:
        raise AssertionError(f"{name}: set_state accepted a state of the wrong size; it must raise WmkitError")


def _check_state_from_obs(world, name, seed, steps):
    observations, _, _, _ = _random_rollout(world, seed, steps)
    for t, obs in enumerate(observations):
        try:
            state = world.state_from_obs(obs)
        except WmkitError:
            assert t == 0, f"{name}: state_from_obs works for some observations but raised at step {t}"
            return  # not supported by this world
        world.set_state(state)
        again = world._observe()
        err = float(np.max(np.abs(again - obs)))
        assert err <= STATE_FROM_OBS_TOL, (
            f"{name}: state_from_obs does not round-trip at step {t}: max |obs - observe(state)| = {err:.3g}"
        )


def _inside(values: dict, box: dict, defaults: dict) -> bool:
    return all(
        (box[n][0] <= v <= box[n][1]) if n in box else v == defaults[n]
        for n, v in values.items()
    )


def _check_physics(world, name, seed):
    space = world.physics_space
    defaults = space.defaults()
    # an explicit value for every parameter, away from its default
    explicit = {p.name: p.default + 0.5 * ((p.high if p.high > p.default else p.low) - p.default) for p in space.params}
    _, info = world.reset(seed=seed, options={"physics": explicit})
    assert info["physics"] == explicit, f"{name}: asked for physics {explicit}, info reports {info['physics']}"
    drawn = getattr(world, "episode_params", ())  # hidden per-episode properties, drawn at reset unless given

    def fixed(values):
        return {k: v for k, v in values.items() if k not in drawn}

    _, info = world.reset(seed=seed, options={"physics": None})
    assert fixed(info["physics"]) == fixed(defaults), (
        f"{name}: physics=None must give the defaults, info reports {info['physics']}")
    for split, boxes in space.splits.items():
        for k in range(3):
            _, info = world.reset(seed=seed + k, options={"physics": split})
            values = {**info["physics"], **{p: defaults[p] for p in drawn}}
            assert set(values) == set(defaults), f"{name}: split {split!r} gave parameters {sorted(values)}"
            assert any(_inside(values, box, defaults) for box in boxes), (
                f"{name}: split {split!r} sampled {values}, which is outside every box of the split {boxes}"
            )


def _mujoco_instability(world) -> list[str]:
    """The instability warnings MuJoCo raised since the last reset (none for other simulators)."""
    if not isinstance(world, MujocoWorld):
        return []
    kinds = (mujoco.mjtWarning.mjWARN_BADQPOS, mujoco.mjtWarning.mjWARN_BADQVEL, mujoco.mjtWarning.mjWARN_BADQACC)
    return [kind.name for kind in kinds if world.data.warning[kind].number > 0]


def _check_stable_at_range_ends(world, name, seed, steps):
    """A random episode with every parameter at the low end of its range, then at the high end, stays stable."""
    space = world.physics_space
    if not space.params:
        return
    for end in ("low", "high"):
        values = {p.name: getattr(p, end) for p in space.params}
        world.action_space.seed(seed)
        world.reset(seed=seed, options={"physics": values})
        for t in range(1, steps + 1):
            obs, _, terminated, truncated, _ = world.step(world.action_space.sample())
            unstable = _mujoco_instability(world)
            assert np.all(np.isfinite(obs)) and not unstable, (
                f"{name}: with physics {values} (the {end} end of every range) the simulation is unstable at "
                f"step {t} ({', '.join(unstable) or 'non-finite observation'}); the world must stay stable over "
                "the ranges it accepts: narrow them, or fix how it applies them (after changing masses, MuJoCo "
                "worlds call MujocoWorld._update_constants)"
            )
            if terminated or truncated:
                break


def _check_frames(world, name, seed):
    world.reset(seed=seed)
    if not world.cameras:
        try:
            world.render_frame(None, FRAME_SIZES[0])
        except WmkitError:
            return  # a world with no camera that says it cannot render
    for camera in world.cameras or (None,):
        for size in FRAME_SIZES:
            frame = world.render_frame(camera, size)
            assert isinstance(frame, np.ndarray) and frame.dtype == np.uint8, (
                f"{name}: frame from camera {camera!r} must be a uint8 array, got {type(frame)}"
            )
            assert frame.shape == (size, size, 3), (
                f"{name}: frame from camera {camera!r} at size {size} has shape {frame.shape}"
            )
            std = float(frame.std())
            assert std > MIN_FRAME_STD, (
                f"{name}: frame from camera {camera!r} at size {size} is blank (pixel std {std:.2f})"
            )
