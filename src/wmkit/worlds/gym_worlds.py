"""Gymnasium worlds: InvertedPendulum, Reacher and HalfCheetah (MuJoCo v5), Pendulum-v1 and any `gym:<id>`.

Each world wraps one unwrapped Gymnasium env (no wrappers) and keeps its action space, reward,
termination, reset distribution and episode length. wmkit adds, on top:

- physics parameters: for MuJoCo envs `mass_scale`, `damping_scale`, `friction_scale` and `gravity`,
  with the CaDM splits (train 0.75-1.25, ood 0.2-0.5 and 1.5-1.8 on mass and damping); for Pendulum
  its `gravity`, `mass` and `length`;
- exact state (`get_state`/`set_state`) and `state_from_obs` for the named worlds;
- annotations (named bodies, contacts) and fast square frames from a named camera.

Observations are float64 and always a function of the simulator's current state: after each step
MuJoCo's derived quantities (body positions, contacts) are brought up to date, so frames, annotations
and observations agree. Gymnasium's Reacher computes its fingertip-to-target vector one physics
substep stale; here it is current, which is what lets `state_from_obs` round-trip exactly.
`GymWorld` wraps any other Gymnasium id; a non-MuJoCo env has no physics parameters and no state.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces

from wmkit.errors import WmkitError
from wmkit.worlds.base import MujocoWorld, World
from wmkit.worlds.physics import PhysicsParam, PhysicsSpace, scale_splits

MUJOCO_SCALES = PhysicsSpace(
    params=(
        PhysicsParam("mass_scale", 1.0, 0.1, 3.0, "multiplies the mass and inertia of every body"),
        PhysicsParam("damping_scale", 1.0, 0.1, 3.0, "multiplies the damping of every joint"),
        PhysicsParam("friction_scale", 1.0, 0.1, 3.0, "multiplies the friction of every contact"),
        PhysicsParam("gravity", 9.81, 1.0, 20.0, "gravitational acceleration, m/s^2"),
    ),
    splits=scale_splits(("mass_scale", "damping_scale"), combo=("mass_scale", "friction_scale")),
)


def make_gym_env(gym_id: str, **kwargs) -> gym.Env:
    """The unwrapped Gymnasium env for `gym_id`; a `WmkitError` naming the id if Gymnasium has none."""
    if not isinstance(gym_id, str) or not gym_id:
        raise WmkitError(f"Gymnasium id must be a non-empty string such as 'Hopper-v5', got {gym_id!r}")
    try:
        return gym.make(gym_id, **kwargs).unwrapped
    except (gym.error.NameNotFound, gym.error.VersionNotFound, gym.error.NamespaceNotFound) as e:
        raise WmkitError(f"unknown Gymnasium id {gym_id!r}: {e} (list ids with gymnasium.pprint_registry())") from None
    except gym.error.Error as e:
        raise WmkitError(f"cannot make Gymnasium env {gym_id!r}: {e}") from None


def _float64_space(space: spaces.Space) -> spaces.Space:
    """A Box as float64 with the same bounds; any other space unchanged."""
    if isinstance(space, spaces.Box):
        return spaces.Box(space.low.astype(np.float64), space.high.astype(np.float64), dtype=np.float64)
    return space


def _inner_action(space: spaces.Space, action: np.ndarray):
    """A checked float64 action in the form the wrapped env expects (its dtype; an int for Discrete)."""
    if isinstance(space, spaces.Discrete):
        return int(action)
    return action.astype(space.dtype)


@dataclass(frozen=True)
class FreeCamera:
    """A camera the model does not define: looks at `lookat`, or follows `track_body`, from a distance."""

    lookat: tuple[float, float, float] = (0.0, 0.0, 0.0)
    distance: float = 2.0
    azimuth: float = 90.0  # degrees; 90 looks along +y, so +x is to the right
    elevation: float = -20.0  # degrees; -90 looks straight down
    track_body: str | None = None

    def build(self, model: mujoco.MjModel) -> mujoco.MjvCamera:
        cam = mujoco.MjvCamera()
        if self.track_body is None:
            cam.type = mujoco.mjtCamera.mjCAMERA_FREE
        else:
            cam.type = mujoco.mjtCamera.mjCAMERA_TRACKING
            cam.trackbodyid = model.body(self.track_body).id
        cam.lookat[:] = self.lookat
        cam.distance, cam.azimuth, cam.elevation = self.distance, self.azimuth, self.elevation
        return cam


class GymMujocoWorld(MujocoWorld):
    """A Gymnasium MuJoCo env as a wmkit world: its model and data are simulated and read in place.

    A subclass names `gym_id` and states the env's `dt`, `frame_skip` and `default_max_steps` (checked
    against Gymnasium when built: behaviour never changes under an id), plus cameras and bodies.
    """

    gym_id: str = ""
    physics_space = MUJOCO_SCALES
    free_cameras: dict[str, FreeCamera] = {}  # cameras in `cameras` that the model does not define
    obs_constant_in_episode: tuple[int, ...] = ()  # observation elements fixed within an episode

    def __init__(self, **kwargs):
        gym_env = self._make_gym_env()
        super().__init__(**kwargs)
        self._wrap(gym_env)

    def _make_gym_env(self) -> gym.Env:
        env = make_gym_env(self.gym_id)
        found = (env.dt, env.frame_skip, gym.spec(self.gym_id).max_episode_steps)
        expected = (self.dt, self.frame_skip, self.default_max_steps)
        if not math.isclose(found[0], expected[0]) or found[1:] != expected[1:]:
            raise RuntimeError(f"Gymnasium's {self.gym_id} has (dt, frame_skip, max steps) = {found}, but "
                               f"{self.world_id} was written for {expected}; this Gymnasium version changed "
                               f"the env, so wmkit must give it a new id")
        return env

    def _wrap(self, gym_env: gym.Env) -> None:
        self.gym_env = gym_env
        self._init_mujoco(gym_env.model, gym_env.data)
        self._mjv_cameras = {name: cam.build(self.model) for name, cam in self.free_cameras.items()}
        self.observation_space = _float64_space(gym_env.observation_space)
        self.action_space = gym_env.action_space
        self._reward, self._terminated = 0.0, False

    # ---- World hooks ---------------------------------------------------------------------------
    def _apply_physics(self, v):
        self._scale_physics(mass=v["mass_scale"], damping=v["damping_scale"],
                            friction=v["friction_scale"], gravity=v["gravity"])

    def _reset_sim(self, rng):
        self.gym_env.reset(seed=int(rng.integers(2**31 - 1)))  # the env's own reset distribution
        self._reward, self._terminated = 0.0, False

    def _simulate(self, action):
        _, reward, terminated, _, _ = self.gym_env.step(_inner_action(self.gym_env.action_space, action))
        self._reward, self._terminated = float(reward), bool(terminated)
        self._refresh()
        return ()

    def _refresh(self) -> None:
        """Bring derived quantities (positions, contacts, external forces) up to the current state.

        mj_step leaves them one substep behind; recomputing them does not change the trajectory,
        since the next mj_step recomputes them from the same state.
        """
        mujoco.mj_forward(self.model, self.data)
        mujoco.mj_rnePostConstraint(self.model, self.data)

    def _observe(self):
        return np.array(self.gym_env._get_obs(), dtype=np.float64)

    def _task(self):
        return self._reward, self._terminated

    # ---- exact state -----------------------------------------------------------------------------
    def set_state(self, state):
        super().set_state(state)
        mujoco.mj_rnePostConstraint(self.model, self.data)

    def _state_from_qpos_qvel(self, qpos, qvel) -> np.ndarray:
        """Put the simulator at (qpos, qvel), at rest otherwise (time 0, no control); return its state."""
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[:] = qpos
        self.data.qvel[:] = qvel
        self._refresh()
        return self.get_state()

    def _check_obs(self, obs) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float64)
        expected = self.observation_space.shape
        if obs.shape != expected:
            raise WmkitError(f"observation has shape {obs.shape}, {self.world_id} expects {expected}")
        return obs

    # ---- rendering -----------------------------------------------------------------------------
    def _camera_arg(self, camera):
        if camera in self._mjv_cameras:
            return self._mjv_cameras[camera]
        return super()._camera_arg(camera)

    def close(self):
        super().close()
        self.gym_env.close()


class InvertedPendulum(GymMujocoWorld):
    """InvertedPendulum-v5: push a cart (action: force, [-3, 3]) to keep a pole upright.

    Observation (4): cart position, pole angle, their velocities (MuJoCo's qpos, qvel).
    Terminates when the pole tilts past 0.2 rad. The model has no contacts: `friction_scale` does nothing.
    """

    world_id = "InvertedPendulum-v5"
    gym_id = "InvertedPendulum-v5"
    dt = 0.04
    frame_skip = 2
    default_max_steps = 1000
    cameras = ("side",)
    free_cameras = {"side": FreeCamera(lookat=(0.0, 0.0, 0.15), distance=2.4, azimuth=90.0, elevation=-10.0)}
    annotated_bodies = ("cart", "pole")

    @staticmethod
    def known_task(action, next_obs):
        """Gymnasium's v5 task: +1 for every step that does not end it; it ends past 0.2 rad (or on a
        non-finite state)."""
        import torch

        ended = (next_obs[..., 1].abs() > 0.2) | ~torch.isfinite(next_obs).all(-1)
        return (~ended).float(), ended.float()

    def state_from_obs(self, obs):
        obs = self._check_obs(obs)
        return self._state_from_qpos_qvel(obs[:2], obs[2:])


class Reacher(GymMujocoWorld):
    """Reacher-v5: a two-link planar arm (action: two joint torques, [-1, 1]) reaches a random target.

    Observation (10): cos and sin of the two joint angles (4) | target x, y (2) | joint velocities (2) |
    fingertip minus target, x and y (2). The target is fixed within an episode. The arm lies in the
    horizontal plane and has no contacts: `gravity` and `friction_scale` do nothing. Episodes: 50 steps.
    """

    world_id = "Reacher-v5"
    gym_id = "Reacher-v5"
    dt = 0.02
    frame_skip = 2
    default_max_steps = 50
    cameras = ("top",)
    free_cameras = {"top": FreeCamera(lookat=(0.0, 0.0, 0.0), distance=0.85, azimuth=90.0, elevation=-90.0)}
    annotated_bodies = ("body0", "body1", "fingertip", "target")
    obs_constant_in_episode = (4, 5)

    @staticmethod
    def known_task(action, next_obs):
        """Gymnasium's v5 reward: minus the fingertip's distance to the target after the step (the observation's
        last two values), minus the squared torques; it never ends early. Within 0.005 of step()'s reward (on
        average 2e-5): Gymnasium reads the fingertip at a physics substep that now and then differs from the
        returned observation's."""
        reward = -next_obs[..., 8:10].norm(dim=-1) - action.square().sum(-1)
        return reward, reward.new_zeros(reward.shape)

    def state_from_obs(self, obs):
        obs = self._check_obs(obs)
        qpos = np.concatenate([np.arctan2(obs[2:4], obs[0:2]), obs[4:6]])  # joint angles, target x, y
        qvel = np.concatenate([obs[6:8], np.zeros(2)])  # the target does not move
        return self._state_from_qpos_qvel(qpos, qvel)


class HalfCheetah(GymMujocoWorld):
    """HalfCheetah-v5: a planar cheetah (action: six joint torques, [-1, 1]) is rewarded for running forward.

    Observation (17): qpos without the root's x position (8) | qvel (9). The dynamics do not depend on x,
    so `state_from_obs` puts the root at x = 0. The camera follows the torso.
    """

    world_id = "HalfCheetah-v5"
    gym_id = "HalfCheetah-v5"
    dt = 0.05
    frame_skip = 5
    default_max_steps = 1000
    cameras = ("track",)  # the model's camera, which follows the torso from the side
    annotated_bodies = ("torso", "bthigh", "bshin", "bfoot", "fthigh", "fshin", "ffoot")

    @staticmethod
    def known_task(action, next_obs):
        """Gymnasium's v5 reward as PETS scores it: the torso's forward velocity after the step (observation
        index 8) minus 0.1 times the squared torques; it never ends. Gymnasium rewards the mean velocity over
        the step's five substeps instead, so one step's reward is off by about 0.28 RMS under uniform random
        actions, but the errors do not add up: over 200-step random episodes the two sums differ by less
        than 1."""
        reward = next_obs[..., 8] - 0.1 * action.square().sum(-1)
        return reward, reward.new_zeros(reward.shape)

    def state_from_obs(self, obs):
        obs = self._check_obs(obs)
        return self._state_from_qpos_qvel(np.concatenate([[0.0], obs[:8]]), obs[8:])


class Pendulum(World):
    """Pendulum-v1 (classic control): swing a pendulum up with a torque in [-2, 2].

    Observation (3): cos(theta), sin(theta), angular velocity (theta = 0 is upright). The state is
    (theta, angular velocity): nothing else affects the future. Frames are drawn here with numpy
    (a red rod on a white background), so they need no display.
    """

    world_id = "Pendulum-v1"
    physics_space = PhysicsSpace(
        params=(
            PhysicsParam("gravity", 10.0, 1.0, 20.0, "gravitational acceleration, m/s^2"),
            PhysicsParam("mass", 1.0, 0.1, 5.0, "mass of the pendulum, kg"),
            PhysicsParam("length", 1.0, 0.2, 3.0, "length of the pendulum, m"),
        ),
        splits=scale_splits(("mass", "length"), combo=("mass", "length")),
    )
    dt = 0.05
    default_max_steps = 200
    cameras = ("front",)
    VIEW_HALF_WIDTH = 2.2  # metres from the pivot to the frame's edge, as in Gymnasium's own frames

    def __init__(self, **kwargs):
        self.gym_env = make_gym_env("Pendulum-v1")
        super().__init__(**kwargs)
        self.observation_space = _float64_space(self.gym_env.observation_space)
        self.action_space = self.gym_env.action_space
        self._reward = 0.0

    def _apply_physics(self, v):
        self.gym_env.g, self.gym_env.m, self.gym_env.l = v["gravity"], v["mass"], v["length"]

    def _reset_sim(self, rng):
        self.gym_env.reset(seed=int(rng.integers(2**31 - 1)))
        self._reward = 0.0

    def _simulate(self, action):
        _, reward, _, _, _ = self.gym_env.step(action.astype(self.action_space.dtype))
        self._reward = float(reward)
        return ()

    def _observe(self):
        theta, theta_dot = self.gym_env.state
        return np.array([np.cos(theta), np.sin(theta), theta_dot], dtype=np.float64)

    def _task(self):
        return self._reward, False

    def _annotations(self):
        theta, theta_dot = self.gym_env.state
        length = self.gym_env.l
        tip = [-length * np.sin(theta), 0.0, length * np.cos(theta)]  # x right, z up, pivot at 0
        tip_vel = [-length * np.cos(theta) * theta_dot, 0.0, -length * np.sin(theta) * theta_dot]
        return {"bodies": {"tip": {"pos": [float(x) for x in tip], "vel": [float(x) for x in tip_vel]}},
                "contacts": []}

    def get_state(self):
        return np.array(self.gym_env.state, dtype=np.float64)

    def set_state(self, state):
        state = np.asarray(state, dtype=np.float64)
        if state.shape != (2,) or not np.all(np.isfinite(state)):
            raise WmkitError(f"state {state.tolist()} must be 2 finite numbers: [theta, angular velocity]")
        self.gym_env.state = state.copy()

    def state_from_obs(self, obs):
        obs = np.asarray(obs, dtype=np.float64)
        if obs.shape != (3,):
            raise WmkitError(f"observation has shape {obs.shape}, {self.world_id} expects (3,)")
        state = np.array([np.arctan2(obs[1], obs[0]), obs[2]])
        self.set_state(state)
        return state

    def render_frame(self, camera=None, size=None):
        camera = camera or self.camera
        if camera not in self.cameras:
            raise WmkitError(f"unknown camera {camera!r} for {self.world_id}; known: {', '.join(self.cameras)}")
        size = size or self.render_size
        theta, length = float(self.gym_env.state[0]), float(self.gym_env.l)
        half, pixel = self.VIEW_HALF_WIDTH, 2 * self.VIEW_HALF_WIDTH / size
        centres = (np.arange(size) + 0.5) * pixel - half
        x, z = centres[None, :], -centres[:, None]  # (1, size), (size, 1): columns go right, rows go down
        tip_x, tip_z = -length * np.sin(theta), length * np.cos(theta)
        along = np.clip((x * tip_x + z * tip_z) / length**2, 0.0, 1.0)  # (size, size) nearest point on the rod
        to_rod = np.hypot(x - along * tip_x, z - along * tip_z)
        frame = np.full((size, size, 3), 255, dtype=np.uint8)
        frame[to_rod <= 0.1 + pixel / 2] = (204, 77, 77)  # rod 0.2 m wide, never under a pixel
        frame[np.hypot(x, z) <= 0.05 + pixel / 2] = (0, 0, 0)  # the pivot
        return frame

    def close(self):
        self.gym_env.close()


class GymWorld(GymMujocoWorld):
    """Any Gymnasium id, e.g. `wmkit.make("gym:Hopper-v5")`.

    A MuJoCo env (one with `model`, `data` and `_get_obs`, as every Gymnasium MuJoCo env has) gets the
    scale parameters, exact state, annotations and frames from the model's cameras plus a "free" one
    following the first body. Any other env keeps its own observations and frames, has no physics
    parameters, and `get_state` raises: it has no restorable state.
    """

    def __init__(self, gym_id: str, **kwargs):
        self.gym_id = gym_id
        self.world_id = f"gym:{gym_id}"
        super().__init__(**kwargs)

    def _make_gym_env(self):
        env = make_gym_env(self.gym_id)
        self.restorable = all(hasattr(env, a) for a in ("model", "data", "_get_obs"))
        self.default_max_steps = gym.spec(self.gym_id).max_episode_steps or 1000  # the registered limit
        if self.restorable:
            model = env.model
            self.physics_space = MUJOCO_SCALES
            self.dt, self.frame_skip = float(env.dt), int(env.frame_skip)
            self.annotated_bodies = tuple(model.body(i).name for i in range(1, model.nbody) if model.body(i).name)
            first_body = model.body(1).name if model.nbody > 1 and model.body(1).name else None
            self.free_cameras = {"free": FreeCamera(lookat=tuple(model.stat.center), distance=1.5 * model.stat.extent,
                                                    elevation=-15.0, track_body=first_body)}
            self.cameras = (*(model.camera(i).name for i in range(model.ncam) if model.camera(i).name), "free")
            return env
        self.physics_space = PhysicsSpace()
        self.dt = float(getattr(env, "dt", 0.0) or 1.0 / env.metadata.get("render_fps", 20))
        self.cameras = ()
        if "rgb_array" in env.metadata.get("render_modes", []):
            os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # pygame-drawn envs: render without a display
            env.close()
            env = make_gym_env(self.gym_id, render_mode="rgb_array")
            self.cameras = ("default",)
        return env

    def _wrap(self, gym_env):
        if self.restorable:
            return super()._wrap(gym_env)
        self.gym_env = gym_env
        self.observation_space = _float64_space(gym_env.observation_space)
        self.action_space = gym_env.action_space
        self._reward, self._terminated, self._obs = 0.0, False, None

    def _no_state(self) -> WmkitError:
        return WmkitError(f"{self.world_id} is not a MuJoCo env: it has no restorable state "
                          f"(exact state needs a MuJoCo world, e.g. gym:Hopper-v5)")

    def _apply_physics(self, v):
        if self.restorable:
            super()._apply_physics(v)

    def _reset_sim(self, rng):
        obs, _ = self.gym_env.reset(seed=int(rng.integers(2**31 - 1)))
        self._obs, self._reward, self._terminated = obs, 0.0, False

    def _simulate(self, action):
        if self.restorable:
            return super()._simulate(action)
        obs, reward, terminated, _, _ = self.gym_env.step(_inner_action(self.gym_env.action_space, action))
        self._obs, self._reward, self._terminated = obs, float(reward), bool(terminated)
        return ()

    def _observe(self):
        if self.restorable:
            return super()._observe()
        if isinstance(self.observation_space, spaces.Box):
            return np.array(self._obs, dtype=np.float64)
        return self._obs

    def _annotations(self):
        return super()._annotations() if self.restorable else {"bodies": {}, "contacts": []}

    def get_state(self):
        if not self.restorable:
            raise self._no_state()
        return super().get_state()

    def set_state(self, state):
        if not self.restorable:
            raise self._no_state()
        super().set_state(state)

    def render_frame(self, camera=None, size=None):
        if self.restorable:
            return super().render_frame(camera, size)
        if not self.cameras:
            raise WmkitError(f"{self.world_id} cannot render rgb_array frames")
        camera = camera or self.camera
        if camera not in self.cameras:
            raise WmkitError(f"unknown camera {camera!r} for {self.world_id}; known: {', '.join(self.cameras)}")
        return _square_frame(self.gym_env.render(), size or self.render_size)

    def close(self):
        if self.restorable:
            super().close()
        else:
            self.gym_env.close()


def _square_frame(frame: np.ndarray, size: int) -> np.ndarray:
    """`frame` (H, W, 3) resized to (size, size, 3) by averaging the source pixels under each output pixel."""
    frame = np.asarray(frame, dtype=np.float64)
    h, w = frame.shape[:2]
    # integral image with a zero row and column in front: (h + 1, w + 1, 3)
    total = np.pad(frame.cumsum(0).cumsum(1), ((1, 0), (1, 0), (0, 0)))
    rows = np.linspace(0, h, size + 1).round().astype(int)
    cols = np.linspace(0, w, size + 1).round().astype(int)
    r0, c0 = np.minimum(rows[:-1], h - 1), np.minimum(cols[:-1], w - 1)  # each output pixel reads at least
    r1, c1 = np.maximum(rows[1:], r0 + 1), np.maximum(cols[1:], c0 + 1)  # one source pixel (upscaling too)
    r0, r1, c0, c1 = r0[:, None], r1[:, None], c0[None, :], c1[None, :]  # (size, 1) rows, (1, size) columns
    sums = total[r1, c1] - total[r0, c1] - total[r1, c0] + total[r0, c0]  # (size, size, 3)
    area = ((r1 - r0) * (c1 - c0))[..., None]
    return np.clip(sums / area + 0.5, 0, 255).astype(np.uint8)
