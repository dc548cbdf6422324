"""`DreamEnv`: a Gymnasium env whose dynamics are a world model, so any off-the-shelf agent can learn
inside the model instead of the real world (the "dream" of Ha and Schmidhuber's World Models, the
imagination of Dreamer).

`reset` starts from a real moment: a random step of a training episode of `starts` (a `Dataset`),
observed with the context the model needs, or, without a dataset, the true world's own seeded reset.
`step` imagines one step: the observation is the model's predicted state vector, the reward its
predicted reward, and the episode ends when the model's predicted chance of termination passes
`terminate_above`; it is truncated after `max_episode_steps`. Only the WorldModel verbs are used.
A model of a world with discrete actions gets a `Discrete` action space (the model reads one-hot vectors).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from wmkit.actions import encode as encode_action
from wmkit.errors import WmkitError


class DreamEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, model, starts=None, *, max_episode_steps: int = 200, terminate_above: float = 0.5):
        spec = model.spec
        if "reward" not in spec.predicts:
            raise WmkitError(f"DreamEnv needs a model with a reward head; the {model.family!r} model predicts no "
                             f"reward (train e.g. an ensemble, which predicts reward and termination)")
        if "state" not in spec.decodes:
            raise WmkitError(f"DreamEnv gives state-vector observations; the {model.family!r} model does not "
                             f"decode them")
        if not (isinstance(max_episode_steps, int) and max_episode_steps >= 1):
            raise WmkitError(f"max_episode_steps={max_episode_steps!r} must be a positive integer")
        if not (0 < terminate_above <= 1):
            raise WmkitError(f"terminate_above={terminate_above!r} must be in (0, 1]")
        if starts is not None and (starts.meta.obs_dim, starts.meta.action_dim) != (spec.obs_dim, spec.action_dim):
            raise WmkitError(f"the start dataset ({starts.world}, obs {starts.meta.obs_dim}) does not match the "
                             f"model ({spec.world}, obs {spec.obs_dim})")
        self.model = model.eval()
        self.max_episode_steps = max_episode_steps
        self.terminate_above = terminate_above
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(spec.obs_dim,), dtype=np.float32)
        if spec.action_kind == "discrete":  # the agent picks a choice; the model reads its one-hot vector
            self.action_space = spaces.Discrete(spec.action_dim)
        else:
            self.action_space = spaces.Box(np.asarray(spec.action_low, dtype=np.float32),
                                           np.asarray(spec.action_high, dtype=np.float32), dtype=np.float32)
        self._episodes = None
        if starts is not None:
            self._episodes = [e for e in (starts.split("train") or starts.episodes) if len(e) >= spec.context]
            if not self._episodes:
                raise WmkitError(f"no episode of the start dataset has the {spec.context} steps the model observes")
        self._world = None
        self._state = None
        self._t = 0

    def _start(self) -> tuple[np.ndarray, np.ndarray]:
        """A context (obs [C, D], actions [C - 1, A]) to begin from."""
        C = max(self.model.spec.context, 1)
        if self._episodes is not None:
            ep = self._episodes[int(self.np_random.integers(len(self._episodes)))]
            t = int(self.np_random.integers(C - 1, len(ep.obs)))
            return ep.obs[t - C + 1:t + 1], ep.actions[t - C + 1:t]
        if C > 1:
            raise WmkitError(f"the model observes {C} steps before it can predict; give DreamEnv a dataset of starts")
        if self._world is None:
            from wmkit.worlds import make

            self._world = make(self.model.spec.world)
        obs, _ = self._world.reset(seed=int(self.np_random.integers(2**31 - 1)))
        return np.asarray(obs)[None], np.zeros((0, self.model.spec.action_dim))

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        obs, actions = self._start()
        dev = self.model.device
        with torch.no_grad():
            self._state = self.model.observe(torch.as_tensor(obs, dtype=torch.float32, device=dev)[None],
                                             torch.as_tensor(actions, dtype=torch.float32, device=dev)[None])
        self._t = 0
        return np.array(obs[-1], dtype=np.float32), {}  # a copy: the caller may write into it

    def step(self, action):
        if self._state is None:
            raise WmkitError("call reset() before step()")
        if isinstance(self.action_space, spaces.Discrete):
            a = encode_action(self.action_space, action)
        else:
            a = np.asarray(action, dtype=np.float32)
            if a.shape != self.action_space.shape or not np.all(np.isfinite(a)):
                raise WmkitError(f"action {a.tolist()} must be {self.action_space.shape[0]} finite numbers")
            a = np.clip(a, self.action_space.low, self.action_space.high)
        with torch.no_grad():
            self._state, pred = self.model.step(self._state, torch.as_tensor(a, device=self.model.device)[None])
        self._t += 1
        obs = pred.obs[0].float().cpu().numpy()
        reward = float(pred.reward[0])
        terminated = pred.terminated is not None and float(pred.terminated[0]) > self.terminate_above
        truncated = self._t >= self.max_episode_steps
        return obs, reward, bool(terminated), bool(truncated), {}

    def close(self):
        if self._world is not None:
            self._world.close()
            self._world = None
