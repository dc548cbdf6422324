"""Test set-up: headless rendering, set before MuJoCo or pygame is imported (EGL for MuJoCo, no display for pygame)."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tabletop_data(tmp_path_factory):
    """24 short Tabletop episodes (coloured-noise pushes), made once per test session."""
    from wmkit.data.collect import collect

    out = tmp_path_factory.mktemp("data") / "tabletop"
    collect("Tabletop-v0", 24, out, policy="noise", seed=0, max_steps=80, progress=False)
    return out


@pytest.fixture(scope="session")
def tabletop_run(tabletop_data, tmp_path_factory):
    """An ensemble trained briefly on `tabletop_data`."""
    from wmkit.train import TrainConfig, train

    out = tmp_path_factory.mktemp("runs") / "ensemble"
    train(tabletop_data, out, "ensemble", TrainConfig(steps=1000, batch_size=64, log_every=100), progress=False)
    return out
