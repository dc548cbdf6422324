"""The scorecard: every section runs, and each metric separates planted good and bad models."""

import dataclasses
import json

import pytest
import torch

import wmkit
from wmkit.eval.scorecard import SECTIONS, SUITES, evaluate
from wmkit.models import load_model
from wmkit.models.baselines import CopyLastModel
from wmkit.models.base import Prediction
from wmkit.models.ensemble import EnsembleModel

# the quick suite, cut down further so the tests stay fast
TINY = dataclasses.replace(SUITES["quick"], name="tiny", windows=48, starts=6, sequences=4, drift_horizon=60,
                           drift_rollouts=8, latency_steps=20, probe_steps=150, physics_episodes=4,
                           plan_steps=8, plan_samples=16, plan_iterations=2, plan_horizon=5)


class ActionBlind(EnsembleModel):
    """A planted model that never looks at its actions (it always imagines a zero push)."""

    family = "action-blind"

    def _forward(self, obs, action, **kw):
        return super()._forward(obs, torch.zeros_like(action), **kw)


class PeeksAhead(CopyLastModel):
    """A planted cheat: every prediction moves by the mean of all the actions it is given, future ones too."""

    family = "peeks-ahead"

    def rollout(self, state, actions):
        a = self.check_actions(actions, ndim=3)
        shift = a.mean(1, keepdim=True).sum(-1, keepdim=True)
        return Prediction(obs=state["obs"][:, None] + shift.expand(-1, a.shape[1], self.spec.obs_dim))


def _blind(run):
    trained = load_model(run)
    blind = ActionBlind(trained.spec, trained.config)
    blind.load_state_dict(trained.state_dict())
    return blind.eval()


@pytest.fixture(scope="module")
def cards(tabletop_run, tabletop_data):
    ds = wmkit.load_dataset(tabletop_data)
    models = {
        "ensemble": load_model(tabletop_run),
        "oracle": load_model("oracle", world=ds.world),
        "copy-last": load_model("copy-last", world=ds.world),
        "action-blind": _blind(tabletop_run),
    }
    return {name: evaluate(m, ds, TINY) for name, m in models.items()}


def test_every_section_is_produced_and_is_strict_json(cards):
    card = cards["ensemble"]
    for section in SECTIONS:
        assert section in card and "skipped" not in card[section], (section, card.get(section))
    json.dumps(card, allow_nan=False)
    assert card["machine"]["cpus"] >= 1 and card["suite"] == "tiny"


def test_oracle_scores_best_everywhere(cards):
    o, e = cards["oracle"], cards["ensemble"]
    assert all(r["skill"] > 0.999 for r in o["accuracy"]["by_k"])
    assert o["causality"]["leak"]["passed"]
    assert o["causality"]["interventional"]["r2"] > 0.999 > e["causality"]["interventional"]["r2"]
    assert o["causality"]["pushes"]["r2"] > 0.999 > e["causality"]["pushes"]["r2"]
    assert abs(o["controllability"]["sensitivity"]["median_ratio"] - 1) < 1e-3
    assert o["controllability"]["action_recovery"]["ratio"] > 0.99
    assert o["persistence"]["drift"]["nrmse_at"]["50"] < 1e-4 < e["persistence"]["drift"]["nrmse_at"]["50"]
    assert all(abs(s["ratio"] - 1) < 0.05 for s in o["physics"]["splits"].values())


def test_copy_last_has_zero_skill_and_no_control(cards):
    c = cards["copy-last"]
    assert all(r["skill"] == 0.0 for r in c["accuracy"]["by_k"])
    assert all(r["delta_db"] == 0.0 for r in c["controllability"]["delta_db"]["by_k"])
    assert c["controllability"]["sensitivity"]["median_ratio"] == 0.0
    assert c["controllability"]["action_recovery"]["ratio"] < 0.2
    assert "predicts no reward" in c["planning"]["skipped"]
    assert "predicts no uncertainty" in c["accuracy"]["calibration"]["skipped"]


def test_an_action_blind_model_scores_no_controllability(cards):
    b, e = cards["action-blind"], cards["ensemble"]
    assert all(abs(r["delta_db"]) < 1e-6 for r in b["controllability"]["delta_db"]["by_k"])
    assert b["controllability"]["sensitivity"]["median_ratio"] < 1e-6
    assert b["controllability"]["action_recovery"]["ratio"] < 0.2
    # the (briefly) trained model does follow its actions
    assert e["controllability"]["delta_db"]["by_k"][1]["delta_db"] > 0.2
    assert e["controllability"]["sensitivity"]["median_ratio"] > 0.25
    assert e["controllability"]["action_recovery"]["ratio"] > 0.25


def test_a_future_reading_model_fails_the_leak_test(tabletop_data, cards):
    ds = wmkit.load_dataset(tabletop_data)
    cheat = PeeksAhead(load_model("copy-last", world=ds.world).spec)
    card = evaluate(cheat, ds, TINY, sections=["causality"])
    assert not card["causality"]["leak"]["passed"] and card["causality"]["leak"]["max_abs_diff"] > 1e-3
    assert cards["ensemble"]["causality"]["leak"]["passed"]


def test_one_physics_model_extrapolates_worse_than_a_wide_one(tmp_path):
    """Pendulum trained on one mass and length vs on the training ranges and the held-out ones too."""
    from wmkit.data.collect import collect
    from wmkit.eval.physics_gen import section
    from wmkit.eval.scorecard import EvalContext
    from wmkit.train import TrainConfig, train

    one, wide = tmp_path / "one", tmp_path / "wide"
    collect("Pendulum-v1", 12, one, seed=0, max_steps=60, progress=False)  # default physics only
    collect("Pendulum-v1", 12, wide, physics="train", seed=0, max_steps=60, progress=False)
    collect("Pendulum-v1", 12, wide, physics="ood", seed=1, max_steps=60, progress=False)
    ratio = {}
    for out in (one, wide):
        train(out, out / "run", "ensemble", TrainConfig(steps=600, batch_size=64, log_every=300),
              model_config={"members": 3, "hidden": 64}, progress=False)
        ctx = EvalContext(load_model(out / "run"), wmkit.load_dataset(out), dataclasses.replace(TINY, physics_episodes=6))
        ratio[out.name] = section(ctx)["splits"]["ood"]["ratio"]
    assert ratio["one"] > 2.0 and ratio["one"] > 2 * ratio["wide"], ratio


def test_too_little_data_skips_metrics_with_reasons(tmp_path, tabletop_run):
    from wmkit.data.collect import collect

    collect("Tabletop-v0", 1, tmp_path / "one", max_steps=30, progress=False)  # no held-out episode at all
    card = evaluate(load_model(tabletop_run), tmp_path / "one", TINY)
    assert "too little held-out data" in card["accuracy"]["skipped"]
    assert "skipped" in card["causality"]["leak"] and "skipped" in card["persistence"]["drift"]
    assert "skipped" not in card["realtime"]["latency"]  # what needs no held-out data is still measured


def test_a_model_of_another_world_is_refused(tabletop_data):
    from wmkit.models import reference_model

    with pytest.raises(wmkit.WmkitError, match="does not match"):
        evaluate(reference_model("copy-last", "Pendulum-v1"), tabletop_data, TINY)
    with pytest.raises(wmkit.WmkitError, match="unknown suite"):
        evaluate(reference_model("copy-last", "Tabletop-v0"), tabletop_data, "huge")
    with pytest.raises(wmkit.WmkitError, match="unknown scorecard section"):
        evaluate(reference_model("copy-last", "Tabletop-v0"), tabletop_data, TINY, sections=["vibes"])


def test_memory_probe_fails_a_memoryless_model_and_passes_the_oracle(tmp_path, cards):
    from wmkit.data.collect import collect
    from wmkit.eval.persistence import memory
    from wmkit.eval.scorecard import EvalContext
    from wmkit.train import TrainConfig, train

    collect("Tabletop-Memory-v0", 20, tmp_path / "data", seed=0, progress=False)
    train(tmp_path / "data", tmp_path / "run", "ensemble", TrainConfig(steps=300, batch_size=64, log_every=100),
          model_config={"members": 3, "hidden": 64}, progress=False)
    ds = wmkit.load_dataset(tmp_path / "data")
    recall = {}
    for name in (tmp_path / "run", "oracle"):
        rows = memory(EvalContext(load_model(name, world=ds.world), ds, TINY))["by_span"]
        recall[str(name)] = {r["blind_span"]: r.get("recall") for r in rows if "recall" in r}
    memoryless, oracle = recall[str(tmp_path / "run")], recall["oracle"]
    assert set(memoryless) >= {16, 64} and all(v < 0.05 for v in memoryless.values()), memoryless
    assert all(abs(v - 1) < 1e-3 for v in oracle.values()), oracle
    # a world with no cue to remember says so instead of scoring
    assert "no early cue" in cards["ensemble"]["persistence"]["memory"]["skipped"]
