"""Tests of the worlds: the contract (`check_world`) on every registered id, then focused behaviour.

Focused tests: Tabletop's pushing and events, physics parameters changing behaviour, exact state for
`gym:` ids, Gymnasium registration, and bad input giving errors that name the value.
"""

import gymnasium as gym
import numpy as np
import pytest

import wmkit
from wmkit import WmkitError
from wmkit.worlds.checker import _mujoco_instability
from wmkit.worlds.registry import REGISTRY

# Gymnasium's check_env warns about unbounded observation spaces and unnormalised actions; both are intended.
pytestmark = pytest.mark.filterwarnings("ignore:.*WARN:")


@pytest.mark.parametrize("world_id", list(REGISTRY))
def test_world_contract(world_id):
    wmkit.check_world(world_id, seed=0, steps=50)


# ---- Tabletop --------------------------------------------------------------------------------------


def _xy(info, body):
    return np.array(info["annotations"]["bodies"][body]["pos"][:2])


def _push_cup(env, info, steps):
    """Drive the pusher straight at the cup for `steps` steps (or until termination); the last info and events."""
    events = []
    for t in range(1, steps + 1):
        toward = _xy(info, "cup") - _xy(info, "pusher")
        _, _, terminated, _, info = env.step(toward / np.linalg.norm(toward))
        events += [(t, e) for e in info["annotations"]["events"]]
        if terminated:
            return info, events, True
    return info, events, False


def test_tabletop_push_moves_cup():
    env = wmkit.make("Tabletop-v0")
    _, info = env.reset(seed=0)
    start = _xy(info, "cup")
    info, events, terminated = _push_cup(env, info, 5)
    assert not terminated
    assert np.linalg.norm(_xy(info, "cup") - start) > 0.02, "pushing the cup for 5 steps did not move it"
    assert any(e == "pusher_touches_cup" for _, e in events)


def test_tabletop_cup_pushed_past_the_edge_falls():
    env = wmkit.make("Tabletop-v0")
    env.reset(seed=0)
    # pusher at x = -0.12 behind a cup at rest in the middle (layout in Tabletop's docstring)
    obs = np.zeros(10)
    obs[0], obs[2:5] = -0.12, (0.0, 0.0, 0.47)
    env.set_state(env.state_from_obs(obs))
    events, terminated = [], False
    for t in range(1, env.max_episode_steps + 1):
        _, _, terminated, _, info = env.step(np.array([1.0, 0.0]))  # push along +x, towards the edge
        events += [(t, e) for e in info["annotations"]["events"]]
        if terminated:
            break
    names = [e for _, e in events]
    assert terminated, f"pushing the cup towards the edge for a whole episode never dropped it; events {names}"
    assert names.count("cup_leaves_table") == 1 and names[-1] == "cup_hits_floor", names
    left = next(t for t, e in events if e == "cup_leaves_table")
    assert left < events[-1][0], "the cup must leave the table before it hits the floor"


def test_tabletop_heavier_cup_moves_less():
    env = wmkit.make("Tabletop-v0")
    moved = []
    for mass in (0.05, 0.1, 0.25):
        _, info = env.reset(seed=0, options={"physics": {"cup_mass": mass}})
        start = _xy(info, "cup")
        info, _, _ = _push_cup(env, info, 10)
        moved.append(np.linalg.norm(_xy(info, "cup") - start))
    assert moved[0] > moved[1] > moved[2], f"cup displacement by mass 0.05, 0.1, 0.25: {moved}"


def test_tabletop_stays_stable_with_heavy_cups():
    env = wmkit.make("Tabletop-v0")
    for mass in (0.5, 1.0, 1.5, 2.0):
        for seed in range(4):
            _, info = env.reset(seed=seed, options={"physics": {"cup_mass": mass}})
            start = _xy(info, "cup")
            info, _, _ = _push_cup(env, info, 10)
            moved = np.linalg.norm(_xy(info, "cup") - start)
            assert moved < 0.5 and not _mujoco_instability(env), f"cup_mass={mass}, seed={seed}: moved {moved:.3g} m"


# ---- physics parameters change behaviour ----------------------------------------------------------


def test_pendulum_falls_faster_under_higher_gravity():
    env = wmkit.make("Pendulum-v1")
    fallen = {}
    for g in (2.0, 18.0):
        env.reset(seed=0, options={"physics": {"gravity": g}})
        env.set_state(np.array([0.3, 0.0]))  # tilted 0.3 rad from upright, at rest
        for _ in range(5):
            env.step(np.zeros(1, dtype=np.float32))
        fallen[g] = abs(env.get_state()[0])
    assert fallen[18.0] > fallen[2.0] > 0.3, fallen


def test_pendulum_frame_shows_the_angle():
    env = wmkit.make("Pendulum-v1")
    env.reset(seed=0)
    env.set_state(np.array([0.0, 0.0]))
    up = env.render_frame("front", 64)
    env.set_state(np.array([np.pi, 0.0]))
    down = env.render_frame("front", 64)
    assert not np.array_equal(up, down)
    assert np.array_equal(up[::-1], down), "upright and hanging frames should mirror each other vertically"


def test_mass_scale_changes_halfcheetah():
    env = wmkit.make("HalfCheetah-v5")
    actions = np.random.default_rng(0).uniform(-1, 1, size=(20, 6)).astype(np.float32)
    final = []
    for scale in (0.5, 1.5):
        env.reset(seed=0, options={"physics": {"mass_scale": scale}})
        for a in actions:
            obs, *_ = env.step(a)
        final.append(obs)
    assert np.abs(final[0] - final[1]).max() > 1e-2


def test_default_physics_matches_gymnasium_bit_for_bit():
    env = wmkit.make("HalfCheetah-v5", physics="train")
    env.reset(seed=1)  # scale the model once, so the default reset below must restore it
    obs, _ = env.reset(seed=0, options={"physics": None})
    ref = gym.make("HalfCheetah-v5").unwrapped
    ref.reset(seed=0)
    ref.set_state(env.data.qpos.copy(), env.data.qvel.copy())
    for a in np.random.default_rng(0).uniform(-1, 1, size=(20, 6)).astype(np.float32):
        obs, reward, *_ = env.step(a)
        ref_obs, ref_reward, *_ = ref.step(a)
        assert np.array_equal(obs, ref_obs) and reward == ref_reward


# ---- gym: ids and Gymnasium registration ----------------------------------------------------------


def test_gym_hopper_replays_exactly():
    env = wmkit.make("gym:Hopper-v5")
    assert env.world_id == "gym:Hopper-v5" and "mass_scale" in env.physics_space.names
    env.reset(seed=0)
    actions = np.random.default_rng(0).uniform(-1, 1, size=(20, 3)).astype(np.float32)
    for a in actions[:10]:
        env.step(a)
    state = env.get_state()
    first = [env.step(a)[0] for a in actions[10:]]
    env.set_state(state)
    again = [env.step(a)[0] for a in actions[10:]]
    assert all(np.array_equal(x, y) for x, y in zip(first, again))
    frame = env.render_frame(env.cameras[0], 64)
    assert frame.shape == (64, 64, 3) and frame.std() > 2


def test_gym_non_mujoco_env_has_no_state():
    env = wmkit.make("gym:CartPole-v1")
    assert env.physics_space.names == ()
    env.reset(seed=0)
    obs, *_ = env.step(1)
    assert obs.shape == (4,) and obs.dtype == np.float64
    with pytest.raises(WmkitError, match="no restorable state"):
        env.get_state()
    wmkit.check_world(env, steps=20)


def test_gymnasium_make_after_import_wmkit():
    env = gym.make("wmkit/Tabletop-v0")
    obs, info = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert obs.shape == env.observation_space.shape and "annotations" in info
    assert type(env.unwrapped).__name__ == "Tabletop"
    env.close()


# ---- bad input ------------------------------------------------------------------------------------


def test_unknown_world_lists_known_ids():
    with pytest.raises(WmkitError, match="unknown world 'Nope-v0'") as err:
        wmkit.make("Nope-v0")
    assert all(world_id in str(err.value) for world_id in REGISTRY)


def test_unknown_gym_id_is_named():
    with pytest.raises(WmkitError, match="NoSuchEnv-v0"):
        wmkit.make("gym:NoSuchEnv-v0")


def test_physics_value_out_of_range_names_value_and_range():
    with pytest.raises(WmkitError, match=r"cup_mass=100\.0 is outside its range \[0\.02, 2\.0\]"):
        wmkit.make("Tabletop-v0", physics={"cup_mass": 100.0})
    env = wmkit.make("Reacher-v5")
    with pytest.raises(WmkitError, match=r"mass_scale=5 is outside its range \[0\.1, 3\.0\]"):
        env.reset(options={"physics": {"mass_scale": 5}})


def test_unknown_physics_parameter_and_split():
    with pytest.raises(WmkitError, match="unknown physics parameter 'mass'.*cup_mass"):
        wmkit.make("Tabletop-v0", physics={"mass": 1.0})
    with pytest.raises(WmkitError, match="unknown physics split 'moon'.*train, ood"):
        wmkit.make("Pendulum-v1", physics="moon")


@pytest.mark.parametrize("world_id", ["Tabletop-v0", "Pendulum-v1"])
def test_bad_actions_are_refused(world_id):
    env = wmkit.make(world_id)
    env.reset(seed=0)
    n = env.action_space.shape[0]
    with pytest.raises(WmkitError, match=rf"shape \({n + 1},\).*expects \({n},\)"):
        env.step(np.zeros(n + 1))
    with pytest.raises(WmkitError, match="NaN"):
        env.step(np.full(n, np.nan))


def test_bad_state_and_observation_are_refused():
    env = wmkit.make("Reacher-v5")
    env.reset(seed=0)
    with pytest.raises(WmkitError, match="state has shape"):
        env.set_state(np.zeros(3))
    with pytest.raises(WmkitError, match=r"observation has shape \(9,\).*expects \(10,\)"):
        env.state_from_obs(np.zeros(9))


def test_tabletop_set_state_restores_event_memory():
    env = wmkit.make("Tabletop-v0")
    env.reset(seed=0)
    early = env.get_state()
    obs = env.state_from_obs(np.r_[0.0, 0.0, 0.3, 0.0, 0.47, np.zeros(5)])  # cup past the edge
    env.set_state(obs)
    events = [e for _ in range(10) for e in env.step(np.zeros(2))[4]["annotations"]["events"]]
    assert "cup_leaves_table" not in events  # it had already left when the state was set
    env.set_state(early)  # back on the table: leaving it again must fire again
    env.set_state(env.state_from_obs(np.r_[0.0, 0.0, 0.24, 0.0, 0.47, 0, 0, 1.0, 0, 0]))
    events = [e for _ in range(10) for e in env.step(np.zeros(2))[4]["annotations"]["events"]]
    assert "cup_leaves_table" in events


def test_batched_simulation_is_exactly_stepping():
    """simulate_batch (MuJoCo's threaded rollout) gives what step gives, bit for bit, falls included."""
    from wmkit.data.policies import make_policy

    env = wmkit.make("Tabletop-v0")
    rng = np.random.default_rng(0)
    falls = 0
    for ep in range(12):
        env.reset(seed=ep, options={"physics": "train"})
        policy = make_policy("noise", env.action_space, rng)
        policy.reset()
        for _ in range(int(rng.integers(0, 40))):
            env.step(policy(None).astype(np.float32))
        actions = np.stack([[policy(None) for _ in range(40)] for _ in range(3)]).astype(np.float32)
        if ep % 4 == 0:  # the cup near the edge, the pusher behind it, and one row pushing it off
            side = rng.uniform(-0.1, 0.1)
            env.unwrapped.state_from_obs([0.1, side, 0.2, side, 0.47] + [0.0] * 5)
            actions[0] = (1.0, 0.0)
        start = env.get_state()
        out = env.simulate_batch(np.tile(start, (3, 1)), actions)
        for i in range(3):
            env.set_state(start)
            for t in range(40):
                obs, reward, terminated, _, _ = env.step(actions[i, t])
                assert np.array_equal(obs, out["obs"][i, t]) and reward == out["reward"][i, t]
                assert terminated == out["terminated"][i, t]
                falls += terminated
    assert falls > 0  # the cup-on-floor sensor was exercised
    with pytest.raises(wmkit.WmkitError, match="states have shape"):
        env.simulate_batch(np.zeros((2, 3)), actions[:2])
    with pytest.raises(wmkit.WmkitError, match="does not support batched"):
        wmkit.make("InvertedPendulum-v5").simulate_batch(np.zeros((1, 2)), np.zeros((1, 1, 1)))


def test_a_push_moves_the_cup_and_bad_pushes_are_refused():
    env = wmkit.make("Tabletop-v0")
    env.reset(seed=0)
    start = env.get_state()
    still = np.zeros(2, dtype=np.float32)
    calm = env.step(still)[0]
    env.set_state(start)
    pushed = env.step_with_push(still, "cup", [env.push_force, 0.0, 0.0])[0]
    assert pushed[7] > calm[7] + 0.2  # the cup's x velocity
    assert np.all(env.data.xfrc_applied == 0)  # the force lasts one step
    with pytest.raises(WmkitError, match="cannot push 'table'"):
        env.step_with_push(still, "table", [1.0, 0, 0])
    with pytest.raises(WmkitError, match="3 finite numbers"):
        env.step_with_push(still, "cup", [np.nan, 0, 0])


@pytest.mark.parametrize("world_id", ["InvertedPendulum-v5", "Reacher-v5"])
def test_a_known_task_reproduces_the_worlds_reward_and_termination(world_id):
    """known_task(action, next_obs) gives what step() gives, step by step, through the end of episodes
    (Reacher: within 0.005 at a step, 1e-4 on average; Gymnasium reads the fingertip at a physics substep
    that occasionally differs from the returned observation's)."""
    import torch

    env = wmkit.make(world_id)
    task = type(env.unwrapped).known_task
    rng, ends, gaps = np.random.default_rng(0), 0, []
    for episode in range(4):
        env.reset(seed=episode)
        done = False
        while not done:
            action = rng.uniform(env.action_space.low, env.action_space.high).astype(np.float32)
            obs, reward, terminated, truncated, _ = env.step(action)
            r, t = task(torch.from_numpy(action), torch.from_numpy(np.asarray(obs, dtype=np.float32)))
            assert r.item() == pytest.approx(reward, abs=5e-3) and bool(t.item()) == terminated
            gaps.append(abs(r.item() - reward))
            ends += terminated
            done = terminated or truncated
    assert np.mean(gaps) < 1e-4
    assert world_id == "Reacher-v5" or ends == 4  # random pushes topple the pole: the termination was checked
    assert wmkit.make("Pendulum-v1").unwrapped.known_task is None  # its reward reads the state before the step


def test_halfcheetahs_known_task_sums_to_its_reward_over_an_episode():
    """HalfCheetah's known_task reads the velocity at the end of a step where Gymnasium rewards the mean over
    its substeps: each step is off, but over an episode the sums agree (what a plan's score adds up)."""
    import torch

    env = wmkit.make("HalfCheetah-v5", max_episode_steps=200)
    task = type(env.unwrapped).known_task
    rng = np.random.default_rng(0)
    for episode in range(2):
        env.reset(seed=episode)
        true, known, step_gaps, done = 0.0, 0.0, [], False
        while not done:
            action = rng.uniform(-1, 1, 6).astype(np.float32)
            obs, reward, terminated, truncated, _ = env.step(action)
            r, t = task(torch.from_numpy(action), torch.from_numpy(obs.astype(np.float32)))
            assert not t.item() and not terminated
            true, known = true + reward, known + r.item()
            step_gaps.append(r.item() - reward)
            done = truncated
        assert np.sqrt(np.mean(np.square(step_gaps))) > 0.1  # each step is off ...
        assert abs(known - true) < 1.0  # ... but not the episode's sum
