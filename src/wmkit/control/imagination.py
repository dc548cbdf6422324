"""An actor-critic trained only on imagined rollouts, after DreamerV3's behaviour learning.

Hafner et al., "Mastering Diverse Domains through World Models" (2023). Each update:

1. take `batch` real moments from a dataset (the starts), observe each with the context the model needs;
2. imagine `horizon` steps with the actor choosing every action, through the model's `step` verb
   (observations, rewards and the chance the episode ends all come from the model);
3. compute lambda-returns, R_t = r_t + gamma c_t ((1 - lambda) v_{t+1} + lambda R_{t+1}), bootstrapped
   from a slow (EMA) copy of the critic, with c_t the predicted chance the episode goes on;
4. normalise them by the spread of returns (DreamerV3's return normalisation: divide by
   max(1, S), S a running average of the 95th minus the 5th percentile), so one entropy scale
   serves rewards of any size;
5. the critic regresses the returns in symlog space; the actor maximises the normalised return plus
   an entropy bonus, by backpropagating through the model's imagined dynamics (continuous actions,
   DreamerV3's choice for them) or by REINFORCE with the critic as baseline (discrete actions, or any
   model whose `step` does not pass gradients).

Kept from DreamerV3: lambda-returns, return normalisation by percentiles, a slow critic, symlog
values, entropy regularisation, losses weighted by the predicted chance the episode is still
running. Simplified: the actor and critic read the model's predicted observation (the state vector
it decodes), not its latent, so the trained actor acts in the real world on real observations
without the model; the critic regresses a scalar (symlog MSE), not DreamerV3's two-hot bins.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from wmkit.errors import WmkitError, check_fields


@dataclass
class ImaginationConfig:
    horizon: int = 15
    """imagined steps per rollout (DreamerV3: 15)"""
    batch: int = 256
    """starts per update"""
    gamma: float = 0.99
    lam: float = 0.95
    entropy: float = 3e-4
    """entropy bonus, on returns normalised to a spread of about 1 (DreamerV3: 3e-4)"""
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    hidden: int = 128
    layers: int = 2
    slow_critic: float = 0.02
    """rate at which the slow critic (the bootstrap of the returns) follows the critic, per update"""
    critics: int = 1
    """critics trained side by side from different initial weights on the same returns (the bootstrap reads
    their mean); where they disagree, a state lies off what the imagined data taught them"""
    pessimism: float = 0.0
    """the terminal value handed to a planner is the critics' mean minus this times their spread (their
    standard deviation), so plans are not drawn to states whose value only some critics believe (with
    `critics` > 1; TD-MPC2 and REDQ take the minimum over critics for the same reason)"""
    actor_gradient: str = "auto"
    """'backprop' through the model's dynamics, 'reinforce', or 'auto' (backprop for continuous actions
    when the model passes gradients, else reinforce)"""
    seed: int = 0

    def __post_init__(self):
        check_fields(self, "imagination config", positive_ints=("horizon", "batch", "hidden", "layers", "critics"),
                     nonnegative=("entropy", "pessimism"))
        if self.pessimism > 0 and self.critics < 2:
            raise WmkitError(f"imagination config: pessimism={self.pessimism!r} reads the spread between critics; "
                             f"set critics to 2 or more")
        for name in ("gamma", "lam", "slow_critic"):
            v = getattr(self, name)
            if not (0 < v <= 1):
                raise WmkitError(f"imagination config: {name}={v!r} must be in (0, 1]")
        for name in ("actor_lr", "critic_lr"):
            v = getattr(self, name)
            if not (v > 0 and math.isfinite(v)):
                raise WmkitError(f"imagination config: {name}={v!r} must be a positive number")
        if self.actor_gradient not in ("auto", "backprop", "reinforce"):
            raise WmkitError(f"imagination config: actor_gradient={self.actor_gradient!r}; use auto, backprop "
                             f"or reinforce")


def symlog(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.log1p(x.abs())


def symexp(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.expm1(x.abs())


def pessimistic(values: torch.Tensor, k: float) -> torch.Tensor:
    """Critics' values [..., n] in symlog space -> their mean in reward units, less k times their spread."""
    v = symexp(values)
    return v.mean(-1) - k * v.std(-1) if k > 0 else v.mean(-1)


def _mlp(d_in: int, d_out: int, hidden: int, layers: int) -> nn.Sequential:
    dims, mods = [d_in] + [hidden] * layers, []
    for i, o in zip(dims[:-1], dims[1:]):
        mods += [nn.Linear(i, o), nn.LayerNorm(o), nn.SiLU()]
    return nn.Sequential(*mods, nn.Linear(dims[-1], d_out))


class Critics(nn.Module):
    """`n` value networks side by side: observations [..., D] -> values [..., n] (symlog space)."""

    def __init__(self, d_in: int, n: int, hidden: int, layers: int):
        super().__init__()
        self.nets = nn.ModuleList(_mlp(d_in, 1, hidden, layers) for _ in range(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([net(x) for net in self.nets], -1)


class Actor(nn.Module):
    """A policy on state vectors: a squashed Gaussian over a box, or a categorical over choices."""

    def __init__(self, obs_dim: int, action_dim: int, low, high, discrete: bool, hidden: int, layers: int):
        super().__init__()
        self.discrete, self.action_dim = discrete, action_dim
        self.net = _mlp(obs_dim, action_dim if discrete else 2 * action_dim, hidden, layers)
        for name, v in (("obs_mean", torch.zeros(obs_dim)), ("obs_std", torch.ones(obs_dim)),
                        ("low", torch.as_tensor(low, dtype=torch.float32)),
                        ("high", torch.as_tensor(high, dtype=torch.float32))):
            self.register_buffer(name, v)

    def forward(self, obs: torch.Tensor):
        """Discrete: the logits [B, n]. Continuous: (mean, std) of the Gaussian before the tanh squash."""
        out = self.net((obs - self.obs_mean) / self.obs_std)
        if self.discrete:
            return out
        mean, raw = out.chunk(2, -1)
        return mean, 0.1 + 0.9 * torch.sigmoid(raw + 2.0)  # std in (0.1, 1), starting near 1 (explore)

    def squash(self, u: torch.Tensor) -> torch.Tensor:
        return self.low + (torch.tanh(u) + 1) * (self.high - self.low) / 2

    def sample(self, obs: torch.Tensor, generator=None):
        """(action [B, A] as the model reads it, log-probability [B], entropy [B]); reparameterised when continuous."""
        if self.discrete:
            logits = self.forward(obs)
            probs = logits.softmax(-1)
            pick = torch.multinomial(probs.detach(), 1, generator=generator)[:, 0]
            logp = logits.log_softmax(-1)
            return (F.one_hot(pick, self.action_dim).float(), logp.gather(1, pick[:, None])[:, 0],
                    -(probs * logp).sum(-1))
        mean, std = self.forward(obs)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device)
        u = mean + std * noise
        logp = (-0.5 * noise**2 - std.log() - 0.5 * math.log(2 * math.pi)).sum(-1)  # of u: the squash is fixed
        entropy = (std.log() + 0.5 * math.log(2 * math.pi * math.e)).sum(-1)
        return self.squash(u), logp, entropy

    @torch.no_grad()
    def act(self, obs: torch.Tensor, explore: bool = False, generator=None) -> torch.Tensor:
        if explore:
            return self.sample(obs, generator)[0]
        if self.discrete:
            return F.one_hot(self.forward(obs).argmax(-1), self.action_dim).float()
        return self.squash(self.forward(obs)[0])


class ImaginedActorCritic:
    """An actor and a critic for `model`, trained by `update` on rollouts imagined from `starts`."""

    def __init__(self, model, config: ImaginationConfig | None = None):
        spec = model.spec
        if "reward" not in spec.predicts:
            raise WmkitError(f"learning in imagination needs predicted rewards; the {model.family!r} model has no "
                             f"reward head (train e.g. an ensemble)")
        if "state" not in spec.decodes:
            raise WmkitError(f"the actor reads state vectors; the {model.family!r} model does not decode them")
        self.config = c = config or ImaginationConfig()
        self.model, self.device = model, model.device
        self.discrete = getattr(spec, "action_kind", "continuous") == "discrete"
        with torch.random.fork_rng(devices=[]):  # seeded weights, without touching the caller's generator
            torch.manual_seed(c.seed)
            self.actor = Actor(spec.obs_dim, spec.action_dim, spec.action_low, spec.action_high, self.discrete,
                               c.hidden, c.layers).to(self.device)
            self.critic = Critics(spec.obs_dim, c.critics, c.hidden, c.layers).to(self.device)
            self.slow_critic = Critics(spec.obs_dim, c.critics, c.hidden, c.layers).to(self.device)
        self.slow_critic.load_state_dict(self.critic.state_dict())
        self.slow_critic.requires_grad_(False)  # it follows the critic by EMA only
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=c.actor_lr)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=c.critic_lr)
        self.return_spread = None  # running 95th - 5th percentile of lambda-returns
        self.generator = torch.Generator(device=self.device).manual_seed(c.seed)
        self.gradient = c.actor_gradient
        self.updates = 0
        self.normalised = False  # set_normalizer (or the first `train`) sets the observation scales

    def set_model(self, model) -> None:
        """Go on learning inside a new model of the same world (the Dyna loop retrains its model)."""
        if (model.spec.obs_dim, model.spec.action_dim) != (self.model.spec.obs_dim, self.model.spec.action_dim):
            raise WmkitError("the new model's spaces differ from the one the actor was built for")
        self.model = model
        self.gradient = self.config.actor_gradient  # 'auto' looks again: the new model may not pass gradients

    def set_normalizer(self, obs_mean: torch.Tensor, obs_std: torch.Tensor) -> None:
        self.actor.obs_mean.copy_(obs_mean)
        self.actor.obs_std.copy_(obs_std.clamp_min(1e-6))
        self.normalised = True

    def values(self, obs: torch.Tensor, slow: bool = False) -> torch.Tensor:
        """Each critic's value of observations [..., D] -> [..., critics], in symlog space (they read the
        observations scaled as the actor does)."""
        net = self.slow_critic if slow else self.critic
        return net((obs - self.actor.obs_mean) / self.actor.obs_std)

    def value(self, obs: torch.Tensor, slow: bool = False) -> torch.Tensor:
        """The critics' mean value of observations, in symlog space."""
        return self.values(obs, slow).mean(-1)

    def terminal_value(self):
        """The critics as a planner's terminal value: observations [N, D] -> expected discounted return [N]
        (in reward units) of the actor from there, their mean less `pessimism` times their spread. Read at
        call time, so it follows later updates."""
        k = self.config.pessimism

        def value(obs: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return pessimistic(self.values(obs), k)

        return value

    def prior(self, samples: int = 24):
        """The actor as a planner's prior (TD-MPC2's policy samples): a function (state, observation [1, D],
        horizon) -> [samples, horizon, A], the actor acting through the model's `step` from `state`, the first
        sequence with its mean action at every step, the others sampling. Reads the actor and model at call
        time, so it follows later updates and `set_model`."""
        if not (isinstance(samples, int) and samples >= 1):
            raise WmkitError(f"prior: samples={samples!r} must be a positive integer")

        def propose(state, obs: torch.Tensor, horizon: int) -> torch.Tensor:
            with torch.no_grad():
                state, x, actions = state.repeat(samples), obs.expand(samples, -1), []
                for _ in range(horizon):
                    a = torch.cat([self.actor.act(x[:1]), self.actor.act(x[1:], explore=True, generator=self.generator)])
                    state, pred = self.model.step(state, a)
                    x = pred.obs
                    actions.append(a)
                return torch.stack(actions, 1)

        return propose

    def _resolve_gradient(self, state, obs) -> str:
        if self.gradient != "auto":
            return self.gradient
        if self.discrete:
            return "reinforce"
        a = self.actor.act(obs[:1]).requires_grad_(True)
        try:
            with torch.enable_grad():
                _, pred = self.model.step(state.select(torch.tensor([0])), a)
            passes = pred.obs.requires_grad
        except (RuntimeError, WmkitError):
            passes = False
        self.gradient = "backprop" if passes else "reinforce"
        return self.gradient

    def update(self, state, obs: torch.Tensor) -> dict:
        """One update from imagined rollouts that begin at `state` (from `observe`), whose last real
        observations are `obs` [B, D]."""
        c, model = self.config, self.model
        mode = self._resolve_gradient(state, obs)
        frozen = [(p, p.requires_grad) for p in model.parameters()]  # the model is not trained here
        for p, _ in frozen:
            p.requires_grad_(False)
        try:
            with torch.enable_grad():
                xs, rewards, conts, logps, ents = [obs], [], [], [], []
                x = obs
                for _ in range(c.horizon):
                    a, logp, ent = self.actor.sample(x.detach() if mode == "reinforce" else x, self.generator)
                    if mode == "reinforce":
                        a = a.detach()
                    state, pred = model.step(state, a)
                    x = pred.obs
                    xs.append(x)
                    rewards.append(pred.reward)
                    conts.append(1 - pred.terminated if pred.terminated is not None else torch.ones_like(pred.reward))
                    logps.append(logp)
                    ents.append(ent)
                X = torch.stack(xs, 1)  # [B, H+1, D]
                R, C = torch.stack(rewards, 1), torch.stack(conts, 1).clamp(0, 1)  # [B, H]
                # under backprop the actor also sees how its actions move the bootstrap values (through the
                # imagined states); the slow critic's own weights never learn from this
                v_slow = symexp(self.value(X if mode == "backprop" else X.detach(), slow=True))  # [B, H+1]
                if mode != "backprop":
                    v_slow = v_slow.detach()
                returns = self._lambda_returns(R, C, v_slow)  # [B, H]; differentiable under backprop
                # weight of step t: the chance the episode is still running at t, discounted
                weight = torch.cumprod(torch.cat([torch.ones_like(C[:, :1]), c.gamma * C[:, :-1]], 1), 1).detach()
                self._track_spread(returns.detach())
                scale = max(1.0, self.return_spread)
                entropy = torch.stack(ents, 1)
                if mode == "backprop":
                    objective = returns / scale
                else:
                    baseline = symexp(self.value(X[:, :-1])).detach()
                    objective = torch.stack(logps, 1) * ((returns.detach() - baseline) / scale)
                actor_loss = -(weight * (objective + c.entropy * entropy)).mean()
                self.actor_opt.zero_grad(set_to_none=True)
                actor_loss.backward()
                torch.nn.utils.clip_grad_norm_(self.actor.parameters(), 100.0)
                self.actor_opt.step()

                pred_v = self.values(X[:, :-1].detach())  # [B, H, critics], each regresses the same returns
                critic_loss = (weight[..., None] * (pred_v - symlog(returns.detach())[..., None]) ** 2).mean()
                self.critic_opt.zero_grad(set_to_none=True)
                critic_loss.backward()
                torch.nn.utils.clip_grad_norm_(self.critic.parameters(), 100.0)
                self.critic_opt.step()
        finally:
            for p, flag in frozen:
                p.requires_grad_(flag)
        with torch.no_grad():
            for slow, fast in zip(self.slow_critic.parameters(), self.critic.parameters()):
                slow.lerp_(fast, c.slow_critic)
        self.updates += 1
        return {"actor_loss": actor_loss.item(), "critic_loss": critic_loss.item(),
                "imagined_return": float((R.detach() * weight).sum(1).mean()), "return_spread": self.return_spread,
                "entropy": float(entropy.detach().mean()), "gradient": mode}

    def _lambda_returns(self, R, C, v):
        c = self.config
        out, nxt = [], v[:, -1]
        for t in reversed(range(R.shape[1])):
            nxt = R[:, t] + c.gamma * C[:, t] * ((1 - c.lam) * v[:, t + 1] + c.lam * nxt)
            out.append(nxt)
        return torch.stack(out[::-1], 1)

    def _track_spread(self, returns: torch.Tensor) -> None:
        q = torch.quantile(returns.flatten().float(), torch.tensor([0.05, 0.95], device=returns.device))
        spread = float(q[1] - q[0])
        self.return_spread = spread if self.return_spread is None else 0.99 * self.return_spread + 0.01 * spread

    def train(self, starts, updates: int, say=None) -> list[dict]:
        """`updates` updates, each from `batch` moments drawn from the dataset `starts` (its training split)."""
        if not (isinstance(updates, int) and updates >= 1):
            raise WmkitError(f"updates={updates!r} must be a positive integer")
        spec = self.model.spec
        if (starts.meta.obs_dim, starts.meta.action_dim) != (spec.obs_dim, spec.action_dim):
            raise WmkitError(f"the start dataset ({starts.world}) does not match the model ({spec.world})")
        split = "train" if starts.split("train") else "all"
        if not self.normalised:
            stats = starts.stats(split)
            self.set_normalizer(stats["obs_mean"].to(self.device), stats["obs_std"].to(self.device))
        C = max(spec.context, 1)
        windows = starts.windows(C - 1, 1, split)
        gen = torch.Generator().manual_seed(self.config.seed + self.updates)
        rows = []
        for i in range(updates):
            b = windows.sample(self.config.batch, gen).to(self.device)
            with torch.no_grad():
                state = self.model.observe(b.obs[:, :C], b.actions[:, :C - 1])
            row = self.update(state, b.obs[:, C - 1])
            rows.append(row)
            if say is not None and (i + 1) % max(updates // 5, 1) == 0:
                say(f"imagination update {self.updates}: imagined return {row['imagined_return']:.2f}")
        return rows

    def policy(self, explore: bool = True) -> ActorPolicy:
        return ActorPolicy(self, explore)


class ActorPolicy:
    """The trained actor as a policy for `collect` and the Dyna loop: real observation in, action out."""

    name = "policy"

    def __init__(self, agent: ImaginedActorCritic, explore: bool = True):
        self.agent, self.explore = agent, explore

    def reset(self) -> None:
        pass

    def __call__(self, obs) -> np.ndarray:
        x = torch.as_tensor(np.asarray(obs, dtype=np.float32), device=self.agent.device)[None]
        return self.agent.actor.act(x, self.explore, self.agent.generator)[0].cpu().numpy()
