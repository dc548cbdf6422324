"""Training: exact resume after an interruption, logs, checkpoints, and refused mismatches."""

import json
import math

import pytest
import torch
from safetensors.torch import load_file

from wmkit import WmkitError
from wmkit.train import TrainConfig, train


def _weights(run):
    return load_file(str(run / "model" / "weights.safetensors"))


def test_interrupted_run_resumes_exactly(tabletop_data, tmp_path):
    cfg = TrainConfig(steps=30, batch_size=32, log_every=10, checkpoint_every=1000, lr_end=0.1)
    straight = train(tabletop_data, tmp_path / "straight", config=cfg, model_config={"hidden": 32}, progress=False)
    resumed = tmp_path / "resumed"
    train(tabletop_data, resumed, config=cfg, model_config={"hidden": 32}, progress=False, stop_after=13)
    assert json.loads((resumed / "trainer" / "trainer.json").read_text())["step"] == 13
    train(tabletop_data, resumed, config=cfg, model_config={"hidden": 32}, progress=False)
    a, b = _weights(straight), _weights(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after resume"
    # the learning rate fell along the cosine to the last step's value (step 29 of 30), in both runs
    for run in (straight, resumed):
        lr = json.loads((run / "trainer" / "trainer.json").read_text())["param_groups"][0]["lr"]
        assert abs(lr - 1e-3 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 29 / 30)))) < 1e-12


def test_run_folder_has_checkpoint_and_log(tabletop_run):
    for name in ("run.json", "model/config.json", "model/weights.safetensors", "model/meta.json",
                 "trainer/optimizer.safetensors", "log.jsonl"):
        assert (tabletop_run / name).is_file(), name
    rows = [json.loads(line) for line in (tabletop_run / "log.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 1000 and rows[-1]["loss"] < rows[0]["loss"]
    assert all("samples_per_s" in r and "val_loss" in r for r in rows)


def test_resume_with_other_settings_is_refused(tabletop_run, tabletop_data):
    with pytest.raises(WmkitError, match="model_config"):
        train(tabletop_data, tabletop_run, config=TrainConfig(steps=500), model_config={"hidden": 8}, progress=False)


def test_bad_train_config():
    with pytest.raises(WmkitError, match="steps"):
        TrainConfig(steps=0)
    with pytest.raises(WmkitError, match="lr"):
        TrainConfig(lr=-1.0)
    with pytest.raises(WmkitError, match="device"):
        TrainConfig(device="tpu")
    with pytest.raises(WmkitError, match="lr_end=0"):
        TrainConfig(lr_end=0)


def test_untrainable_family(tabletop_data, tmp_path):
    with pytest.raises(WmkitError, match="not trainable"):
        train(tabletop_data, tmp_path / "x", "copy-last", progress=False)


def test_minutes_budget_stops_the_run(tabletop_data, tmp_path):
    run = train(tabletop_data, tmp_path / "timed", config=TrainConfig(steps=100000, minutes=0.02, batch_size=16),
                model_config={"hidden": 16}, progress=False)
    info = json.loads((run / "trainer" / "trainer.json").read_text())
    assert 0 < info["step"] < 100000 and info["elapsed_s"] >= 1.2


def test_resume_refuses_a_changed_dataset(tmp_path):
    from wmkit.data.collect import collect

    data = tmp_path / "d"
    collect("Pendulum-v1", 4, data, max_steps=20, progress=False)
    cfg = TrainConfig(steps=10, batch_size=8)
    train(data, tmp_path / "run", config=cfg, model_config={"hidden": 8}, progress=False, stop_after=5)
    collect("Pendulum-v1", 1, data, max_steps=20, progress=False)
    with pytest.raises(WmkitError, match="dataset differs"):
        train(data, tmp_path / "run", config=cfg, model_config={"hidden": 8}, progress=False)


def test_a_failing_step_keeps_the_last_checkpoint(tabletop_data, tmp_path, monkeypatch):
    from wmkit.models.ensemble import EnsembleModel

    run = tmp_path / "run"
    cfg = TrainConfig(steps=20, batch_size=8, checkpoint_every=5)
    train(tabletop_data, run, config=cfg, model_config={"hidden": 8}, progress=False, stop_after=7)
    before = _weights(run)
    monkeypatch.setattr(EnsembleModel, "loss", lambda self, batch: (torch.tensor(float("nan")), {}))
    with pytest.raises(WmkitError, match="loss became nan"):
        train(tabletop_data, run, config=cfg, model_config={"hidden": 8}, progress=False)
    after = _weights(run)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert json.loads((run / "trainer" / "trainer.json").read_text())["step"] == 7
