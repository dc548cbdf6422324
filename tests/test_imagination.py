"""Learning to act inside a model (control/imagination.py): lambda-returns, an actor trained only on
imagined Pendulum rollouts that swings better than random in the true world, the Dyna loop with
`--planner policy`, and the refusals."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import wmkit
from wmkit.actions import decode
from wmkit.control import PlannerPolicy, make_planner
from wmkit.control.imagination import ImaginationConfig, ImaginedActorCritic, symexp, symlog
from wmkit.data.collect import collect
from wmkit.models import load_model, preset_config, reference_model
from wmkit.train import TrainConfig, train


def _real_return(world, policy, seeds):
    env, totals = wmkit.make(world), []
    for seed in seeds:
        obs, _ = env.reset(seed=seed)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(decode(env.action_space, policy(obs)))
            total += reward
            done = terminated or truncated
        totals.append(total)
    return float(np.mean(totals))


@pytest.fixture(scope="module")
def pendulum(tmp_path_factory):
    """A tiny ensemble trained on 10 random Pendulum episodes, and those episodes."""
    root = tmp_path_factory.mktemp("pendulum")
    collect("Pendulum-v1", 10, root / "data", policy="random", seed=0, progress=False)
    train(root / "data", root / "run", "ensemble", TrainConfig(steps=2000, seed=0, val_fraction=0.0),
          model_config=preset_config("ensemble", "tiny"), progress=False)
    return load_model(root / "run"), wmkit.load_dataset(root / "data", val_fraction=0.0)


def test_lambda_returns_and_symlog(pendulum):
    learner = ImaginedActorCritic(pendulum[0], ImaginationConfig(gamma=0.5, lam=1.0))
    R = torch.tensor([[1.0, 2.0, 4.0]])
    C = torch.tensor([[1.0, 0.0, 1.0]])  # the episode ends after the second step
    v = torch.tensor([[0.0, 0.0, 0.0, 8.0]])
    # lambda = 1: discounted rewards, cut where the episode ends, then the bootstrap
    assert learner._lambda_returns(R, C, v).tolist() == [[1 + 0.5 * 2, 2.0, 4 + 0.5 * 8]]
    lam0 = ImaginedActorCritic(learner.model, ImaginationConfig(gamma=0.5, lam=1e-9))
    v = torch.tensor([[0.0, 10.0, 20.0, 8.0]])  # lambda -> 0: one-step targets r + gamma c v'
    assert np.allclose(lam0._lambda_returns(R, C, v).tolist(), [[1 + 5, 2.0, 4 + 4]], atol=1e-6)
    x = torch.tensor([-100.0, -1.0, 0.0, 3.0])
    assert torch.allclose(symexp(symlog(x)), x)


def test_an_actor_trained_only_in_imagination_swings_the_real_pendulum(pendulum):
    model, data = pendulum
    learner = ImaginedActorCritic(model)
    rows = learner.train(data, 400)
    assert rows[-1]["gradient"] == "backprop"  # continuous actions, a model that passes gradients
    seeds = range(100, 103)
    trained = _real_return("Pendulum-v1", learner.policy(explore=False), seeds)
    rng = np.random.default_rng(0)
    random = _real_return("Pendulum-v1", lambda obs: rng.uniform(-2, 2, size=1), seeds)
    assert trained > random + 600, (trained, random)  # measured about -195 vs -1,200
    # the critic as a planner's terminal value: the upright pendulum at rest is worth more than the hanging one
    value = learner.terminal_value()
    upright, hanging = torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([[-1.0, 0.0, 0.0]])
    assert value(upright).item() > value(hanging).item() + 50, (value(upright), value(hanging))
    assert torch.allclose(value(hanging), symexp(learner.value(hanging)).detach())
    before = value(hanging).clone()
    learner.train(data, 20)
    assert not torch.allclose(value(hanging), before)  # it reads the critic as it is now
    # the actor as a planner's prior: its proposals, rolled through the model, lift a starved search
    propose = learner.prior(6)
    plans = propose(model.observe(upright[:, None], torch.zeros(1, 0, 1)), upright, 7)  # balancing: no full torque
    assert plans.shape == (6, 7, 1) and plans.abs().max() <= 2 and plans.std(0).mean() > 0.05
    assert torch.allclose(plans[0, 0], learner.actor.act(upright)[0])  # the first: the actor's mean action
    budget = {"horizon": 10, "samples": 8, "iterations": 1, "elites": 2, "seed": 0}
    starved = _real_return("Pendulum-v1", PlannerPolicy(make_planner("cem", model, **budget)), seeds)
    guided = _real_return("Pendulum-v1", PlannerPolicy(make_planner("cem", model, prior=propose, **budget)), seeds)
    assert guided > starved + 200, (guided, starved)


def test_critics_side_by_side_and_a_pessimistic_terminal_value(pendulum):
    model, data = pendulum
    learner = ImaginedActorCritic(model, ImaginationConfig(critics=3, pessimism=2.0))
    learner.train(data, 30)
    obs = torch.tensor([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 8.0]])
    each = symexp(learner.values(obs)).detach()  # [3 observations, 3 critics]
    assert each.shape == (3, 3) and (each.std(-1) > 0).all()  # different starting weights: they disagree
    assert torch.allclose(learner.terminal_value()(obs), each.mean(-1) - 2.0 * each.std(-1), atol=1e-5)
    assert torch.allclose(learner.value(obs), learner.values(obs).mean(-1))  # the bootstrap reads their mean
    plain = ImaginedActorCritic(model, ImaginationConfig(critics=3))
    assert torch.allclose(plain.terminal_value()(obs), symexp(plain.values(obs)).mean(-1))  # no pessimism


def test_reinforce_is_used_where_the_model_passes_no_gradient(pendulum):
    model = reference_model("oracle", "Pendulum-v1")  # a simulator: no gradients through its steps
    with pytest.raises(wmkit.WmkitError, match="no reward head"):
        ImaginedActorCritic(reference_model("copy-last", "Pendulum-v1"))
    learner = ImaginedActorCritic(model, ImaginationConfig(batch=4, horizon=3))
    assert learner.train(pendulum[1], 1)[0]["gradient"] == "reinforce"


@pytest.mark.parametrize("field, value, needle", [
    ("gamma", 0.0, "gamma=0.0"), ("lam", 1.5, "lam=1.5"), ("actor_gradient", "magic", "actor_gradient='magic'"),
    ("horizon", 0, "horizon"), ("actor_lr", float("nan"), "actor_lr"),
    ("pessimism", 1.0, "set critics to 2 or more"), ("critics", 0, "critics"),
])
def test_imagination_config_refusals(field, value, needle):
    with pytest.raises(wmkit.WmkitError, match=needle):
        ImaginationConfig(**{field: value})


def test_the_dyna_loop_with_a_policy_learned_in_imagination(tmp_path):
    from wmkit.control.dyna import AgentConfig, run_agent

    rows = run_agent(AgentConfig(world="gym:CartPole-v1", steps=1500, planner="policy", seed_episodes=5,
                                 retrain_every=200, train_steps=500, imagination_updates=300), tmp_path / "a",
                     say=lambda *_: None)
    assert {r["acted"] for r in rows[5:]} == {"policy"}
    first = np.mean([r["return"] for r in rows[:5]])
    assert first < 40 and max(r["return"] for r in rows[5:]) >= 200, [r["return"] for r in rows]
    logged = [json.loads(line) for line in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    assert logged == rows


def test_wmkit_agent_policy_on_the_command_line(tmp_path):
    cmd = [sys.executable, "-m", "wmkit.cli", "agent", "--world", "Pendulum-v1", "--steps", "200", "--planner",
           "policy", "--train-steps", "50", "--imagination-updates", "5", "--max-episode-steps", "100",
           "--out", str(tmp_path / "cli")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "policy" in done.stdout and "200 environment steps" in done.stdout
    bad = subprocess.run([*cmd[:-1], str(tmp_path / "other"), "--safety", "cup_leaves_table", "--world", "Tabletop-v0"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "not planner='policy'" in bad.stderr, bad.stderr
    bad = subprocess.run([*cmd[:-1], str(tmp_path / "other"), "--terminal-value"], capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 2 and "already acts with the actor-critic" in bad.stderr, bad.stderr
    bad = subprocess.run([*cmd[:-1], str(tmp_path / "other"), "--uncertainty-penalty", "1"], capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2 and "uncertainty_penalty scores a planner's imagined futures" in bad.stderr, bad.stderr
    assert not (tmp_path / "other").exists()
    planned = [*cmd[:-1], str(tmp_path / "valued"), "--planner", "cem", "--terminal-value", "--samples", "16",
               "--uncertainty-penalty", "0.5", "--critics", "2", "--value-pessimism", "1"]
    done = subprocess.run(planned, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    config = json.loads((tmp_path / "valued" / "config.json").read_text())
    assert config["terminal_value"] is True and config["uncertainty_penalty"] == 0.5
    assert config["critics"] == 2 and config["value_pessimism"] == 1.0
    assert [json.loads(line)["acted"] for line in (tmp_path / "valued" / "log.jsonl").read_text().splitlines()] == [
        "random", "cem"]


def test_the_dyna_loop_plans_with_the_actor_as_a_prior(tmp_path, monkeypatch):
    from wmkit.control.dyna import AgentConfig, run_agent

    calls = []
    original = ImaginedActorCritic.prior

    def counted(self, samples=24):
        propose = original(self, samples)

        def spy(state, obs, horizon):
            plans = propose(state, obs, horizon)
            calls.append(tuple(plans.shape))
            return plans
        return spy

    monkeypatch.setattr(ImaginedActorCritic, "prior", counted)
    rows = run_agent(AgentConfig(world="Pendulum-v1", steps=150, planner="icem", policy_prior=4, samples=16,
                                 iterations=2, horizon=5, train_steps=50, imagination_updates=10, retrain_every=50,
                                 max_episode_steps=50), tmp_path / "a", say=lambda *_: None)
    planned = sum(50 for r in rows if r["acted"] == "icem")
    assert planned == 100 and calls == [(4, 5, 1)] * planned  # one proposal batch per planned step
    for kwargs, needle in [({"planner": "policy", "policy_prior": 4}, "already acts with the actor"),
                           ({"policy_prior": 4, "terminal_value": True, "value_from": "data"}, "trains no actor"),
                           ({"policy_prior": -1}, "policy_prior=-1")]:
        with pytest.raises(wmkit.WmkitError, match=needle):
            AgentConfig(**kwargs)
