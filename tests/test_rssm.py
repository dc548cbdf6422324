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
    obs, acts = torch.randn(2, 41, 10, generator=g) * 0.1, torch.rand(2, 40, 2, generator=g) * 2 - 1
    early = obs.clone()
    early[:, 0] += 1.0
    with torch.no_grad():
        a, b = model.observe(obs, acts), model.observe(early, acts)
    assert not torch.equal(a["h"], b["h"])


def test_training_cuts_its_error(tabletop_data, tmp_path):
    """A few hundred steps make the one-step error clearly smaller than the freshly initialised model's.

    (At this budget the rssm beats neither copy-last nor its untrained self at k = 10 on Tabletop; its
    tuning is open work of issue 4.)"""
    data = wmkit.load_dataset(tabletop_data)
    errors = {}
    for steps in (1, 300):
        run = tmp_path / f"run{steps}"
        train(tabletop_data, run, "rssm", TrainConfig(steps=steps, batch_size=32, lr=3e-3, log_every=50),
              model_config=SMALL, progress=False)
        errors[steps] = evaluate_accuracy(load_model(run), data, horizons=(1,)).nrmse[0]
    log = [line for line in (tmp_path / "run300" / "log.jsonl").read_text().splitlines() if '"loss"' in line]
    assert len(log) >= 2
    assert errors[300] < 0.8 * errors[1], errors


@pytest.mark.parametrize("field, value", [("deter", 0), ("unimix", 1.0), ("free_bits", -1.0), ("seq_len", 2.5),
                                          ("imagine_horizon", 33), ("imagine_horizon", 2.5)])
def test_bad_config_is_named(field, value):
    with pytest.raises(WmkitError, match=field):
        make_model("rssm", reference_model("copy-last", "Tabletop-v0").spec, **{field: value})


def test_pixel_rssm_keeps_the_contract():
    """Frames in, frames out: shapes, determinism, causality and a save/load round trip."""
    spec = reference_model("copy-last", "Tabletop-v0").spec.with_(frame_size=32, frame_camera="top")
    torch.manual_seed(0)
    model = make_model("rssm", spec, **SMALL, inputs="frames", channels=8)
    assert model.spec.decodes == ("frame", "state") and model.spec.context == 4
    wmkit.check_world_model(model)
    with pytest.raises(WmkitError, match="needs frames: train on a dataset collected with --render"):
        make_model("rssm", spec.with_(frame_size=None), inputs="frames")
    with pytest.raises(WmkitError, match="pass frames="):
        model.observe(torch.zeros(1, 4, 10), torch.zeros(1, 3, 2))


def test_decoding_changes_makes_one_step_predictions_precise(tabletop_data, tmp_path):
    """With decode_delta the rssm's one-step prediction is better than decoding whole states from the
    same budget."""
    data = wmkit.load_dataset(tabletop_data)
    skill = {}
    for delta in (True, False):
        run = tmp_path / f"delta{delta}"
        train(tabletop_data, run, "rssm", TrainConfig(steps=300, batch_size=32, lr=3e-3, log_every=100),
              model_config={**SMALL, "decode_delta": delta}, progress=False)
        skill[delta] = evaluate_accuracy(load_model(run), data, horizons=(1,)).skill[0]
    assert skill[True] > skill[False] + 0.2, skill


def test_a_prior_rssm_decodes_a_residual_on_the_prior(tmp_path):
    """With a motion prior the decoded change is added to the prior's next state: a decoder that outputs
    zero predicts the prior exactly, the world's feature set is read beside the state, the prior's name
    survives a save and load, and a prior where nothing can use it is refused."""
    from wmkit.models.checkpoint import save_model
    from wmkit.worlds.priors import motion_prior

    spec = reference_model("copy-last", "Tabletop-v0").spec
    model = make_model("rssm", spec, **SMALL, prior="auto").eval()
    assert (model.config.prior, model.config.features) == ("tabletop-soft-v1", "tabletop-contact-v3")
    wmkit.check_world_model(model)
    torch.nn.init.zeros_(model.decoder[-1].weight)
    torch.nn.init.zeros_(model.decoder[-1].bias)
    obs = torch.tensor([[0.1, -0.05, 0.0, 0.15, 0.47, 0.3, -0.2, 0.2, -0.1, 0.0]])
    action = torch.tensor([[0.5, -1.0]])
    with torch.no_grad():
        step = model.step(model.observe(obs[:, None], torch.zeros(1, 0, 2)), action)[1].obs
    assert torch.allclose(step, motion_prior("tabletop-soft-v1")(obs, action), atol=1e-6)
    assert not torch.allclose(step, obs + model.delta_mean, atol=1e-3)  # the prior moved it
    save_model(model, tmp_path)
    assert load_model(tmp_path).config.prior == "tabletop-soft-v1"
    plain = make_model("rssm", spec, **SMALL, features="none")
    assert plain.img_in[0].in_features == model.img_in[0].in_features - model.features.dim
    with pytest.raises(WmkitError, match="prior='tabletop-soft-v1' needs state inputs with decode_delta"):
        make_model("rssm", spec, **SMALL, prior="tabletop-soft-v1", decode_delta=False)
    with pytest.raises(WmkitError, match="needs state inputs"):
        make_model("rssm", spec.with_(frame_size=32, frame_camera="top"), inputs="frames", prior="auto")
    with pytest.raises(WmkitError, match="reads observations of Tabletop-v0.*not Pendulum-v1"):
        make_model("rssm", reference_model("copy-last", "Pendulum-v1").spec, prior="tabletop-soft-v1")


def test_a_short_open_loop_imagines_from_every_step(tabletop_data):
    """imagine_horizon=K scores K imagined steps from each step of the window that has K steps after it,
    each start paired with its own states and actions; K = seq_len is the whole window from its first step."""
    data = wmkit.load_dataset(tabletop_data)
    spec = reference_model("copy-last", "Tabletop-v0").spec
    batch = data.windows(0, SMALL["seq_len"], "train").sample(3, torch.Generator().manual_seed(0))
    model = make_model("rssm", spec, **SMALL, imagine_horizon=3)
    model.set_normalizer(data.stats("train"))
    seen = {}
    imagine = model._imagine_loss

    def spy(h, z, obs, act):
        seen.update(h=h, obs=obs, act=act)
        return imagine(h, z, obs, act)

    model._imagine_loss = spy
    model.loss(batch)
    starts = SMALL["seq_len"] - 3 + 1
    assert seen["h"].shape[0] == seen["obs"].shape[0] == seen["act"].shape[0] == 3 * starts
    for b, s in ((0, 0), (1, 2), (2, starts - 1)):
        assert torch.equal(seen["obs"][b * starts + s], batch.obs[b, s:s + 4])
        assert torch.equal(seen["act"][b * starts + s], batch.actions[b, s:s + 3])
    assert not torch.equal(seen["h"][0], seen["h"][1])  # the second start carries the filtered past
    losses = []
    for horizon in (0, SMALL["seq_len"]):
        torch.manual_seed(1)
        whole = make_model("rssm", spec, **SMALL, imagine_horizon=horizon)
        whole.set_normalizer(data.stats("train"))
        torch.manual_seed(2)
        losses.append(whole.loss(batch)[1]["imagined_mse"])
    assert losses[0] == losses[1]
