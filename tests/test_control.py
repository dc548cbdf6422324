"""The CEM planner: it acts better than random with the true simulator, and refuses what it cannot use."""

import numpy as np
import pytest
import torch

import wmkit
from wmkit.control import CEMConfig, CEMPlanner
from wmkit.data.policies import make_policy
from wmkit.models import reference_model


def _episode(env, start, act, steps=30):
    env.set_state(start)
    obs, total = None, 0.0
    for _ in range(steps):
        obs, reward, terminated, _, _ = env.step(act(env).astype(np.float32))
        total += reward
        if terminated:
            break
    return total


def test_cem_with_the_true_simulator_beats_random_pushes():
    oracle = reference_model("oracle", "Tabletop-v0")
    env = wmkit.make("Tabletop-v0")
    for seed in (0, 1):
        env.reset(seed=seed)
        start = env.get_state()
        planner = CEMPlanner(oracle, CEMConfig(horizon=8, samples=24, iterations=2, elites=4, seed=seed))

        def plan(e):
            o = torch.tensor(e._observe(), dtype=torch.float32)[None, None]
            state = oracle.observe(o, torch.zeros(1, 0, 2), sim_state=torch.from_numpy(e.get_state())[None])
            return planner.plan(state).numpy()

        policy = make_policy("noise", env.action_space, np.random.default_rng(seed))
        policy.reset()
        planned, random = _episode(env, start, plan), _episode(env, start, lambda e: policy(None))
        assert planned > random + 0.5, (seed, planned, random)


def test_cem_refuses_what_it_cannot_use():
    with pytest.raises(wmkit.WmkitError, match="predicts no reward"):
        CEMPlanner(reference_model("copy-last", "Tabletop-v0"))
    with pytest.raises(wmkit.WmkitError, match="elites=9 exceeds samples=8"):
        CEMConfig(samples=8, elites=9)
    with pytest.raises(wmkit.WmkitError, match="horizon=0"):
        CEMConfig(horizon=0)
    planner = CEMPlanner(reference_model("oracle", "Tabletop-v0"))
    state = planner.model.observe(torch.zeros(2, 1, 12), torch.zeros(2, 0, 2))
    with pytest.raises(wmkit.WmkitError, match="batch 1"):
        planner.plan(state)
