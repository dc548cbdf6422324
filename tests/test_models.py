"""World models: the contract on every family, the references, a planted leak, and checkpoints."""

import json

import numpy as np

import pytest
import torch
from safetensors.torch import load_file, save_file

import wmkit
from wmkit import WmkitError
from wmkit.eval.accuracy import evaluate_accuracy
from wmkit.models import FAMILIES, ModelSpec, Prediction, State, load_model, make_model, reference_model
from wmkit.models.baselines import CopyLastModel
from wmkit.models.registry import REFERENCES


def _spec(world="Tabletop-v0"):
    return reference_model("copy-last", world).spec


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_family_passes_the_contract(family):
    model = reference_model(family, "Tabletop-v0") if family in REFERENCES else make_model(family, _spec())
    wmkit.check_world_model(model)


@pytest.mark.parametrize("world", ["Pendulum-v1", "Reacher-v5"])
def test_ensemble_contract_on_other_worlds(world):
    wmkit.check_world_model(make_model("ensemble", _spec(world), members=3, hidden=32))


class _PeeksAhead(CopyLastModel):
    """A planted cheat: each prediction moves by the mean of *all* future actions."""

    family = "peeks-ahead"

    def rollout(self, state, actions):
        a = self.check_actions(actions, ndim=3)
        shift = a.mean(1, keepdim=True).sum(-1, keepdim=True)  # depends on the future
        return Prediction(obs=state["obs"][:, None] + shift.expand(-1, a.shape[1], self.spec.obs_dim))

    def step(self, state, action):
        return state, Prediction(obs=self.rollout(state, action[:, None]).obs[:, 0])


def test_the_checker_catches_a_future_leak():
    with pytest.raises(AssertionError, match="future leak|differs"):
        wmkit.check_world_model(_PeeksAhead(_spec()), save_load=False)


def test_references_score_as_they_must(tabletop_data):
    ds = wmkit.load_dataset(tabletop_data)
    oracle = evaluate_accuracy(load_model("oracle", world=ds.world), ds, horizons=(1, 5), windows=24)
    copy = evaluate_accuracy(load_model("copy-last", world=ds.world), ds, horizons=(1, 5), windows=24)
    assert copy.skill == [0.0, 0.0]
    assert oracle.skill[0] > 0.99, oracle.to_json()  # the true simulator, rebuilt from float32 observations


def test_trained_ensemble_beats_copy_last(tabletop_run, tabletop_data):
    acc = evaluate_accuracy(load_model(tabletop_run), wmkit.load_dataset(tabletop_data), horizons=(1, 5))
    assert acc.skill_at(1) > 0.1 and acc.skill_at(5) > 0.15, acc.to_json()


def test_ensemble_reports_disagreement(tabletop_run):
    model = load_model(tabletop_run)
    o = torch.zeros(4, 1, 10)
    o[:, :, 4] = 0.47
    state = model.observe(o, torch.zeros(4, 0, 2))
    pred = model.rollout(state, torch.ones(4, 10, 2))
    assert pred.obs_std.shape == (4, 10, 10) and (pred.obs_std > 0).any()
    assert pred.reward.shape == (4, 10) and ((pred.terminated >= 0) & (pred.terminated <= 1)).all()


def test_ensemble_rollout_equals_stepping(tabletop_run):
    from wmkit.models.base import WorldModel

    model = load_model(tabletop_run)
    g = torch.Generator().manual_seed(0)
    obs = torch.randn(6, 1, 10, generator=g) * 0.1 + model.obs_mean
    actions = torch.rand(6, 20, 2, generator=g) * 2 - 1
    fast = model.rollout(model.observe(obs, torch.zeros(6, 0, 2)), actions)
    slow = WorldModel.rollout(model, model.observe(obs, torch.zeros(6, 0, 2)), actions)  # step by step
    for name in ("obs", "obs_std", "reward", "terminated"):
        torch.testing.assert_close(getattr(fast, name), getattr(slow, name), rtol=0, atol=1e-6)


def test_state_helpers():
    s = State(obs=torch.arange(6.0).reshape(3, 2))
    assert s.batch_size == 3 and s.repeat(2).batch_size == 6
    assert torch.equal(s.select([2])["obs"], torch.tensor([[4.0, 5.0]]))
    both = State.cat([s.select(slice(2, 3)), s.select(slice(0, 2))])
    assert torch.equal(both["obs"], torch.tensor([[4.0, 5.0], [0.0, 1.0], [2.0, 3.0]]))
    with pytest.raises(WmkitError, match="rows differ"):
        State.cat([s, State(obs=torch.zeros(1, 3))])


def test_input_noise_perturbs_training_inputs_only(tabletop_data):
    batch = wmkit.load_dataset(tabletop_data).windows(context=0, horizon=1).take(8)
    model = make_model("ensemble", _spec(), members=2, hidden=16, input_noise=0.1)
    losses = []
    for noise in (0.1, 0.1, 0.0):
        model.config.input_noise = noise
        torch.manual_seed(0)
        losses.append(model.loss(batch)[0].item())
    assert losses[0] == losses[1] != losses[2]  # seeded, and it changes what the model steps from
    state = model.observe(batch.obs[:, :1], batch.actions[:, :0])
    model.config.input_noise = 0.1
    a = model.rollout(state, batch.actions).obs
    torch.manual_seed(1)
    assert torch.equal(a, model.rollout(state, batch.actions).obs)  # predictions never see the noise
    with pytest.raises(WmkitError, match="input_noise"):
        make_model("ensemble", _spec(), input_noise=-0.1)


def test_bad_inputs_to_verbs():
    model = make_model("ensemble", _spec(), members=2, hidden=16)
    with pytest.raises(WmkitError, match="shape"):
        model.observe(torch.zeros(2, 1, 5), torch.zeros(2, 0, 2))
    state = model.observe(torch.zeros(2, 1, 10), torch.zeros(2, 0, 2))
    with pytest.raises(WmkitError, match="NaN"):
        model.step(state, torch.tensor([[float("nan"), 0.0], [0.0, 0.0]]))
    with pytest.raises(WmkitError, match="expected"):
        model.rollout(state, torch.zeros(2, 5, 3))
    with pytest.raises(WmkitError, match="members"):
        make_model("ensemble", _spec(), members=0)
    with pytest.raises(WmkitError, match="unknown model family"):
        make_model("diffusion-xl", _spec())


def test_broken_checkpoints_get_clear_errors(tabletop_run, tmp_path):
    model_dir = tabletop_run / "model"
    # missing weights
    bad = tmp_path / "missing"
    bad.mkdir()
    (bad / "config.json").write_text((model_dir / "config.json").read_text())
    with pytest.raises(WmkitError, match="weights.safetensors"):
        load_model(bad)
    # mismatched weights: a config with another width
    cfg = json.loads((model_dir / "config.json").read_text())
    cfg["config"]["hidden"] = 17
    bad2 = tmp_path / "mismatch"
    bad2.mkdir()
    (bad2 / "config.json").write_text(json.dumps(cfg))
    (bad2 / "weights.safetensors").write_bytes((model_dir / "weights.safetensors").read_bytes())
    with pytest.raises(WmkitError, match="shape mismatch"):
        load_model(bad2)
    # a weight missing from the file
    w = load_file(str(model_dir / "weights.safetensors"))
    w.pop("head.bias")
    bad3 = tmp_path / "dropped"
    bad3.mkdir()
    (bad3 / "config.json").write_text((model_dir / "config.json").read_text())
    save_file(w, str(bad3 / "weights.safetensors"))
    with pytest.raises(WmkitError, match="missing"):
        load_model(bad3)
    # a truncated file
    (bad3 / "weights.safetensors").write_bytes(b"\x00" * 10)
    with pytest.raises(WmkitError, match="corrupted"):
        load_model(bad3)
    with pytest.raises(WmkitError, match="not a wmkit model"):
        load_model(tmp_path)


def test_spec_round_trips():
    spec = _spec()
    assert ModelSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


def test_example_scores_like_the_evaluator(tabletop_run, tabletop_data):
    """examples/predict_and_score.py (public API only) agrees with wmkit's own accuracy evaluation."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parent.parent / "examples" / "predict_and_score.py"
    spec = importlib.util.spec_from_file_location("predict_and_score", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    with torch.no_grad():
        skill = example.main(tabletop_run, tabletop_data, horizon=10)
    acc = evaluate_accuracy(load_model(tabletop_run), wmkit.load_dataset(tabletop_data), horizons=(10,))
    assert abs(skill[9].item() - acc.skill_at(10)) < 1e-4  # the same windows, scored independently


def test_unknown_config_field_is_named():
    with pytest.raises(WmkitError, match="widht"):
        make_model("ensemble", _spec(), widht=3)


def test_tabletop_features_read_the_geometry_exactly():
    """The ensemble of a Tabletop model reads the world's contact features; they are exact where it matters."""
    from wmkit.worlds.features import feature_set, resolve_features
    from wmkit.worlds.tabletop import CUP_RADIUS, PUSHER_RADIUS

    world = wmkit.make("Tabletop-v0").unwrapped  # the radii the features use are the simulator's
    assert world.model.geom("pusher").size[0] == PUSHER_RADIUS and world.model.geom("cup").size[0] == CUP_RADIUS
    model = make_model("ensemble", _spec(), members=2, hidden=16)
    assert model.config.features == "tabletop-contact-v3"  # 'auto' resolved to the world's set, and saved so
    feats = feature_set(model.config.features)
    obs = torch.zeros(3, 10)
    obs[:, 4] = 0.47
    obs[0, 2:4] = torch.tensor([PUSHER_RADIUS + CUP_RADIUS, 0.0])  # just touching, at rest
    obs[1, 2:4] = torch.tensor([0.25, 0.1])  # cup centre on the edge, pusher 0.27 m away
    obs[1, 7] = 0.3  # cup moving towards that edge
    obs[2, :2] = torch.tensor([0.0, -0.2])
    obs[2, 6] = 0.5  # pusher closing on a resting cup 0.2 m away at 0.5 m/s
    f = feats(obs)
    names = feats.names
    assert f[0, names.index("pusher-cup gap")].abs() < 1e-6
    assert f[1, names.index("cup to edge x")].abs() < 1e-6 and f[1, names.index("cup speed edgeward x")] == 1.0
    assert torch.isclose(f[2, names.index("closing speed")], torch.tensor(1.0))
    assert torch.isclose(f[2, names.index("gap after one step")], f[2, names.index("pusher-cup gap")] - 0.5)
    # v2's sharp terms, in centimetres: the cup on the edge, 1.5 cm past it after one step at 0.3 m/s; the
    # pusher 5 mm short of its rail's end, 5 mm past it after one step at 0.2 m/s; far values clipped at 3
    obs[1, :2] = torch.tensor([-0.295, 0.0])
    obs[1, 5] = -0.2
    f = feats(obs)
    assert f[1, names.index("cup to edge x (cm)")].abs() < 1e-5
    assert torch.isclose(f[1, names.index("cup to edge after one step x (cm)")], torch.tensor(-1.5))
    assert torch.isclose(f[1, names.index("pusher to rail end x (cm)")], torch.tensor(0.5), atol=1e-4)
    assert torch.isclose(f[1, names.index("pusher to rail end after one step x (cm)")], torch.tensor(-0.5), atol=1e-4)
    assert f[1, names.index("pusher to rail end y (cm)")] == 3.0
    assert torch.isclose(f[0, names.index("pusher-cup gap (cm)")], torch.tensor(0.0), atol=1e-5)
    # the sharp terms resolve a millimetre where v1's resolve a tenth as much
    nudged = obs[1:2].clone()
    nudged[0, 2] -= 0.001
    step = feats(nudged)[0] - f[1]
    assert torch.isclose(step[names.index("cup to edge x (cm)")], torch.tensor(0.1), atol=1e-4)
    assert torch.isclose(step[names.index("cup to edge x")], torch.tensor(0.01), atol=1e-4)
    # v1 and v2 stay readable, for the checkpoints trained on them
    old = make_model("ensemble", _spec(), members=2, hidden=16, features="tabletop-contact-v1")
    assert old.trunk[0].weight.shape[1] == 10 + 2 + 9 and feature_set("tabletop-contact-v1").dim == 9
    assert feature_set("tabletop-contact-v2").dim == 19 and feats.dim == 22
    # the input layer is wider by the features, other worlds have none, and a set can be switched off
    assert model.trunk[0].weight.shape[1] == 10 + 2 + feats.dim
    assert resolve_features("auto", "HalfCheetah-v5") == "none"
    plain = make_model("ensemble", _spec(), members=2, hidden=16, features="none")
    assert plain.trunk[0].weight.shape[1] == 12
    with pytest.raises(WmkitError, match="unknown feature set 'contact-v9'"):
        make_model("ensemble", _spec(), features="contact-v9")


def test_tabletop_floor_features_say_when_mujoco_slows_a_falling_cup():
    """v3's millimetre floor term is negative exactly when MuJoCo's contact slows the falling cup within the step.

    A cup falling at 2.4 m/s beside the table is dropped from heights around the one where it meets the
    floor in the step's last substep; the term's sign must match what the simulator did, except within
    half a millimetre of the threshold (gravity in the feature is nominal, MuJoCo's contact is soft)."""
    from wmkit.worlds.features import CUP_HALF_HEIGHT, feature_set

    world = wmkit.make("Tabletop-v0").unwrapped
    world.reset(seed=0)
    assert world.model.geom("cup").size[1] == CUP_HALF_HEIGHT  # the feature's cup is the simulator's
    feats = feature_set("tabletop-contact-v3")
    touch_at = feats.names.index("cup above floor at the step's last substep (mm)")
    free_fall = -2.4 - 9.81 * world.dt
    checked, slowed_seen, free_seen = 0, False, False
    for z in torch.linspace(0.12, 0.20, 41).tolist():
        obs = torch.zeros(10, dtype=torch.float64)
        obs[:5] = torch.tensor([0.0, -0.2, 0.4, 0.0, z])  # the cup 10 cm beyond the table's edge, falling
        obs[9] = -2.4
        touch = float(feats(obs.float()[None])[0, touch_at])
        world.set_state(world.state_from_obs(obs.numpy()))
        after, *_ = world.step(torch.zeros(2).numpy())
        slowed = after[9] > free_fall + 0.3
        if abs(touch) > 0.5:  # clear of the threshold's half millimetre
            checked += 1
            assert (touch < 0) == slowed, (z, touch, after[9])
            slowed_seen |= slowed
            free_seen |= not slowed
    assert checked >= 35 and slowed_seen and free_seen  # the sweep spans both sides of the threshold


@pytest.mark.parametrize("rows", [7, 10])  # 10: a multiple of the members (the strided path); 7: gathered rows
def test_one_member_each_follows_that_members_trajectory(tabletop_run, tabletop_data, rows):
    """Row b of a spread state imagines exactly what member b mod E imagines in the full rollout."""
    model = load_model(tabletop_run)
    batch = wmkit.load_dataset(tabletop_data).windows(context=0, horizon=6).take(rows)
    with torch.no_grad():
        state = model.observe(batch.obs[:, :1], batch.actions[:, :0])
        full = model.rollout(state, batch.actions)
        spread = model.one_member_each(state)
        one = model.rollout(spread, batch.actions)
        stepped, _ = model.step(spread, batch.actions[:, 0])
        shuffled = State(obs=spread["obs"].flip(0), member=spread["member"].flip(0))  # any assignment of members
        back = model.rollout(shuffled, batch.actions.flip(0))
    E = model.config.members
    idx = torch.arange(rows)
    assert spread["obs"].shape == (rows, 1, 10) and torch.equal(spread["member"], idx % E)
    assert torch.allclose(one.obs, full.members[idx, :, idx % E], atol=1e-6)
    assert torch.allclose(back.obs.flip(0), one.obs, atol=1e-6)
    assert torch.allclose(stepped["obs"][:, 0], full.members[idx, 0, idx % E], atol=1e-6)
    assert torch.equal(one.obs_std, torch.zeros_like(one.obs_std))  # one trajectory per row: no disagreement
    assert torch.allclose(full.obs_std, full.members.std(2, unbiased=False), atol=1e-6)
    assert one.reward.shape == full.reward.shape and one.terminated.shape == full.terminated.shape


def test_checkpoint_from_before_a_field_loads_as_trained(tmp_path):
    """A checkpoint whose config predates `features` loads with features='none', as it was trained."""
    from wmkit.models.checkpoint import save_model

    model = make_model("ensemble", _spec(), members=2, hidden=16, features="none")
    save_model(model, tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    del cfg["config"]["features"]
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    loaded = load_model(tmp_path)
    assert loaded.config.features == "none" and loaded.trunk[0].weight.shape == model.trunk[0].weight.shape


def test_tabletop_v4_pusher_path_is_mujocos_and_its_overlap_says_when_they_touch():
    """v4 reads the action: the pusher's path under it ends where MuJoCo puts a pusher that touches nothing,
    and the predicted overlap is positive exactly when the simulator reports the pusher touching the cup."""
    from wmkit.worlds.features import _substep_trajectories, feature_set

    world = wmkit.make("Tabletop-v0").unwrapped
    world.reset(seed=0)
    feats = feature_set("tabletop-contact-v4")
    least = feats.names.index("least pusher-cup gap in the step under the action (cm)")
    rng = np.random.default_rng(0)
    touched_seen = missed_seen = 0
    for _ in range(60):
        obs = np.zeros(10)
        obs[:2] = rng.uniform(-0.15, 0.15, 2)
        obs[2:5] = (*(obs[:2] + rng.uniform(0.09, 0.13) * np.array([1.0, 0.0])), 0.47)
        obs[5:7] = rng.uniform(-0.4, 0.4, 2)
        action = rng.uniform(-1, 1, 2).astype(np.float32)
        world.set_state(world.state_from_obs(obs))
        after, _, _, _, info = world.step(action)
        o, a = torch.tensor(obs, dtype=torch.float32)[None], torch.tensor(action)[None]
        gap = float(feats(o, a)[0, least])
        touched = "pusher_touches_cup" in info["annotations"]["events"]
        if not touched:
            pusher, _ = _substep_trajectories(o, a)
            assert np.allclose(pusher[0, -1].numpy(), after[:2], atol=1e-5)
        if abs(gap) > 0.15:  # clear of the threshold: MuJoCo finds the ellipsoid-cylinder touch up to ~1 mm early
            assert (gap < 0) == touched, (obs, action, gap)
            touched_seen += touched
            missed_seen += not touched
    assert touched_seen >= 5 and missed_seen >= 5
    with pytest.raises(WmkitError, match="reads the step's action"):
        feats(torch.zeros(1, 10))


def _prior_against_mujoco(rng, place, steps):
    """(obs, action, MuJoCo's next obs, touched) for `steps` random states from `place(rng, obs)`."""
    world = wmkit.make("Tabletop-v0").unwrapped
    world.reset(seed=0)
    for _ in range(steps):
        obs = np.zeros(10)
        obs[:2] = rng.uniform(-0.15, 0.15, 2)
        obs[4] = 0.47
        obs[5:7] = rng.uniform(-0.4, 0.4, 2)
        obs[7:9] = rng.uniform(-0.3, 0.3, 2) * (rng.random() < 0.6)
        place(rng, obs)
        action = rng.uniform(-1, 1, 2)
        world.set_state(world.state_from_obs(obs))
        after, _, _, _, info = world.step(action.astype(np.float32))
        yield obs, action, after, "pusher_touches_cup" in info["annotations"]["events"]


def _predict(prior, obs, action):
    from wmkit.worlds.priors import motion_prior

    return motion_prior(prior)(torch.tensor(obs)[None], torch.tensor(action)[None])[0].numpy()


def test_tabletop_priors_are_mujocos_motion_when_nothing_touches():
    """Both priors give MuJoCo's next state for a pusher clear of the cup and of its rail ends and a cup
    sliding (or resting) on the table: the pusher to 1e-5 m and m/s, the cup to 0.2 mm and 1 cm/s (its dry
    friction is a soft constraint in MuJoCo, so the last substeps before it stops differ slightly)."""

    def far(rng, obs):
        obs[2:4] = (obs[:2] + rng.choice([-1, 1]) * np.array([0.0, rng.uniform(0.16, 0.2)])).clip(-0.2, 0.2)

    slowed = seen = 0
    for obs, action, after, touched in _prior_against_mujoco(np.random.default_rng(1), far, 40):
        if touched:  # a cup kept on the table by the clip may still be met
            continue
        seen += 1
        for prior in ("tabletop-free-v1", "tabletop-soft-v1"):
            pred = _predict(prior, obs, action)
            assert np.allclose(pred[[0, 1, 5, 6]], after[[0, 1, 5, 6]], atol=1e-5), (prior, obs, action)
            assert np.allclose(pred[2:4], after[2:4], atol=2e-4), (prior, obs, action)
            assert np.allclose(pred[7:10], after[7:10], atol=1e-2), (prior, obs, action)
            assert abs(pred[4] - after[4]) < 1e-3  # a cup set down at 0.47 m first sinks 0.3 mm into the table
        slowed += np.abs(after[7:9]).sum() < np.abs(obs[7:9]).sum() - 0.1  # friction took off its share
    assert seen >= 30 and slowed >= 10


def test_tabletop_soft_prior_is_mujocos_push_and_rail_end():
    """When the pusher meets the cup, or runs into the end of its rail, the soft prior still gives MuJoCo's
    next state (positions to 0.5 mm, speeds to 2 cm/s), where the free prior misses by tenths of a m/s."""

    def touching(rng, obs):
        angle = rng.uniform(0, 2 * np.pi)
        obs[2:4] = obs[:2] + rng.uniform(0.085, 0.12) * np.array([np.cos(angle), np.sin(angle)])

    def at_rail_end(rng, obs):
        obs[0] = rng.choice([-1, 1]) * rng.uniform(0.285, 0.3)
        obs[5] = np.sign(obs[0]) * rng.uniform(0.0, 0.4)
        obs[2:4] = (-0.15 * np.sign(obs[0]), 0.0)

    for place, seed, least in ((touching, 0, 20), (at_rail_end, 2, 15)):
        misses, seen = [], 0
        for obs, action, after, touched in _prior_against_mujoco(np.random.default_rng(seed), place, 80):
            if place is touching and not touched:
                continue
            seen += 1
            pred = _predict("tabletop-soft-v1", obs, action)
            assert np.allclose(pred[:4], after[:4], atol=5e-4), (place.__name__, obs, action, pred - after)
            assert np.allclose(pred[5:9], after[5:9], atol=2e-2), (place.__name__, obs, action, pred - after)
            misses.append(np.abs(_predict("tabletop-free-v1", obs, action) - after)[5:9].max())
        assert seen >= least and max(misses) > 0.1, (place.__name__, seen, max(misses))


def test_a_prior_model_predicts_the_prior_plus_its_residual(tmp_path):
    """With a motion prior the network's output is a residual on the prior's next state: a network that
    outputs zero predicts the prior exactly, and the prior's name survives a save and load."""
    from wmkit.models.checkpoint import save_model
    from wmkit.worlds.priors import motion_prior

    model = make_model("ensemble", _spec(), members=2, hidden=16, prior="auto")
    assert model.config.prior == "tabletop-soft-v1"
    wmkit.check_world_model(model)
    torch.nn.init.zeros_(model.head.weight)
    torch.nn.init.zeros_(model.head.bias)
    obs = torch.tensor([[0.1, -0.05, 0.0, 0.15, 0.47, 0.3, -0.2, 0.2, -0.1, 0.0]])
    action = torch.tensor([[0.5, -1.0]])
    step = model.step(model.observe(obs[:, None], torch.zeros(1, 0, 2)), action)[1].obs
    assert torch.allclose(step, motion_prior("tabletop-soft-v1")(obs, action), atol=1e-6)
    assert not torch.allclose(step, obs + model.delta_mean, atol=1e-3)  # the prior moved it, not the mean delta
    save_model(model, tmp_path)
    assert load_model(tmp_path).config.prior == "tabletop-soft-v1"
    with pytest.raises(WmkitError, match="unknown motion prior 'nope'"):
        make_model("ensemble", _spec(), prior="nope")
    with pytest.raises(WmkitError, match="reads observations of Tabletop-v0.*not Pendulum-v1"):
        make_model("ensemble", _spec("Pendulum-v1"), prior="tabletop-soft-v1")
    assert make_model("ensemble", _spec("Pendulum-v1"), prior="auto").prior is None  # a world without one


def test_soft_prior_shortcut_gives_what_its_substeps_give():
    """Where no constraint can act within the step the soft prior returns the free prior at once, and it
    leaves out of its substeps the constraints no row can meet; a batch that holds one touching row runs
    them all for every row, and gives the same rows to 1e-6."""
    from wmkit.worlds import priors

    rng = np.random.default_rng(3)
    obs = np.zeros((64, 10))
    obs[:, :2] = rng.uniform(-0.2, 0.2, (64, 2))
    obs[:, 2:4] = rng.uniform(-0.22, 0.22, (64, 2))
    obs[:, 4] = 0.47
    obs[:, 5:7] = rng.uniform(-0.5, 0.5, (64, 2))
    obs[:, 7:9] = rng.uniform(-0.4, 0.4, (64, 2)) * (rng.random((64, 1)) < 0.5)
    obs[0, 2:4] = obs[0, :2] + [0.09, 0.0]  # touching
    obs[1, [0, 1, 2, 3, 5, 6, 7, 8]] = [0.298, 0.0, -0.15, 0.0, 0.3, 0.0, 0.0, 0.0]  # at a rail end, the cup away
    obs[2, [0, 1, 2, 3, 5, 6, 7, 8]] = [-0.2, 0.0, 0.15, 0.0, 0.0, 0.0, 0.02, 0.0]  # a cup about to stop
    obs, action = torch.tensor(obs), torch.tensor(rng.uniform(-1, 1, (64, 2)))
    prior = priors.motion_prior("tabletop-soft-v1")
    free = priors._tabletop_free_v1(obs, action)
    level = torch.ones(64, 1, dtype=torch.bool)
    mass, friction = priors._nominal_cup()
    saturated = friction / mass / (priors._gains(priors._JOINT_TC)[0] * priors._D0)
    meets, rails, slows = priors._constraints_may_act(obs, free, level, saturated)
    shortcut = ~(meets | rails | slows)
    assert rails[~meets].any() and slows[~meets & ~rails].any()  # single rows take each shorter loop too
    assert 10 <= int(shortcut.sum()) < 64
    batch = prior(obs, action)
    alone = torch.cat([prior(obs[i:i + 1], action[i:i + 1]) for i in range(64)])
    assert torch.allclose(batch, alone, atol=1e-6)
    assert torch.equal(alone[shortcut], free[shortcut])
