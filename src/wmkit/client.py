"""`wmkit.client.connect(url)`: a remote session as a Gymnasium env, for agents.

    >>> env = wmkit.client.connect("http://127.0.0.1:8765")      # `wmkit serve RUN` runs the server
    >>> obs, info = env.reset(seed=0)
    >>> obs, reward, terminated, truncated, info = env.step(env.action_space.sample())

Each `reset` opens a fresh session on the server (closing the previous one); `step` sends the
action over the session's WebSocket and returns the model's imagined observation and reward.
`terminated` is the model's termination probability above 0.5; `info` carries the twin's
observation, the divergence, the uncertainty and the server-side latency. `close()` ends the session.
"""

from __future__ import annotations

import json
from contextlib import ExitStack

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from wmkit.errors import WmkitError


class RemoteWorldEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, url: str, token: str | None = None, max_episode_steps: int = 1000, timeout: float = 30.0):
        import httpx

        self.url = url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.token = token
        self.http = httpx.Client(base_url=self.url, headers=self.headers, timeout=timeout)
        self.timeout = timeout
        try:
            info = self._check(self.http.get("/api/info"))
        except httpx.HTTPError as e:
            raise WmkitError(f"no wmkit server at {self.url} ({e}); start one with `wmkit serve RUN`") from None
        self.info = info
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(info["obs_dim"],), dtype=np.float64)
        self.action_space = spaces.Box(np.array(info["action_low"], dtype=np.float32),
                                       np.array(info["action_high"], dtype=np.float32), dtype=np.float32)
        self.max_episode_steps = max_episode_steps
        self.sid, self.ws, self.t = None, None, 0

    def _check(self, response):
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail")
            except ValueError:
                detail = response.text
            raise WmkitError(f"server said {response.status_code}: {detail}")
        return response.json() if response.content else None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._close_session()
        body = {"seed": int(seed if seed is not None else self.np_random.integers(2**31 - 1))}
        if options and "physics" in options:
            body["physics"] = options["physics"]
        s = self._check(self.http.post("/api/sessions", json=body))
        from websockets.sync.client import connect

        self.sid, self.t = s["id"], 0
        ws_url = self.url.replace("http", "ws", 1) + f"/ws/sessions/{self.sid}"
        self._stack = ExitStack()  # the WebSocket lives until the next reset or close
        self.ws = self._stack.enter_context(
            connect(ws_url + (f"?token={self.token}" if self.token else ""), open_timeout=self.timeout))
        return np.asarray(s["obs"], dtype=np.float64), {"session": self.sid, "twin_obs": s["twin_obs"]}

    def step(self, action):
        if self.ws is None:
            raise WmkitError("call reset() before step()")
        a = np.asarray(action, dtype=np.float64).reshape(-1).tolist()
        self.ws.send(json.dumps({"op": "step", "action": a}))
        r = json.loads(self.ws.recv(timeout=self.timeout))
        if "error" in r:
            raise WmkitError(f"server refused the step: {r['error']}")
        self.t = r["t"]
        terminated = r["terminated"] is not None and r["terminated"] > 0.5
        truncated = not terminated and self.t >= self.max_episode_steps
        info = {k: r[k] for k in ("twin_obs", "twin_reward", "divergence", "uncertainty", "latency_ms")}
        return np.asarray(r["obs"], dtype=np.float64), float(r["reward"] or 0.0), terminated, truncated, info

    def _close_session(self):
        if self.ws is not None:
            self._stack.close()
            self.ws = None
        if self.sid is not None:
            self.http.delete(f"/api/sessions/{self.sid}")
            self.sid = None

    def close(self):
        self._close_session()
        self.http.close()


def connect(url: str, token: str | None = None, **kwargs) -> RemoteWorldEnv:
    """A Gymnasium env backed by a session on the wmkit server at `url`."""
    return RemoteWorldEnv(url, token=token, **kwargs)
