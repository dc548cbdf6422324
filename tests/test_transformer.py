"""The transformer family: the WorldModel contract, a KV cache that changes nothing but the cost,
bounded memory over long rollouts, training, presets and refused configs."""

import pytest
import torch

import wmkit
from wmkit.errors import WmkitError
from wmkit.eval.accuracy import evaluate_accuracy
from wmkit.models import ModelSpec, load_model, make_model, preset_config
from wmkit.models.checker import check_world_model
from wmkit.train import TrainConfig, train

SPEC = ModelSpec(world="Tabletop-v0", obs_dim=10, action_dim=2, dt=0.05, latent_dim=0,
                 action_low=(-1.0, -1.0), action_high=(1.0, 1.0))
SMALL = {"width": 32, "heads": 2, "layers": 2, "window": 8, "seq_len": 8}


def _model(seed=0):
    torch.manual_seed(seed)
    model = make_model("transformer", SPEC, **SMALL)
    torch.nn.init.normal_(model.distance_bias, std=0.5)  # a fresh model's zero bias would hide order mistakes
    return model.eval()


def _inputs(context, horizon, seed=0):
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(3, context + 1, 10, generator=g) * 0.3
    ctx = torch.rand(3, context, 2, generator=g) * 2 - 1
    future = torch.rand(3, horizon, 2, generator=g) * 2 - 1
    return obs, ctx, future


def test_passes_the_world_model_contract():
    check_world_model(_model())


@pytest.mark.parametrize("context", [0, 3, 20])  # none, shorter than the window, longer than it
def test_cached_rollout_equals_uncached(context):
    model = _model()
    obs, ctx, future = _inputs(context, 30)  # 30 imagined steps: the window slides many times
    with torch.no_grad():
        cached = model.rollout(model.observe(obs, ctx), future)
    reference = model.rollout_uncached(obs, ctx, future)
    torch.testing.assert_close(cached.obs, reference.obs, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(cached.reward, reference.reward, atol=1e-4, rtol=1e-4)
    assert (cached.obs[:, -1] - cached.obs[:, 0]).abs().max() > 1e-3  # it did imagine something


def test_memory_is_bounded_over_long_rollouts():
    model = _model()
    obs, ctx, future = _inputs(2, 200)
    with torch.no_grad():
        state = model.observe(obs, ctx)
        for t in range(200):
            state, _ = model.step(state, future[:, t])
            assert state["k"].shape[4] <= SMALL["window"] - 1
        assert tuple(state["k"].shape) == (3, 2, 1, 2, SMALL["window"] - 1, 16)  # [B, layers, cells, heads, n, dh]
    assert torch.isfinite(state["x"]).all()


def test_trains_and_beats_copy_last(tabletop_data, tmp_path):
    train(tabletop_data, tmp_path / "run", "transformer",
          TrainConfig(steps=400, batch_size=32, lr=2e-3, log_every=100),
          model_config={**preset_config("transformer", "tiny"), "seq_len": 8}, progress=False)
    model = load_model(tmp_path / "run")
    acc = evaluate_accuracy(model, wmkit.load_dataset(tabletop_data), horizons=(1, 5))
    assert acc.skill_at(1) > 0.0 and acc.skill_at(5) > 0.0, acc.to_json()


def test_presets_differ_in_size_and_small_is_the_default():
    sizes = {p: sum(t.numel() for t in make_model("transformer", SPEC, **preset_config("transformer", p)).parameters())
             for p in ("tiny", "small", "base")}
    assert sizes["tiny"] < sizes["small"] < sizes["base"], sizes
    assert preset_config("transformer", "small") == {}
    with pytest.raises(WmkitError, match="unknown preset 'huge'"):
        preset_config("transformer", "huge")


@pytest.mark.parametrize("fields, message", [
    ({"width": 30, "heads": 4}, "multiple of heads"),
    ({"window": 1}, "window=1"),
    ({"layers": 0}, "layers"),
])
def test_bad_config_is_named(fields, message):
    with pytest.raises(WmkitError, match=message):
        make_model("transformer", SPEC, **fields)


def test_training_windows_longer_than_the_window_are_refused():
    model = make_model("transformer", SPEC, window=4, seq_len=4)
    batch = type("B", (), {"obs": torch.zeros(2, 7, 10), "actions": torch.zeros(2, 6, 2),
                           "rewards": torch.zeros(2, 6), "terminated": torch.zeros(2, 6)})()
    with pytest.raises(WmkitError, match="exceed the attention window 4"):
        model.loss(batch)
