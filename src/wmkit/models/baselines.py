"""Reference models behind the same verbs: `oracle` (the true simulator), `copy-last` and `motion-prior`.

Every metric is checked against them: the oracle must score perfectly and copy-last (predict that
nothing changes) has zero skill by definition. `motion-prior` is the world's motion prior alone
(`wmkit.worlds.priors`): what a model with that prior scores before it learns anything.
"""

from __future__ import annotations

import numpy as np
import torch

from wmkit.actions import decode as decode_action
from wmkit.errors import WmkitError
from wmkit.models.base import ModelSpec, Prediction, State, WorldModel


class CopyLastModel(WorldModel):
    """Predicts that the next observation equals the last one seen."""

    family = "copy-last"

    def __init__(self, spec: ModelSpec, config=None):
        super().__init__(spec.with_(latent_dim=spec.obs_dim, decodes=("state",), predicts=(), context=1), config)

    def observe(self, obs, actions, *, frames=None, physics=None, sim_state=None) -> State:
        o, _ = self.check_context(obs, actions)
        return State(obs=o[:, -1])

    def _step_actions(self, state, action):
        a = self.check_actions(action, ndim=2)
        if a.shape[0] != state.batch_size:
            raise WmkitError(f"action batch {a.shape[0]} does not match state batch {state.batch_size}")
        return a

    def step(self, state, action):
        self._step_actions(state, action)
        return state, Prediction(obs=state["obs"].clone())

    def rollout(self, state, actions):
        a = self.check_actions(actions, ndim=3)
        return Prediction(obs=state["obs"][:, None].expand(-1, a.shape[1], -1).clone())


class MotionPriorModel(CopyLastModel):
    """Predicts the world's motion prior (`WORLD_PRIORS`) under each action, and learns nothing."""

    family = "motion-prior"

    def __init__(self, spec: ModelSpec, config=None):
        from wmkit.worlds.priors import WORLD_PRIORS, motion_prior

        if spec.world not in WORLD_PRIORS:
            raise WmkitError(f"{spec.world} has no motion prior; worlds with one: {', '.join(WORLD_PRIORS)}")
        super().__init__(spec, config)
        self.prior = motion_prior(WORLD_PRIORS[spec.world])

    def step(self, state, action):
        a = self._step_actions(state, action)
        nxt = self.prior(state["obs"], a.to(state["obs"].dtype))
        return State(obs=nxt), Prediction(obs=nxt)

    def rollout(self, state, actions):
        a = self.check_actions(actions, ndim=3).to(state["obs"].dtype)
        x, out = state["obs"], []
        for t in range(a.shape[1]):
            x = self.prior(x, a[:, t])
            out.append(x)
        return Prediction(obs=torch.stack(out, 1))


class OracleModel(WorldModel):
    """The true simulator as a world model: rebuilds MuJoCo's state from the last observation.

    The state is the exact simulator state of each batch row, with its physics parameters; rollouts
    step a private copy of the world row by row (CPU, exact, slow next to a learned model).
    """

    family = "oracle"

    def __init__(self, spec: ModelSpec, config=None):
        from wmkit.worlds import make

        super().__init__(spec.with_(decodes=("state",), predicts=("reward", "termination"), context=1), config)
        self.env = make(spec.world)
        self.env.reset(seed=0)
        self._param_names = self.env.physics_space.names

    def observe(self, obs, actions, *, frames=None, physics=None, sim_state=None) -> State:
        o, _ = self.check_context(obs, actions)
        B = o.shape[0]
        physics = self._physics_rows(physics, B)
        if sim_state is not None:  # exact
            sims = list(torch.as_tensor(sim_state, dtype=torch.float64).cpu())
            if len(sims) != B:
                raise WmkitError(f"sim_state has {len(sims)} rows for a batch of {B}")
        else:  # rebuilt from float32 observations: exact up to rounding and the contact solver's warm start
            sims = []
            for b in range(B):
                self._set_physics(physics[b])
                sims.append(torch.from_numpy(self.env.state_from_obs(o[b, -1].double().cpu().numpy())))
        params = torch.tensor([[p[n] for n in self._param_names] for p in physics], dtype=torch.float64)
        return State(sim=torch.stack(sims), physics=params.reshape(B, len(self._param_names)))

    def step(self, state, action):
        a = self.check_actions(action, ndim=2).double().cpu().numpy()
        sims, obs, rew, term = [], [], [], []
        for b in range(state.batch_size):
            self._set_physics(dict(zip(self._param_names, state["physics"][b].tolist())))
            self.env.set_state(state["sim"][b].numpy())
            o, r, te, _, _ = self.env.step(decode_action(self.env.action_space, a[b]))
            sims.append(torch.from_numpy(self.env.get_state()))
            obs.append(o)
            rew.append(r)
            term.append(float(te))
        dev = self.device
        pred = Prediction(obs=torch.as_tensor(np.asarray(obs), dtype=torch.float32, device=dev),
                          reward=torch.tensor(rew, device=dev), terminated=torch.tensor(term, device=dev))
        return State(sim=torch.stack(sims), physics=state["physics"]), pred

    def rollout(self, state, actions):
        """Where the world simulates in batches (`batch_simulation`), all rows at once in MuJoCo's
        threaded rollout, grouped by physics; bit-identical to stepping row by row."""
        if not getattr(self.env, "batch_simulation", False):
            return super().rollout(state, actions)
        a = self.check_actions(actions, ndim=3)
        if a.shape[0] != state.batch_size:
            raise WmkitError(f"action batch {a.shape[0]} does not match state batch {state.batch_size}")
        from wmkit.worlds.base import simulate_rows

        physics = [dict(zip(self._param_names, row)) for row in state["physics"].tolist()]
        out = simulate_rows(self.env, state["sim"].numpy(), physics, a.double().cpu().numpy())
        obs, rew, term = out["obs"], out["reward"], out["terminated"]
        dev = self.device
        return Prediction(obs=torch.as_tensor(obs, dtype=torch.float32, device=dev),
                          reward=torch.as_tensor(rew, dtype=torch.float32, device=dev),
                          terminated=torch.as_tensor(term, dtype=torch.float32, device=dev))

    def _physics_rows(self, physics, B):
        if physics is None:
            return [self.env.physics_space.defaults()] * B
        if isinstance(physics, dict):
            return [physics] * B
        if len(physics) != B:
            raise WmkitError(f"physics has {len(physics)} rows for a batch of {B}")
        return list(physics)

    def _set_physics(self, values: dict) -> None:
        values = self.env.physics_space.validate(values)
        if values != self.env.physics:  # applying physics recomputes model constants: only when they change
            self.env.set_physics(values)
