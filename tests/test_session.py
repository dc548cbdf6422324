"""Sessions: stepping beside a true twin, forks, rewinds, interventions, determinism and bounded memory."""

import numpy as np
import pytest

import wmkit
from wmkit import WmkitError
from wmkit.interactive import Session
from wmkit.models import load_model, reference_model

PUSH_RIGHT = np.array([1.0, 0.0], dtype=np.float32)


def test_oracle_session_stays_with_its_twin():
    s = Session(reference_model("oracle", "Tabletop-v0"), seed=3)
    for _ in range(20):
        r = s.step(PUSH_RIGHT)
    assert r.t == 20 and r.divergence < 1e-5, r.divergence
    assert r.obs[0] > 0.05  # the pusher went right


def test_trained_model_session_reports_what_a_hud_needs(tabletop_run, tabletop_data):
    scale = wmkit.load_dataset(tabletop_data).stats("all")["obs_std"].numpy()
    s = Session(load_model(tabletop_run), seed=0, scale=scale)
    r = s.step(PUSH_RIGHT)
    assert r.reward is not None and 0 <= r.terminated <= 1 and r.uncertainty > 0
    assert r.twin_obs.shape == (10,) and r.divergence >= 0 and r.latency_ms > 0
    assert s.latency_ms()["steps"] == 1
    assert s.frame("imagined", size=32).shape == (32, 32, 3) and s.frame("twin", size=32).std() > 0


def test_fork_branches_and_rewind_returns(tabletop_run):
    s = Session(load_model(tabletop_run), seed=1)
    for _ in range(5):
        s.step(PUSH_RIGHT)
    branch = s.fork()
    left = branch.step(-PUSH_RIGHT)
    right = s.step(PUSH_RIGHT)
    assert left.obs[0] < right.obs[0] and left.twin_obs[0] < right.twin_obs[0]
    again = s.fork()
    s.rewind(5)
    replay = s.step(PUSH_RIGHT)
    np.testing.assert_array_equal(replay.obs, right.obs)
    np.testing.assert_array_equal(replay.twin_obs, right.twin_obs)
    assert again.t == 6  # the fork kept its own history
    with pytest.raises(WmkitError, match="cannot rewind to step 99"):
        s.rewind(99)


def test_same_seed_same_session(tabletop_run):
    runs = []
    for _ in range(2):
        s = Session(load_model(tabletop_run), seed=7)
        runs.append([s.step(a).obs for a in np.linspace(-1, 1, 10)[:, None].repeat(2, 1)])
    np.testing.assert_array_equal(np.array(runs[0]), np.array(runs[1]))


def test_intervene_moves_the_cup_in_both_worlds():
    s = Session(reference_model("oracle", "Tabletop-v0"), seed=2)
    s.step(np.zeros(2))
    s.intervene(obs={2: 0.2, 3: -0.1}, physics={"cup_mass": 0.5})
    r = s.step(np.zeros(2, dtype=np.float32))
    assert abs(r.obs[2] - 0.2) < 0.01 and abs(r.twin_obs[3] + 0.1) < 0.01
    assert s.world.physics["cup_mass"] == 0.5
    with pytest.raises(WmkitError, match="index 99"):
        s.intervene(obs={99: 1.0})
    with pytest.raises(WmkitError, match="outside its range"):
        s.intervene(physics={"cup_mass": 100.0})


def test_bad_actions_are_refused():
    s = Session(reference_model("copy-last", "Tabletop-v0"))
    with pytest.raises(WmkitError, match="shape"):
        s.step([1.0, 2.0, 3.0])
    with pytest.raises(WmkitError, match="NaN"):
        s.step([np.nan, 0.0])


def test_a_long_session_keeps_memory_bounded(tabletop_run):
    import tracemalloc

    s = Session(load_model(tabletop_run), seed=0, max_history=64)
    rng = np.random.default_rng(0)
    for _ in range(500):
        s.step(rng.uniform(-1, 1, 2))
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for _ in range(2000):
        s.step(rng.uniform(-1, 1, 2))
    grown = sum(d.size_diff for d in tracemalloc.take_snapshot().compare_to(before, "filename"))
    tracemalloc.stop()
    assert len(s.history) == 64 and s.t == 2500
    assert grown < 2_000_000, grown  # bytes: flat, not 2,000 steps' worth of states


def test_start_from_a_recorded_prefix_or_an_exact_state(tabletop_data):
    ep = wmkit.load_dataset(tabletop_data).split("val")[0]
    oracle = reference_model("oracle", "Tabletop-v0")
    exact = Session(oracle, sim_state=ep.sim_state[10])
    r = exact.step(ep.actions[10])
    np.testing.assert_allclose(r.twin_obs, ep.obs[11], atol=1e-5)  # the twin replays the recorded episode
    prefix = Session(oracle, context=(ep.obs[:11], ep.actions[:10]))
    np.testing.assert_allclose(prefix.obs, ep.obs[10], atol=1e-6)
    with pytest.raises(WmkitError, match="context must be"):
        Session(oracle, context=(ep.obs[:11], ep.actions[:11]))


def _fresh_transformer():
    import torch

    from wmkit.models import ModelSpec, make_model

    spec = ModelSpec(world="Tabletop-v0", obs_dim=10, action_dim=2, dt=0.05, latent_dim=0,
                     action_low=(-1.0, -1.0), action_high=(1.0, 1.0))
    torch.manual_seed(0)
    return make_model("transformer", spec, width=32, heads=2, layers=2, window=8, seq_len=8).eval()


@pytest.mark.parametrize("family", ["ensemble", "transformer"])
def test_stepping_sessions_together_equals_stepping_each_alone(family, tabletop_run):
    from wmkit.interactive import step_together

    model = load_model(tabletop_run) if family == "ensemble" else _fresh_transformer()
    together = [Session(model, seed=s) for s in range(4)]
    for s, n in zip(together, [0, 2, 5, 9]):  # histories of different lengths: a transformer's caches differ
        for _ in range(n):
            s.step(PUSH_RIGHT)
    alone = [s.fork() for s in together]
    rng = np.random.default_rng(0)
    for _ in range(12):
        actions = rng.uniform(-1, 1, (4, 2))
        batch = step_together(together, actions)
        for s, a, r in zip(alone, actions, batch):
            own = s.step(a)
            np.testing.assert_allclose(r.obs, own.obs, atol=1e-5)
            np.testing.assert_array_equal(r.twin_obs, own.twin_obs)  # each twin steps alone either way
            assert r.t == own.t
            if own.uncertainty is not None:
                assert abs(r.uncertainty - own.uncertainty) < 1e-5


def test_a_bad_action_in_a_batch_steps_no_session(tabletop_run):
    from wmkit.interactive import step_together

    model = load_model(tabletop_run)
    a, b = Session(model, seed=0), Session(model, seed=1)
    with pytest.raises(WmkitError, match="NaN"):
        step_together([a, b], [PUSH_RIGHT, [np.nan, 0.0]])
    assert a.t == b.t == 0 and len(a.history) == 1
    with pytest.raises(WmkitError, match="appears twice"):
        step_together([a, a], [PUSH_RIGHT, PUSH_RIGHT])
    with pytest.raises(WmkitError, match="one action per session"):
        step_together([a, b], [PUSH_RIGHT])
