"""Pixel models: frames in, frames out (the transformer with inputs="frames"), PSNR and SSIM, refusals."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

import wmkit
from wmkit.data.collect import collect
from wmkit.errors import WmkitError
from wmkit.eval.pixels import evaluate_frames, filmstrip, psnr, ssim
from wmkit.models import ModelSpec, load_model, make_model, preset_config
from wmkit.models.checker import check_world_model
from wmkit.train import TrainConfig, train

PIXELS = {**preset_config("transformer", "tiny"), "inputs": "frames", "patch": 8, "latent": 8, "channels": 8, "seq_len": 8}


@pytest.fixture(scope="module")
def pixel_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("pixels") / "tabletop32"
    collect("Tabletop-v0", 16, out, policy="noise", seed=0, render=32, max_steps=60, progress=False)
    return out


def _spec(frame_size=32):
    return ModelSpec(world="Tabletop-v0", obs_dim=10, action_dim=2, dt=0.05, latent_dim=0,
                     action_low=(-1.0, -1.0), action_high=(1.0, 1.0), frame_size=frame_size)


def test_pixel_transformer_keeps_the_contract():
    torch.manual_seed(0)  # every test here seeds its own weights: results never depend on test order
    model = make_model("transformer", _spec(), **PIXELS)
    assert model.spec.decodes == ("frame", "state")
    check_world_model(model)  # shapes (frames too), determinism, causality, save/load


@pytest.mark.parametrize("paint", ["advect", "warp", "warp+frame", "residual", "decode"])
@pytest.mark.parametrize("mixing", ["conv", "attention"])
def test_pixel_rollouts_are_the_same_with_and_without_the_cache(paint, mixing):
    torch.manual_seed(0)
    paint, _, sees = paint.partition("+")  # "+frame": the motion decoder also reads the frame shown
    model = make_model("transformer", _spec(), **{**PIXELS, "window": 4, "paint": paint, "mixing": mixing,
                                                  "motion_sees_frame": sees == "frame"}).eval()
    torch.nn.init.normal_(model.distance_bias, std=0.5)
    g = torch.Generator().manual_seed(1)
    frames = torch.randint(0, 256, (2, 6, 32, 32, 3), generator=g, dtype=torch.uint8)
    ctx, future = torch.rand(2, 5, 2, generator=g) * 2 - 1, torch.rand(2, 9, 2, generator=g) * 2 - 1
    with torch.no_grad():
        cached = model.rollout(model.observe(torch.zeros(2, 6, 10), ctx, frames=frames), future)
    reference = model.rollout_uncached(torch.zeros(2, 6, 10), ctx, future, frames=frames)
    torch.testing.assert_close(cached.frame, reference.frame, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(cached.obs, reference.obs, atol=1e-4, rtol=1e-4)
    if paint != "decode":  # the first imagined frame is the last real one, moved or changed a little
        last = frames[:, -1].float() / 255
        assert (cached.frame[:, 0] - last).abs().mean() < (cached.frame[:, 0] - 0.5).abs().mean()


def test_advection_moves_pixels_by_its_kernel():
    from wmkit.models.frames import advect

    frame = torch.zeros(1, 8, 8, 3)
    frame[0, 3, 3] = 1.0
    left = torch.full((1, 8, 8, 10), -30.0)
    left[..., 3] = 30.0  # every pixel takes its left neighbour's value: the image shifts right by one
    left[..., -1] = 30.0  # (the mask open everywhere)
    moved = advect(frame, left)
    assert moved[0, 3, 4].tolist() == [1.0, 1.0, 1.0] and moved[0, 3, 3].sum() < 1e-6
    edge = torch.rand(1, 8, 8, 3)
    assert advect(edge, left)[0, :, 0].allclose(edge[0, :, 0])  # the edge repeats outwards, nothing dark leaks in
    still = left.clone()
    still[..., -1] = -30.0  # a closed mask keeps every pixel as it was, whatever the kernel
    torch.testing.assert_close(advect(edge, still), edge)
    half = left.clone()
    half[..., -1] = 0.0  # half open: half the old pixel, half the moved one
    torch.testing.assert_close(advect(frame, half), 0.5 * frame + 0.5 * moved)


def test_warp_moves_pixels_along_its_flow():
    from wmkit.models.frames import warp

    frame = torch.zeros(1, 8, 8, 3)
    frame[0, 3, 3] = 1.0
    field = torch.zeros(1, 8, 8, 3)
    field[..., 0] = -math.atanh(0.5)  # every pixel samples 2 pixels to its left (max_shift 4): a shift right by 2
    field[..., 2] = 30.0  # the mask open everywhere
    moved = warp(frame, field, 4.0)
    torch.testing.assert_close(moved[0, 3, 5], torch.ones(3))
    assert moved.sum() == pytest.approx(3.0) and moved[0, 3, 3].sum() == 0  # moved whole, nothing smeared
    field[..., 0] = -math.atanh(0.125)  # half a pixel: shared between its two neighbours
    torch.testing.assert_close(warp(frame, field, 4.0)[0, 3, 3:5, 0], torch.tensor([0.5, 0.5]))
    edge = torch.rand(1, 8, 8, 3)
    field[..., 0] = -30.0  # as far left as it goes: the edge column repeats outwards, nothing dark leaks in
    assert warp(edge, field, 4.0)[0, :, 0].allclose(edge[0, :, 0])
    field[..., 2] = -30.0  # a closed mask keeps every pixel as it was, whatever the flow
    torch.testing.assert_close(warp(edge, field, 4.0), edge)


def test_psnr_and_ssim_rank_frames():
    g = torch.Generator().manual_seed(0)
    frame = torch.rand(2, 32, 32, 3, generator=g)
    slightly = (frame + 0.02 * torch.randn(frame.shape, generator=g)).clamp(0, 1)
    badly = (frame + 0.3 * torch.randn(frame.shape, generator=g)).clamp(0, 1)
    assert torch.allclose(ssim(frame, frame), torch.ones(2)) and (psnr(frame, frame) == 100).all()
    assert (psnr(frame, slightly) > psnr(frame, badly)).all() and (ssim(frame, slightly) > ssim(frame, badly)).all()
    assert (ssim(frame, badly) < 0.8).all() and (ssim(frame, slightly) > 0.95).all()
    # PSNR of a constant error e is -20 log10(e)
    assert torch.allclose(psnr(torch.zeros(1, 8, 8, 3), torch.full((1, 8, 8, 3), 0.1)), torch.tensor([20.0]))


def test_trains_from_pixels_and_is_scored_on_frames(pixel_data, tmp_path):
    data = wmkit.load_dataset(pixel_data, frames=True)
    fresh = tmp_path / "fresh"
    for run, steps in ((fresh, 1), (tmp_path / "run", 250)):
        train(pixel_data, run, "transformer", TrainConfig(steps=steps, batch_size=16, lr=2e-3, log_every=50),
              model_config=PIXELS, progress=False)
    before = evaluate_frames(load_model(fresh), data, horizons=(1, 5))["by_k"]
    model = load_model(tmp_path / "run")
    after = evaluate_frames(model, data, horizons=(1, 5))["by_k"]
    b5, a5 = before[1], after[1]  # k = 5: the fresh model (nothing moves yet) is about copy-last
    assert a5["psnr"] > a5["psnr_copy_last"] + 0.3 and a5["psnr"] > b5["psnr"] + 0.3, (before, after)
    strip = filmstrip(model, data, steps=4, every=2)
    assert strip.shape == (64, 128, 3) and strip.dtype.name == "uint8" and strip.std() > 5
    out = subprocess.run([sys.executable, "-m", "wmkit.cli", "eval", str(tmp_path / "run"), "--data", str(pixel_data),
                          "--json"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    pix = json.loads(out.stdout)["pixels"]["by_k"]
    assert [r["k"] for r in pix] == [1, 5, 10, 25, 50] and all(0 < r["ssim"] <= 1 for r in pix)


def test_pixel_input_is_checked(pixel_data, tabletop_data):
    torch.manual_seed(0)
    model = make_model("transformer", _spec(), **PIXELS)
    obs, acts = torch.zeros(2, 3, 10), torch.zeros(2, 2, 2)
    with pytest.raises(WmkitError, match="pass frames="):
        model.observe(obs, acts)
    with pytest.raises(WmkitError, match=r"frames have shape \(2, 3, 64, 64, 3\); expected \[B, T\+1, 32, 32, 3\]"):
        model.observe(obs, acts, frames=torch.zeros(2, 3, 64, 64, 3, dtype=torch.uint8))
    with pytest.raises(WmkitError, match="expected \\[B, T\\+1, 32, 32, 3\\]"):
        model.observe(obs, acts, frames=torch.zeros(2, 3, 32, 32, 1, dtype=torch.uint8))  # one channel
    with pytest.raises(WmkitError, match="needs frames: train on a dataset collected with --render"):
        make_model("transformer", _spec(None), **PIXELS)
    with pytest.raises(WmkitError, match="power of two"):
        make_model("transformer", _spec(48), **PIXELS)
    with pytest.raises(WmkitError, match="inputs='pixels' must be 'state' or 'frames'"):
        make_model("transformer", _spec(), inputs="pixels")
    with pytest.raises(WmkitError, match="does not decode frames"):
        evaluate_frames(make_model("transformer", _spec(None)), wmkit.load_dataset(pixel_data, frames=True))
    with pytest.raises(WmkitError, match="holds no frames; collect with --render"):
        train(tabletop_data, pixel_data.parent / "nope", "transformer", TrainConfig(steps=1), model_config=PIXELS,
              progress=False)


def test_a_pixel_model_can_be_played_in_a_session(tmp_path):
    from wmkit.interactive.session import Session

    torch.manual_seed(0)
    model = make_model("transformer", _spec().with_(frame_camera="top"), **PIXELS)
    s = Session(model, seed=3)
    start = s.frame("imagined", size=32)
    assert np.array_equal(start, s.frame("twin", size=32))  # it starts from the twin's own frame
    results = [s.step([1.0, 0.0]) for _ in range(5)]
    assert results[-1].twin_obs is not None and results[-1].obs.shape == (10,)
    imagined = s.frame("imagined", size=64)
    assert imagined.shape == (64, 64, 3) and imagined.dtype == np.uint8
    after_five = s.image.copy()
    branch = s.fork()
    branch.step([-1.0, 0.0])
    s.rewind(2)
    for _ in range(3):
        s.step([1.0, 0.0])
    assert np.array_equal(s.image, after_five)  # a replay imagines the same frames
    s.intervene(obs={2: 0.1, 3: -0.1})  # move the cup: the model re-observes the twin's frame of it
    assert not np.array_equal(s.image, after_five)
    with pytest.raises(WmkitError, match=r"image has shape \(8, 8, 3\)"):
        Session(model, image=np.zeros((8, 8, 3), np.uint8))
    Session(model, image=start)  # any frame of the right size can start it
    with pytest.raises(WmkitError, match="reads state vectors, not images"):
        Session(make_model("transformer", _spec(None)), image=start)


@pytest.mark.filterwarnings("ignore:Using `httpx`")  # starlette's note about its test client
def test_the_server_shows_a_pixel_model_by_its_decoded_frames():
    """In-process (the transport itself is tested against a real uvicorn in test_server.py)."""
    import io

    from fastapi.testclient import TestClient
    from PIL import Image

    from wmkit.interactive.server import create_app

    torch.manual_seed(0)
    model = make_model("transformer", _spec().with_(frame_camera="top"), **PIXELS)
    with TestClient(create_app(model)) as client:
        sid = client.post("/api/sessions", json={"seed": 0}).json()["id"]
        reply = client.post(f"/api/sessions/{sid}/step", json={"action": [0.5, 0.5]}).json()
        assert reply["t"] == 1 and len(reply["obs"]) == 10 and len(reply["twin_obs"]) == 10
        png = client.get(f"/api/sessions/{sid}/frame", params={"which": "imagined", "size": 64})
        assert png.status_code == 200 and png.headers["content-type"] == "image/png"
        image = np.asarray(Image.open(io.BytesIO(png.content)))
        assert image.shape == (64, 64, 3)
        session = client.app.state.sessions[sid][0]
        assert np.array_equal(image[::2, ::2], session.image)  # the decoded frame, scaled up, not a rendering
