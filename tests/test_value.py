"""A planner's terminal value fitted to real transitions (control/value.py): it learns what the episodes went
on to earn, cut where they truly ended, and the Dyna loop plans with it (`--value-from data`)."""

import json

import numpy as np
import pytest
import torch

import wmkit
from wmkit.control.value import DataValue, DataValueConfig
from wmkit.data.collect import collect


@pytest.fixture(scope="module")
def falls(tmp_path_factory):
    """Random InvertedPendulum episodes: every one ends where the pole falls, after 3 to 30 steps."""
    root = tmp_path_factory.mktemp("falls")
    collect("InvertedPendulum-v5", 60, root, policy="random", seed=0, progress=False)
    return wmkit.load_dataset(root, val_fraction=0.0)


def _returns_to_go(episode, gamma: float) -> np.ndarray:
    rewards, g, out = np.asarray(episode.rewards, dtype=np.float64), 0.0, []
    for r in rewards[::-1]:  # every episode here ends in a fall: nothing after its last step
        g = r + gamma * g
        out.append(g)
    return np.array(out[::-1])


def test_the_data_value_learns_what_the_episodes_went_on_to_earn(falls):
    gamma = 0.9
    assert all(ep.terminated[-1] for ep in falls.episodes)
    value = DataValue(falls.meta.obs_dim, DataValueConfig(gamma=gamma, slow=0.2, lr=1e-3))
    value.train(falls, 1500)
    obs = torch.as_tensor(np.concatenate([np.asarray(ep.obs[:-1]) for ep in falls.episodes]), dtype=torch.float32)
    truth = np.concatenate([_returns_to_go(ep, gamma) for ep in falls.episodes])
    predicted = value.terminal_value()(obs).numpy()
    assert truth.std() > 1.0  # states from just before a fall (0) to far from one (up to 1 / (1 - gamma) = 10)
    # the rest of each episode is random too, so no value can match every return: the test is how much of
    # their spread it explains (measured: correlation 0.76, mean error 0.56 of the returns' own mean deviation)
    assert np.corrcoef(predicted, truth)[0, 1] > 0.65, np.corrcoef(predicted, truth)
    assert np.abs(predicted - truth).mean() < 0.7 * np.abs(truth - truth.mean()).mean()
    # it is the real episodes' end that cuts the value: without it every state would be worth about 10
    assert predicted.max() < 0.8 / (1 - gamma)


def test_critics_disagreement_and_refusals(falls):
    value = DataValue(falls.meta.obs_dim, DataValueConfig(critics=3, pessimism=2.0))
    value.train(falls, 20)
    obs = torch.zeros(5, falls.meta.obs_dim)
    each = wmkit.control.imagination.symexp(value.values(obs)).detach()
    assert each.shape == (5, 3) and (each.std(-1) > 0).all()
    assert torch.allclose(value.terminal_value()(obs), each.mean(-1) - 2.0 * each.std(-1), atol=1e-5)
    for field, bad, needle in [("gamma", 0.0, "gamma=0.0"), ("slow", 2.0, "slow=2.0"), ("critics", 0, "critics"),
                               ("pessimism", 1.0, "set critics to 2 or more")]:
        with pytest.raises(wmkit.WmkitError, match=needle):
            DataValueConfig(**{field: bad})
    with pytest.raises(wmkit.WmkitError, match="this value reads 3"):
        DataValue(3).train(falls, 1)
    with pytest.raises(wmkit.WmkitError, match="updates=0"):
        value.train(falls, 0)


def test_the_dyna_loop_plans_with_the_data_value(tmp_path):
    from wmkit.control.dyna import AgentConfig, run_agent

    rows = run_agent(AgentConfig(world="InvertedPendulum-v5", steps=150, planner="icem", terminal_value=True,
                                 value_from="data", samples=16, iterations=2, train_steps=50,
                                 imagination_updates=20, retrain_every=50), tmp_path / "a", say=lambda *_: None)
    assert rows[0]["acted"] == "random" and {r["acted"] for r in rows[1:]} == {"icem"}
    assert json.loads((tmp_path / "a" / "config.json").read_text())["value_from"] == "data"
    for kwargs, needle in [({"value_from": "model", "terminal_value": True}, "value_from='model'"),
                           ({"value_from": "data"}, "use it with terminal_value=True")]:
        with pytest.raises(wmkit.WmkitError, match=needle):
            AgentConfig(**kwargs)
