"""The `rssm` family: the contract, memory through `observe`, training, and its config's bad input."""

import pytest
import torch

import wmkit
from wmkit import WmkitError
from wmkit.eval.accuracy import evaluate_accuracy
from wmkit.models import load_model, make_model, reference_model
from wmkit.train import TrainConfig, train

SMALL = {"deter": 64, "groups": 8, "classes": 8, "hidden": 64, "seq_len": 8}


def test_contract_on_another_world():
    wmkit.check_world_model(make_model("rssm", reference_model("copy-last", "Pendulum-v1").spec, **SMALL))


def test_observe_remembers_the_start_of_its_context():
    """Unlike a Markov model, an early observation still shapes the state after a long context."""
    model = make_model("rssm", reference_model("copy-last", "Tabletop-v0").spec, **SMALL).eval()
    g = torch.Generator().manual_seed(0)
    obs, acts = torch.randn(2, 41, 17, generator=g) * 0.1, torch.rand(2, 40, 2, generator=g) * 2 - 1
    early = obs.clone()
    early[:, 0] += 1.0
    with torch.no_grad():
        a, b = model.observe(obs, acts), model.observe(early, acts)
    assert not torch.equal(a["h"], b["h"])


def test_trains_and_beats_copy_last(tabletop_data, tmp_path):
    train(tabletop_data, tmp_path / "run", "rssm", TrainConfig(steps=300, batch_size=32, lr=3e-3, log_every=50),
          model_config=SMALL, progress=False)
    log = [line for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines() if '"loss"' in line]
    assert len(log) >= 2
    model = load_model(tmp_path / "run")
    acc = evaluate_accuracy(model, wmkit.load_dataset(tabletop_data), horizons=(1, 10))
    assert acc.skill_at(10) > 0.0, acc.to_json()


@pytest.mark.parametrize("field, value", [("deter", 0), ("unimix", 1.0), ("free_bits", -1.0), ("seq_len", 2.5)])
def test_bad_config_is_named(field, value):
    with pytest.raises(WmkitError, match=field):
        make_model("rssm", reference_model("copy-last", "Tabletop-v0").spec, **{field: value})
