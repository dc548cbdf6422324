"""Tabletop-v0, wmkit's embedded default world: push a cup across a table; past the edge it falls.

Physics (state, named parts) lives in `assets/tabletop.xml`; this file is the task: observation,
action, reward, termination, events and the physics parameters a user may change.

Observation (10): pusher x, y | cup position x, y, z | pusher velocity (2) | cup velocity (3). It is
MuJoCo's (qpos, qvel) exactly, so `state_from_obs` restores the simulator from an observation. The cup
slides and, as soon as its centre passes the edge, drops, but stays upright (it has no tipping
joints): a free cup rocks on its rim at every push, a chatter that no model can predict from 20 Hz
observations and that the task does not need. For the same reason its friction on the table is dry
friction on its slides, not at its contacts, and the pusher's face is slick (with friction, pushes
set the cup spinning in bursts no model can predict), so the cup never turns: it has no yaw joint.
Action (2): a force on the pusher in x and y, each in [-1, 1] times `pusher_strength` newtons.
The pusher (a flat puck riding just above the table top) hangs on a spring-loaded, damped gantry:
a constant force holds it at a point (full force: just past the table's edge), so the action sets
where it goes and how fast; it pushes the cup low, near its base.
Reward (the task: push the cup onto the green target spot without dropping it): minus the cup's
distance to the spot, minus 0.2 x the pusher's distance to the cup (so a planner with a short horizon
still knows to go to the cup first), and -5 when the cup hits the floor. `success()`: the cup rests
within 5 cm of the spot and never fell.
Termination: the cup hits the floor. Truncation: 200 steps (10 s at 20 Hz).
Cameras: `top` (the scene from high above), `side`, and `table` (straight down, framing the table:
pusher and cup are about 2.5 times as large as from `top`, which is what a pixel model needs).
"""

from __future__ import annotations

from importlib.resources import files

import mujoco
import numpy as np
from gymnasium import spaces

from wmkit.worlds.base import MujocoWorld
from wmkit.worlds.physics import PhysicsParam, PhysicsSpace, corner_splits

TABLE_HALF = 0.25  # metres, half the side of the square table top
PUSHER_RADIUS = 0.05  # metres, the pusher's radius in the table's plane (assets/tabletop.xml)
CUP_RADIUS = 0.045
PUSHER_RANGE = 0.3  # metres, the end of each of the pusher's rails (the slides' range in assets/tabletop.xml)
PUSHER_MASS, PUSHER_STIFFNESS, PUSHER_DAMPING = 0.5, 14.0, 8.0  # kg, N/m, N s/m: its body and slides (the xml)
PUSHER_STRENGTH = 5.0  # N at full action, the nominal pusher_strength
TARGET_XY = np.array([0.12, 0.12])
DROP_PENALTY = 5.0
REACH_WEIGHT = 0.2
SUCCESS_RADIUS = 0.05
OBS_DIM = 10  # qpos (pusher x, y; cup x, y, z) and qvel

_PHYSICS = PhysicsSpace(
    params=(
        PhysicsParam("cup_mass", 0.2, 0.02, 2.0, "mass of the cup, kg"),
        PhysicsParam("cup_friction", 0.25, 0.05, 2.0, "sliding friction coefficient of the cup"),
        PhysicsParam("table_friction", 0.25, 0.05, 2.0, "sliding friction coefficient of the table top"),
        PhysicsParam("pusher_strength", PUSHER_STRENGTH, 1.0, 20.0, "force of the pusher at full action, N"),
        PhysicsParam("gravity", 9.81, 1.0, 20.0, "gravitational acceleration, m/s^2"),
    ),
    splits={
        "train": ({"cup_mass": (0.15, 0.25), "cup_friction": (0.19, 0.31), "table_friction": (0.19, 0.31),
                   "pusher_strength": (4.0, 6.0), "gravity": (8.0, 11.0)},),
        "ood": ({"cup_mass": (0.04, 0.1), "cup_friction": (0.05, 0.125)},
                {"cup_mass": (0.3, 0.36), "cup_friction": (0.375, 0.45)}),
        **corner_splits("cup_mass", (0.1, 0.15), (0.3, 0.4), "cup_friction", (0.125, 0.175), (0.35, 0.45)),
    },
)


class Tabletop(MujocoWorld):
    world_id = "Tabletop-v0"
    physics_space = _PHYSICS
    frame_skip = 10
    dt = 0.05
    default_max_steps = 200
    cameras = ("top", "side", "table")
    events = ("pusher_touches_cup", "cup_leaves_table", "cup_hits_floor")
    state_events = {"cup_leaves_table": lambda obs: (abs(obs[..., 2:4]) > TABLE_HALF).any(-1)}
    annotated_bodies = ("pusher", "cup")
    batch_simulation = True
    push_bodies = ("cup",)
    push_force = 3.0  # N for one step (0.05 s): a 0.2 kg cup slides a few centimetres (friction holds ~0.5 N)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        xml = files("wmkit.worlds").joinpath("assets/tabletop.xml").read_text()
        model = mujoco.MjModel.from_xml_string(xml)
        self._init_mujoco(model, mujoco.MjData(model))
        self._cup_geom = model.geom("cup").id
        self._cup_body = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "cup")
        dof = lambda joint: model.jnt_dofadr[model.joint(joint).id]  # noqa: E731
        self._cup_slides = [dof("cup_x"), dof("cup_y")]
        self._table_top = model.body("table").pos[2] + model.geom("table").size[2]
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(OBS_DIM,), dtype=np.float64)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self._left_table = False
        self._hit_floor = False
        self._target = TARGET_XY

    def _apply_physics(self, v):
        m, cup = self.model, self._cup_body
        m.body_mass[cup] = v["cup_mass"]
        m.body_inertia[cup] = self._nominal["body_inertia"][cup] * v["cup_mass"] / self._nominal["body_mass"][cup]
        m.geom_friction[self._cup_geom, 0] = v["cup_friction"]  # on the floor (the table's contacts have none)
        # the cup's sliding friction on the table: the mean of the two coefficients (MuJoCo would take the
        # max) times the cup's weight, as dry friction on its slides
        mu = 0.5 * (v["cup_friction"] + v["table_friction"])
        m.dof_frictionloss[self._cup_slides] = mu * v["cup_mass"] * v["gravity"]
        m.actuator_gear[:, 0] = v["pusher_strength"]
        m.opt.gravity[:] = (0.0, 0.0, -v["gravity"])
        self._update_constants()  # mass-derived constants (contact softness) follow the new cup mass

    def _reset_sim(self, rng):
        mujoco.mj_resetData(self.model, self.data)
        cup_xy = rng.uniform(-0.12, 0.12, size=2)
        angle = rng.uniform(0, 2 * np.pi)
        pusher_xy = cup_xy + rng.uniform(0.12, 0.2) * np.array([np.cos(angle), np.sin(angle)])
        self.data.qpos[:2] = pusher_xy
        self.data.qpos[2:5] = (*cup_xy, self._table_top + self.model.geom("cup").size[1])
        mujoco.mj_forward(self.model, self.data)
        self._left_table = False
        self._hit_floor = False

    def _simulate(self, action):
        self.data.ctrl[:] = action
        touched = hit_floor = False
        sensors = self.data.sensordata  # 0: the cup touches the floor, 1: the pusher touches the cup
        for _ in range(self.frame_skip):
            mujoco.mj_step(self.model, self.data)
            hit_floor |= bool(sensors[0] > 0)
            touched |= bool(sensors[1] > 0)
        mujoco.mj_forward(self.model, self.data)  # positions and contacts of the state reached, for annotations
        events = []
        if touched:
            events.append("pusher_touches_cup")
        if not self._left_table and np.any(np.abs(self.data.qpos[2:4]) > TABLE_HALF):
            self._left_table = True
            events.append("cup_leaves_table")
        if hit_floor:
            events.append("cup_hits_floor")
        self._hit_floor = bool(hit_floor)
        return tuple(events)

    def _observe(self):
        return np.concatenate([self.data.qpos, self.data.qvel]).astype(np.float64)

    def _observe_batch(self, qpos, qvel, time):
        return np.concatenate([qpos, qvel], axis=-1)

    def _task(self):
        reward, dropped = _reward(self.data.qpos, np.asarray(self._hit_floor), self._target)
        return float(reward), bool(dropped)

    def _task_batch(self, qpos, qvel, sensors):
        return _reward(qpos, np.any(sensors[..., 0] > 0, axis=-1), self._target)  # sensor 0: cup touches floor

    def success(self) -> bool:
        """The task is done: the cup is on the table, within SUCCESS_RADIUS of the target spot."""
        dist = float(np.linalg.norm(self.data.qpos[2:4] - self._target))
        return bool(dist <= SUCCESS_RADIUS and not self._left_table and not self._hit_floor)

    def state_from_obs(self, obs):
        obs = np.asarray(obs, dtype=np.float64)
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[:] = obs[:5]
        self.data.qvel[:] = obs[5:OBS_DIM]
        mujoco.mj_forward(self.model, self.data)
        return self.get_state()

    def set_state(self, state):
        super().set_state(state)
        self._left_table = bool(np.any(np.abs(self.data.qpos[2:4]) > TABLE_HALF))
        self._hit_floor = False


def _reward(qpos: np.ndarray, dropped: np.ndarray, target: np.ndarray = TARGET_XY):
    """(reward, terminated) for positions [..., 5] and whether the cup hit the floor [...]."""
    dist = np.linalg.norm(qpos[..., 2:4] - target, axis=-1)
    reach = np.linalg.norm(qpos[..., :2] - qpos[..., 2:4], axis=-1)
    return -dist - REACH_WEIGHT * reach - DROP_PENALTY * dropped, dropped


class TabletopMemory(Tabletop):
    """Tabletop-Memory-v0: which of two spots is the target is shown only in the first steps.

    The target is (0.12, 0.12) or its mirror (-0.12, -0.12), drawn at random each episode unless
    `physics={"target_side": +1 or -1}` fixes it. Observation (11): Tabletop's 10, then a cue equal
    to the side (+1 or -1) for the first CUE_STEPS observations and 0 from then on. The dynamics do
    not depend on the side, only the reward does: to predict the reward late in an episode a model
    must remember a detail it saw at the start. This is the world of the scorecard's memory probe.
    Episodes last up to 300 steps (the probe's longest blind span is 256).
    """

    world_id = "Tabletop-Memory-v0"
    default_max_steps = 300
    CUE_STEPS = 4
    memory_cue = {"param": "target_side", "dim": OBS_DIM, "steps": CUE_STEPS}
    episode_params = ("target_side",)  # drawn at each reset unless given, so physics=None does not fix it
    physics_space = PhysicsSpace(
        params=(*_PHYSICS.params,
                PhysicsParam("target_side", 1.0, -1.0, 1.0, "which target spot counts: +1 (0.12, 0.12), -1 its mirror;"
                             " drawn at random each episode unless given")),
        splits=_PHYSICS.splits,
    )

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(OBS_DIM + 1,), dtype=np.float64)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed, options=options)
        request = (options or {}).get("physics", self.physics_request)
        if not (isinstance(request, dict) and "target_side" in request):
            self.physics["target_side"] = float(self.np_random.choice([-1.0, 1.0]))
            self._apply_physics(self.physics)
        return self._observe(), self._info(events=())

    def _apply_physics(self, v):
        super()._apply_physics(v)
        self._target = TARGET_XY * (1.0 if v["target_side"] >= 0 else -1.0)

    def _cue(self, time):
        side = 1.0 if self.physics["target_side"] >= 0 else -1.0
        return np.where(time < (self.CUE_STEPS - 0.5) * self.dt, side, 0.0)

    def _observe(self):
        return np.concatenate([super()._observe(), [self._cue(self.data.time)]])

    def _observe_batch(self, qpos, qvel, time):
        return np.concatenate([qpos, qvel, self._cue(time)[..., None]], axis=-1)

    def state_from_obs(self, obs):
        """The cue tells only whether the episode is in its first CUE_STEPS steps: time is set to match."""
        obs = np.asarray(obs, dtype=np.float64)
        cue = obs[OBS_DIM]
        super().state_from_obs(obs[:OBS_DIM])
        if cue != 0:
            self.set_physics({**self.physics, "target_side": float(np.sign(cue))})
        self.data.time = 0.0 if cue != 0 else self.CUE_STEPS * self.dt
        mujoco.mj_forward(self.model, self.data)
        return self.get_state()
