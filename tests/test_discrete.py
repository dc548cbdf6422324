"""Worlds with discrete actions (CartPole): one-hot on disk and in models, the sticky `noise` policy,
categorical CEM that balances the pole, DreamEnv with a Discrete space, and the refusals."""

import numpy as np
import pytest
import torch
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env

import wmkit
from wmkit.actions import choice, decode, encode, layout
from wmkit.control import make_planner
from wmkit.data.collect import collect
from wmkit.models import load_model, preset_config
from wmkit.train import TrainConfig, train

WORLD = "gym:CartPole-v1"


@pytest.fixture(scope="module")
def cartpole_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cartpole")
    collect(WORLD, 10, root / "data", policy="noise", seed=0, progress=False)
    train(root / "data", root / "run", "ensemble", TrainConfig(steps=200, seed=0, val_fraction=0.0),
          model_config=preset_config("ensemble", "tiny"), progress=False)
    return root


def test_discrete_actions_are_one_hot_between_policy_dataset_and_world():
    space = spaces.Discrete(3, start=-1)
    assert layout(space) .kind == "discrete" and layout(space).dim == 3
    assert encode(space, 1).tolist() == [0, 0, 1] and encode(space, [0.1, 0.7, 0.2]).tolist() == [0, 1, 0]
    assert decode(space, encode(space, -1)) == -1 and decode(space, [0, 0, 1]) == 1
    for bad, needle in [(2, "out of range"), (0.5, "not a whole number"), ([1, 0], "vector of 3"),
                        ([np.nan, 0, 1], "finite")]:
        with pytest.raises(wmkit.WmkitError, match=needle):
            choice(space, bad)
    with pytest.raises(wmkit.WmkitError, match="MultiDiscrete action space"):
        layout(spaces.MultiDiscrete([2, 2]), "that world")
    env = wmkit.make(WORLD)
    env.reset(seed=0)
    env.step(1)
    for bad, needle in [(2, "out of range"), (np.array([0.0, 1.0]), "one integer"), (0.5, "whole number")]:
        with pytest.raises(wmkit.WmkitError, match=needle):
            env.step(bad)


def test_collect_stores_one_hot_actions_and_noise_keeps_its_choice(tmp_path):
    repeats = {}
    for policy in ("random", "noise"):
        collect(WORLD, 8, tmp_path / policy, policy=policy, seed=0, progress=False)
        ds = wmkit.load_dataset(tmp_path / policy)
        assert (ds.meta.action_kind, ds.meta.action_dim) == ("discrete", 2)
        acts = np.concatenate([e.actions for e in ds.episodes])
        assert set(map(tuple, acts.tolist())) == {(0.0, 1.0), (1.0, 0.0)}  # one-hot rows, both choices used
        picks = [e.actions.argmax(1) for e in ds.episodes]
        repeats[policy] = np.mean(np.concatenate([p[1:] == p[:-1] for p in picks]))
    assert repeats["random"] < 0.65 and repeats["noise"] > 0.8, repeats  # 1/2 vs 0.8 + 0.2 / 2


def test_categorical_cem_balances_the_pole_in_the_dyna_loop(tmp_path):
    from wmkit.control.dyna import AgentConfig, run_agent

    rows = run_agent(AgentConfig(world=WORLD, steps=1200, planner="cem", seed_episodes=5, retrain_every=100,
                                 train_steps=500, horizon=15, samples=100, iterations=3), tmp_path / "a",
                     say=lambda *_: None)
    random = np.mean([r["return"] for r in rows[:5]])
    planned = [r["return"] for r in rows[5:]]
    assert {r["acted"] for r in rows[5:]} == {"cem"}
    assert random < 40 and max(planned) >= 200, (random, planned)  # measured: 22 vs up to 500 (the cap)
    model = load_model(tmp_path / "a" / "model")
    assert model.spec.action_kind == "discrete"  # carried through training and the checkpoint
    planner = make_planner("cem", model, horizon=5, samples=16, iterations=1)
    assert planner.name == "cem-discrete"
    action = planner.plan(model.observe(torch.zeros(1, 1, 4), torch.zeros(1, 0, 2)))
    assert action.sum() == 1 and set(action.tolist()) <= {0.0, 1.0}


def test_dream_env_of_a_discrete_world_takes_choices(cartpole_run):
    model = load_model(cartpole_run / "run")
    env = wmkit.DreamEnv(model, wmkit.load_dataset(cartpole_run / "data"), max_episode_steps=50)
    assert env.action_space == spaces.Discrete(2)
    check_env(env, skip_render_check=True)
    env.reset(seed=0)
    with pytest.raises(wmkit.WmkitError, match="out of range"):
        env.step(5)


def test_planners_refuse_the_wrong_kind_of_action(cartpole_run, tabletop_run):
    discrete, continuous = load_model(cartpole_run / "run"), load_model(tabletop_run)
    for name in ("icem", "mppi"):
        with pytest.raises(wmkit.WmkitError, match="actions are discrete; use cem"):
            make_planner(name, discrete)
    with pytest.raises(wmkit.WmkitError, match="searches discrete actions.*actions are continuous; use cem, icem or mppi"):
        make_planner("cem-discrete", continuous)
    with pytest.raises(wmkit.WmkitError, match="no field init_std"):
        make_planner("cem", discrete, init_std=0.3)  # a Gaussian's spread means nothing to a categorical


def test_a_constant_reward_is_learned_not_divided_by_its_zero_spread(cartpole_run, tabletop_data):
    data = wmkit.load_dataset(cartpole_run / "data")  # CartPole pays +1 every step
    stats = data.stats()
    assert float(stats["reward_std"]) == 0.0 and float(stats["reward_scale"]) == 1.0
    varied = wmkit.load_dataset(tabletop_data).stats()
    assert float(varied["reward_scale"]) == pytest.approx(float(varied["reward_std"]))
    model = load_model(cartpole_run / "run")
    batch = data.windows(0, 1, "all").take(64)
    _, pred = model.step(model.observe(batch.obs[:, :1], batch.actions[:, :0]), batch.actions[:, 0])
    # (before the fix the head's output was scaled by 1e-6: predicted rewards near 0)
    assert (pred.reward - 1).abs().mean() < 0.1, pred.reward
