"""A value learned from real transitions, for a planner's terminal value.

    value = DataValue(obs_dim=4)
    value.train(dataset, updates=500)
    objective = Objective(terminal_value=value.terminal_value())

Fitted by temporal differences on the dataset's own steps, V(s) <- r + gamma (1 - terminated) V'(s'), with V'
a slow (EMA) copy: the value of what the data's behaviour went on to earn from each state. It reads only what
happened in the true world, so it knows the events a model rarely learns, such as InvertedPendulum's cart
reaching the end of its rail and the pole falling there, and no plan can exploit it through the model's
errors. It is the value of the behaviour that collected the data, not of the best behaviour: in the Dyna loop,
mostly the planner's own (the value of the policy the planner is, as the critics of TD-MPC and LOOP learn it
from replayed data). Where the data never went it is an extrapolation; `critics` > 1 with `pessimism` reads
their disagreement there, as ImaginedActorCritic's terminal value does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from wmkit.control.imagination import Critics, pessimistic, symlog
from wmkit.errors import WmkitError, check_fields


@dataclass
class DataValueConfig:
    gamma: float = 0.99
    batch: int = 256
    """transitions per update"""
    lr: float = 3e-4
    hidden: int = 128
    layers: int = 2
    slow: float = 0.05
    """rate at which the target copy follows the critics, per update"""
    critics: int = 1
    pessimism: float = 0.0
    """the terminal value is the critics' mean less this times their spread (needs critics >= 2)"""
    seed: int = 0

    def __post_init__(self):
        check_fields(self, "data value config", positive_ints=("batch", "hidden", "layers", "critics"),
                     nonnegative=("pessimism",))
        for name in ("gamma", "slow", "lr"):
            v = getattr(self, name)
            if not (0 < v <= 1):
                raise WmkitError(f"data value config: {name}={v!r} must be in (0, 1]")
        if self.pessimism > 0 and self.critics < 2:
            raise WmkitError(f"data value config: pessimism={self.pessimism!r} reads the spread between critics; "
                             f"set critics to 2 or more")


class DataValue:
    """Critics of observations [N, D], trained by TD on a dataset's transitions; `terminal_value()` for a planner."""

    def __init__(self, obs_dim: int, config: DataValueConfig | None = None, device: str | torch.device = "cpu"):
        self.config = c = config or DataValueConfig()
        self.obs_dim, self.device = obs_dim, torch.device(device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(c.seed)
            self.critic = Critics(obs_dim, c.critics, c.hidden, c.layers).to(self.device)
            self.target = Critics(obs_dim, c.critics, c.hidden, c.layers).to(self.device)
        self.target.load_state_dict(self.critic.state_dict())
        self.target.requires_grad_(False)
        self.opt = torch.optim.Adam(self.critic.parameters(), lr=c.lr)
        self.obs_mean, self.obs_std = torch.zeros(obs_dim, device=self.device), torch.ones(obs_dim, device=self.device)
        self.normalised, self.updates = False, 0

    def values(self, obs: torch.Tensor, target: bool = False) -> torch.Tensor:
        """Each critic's value, symlog space: [..., D] -> [..., critics]."""
        net = self.target if target else self.critic
        return net((obs - self.obs_mean) / self.obs_std)

    def train(self, data, updates: int) -> list[dict]:
        """`updates` TD updates on transitions drawn from the dataset `data` (its training split, else all of it)."""
        if not (isinstance(updates, int) and updates >= 1):
            raise WmkitError(f"updates={updates!r} must be a positive integer")
        if data.meta.obs_dim != self.obs_dim:
            raise WmkitError(f"the dataset's observations have {data.meta.obs_dim} numbers; this value reads "
                             f"{self.obs_dim}")
        c = self.config
        split = "train" if data.split("train") else "all"
        if not self.normalised:  # the scales of the first data it sees, kept after (the targets stay comparable)
            stats = data.stats(split)
            self.obs_mean = stats["obs_mean"].to(self.device)
            self.obs_std = stats["obs_std"].to(self.device).clamp_min(1e-6)
            self.normalised = True
        steps = data.windows(0, 1, split)  # every transition, episodes of any length
        gen = torch.Generator().manual_seed(c.seed + self.updates)
        rows = []
        for _ in range(updates):
            b = steps.sample(c.batch, gen).to(self.device)
            with torch.no_grad():
                after = pessimistic(self.values(b.obs[:, 1], target=True), 0.0)  # the target critics' mean
                goal = b.rewards[:, 0] + c.gamma * (1 - b.terminated[:, 0]) * after
            loss = ((self.values(b.obs[:, 0]) - symlog(goal)[:, None]) ** 2).mean()
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            with torch.no_grad():
                for slow, fast in zip(self.target.parameters(), self.critic.parameters()):
                    slow.lerp_(fast, c.slow)
            self.updates += 1
            rows.append({"value_loss": float(loss.detach()), "mean_target": float(goal.mean())})
        return rows

    def terminal_value(self):
        """observations [N, D] -> values [N] in reward units: the critics' mean less `pessimism` times their
        spread, read at call time (it follows later training)."""
        k = self.config.pessimism

        def value(obs: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return pessimistic(self.values(obs.to(self.device)), k)

        return value
