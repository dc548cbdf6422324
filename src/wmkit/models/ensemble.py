"""`ensemble`: a probabilistic ensemble of MLPs on state vectors, after PETS.

Chua et al., "Deep Reinforcement Learning in a Handful of Trials using Probabilistic Dynamics Models"
(NeurIPS 2018). Kept: E independently initialised members, each predicting a Gaussian over the
normalised state delta (mean and bounded log-std, trained by negative log-likelihood), members trained
on different samples (bootstrap), and propagation where each member follows its own trajectory
(PETS's TS-infinity, here with means, so rollouts are deterministic). Added: reward and termination
heads, and an optional multi-step loss (train on the model's own open-loop predictions for
`train_horizon` steps), beta-NLL (Seitzer et al., ICLR 2022) so that the mean still fits the hard
samples (contacts) that plain NLL lets a model wave away with a large variance, and imagined states
clamped to the training data's range widened by half of it, so one wild member cannot blow up a
long rollout. With a motion prior (`prior`, off by default) the output is a residual on the world's own
rules instead of a delta on the state (residual physics).

The prediction is the member mean; `obs_std` is the disagreement between members (epistemic
uncertainty), and `members` holds each member's own prediction (what a safety filter counts).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from wmkit.errors import WmkitError, check_fields
from wmkit.models.base import ModelSpec, Prediction, State, WorldModel
from wmkit.worlds.features import feature_set, resolve_features
from wmkit.worlds.priors import motion_prior, resolve_prior


@dataclass
class EnsembleConfig:
    members: int = 5
    """number of ensemble members (PETS uses 5)"""
    hidden: int = 200
    """width of each hidden layer"""
    layers: int = 3
    """number of hidden layers"""
    train_horizon: int = 1
    """steps of open-loop prediction the loss covers (1 = one-step NLL)"""
    nll_beta: float = 0.5
    """beta-NLL (Seitzer et al. 2022): weight each term by stop-grad(variance^beta); 0 = plain NLL"""
    reward_weight: float = 1.0
    termination_weight: float = 1.0
    input_noise: float = 0.0
    """training only: Gaussian noise added to the state the model steps from, in units of each dimension's
    spread; the target stays the true next state, so the model learns to steer back from small errors"""
    features: str = "auto"
    """extra inputs computed from the state by the world's feature set (`wmkit.worlds.features`, PETS's
    obs_preproc): 'auto' (the world's own where it has one, stored as its name), 'none' or a set's name"""

    prior: str = "none"
    """a motion prior (`wmkit.worlds.priors`): predict the next state as the prior's under the action plus a
    learned residual (residual physics), instead of the state plus a learned delta. 'none', 'auto' (the
    world's own, or 'none') or a prior's name"""

    # what a checkpoint saved before a field existed was trained with (see models/checkpoint.py)
    before_field_existed = {"features": "none", "prior": "none"}

    def __post_init__(self):
        check_fields(self, "ensemble config", positive_ints=("members", "hidden", "layers", "train_horizon"),
                     nonnegative=("nll_beta", "reward_weight", "termination_weight", "input_noise"))


class EnsembleLinear(nn.Module):
    """E independent linear layers applied in one batched matmul: [E, N, in] -> [E, N, out]."""

    def __init__(self, members: int, d_in: int, d_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(members, d_in, d_out))
        self.bias = nn.Parameter(torch.zeros(members, 1, d_out))
        bound = 1.0 / math.sqrt(d_in)
        nn.init.uniform_(self.weight, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


PRESETS = {
    "tiny": {"members": 3, "hidden": 64, "layers": 2},
    "small": {},
    "base": {"members": 7, "hidden": 400, "layers": 4},
}


class EnsembleModel(WorldModel):
    family = "ensemble"
    config_class = EnsembleConfig
    presets = PRESETS

    def __init__(self, spec: ModelSpec, config: EnsembleConfig | None = None):
        config = config or EnsembleConfig()
        spec = spec.with_(latent_dim=spec.obs_dim, decodes=("state",),
                          predicts=("reward", "termination", "uncertainty"), context=1)
        config = replace(config, features=resolve_features(config.features, spec.world),
                         prior=resolve_prior(config.prior, spec.world))
        super().__init__(spec, config)
        self.features = feature_set(config.features)
        self.prior = motion_prior(config.prior, spec.world)
        D, A, E, H = spec.obs_dim, spec.action_dim, config.members, config.hidden
        dims = [D + A + (self.features.dim if self.features else 0)] + [H] * config.layers
        self.trunk = nn.ModuleList(EnsembleLinear(E, i, o) for i, o in zip(dims[:-1], dims[1:]))
        self.head = EnsembleLinear(E, H, 2 * D + 2)  # delta mean, delta log-std, reward, termination logit
        self.max_logstd = nn.Parameter(torch.full((1, 1, D), 0.5))
        self.min_logstd = nn.Parameter(torch.full((1, 1, D), -5.0))
        for name, size in (("obs", D), ("act", A), ("delta", D)):
            self.register_buffer(f"{name}_mean", torch.zeros(size))
            self.register_buffer(f"{name}_std", torch.ones(size))
        # imagined states are kept inside the training data's range (widened by half of it on each side)
        self.register_buffer("obs_low", torch.full((D,), -torch.inf))
        self.register_buffer("obs_high", torch.full((D,), torch.inf))
        self.register_buffer("reward_scale", torch.ones(()))

    def set_normalizer(self, stats: dict[str, torch.Tensor]) -> None:
        """Normalising statistics from the training data (`Dataset.stats`)."""
        for name in ("obs", "act", "delta"):
            getattr(self, f"{name}_mean").copy_(stats[f"{name}_mean"])
            getattr(self, f"{name}_std").copy_(stats[f"{name}_std"].clamp_min(1e-6))
        if "obs_min" in stats:
            span = stats["obs_max"] - stats["obs_min"]
            self.obs_low.copy_(stats["obs_min"] - span / 2)
            self.obs_high.copy_(stats["obs_max"] + span / 2)
        if "reward_scale" in stats:
            self.reward_scale.copy_(stats["reward_scale"])

    # ---- network -------------------------------------------------------------------------------
    def _forward(self, obs: torch.Tensor, action: torch.Tensor, logstd: bool = True):
        """obs [E, N, D], action [E, N, A] -> delta mean/log-std [E, N, D] (normalised), reward, logit [E, N].
        Without `logstd` (imagination needs none) the log-std is None."""
        x = torch.cat([(obs - self.obs_mean) / self.obs_std, (action - self.act_mean) / self.act_std], dim=-1)
        if self.features is not None:
            x = torch.cat([x, self.features(obs, action)], dim=-1)
        for layer in self.trunk:
            x = F.silu(layer(x))
        out = self.head(x)
        D = self.spec.obs_dim
        mean, logstd = out[..., :D], (out[..., D:2 * D] if logstd else None)
        if logstd is None:
            return mean, None, out[..., 2 * D] * self.reward_scale, out[..., 2 * D + 1]
        # soft bounds on the log-std, as in PETS
        logstd = self.max_logstd - F.softplus(self.max_logstd - logstd)
        logstd = self.min_logstd + F.softplus(logstd - self.min_logstd)
        return mean, logstd, out[..., 2 * D] * self.reward_scale, out[..., 2 * D + 1]

    def _base(self, obs, action):
        """What the network's normalised output is added to: the prior's next state, or the state plus the
        data's mean delta."""
        return self.prior(obs, action) if self.prior is not None else obs + self.delta_mean

    def _next_obs(self, obs, action, delta_norm):
        return self._clamp(self._base(obs, action) + delta_norm * self.delta_std)

    def _clamp(self, obs):
        return torch.maximum(torch.minimum(obs, self.obs_high), self.obs_low)

    # ---- verbs ---------------------------------------------------------------------------------
    def observe(self, obs, actions, *, frames=None, physics=None, sim_state=None) -> State:
        o, _ = self.check_context(obs, actions)
        last = o[:, -1]  # Markov: the last observation is the state
        return State(obs=last[:, None].expand(-1, self.config.members, -1).contiguous())  # [B, E, D]

    def one_member_each(self, state: State) -> State:
        """`state` with row b following only member b mod E: E times less compute per row, no
        disagreement (`obs_std` 0). What a planner's `particles="one"` uses: many candidates, each
        imagined by one member in turn (PETS's TS1 with one particle per candidate)."""
        obs = state["obs"]
        if "member" in state.tensors:
            return state
        member = torch.arange(obs.shape[0], device=obs.device) % obs.shape[1]
        return State(obs=obs[torch.arange(obs.shape[0], device=obs.device), member][:, None].contiguous(),
                     member=member)

    def _imagine(self, obs, actions, member):
        """Every trajectory imagined under actions [B, H, A]: obs [E, B, D], every row through every member,
        or obs [1, B, D] with `member` [B], each row through its own member. Rows are gathered by member
        once, before the first step, and put back after the last.
        -> states [E', B, H, D], rewards and termination logits [E', B, H] (E' = E, or 1 with `member`)."""
        E, B = self.config.members, actions.shape[0]
        if member is None:
            x, acts = obs, actions[None].expand(E, -1, -1, -1)
        else:
            counts = torch.bincount(member, minlength=E)
            order = torch.argsort(member, stable=True)
            group = member[order]
            rank = torch.arange(B, device=member.device) - (torch.cumsum(counts, 0) - counts)[group]
            slot = order[:1].expand(E, int(counts.max())).clone()  # padding repeats a real row, dropped after
            slot[group, rank] = order
            x, acts = obs[0][slot], actions[slot]  # [E, n, D], [E, n, H, A]
        traj, rewards, logits = [], [], []
        for t in range(actions.shape[1]):
            mean, _, reward, logit = self._forward(x, acts[:, :, t], logstd=False)
            x = self._next_obs(x, acts[:, :, t], mean)
            traj.append(x)
            rewards.append(reward)
            logits.append(logit)
        traj, rewards, logits = torch.stack(traj, 2), torch.stack(rewards, 2), torch.stack(logits, 2)
        if member is None:
            return traj, rewards, logits
        back = lambda t: t.new_empty((B, *t.shape[2:])).index_put_((order,), t[group, rank])[None]  # noqa: E731
        return back(traj), back(rewards), back(logits)

    @staticmethod
    def _prediction(traj, rewards, logits) -> Prediction:
        """[E', B, H, ...] -> the member mean, the spread between members, and each member's own states."""
        mean = traj.mean(0)
        # the spread by hand: torch's std over the leading dimension costs 2 ms at a planner's batch on 2
        # cores; one trajectory per row (one_member_each) has none
        spread = torch.zeros_like(mean) if traj.shape[0] == 1 else (traj - mean).square().mean(0).sqrt()
        return Prediction(obs=mean, obs_std=spread, reward=rewards.mean(0),
                          terminated=torch.sigmoid(logits).mean(0), members=traj.permute(1, 2, 0, 3))

    def step(self, state: State, action) -> tuple[State, Prediction]:
        a = self.check_actions(action, ndim=2)
        member = state.tensors.get("member")
        traj, rewards, logits = self._imagine(state["obs"].transpose(0, 1), a[:, None], member)
        pred = self._prediction(traj, rewards, logits)
        pred = Prediction(**{n: getattr(pred, n)[:, 0] for n in ("obs", "obs_std", "reward", "terminated", "members")})
        extra = {} if member is None else {"member": member}
        return State(obs=traj[:, :, 0].transpose(0, 1), **extra), pred

    def rollout(self, state: State, actions) -> Prediction:
        """`step` H times, with the checks, the grouping of rows and the member statistics done once."""
        a = self.check_actions(actions, ndim=3)
        if a.shape[0] != state.batch_size:
            raise WmkitError(f"action batch {a.shape[0]} does not match state batch {state.batch_size}")
        return self._prediction(*self._imagine(state["obs"].transpose(0, 1), a, state.tensors.get("member")))

    @property
    def train_window(self) -> int:
        return self.config.train_horizon

    def loss(self, batch):
        """batch: obs [E*B, L+1, D] etc.; each member trains on its own B windows (bootstrap)."""
        E, K = self.config.members, self.config.train_horizon
        obs, act = batch.obs, batch.actions
        if obs.shape[0] % E:
            raise WmkitError(f"batch of {obs.shape[0]} windows does not split over {E} members")
        if act.shape[1] < K:
            raise WmkitError(f"windows of {act.shape[1]} steps are shorter than train_horizon={K}")
        B = obs.shape[0] // E
        obs = obs.reshape(E, B, *obs.shape[1:])  # [E, B, L+1, D]
        act = act.reshape(E, B, *act.shape[1:])
        rew = batch.rewards.reshape(E, B, -1)
        term = batch.terminated.reshape(E, B, -1)
        cur = obs[:, :, 0]
        if self.config.input_noise:
            cur = cur + self.config.input_noise * self.obs_std * torch.randn_like(cur)
        nll = rew_loss = term_loss = mse = 0.0
        for k in range(K):
            mean, logstd, reward, logit = self._forward(cur, act[:, :, k])
            base = self._base(cur, act[:, :, k])
            target = (obs[:, :, k + 1] - base) / self.delta_std
            term_nll = ((mean - target) / logstd.exp()) ** 2 / 2 + logstd
            if self.config.nll_beta:
                term_nll = term_nll * (2 * self.config.nll_beta * logstd).exp().detach()
            nll = nll + term_nll.mean()
            mse = mse + F.mse_loss(mean, target).detach()
            rew_loss = rew_loss + F.mse_loss(reward / self.reward_scale, rew[:, :, k] / self.reward_scale)
            term_loss = term_loss + F.binary_cross_entropy_with_logits(logit, term[:, :, k])
            if k + 1 < K:  # open loop: feed the prediction back
                cur = self._clamp(base + mean * self.delta_std)
        c = self.config
        bounds = 0.01 * (self.max_logstd.sum() - self.min_logstd.sum())
        total = (nll + c.reward_weight * rew_loss + c.termination_weight * term_loss) / K + bounds
        metrics = {"nll": nll.item() / K, "delta_mse": float(mse) / K, "reward_mse": rew_loss.item() / K,
                   "termination_bce": term_loss.item() / K}
        return total, metrics
