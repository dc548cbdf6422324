"""Filmstrips: true frames beside frames rendered from a model's predicted states.

A state-vector model has no decoder of its own; its predicted observation is turned back into a
simulator state (`World.state_from_obs`) and rendered by MuJoCo, so a person sees what it imagined.
"""

from __future__ import annotations

import numpy as np
import torch

from wmkit.errors import WmkitError


def pick_falling_episode(episodes, min_len: int) -> int | None:
    """Index of the first episode that ends with the cup on the floor (terminated) and is long enough."""
    for i, e in enumerate(episodes):
        if len(e) >= min_len and bool(e.terminated[-1]):
            return i
    return None


@torch.no_grad()
def filmstrip(model, episode, env, start: int, horizon: int, every: int = 4, camera: str | None = None,
              size: int = 96) -> tuple[np.ndarray, list[int]]:
    """Two rows of frames (truth over imagination) from `start` for `horizon` steps, one every `every`.

    Returns the image and the steps (after `start`) that its columns show.
    """
    if episode.sim_state is None:
        raise WmkitError("the episode has no simulator states stored; collect it with a restorable world")
    horizon = min(horizon, len(episode) - start)
    obs = torch.as_tensor(episode.obs[None, start: start + 1])
    acts = torch.as_tensor(episode.actions[None, start: start + horizon])
    state = model.observe(obs, torch.zeros(1, 0, acts.shape[-1]), physics=[episode.physics],
                          sim_state=torch.as_tensor(episode.sim_state[start: start + 1]))
    pred = model.rollout(state, acts).obs[0].cpu().numpy()  # [H, D]
    steps = list(range(every, horizon + 1, every)) or [horizon]
    if steps[-1] != horizon:
        steps.append(horizon)
    truth_row, model_row = [], []
    for k in steps:
        env.set_state(episode.sim_state[start + k])
        truth_row.append(env.render_frame(camera, size))
        env.set_state(env.state_from_obs(pred[k - 1]))
        model_row.append(env.render_frame(camera, size))
    gap = np.full((size, 2, 3), 255, np.uint8)
    row = lambda frames: np.concatenate(sum(([f, gap] for f in frames), [])[:-1], axis=1)  # noqa: E731
    sep = np.full((4, row(truth_row).shape[1], 3), 255, np.uint8)
    return np.concatenate([row(truth_row), sep, row(model_row)], axis=0), steps
