"""`World`: a Gymnasium env with physics parameters, ground-truth annotations and exact state.

Every wmkit world is a plain `gymnasium.Env` (five-tuple `step`) plus:

- `physics_space` and `reset(options={"physics": dict | split name})`; the values used are in `info`.
- `info["annotations"]`: the simulator's ground truth at that step (named bodies, contacts, events).
- `get_state()` / `set_state()`: a flat float64 vector that restores the simulator exactly.
- `state_from_obs(obs)`: the simulator state an observation stands for (used by the `oracle` model).
- `render_frame(camera, size)`: a uint8 frame from a named camera; never blank.

`MujocoWorld` implements the MuJoCo parts once; a concrete world supplies its model and task.
"""

from __future__ import annotations

import os
from abc import abstractmethod
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces

from wmkit.actions import choice
from wmkit.errors import WmkitError
from wmkit.worlds.physics import PhysicsSpace


class World(gym.Env):
    """Base of every wmkit world. Subclasses set the class attributes and implement the hooks."""

    world_id: str = ""
    physics_space: PhysicsSpace = PhysicsSpace()
    dt: float = 0.05  # control period in seconds (one `step`)
    default_max_steps: int = 1000
    cameras: tuple[str, ...] = ()
    events: tuple[str, ...] = ()  # names of the events this world annotates
    # events that can be read off one observation: name -> obs [..., D] (numpy or torch) -> bool [...];
    # what a safety filter checks in imagined futures
    state_events: dict = {}
    # where the task is a function of the action and the observation that follows: (action [..., A],
    # next_obs [..., D], torch) -> (reward [...], terminated [...] as 0/1); what a planner may score
    # imagined futures by instead of the model's reward and termination heads (PETS's known costs,
    # MBPO's termination functions). None where the reward needs more than that.
    known_task = None
    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(
        self,
        physics: None | str | dict = None,
        render_size: int = 64,
        render_mode: str | None = None,
        camera: str | None = None,
        max_episode_steps: int | None = None,
    ):
        if render_mode not in (None, "rgb_array"):
            raise WmkitError(f"render_mode={render_mode!r} is not supported; use 'rgb_array' or None")
        if not isinstance(render_size, int) or not (8 <= render_size <= 1024):
            raise WmkitError(f"render_size={render_size!r} must be an int between 8 and 1024")
        if camera is not None and camera not in self.cameras:
            raise WmkitError(f"unknown camera {camera!r} for {self.world_id}; known: {', '.join(self.cameras)}")
        self.render_mode = render_mode
        self.render_size = render_size
        self.camera = camera or (self.cameras[0] if self.cameras else None)
        self.max_episode_steps = max_episode_steps or self.default_max_steps
        self.physics_request = physics
        self.physics_space.resolve(physics, np.random.default_rng(0))  # fail fast on a bad value or split
        self.physics: dict[str, float] = self.physics_space.defaults()
        self.elapsed_steps = 0
        self.metadata = {**self.metadata, "render_fps": int(round(1.0 / self.dt))}

    # ---- Gymnasium API -------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        options = options or {}
        request = options.get("physics", self.physics_request)
        self.physics = self.physics_space.resolve(request, self.np_random)
        self._apply_physics(self.physics)
        self._reset_sim(self.np_random)
        self.elapsed_steps = 0
        obs = self._observe()
        return obs, self._info(events=())

    def step(self, action):
        action = self.check_action(action)
        events = self._simulate(action)
        self.elapsed_steps += 1
        obs = self._observe()
        reward, terminated = self._task()
        truncated = (not terminated) and self.elapsed_steps >= self.max_episode_steps
        return obs, float(reward), bool(terminated), bool(truncated), self._info(events)

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        return self.render_frame(self.camera, self.render_size)

    # ---- wmkit extras --------------------------------------------------------------------------
    def check_action(self, action) -> np.ndarray:
        if isinstance(self.action_space, spaces.Discrete):  # a whole number in range, as Gymnasium's envs take
            if np.asarray(action).ndim != 0:
                raise WmkitError(f"action has shape {np.asarray(action).shape}; {self.world_id} takes one integer "
                                 f"choice (wmkit.actions.decode turns a one-hot vector into it)")
            return np.asarray(int(self.action_space.start) + choice(self.action_space, action))
        a = np.asarray(action, dtype=np.float64)
        shape = self.action_space.shape
        if a.shape != shape:
            raise WmkitError(f"action has shape {a.shape}, {self.world_id} expects {shape}")
        if not np.all(np.isfinite(a)):
            raise WmkitError(f"action {a.tolist()} contains NaN or inf; pass finite values")
        return a

    def set_physics(self, values: dict) -> None:
        """Apply explicit physics values now (validated), as `reset` would; the simulator state is kept."""
        self.physics = self.physics_space.validate(values)
        self._apply_physics(self.physics)

    annotate: bool = True
    """build `info["annotations"]` (bodies, contacts) at each step; a twin that never reads them turns it off"""

    def _info(self, events) -> dict:
        notes = self._annotations() if self.annotate else {}
        return {"physics": dict(self.physics), "annotations": {**notes, "events": list(events)}}

    # ---- hooks for concrete worlds -------------------------------------------------------------
    @abstractmethod
    def _apply_physics(self, values: dict[str, float]) -> None: ...

    @abstractmethod
    def _reset_sim(self, rng: np.random.Generator) -> None: ...

    @abstractmethod
    def _simulate(self, action: np.ndarray) -> tuple[str, ...]:
        """Advance one control period; return the names of events that fired."""

    @abstractmethod
    def _observe(self) -> np.ndarray: ...

    @abstractmethod
    def _task(self) -> tuple[float, bool]:
        """(reward, terminated) for the step just taken."""

    def _annotations(self) -> dict:
        return {}

    @abstractmethod
    def get_state(self) -> np.ndarray: ...

    @abstractmethod
    def set_state(self, state: np.ndarray) -> None: ...

    def state_from_obs(self, obs: np.ndarray) -> np.ndarray:
        raise WmkitError(f"{self.world_id} cannot rebuild its simulator state from an observation")

    @abstractmethod
    def render_frame(self, camera: str | None = None, size: int | None = None) -> np.ndarray: ...


class MujocoWorld(World):
    """A world simulated by MuJoCo: exact state, scaled physics, annotations and fast rendering."""

    frame_skip: int = 1
    annotated_bodies: tuple[str, ...] = ()  # bodies whose position and velocity go in annotations
    batch_simulation: bool = False
    push_bodies: tuple[str, ...] = ()  # bodies an external push may act on (`step_with_push`), e.g. ("cup",)
    push_force: float = 0.0  # newtons: a push strong enough to change what happens, not to fling things away
    """True where the world implements `_observe_batch` and `_task_batch`, so `simulate_batch` can run
    many copies of it at once in MuJoCo's threaded C rollout, exactly as `step` would"""

    def _init_mujoco(self, model: mujoco.MjModel, data: mujoco.MjData) -> None:
        self.model, self.data = model, data
        self._nominal = {
            "body_mass": model.body_mass.copy(),
            "body_inertia": model.body_inertia.copy(),
            "dof_damping": model.dof_damping.copy(),
            "geom_friction": model.geom_friction.copy(),
            "pair_friction": model.pair_friction.copy(),
            "gravity": model.opt.gravity.copy(),
        }
        self._scratch = mujoco.MjData(model)  # for mj_setConst, which overwrites the data it is given
        self._state_spec = mujoco.mjtState.mjSTATE_INTEGRATION
        self._state_size = mujoco.mj_stateSize(model, self._state_spec)
        self._renderers: dict[int, mujoco.Renderer] = {}
        self._body_ids = {n: mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, n) for n in self.annotated_bodies}
        self._geom_names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_GEOM, g) or f"geom{g}" for g in range(model.ngeom)]

    # -- interventions from outside: a push
    def step_with_push(self, action, body: str, force) -> tuple:
        """`step(action)` with an external force [fx, fy, fz] (newtons, world frame) on `body` for that step."""
        if body not in self.push_bodies:
            known = ", ".join(self.push_bodies) or "none"
            raise WmkitError(f"{self.world_id} cannot push {body!r}; bodies that can be pushed: {known}")
        force = np.asarray(force, dtype=np.float64)
        if force.shape != (3,) or not np.all(np.isfinite(force)):
            raise WmkitError(f"push force {force.tolist()} must be 3 finite numbers (newtons, world frame)")
        i = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, body)
        self.data.xfrc_applied[i, :3] = force
        try:
            return self.step(action)
        finally:
            self.data.xfrc_applied[i, :3] = 0.0

    # -- many copies at once (the oracle's rollouts, planning, exact counterfactuals)
    def simulate_batch(self, states: np.ndarray, actions: np.ndarray) -> dict[str, np.ndarray]:
        """From exact states [N, S] (`get_state`), run actions [N, H, A]: what N x H calls of `step` would give.

        Returns `obs` [N, H, D], `reward` [N, H] and `terminated` [N, H] (stepping goes on past a
        termination, as the physics does), computed in MuJoCo's threaded rollout with the current
        physics values; this world's own data is left untouched.
        """
        if not self.batch_simulation:
            raise WmkitError(f"{self.world_id} does not support batched simulation; step it one copy at a time")
        from mujoco import rollout

        m = self.model
        states = np.asarray(states, dtype=np.float64)
        actions = np.asarray(actions, dtype=np.float64)
        N, H = actions.shape[:2]
        if states.shape != (N, self._state_size):
            raise WmkitError(f"states have shape {states.shape}; expected ({N}, {self._state_size})")
        full = mujoco.mjtState.mjSTATE_FULLPHYSICS
        if not hasattr(self, "_batch_data"):
            self._batch_data = mujoco.MjData(m)
            self._threads = [mujoco.MjData(m) for _ in range(max(1, min(os.cpu_count() or 1, 8)))]
        d = self._batch_data
        init = np.empty((N, mujoco.mj_stateSize(m, full)))
        warm = np.empty((N, m.nv))
        for i in range(N):
            mujoco.mj_setState(m, d, states[i], self._state_spec)
            mujoco.mj_getState(m, d, init[i], full)
            warm[i] = d.qacc_warmstart
        fs = self.frame_skip
        ctrl = np.repeat(self._ctrl_from_action(actions), fs, axis=1)
        traj, sensors = rollout.rollout(m, self._threads, init, ctrl, initial_warmstart=warm)
        ends = traj[:, fs - 1::fs]  # [N, H, nstate]: the state after each control period
        per_step = sensors.reshape(N, H, fs, -1)
        nq, nv = m.nq, m.nv
        qpos, qvel = ends[..., 1:1 + nq], ends[..., 1 + nq:1 + nq + nv]  # FULLPHYSICS: time, qpos, qvel, ...
        obs = self._observe_batch(qpos, qvel, ends[..., 0])
        reward, terminated = self._task_batch(qpos, qvel, per_step)
        return {"obs": obs, "reward": reward, "terminated": terminated}

    def _ctrl_from_action(self, actions: np.ndarray) -> np.ndarray:
        """Controls [N, H, nu] for actions [N, H, A] (identity where the action is the control)."""
        return actions

    def _observe_batch(self, qpos: np.ndarray, qvel: np.ndarray, time: np.ndarray) -> np.ndarray:
        """Observations [N, H, D] from positions and velocities [N, H, nq|nv] and simulation time [N, H]."""
        raise NotImplementedError

    def _task_batch(self, qpos: np.ndarray, qvel: np.ndarray, sensors: np.ndarray):
        """(reward [N, H], terminated [N, H]) from the states reached and each step's substep sensors [N, H, fs, ns]."""
        raise NotImplementedError

    # -- physics scales shared by MuJoCo worlds
    def _scale_physics(self, mass=1.0, damping=1.0, friction=1.0, gravity=9.81, bodies=None) -> None:
        """Scale masses (of `bodies`, default all), joint damping and friction from their nominal values;
        set gravity's magnitude, keeping its nominal direction (a model without gravity keeps none)."""
        m, nom = self.model, self._nominal
        ids = slice(None) if bodies is None else list(bodies)
        m.body_mass[:] = nom["body_mass"]
        m.body_inertia[:] = nom["body_inertia"]
        m.body_mass[ids] = nom["body_mass"][ids] * mass  # the world body (0) has mass 0: unchanged
        m.body_inertia[ids] = nom["body_inertia"][ids] * mass
        m.dof_damping[:] = nom["dof_damping"] * damping
        m.geom_friction[:] = nom["geom_friction"] * friction
        m.pair_friction[:] = nom["pair_friction"] * friction  # explicit <pair> contacts ignore geom_friction
        g = np.linalg.norm(nom["gravity"])
        m.opt.gravity[:] = nom["gravity"] * (gravity / g if g > 0 else 1.0)
        self._update_constants()

    def _update_constants(self) -> None:
        """Recompute the model constants MuJoCo derives from masses at compile time; call after changing masses.

        They include the inverse weights that set contact softness: left at their compiled values, a body
        made several times heavier can sink through what it rests on or blow up. At the compiled
        values they come back unchanged, bit for bit.
        """
        mujoco.mj_setConst(self.model, self._scratch)

    # -- exact state
    def get_state(self) -> np.ndarray:
        state = np.empty(self._state_size, dtype=np.float64)
        mujoco.mj_getState(self.model, self.data, state, self._state_spec)
        return state

    def set_state(self, state: np.ndarray) -> None:
        state = np.asarray(state, dtype=np.float64)
        if state.shape != (self._state_size,):
            raise WmkitError(f"state has shape {state.shape}, {self.world_id} expects ({self._state_size},)")
        mujoco.mj_setState(self.model, self.data, state, self._state_spec)
        mujoco.mj_forward(self.model, self.data)

    # -- annotations from the simulator's ground truth
    def _annotations(self) -> dict:
        d, m = self.data, self.model
        bodies = {}
        vel = np.zeros(6)
        for name, i in self._body_ids.items():
            mujoco.mj_objectVelocity(m, d, mujoco.mjtObj.mjOBJ_BODY, i, vel, 0)
            bodies[name] = {"pos": d.xpos[i].tolist(), "vel": vel[3:].tolist()}
        names = self._geom_names  # the contact array's geom pairs, read at once (its per-contact views are slow)
        contacts = [[names[g1], names[g2]] for g1, g2 in d.contact.geom[: d.ncon].tolist()]
        return {"bodies": bodies, "contacts": contacts}

    # -- rendering: shadows, reflections and multisampling off (about 30x faster on CPU)
    def _renderer(self, size: int) -> mujoco.Renderer:
        if size not in self._renderers:
            self.model.vis.quality.offsamples = 0
            self.model.vis.global_.offwidth = max(self.model.vis.global_.offwidth, size)
            self.model.vis.global_.offheight = max(self.model.vis.global_.offheight, size)
            r = mujoco.Renderer(self.model, size, size)
            r.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
            r.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
            self._renderers[size] = r
        return self._renderers[size]

    def render_frame(self, camera: str | None = None, size: int | None = None) -> np.ndarray:
        camera = camera or self.camera
        if camera is not None and camera not in self.cameras:
            raise WmkitError(f"unknown camera {camera!r} for {self.world_id}; known: {', '.join(self.cameras)}")
        r = self._renderer(size or self.render_size)
        r.update_scene(self.data, camera=self._camera_arg(camera))
        return r.render().copy()

    def _camera_arg(self, camera: str | None):
        """What `Renderer.update_scene` takes for this camera name (a name, an id or an MjvCamera)."""
        return camera if camera is not None else -1

    def close(self):
        for r in self._renderers.values():
            r.close()
        self._renderers.clear()


def simulate_rows(world, states: np.ndarray, physics: list[dict], actions: np.ndarray) -> dict[str, np.ndarray]:
    """Each row stepped from its exact state [N, S] with its own physics through actions [N, H, A].

    Returns `obs` [N, H, D], `reward` [N, H] and `terminated` [N, H], what `step` would give (stepping
    goes on past terminations). Rows that share physics run at once through `simulate_batch` where the
    world supports it (MuJoCo's threaded rollout), else one by one through `step`.
    """
    N, H = actions.shape[:2]
    actions = np.asarray(actions).astype(world.action_space.dtype)
    obs = np.empty((N, H, *world.observation_space.shape))
    reward, terminated = np.empty((N, H)), np.zeros((N, H), dtype=bool)
    groups: dict[tuple, list[int]] = {}
    for i, p in enumerate(physics):
        groups.setdefault(tuple(sorted(p.items())), []).append(i)
    for key, idx in groups.items():
        values = world.physics_space.validate(dict(key))
        if values != world.physics:  # applying physics recomputes model constants: only when they change
            world.set_physics(values)
        if getattr(world, "batch_simulation", False):
            out = world.simulate_batch(states[idx], actions[idx])
            obs[idx], reward[idx], terminated[idx] = out["obs"], out["reward"], out["terminated"]
            continue
        for i in idx:
            world.set_state(states[i])
            for t in range(H):
                obs[i, t], reward[i, t], terminated[i, t], *_ = world.step(actions[i, t])
    return {"obs": obs, "reward": reward, "terminated": terminated}
