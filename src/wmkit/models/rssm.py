"""`rssm`: a recurrent state-space model on state vectors, after DreamerV3.

Hafner et al., "Mastering Diverse Domains through World Models" (2023). Kept: a deterministic
recurrent path h_t = GRU(h_{t-1}, [z_{t-1}, a_{t-1}]) beside a stochastic state z_t of `groups`
categorical variables with `classes` classes each; a prior p(z_t | h_t) for imagination and a
posterior q(z_t | h_t, o_t) for perception; straight-through one-hot samples in training; the
stabilisers: symlog inputs, 1% unimix on every categorical, KL balancing (dynamics 0.5, representation
0.1) and free bits (1 nat). Decoder, reward and continue heads read [h_t, z_t].
Not (yet) here: frame encoders and decoders (state vectors only), two-hot reward regression.

Unlike the ensemble, the state carries memory: `observe` filters the whole context through the
recurrence, so an early observation can shape late predictions. Predictions use the mode of each
categorical (deterministic); training samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from wmkit.errors import WmkitError, check_fields
from wmkit.models.base import ModelSpec, Prediction, State, WorldModel


@dataclass
class RSSMConfig:
    deter: int = 256
    """size of the recurrent (deterministic) state h"""
    groups: int = 16
    """categorical latent variables in z"""
    classes: int = 16
    """classes of each categorical"""
    hidden: int = 256
    """width of the MLPs"""
    seq_len: int = 32
    """steps in each training window"""
    free_bits: float = 1.0
    dyn_scale: float = 0.5
    rep_scale: float = 0.1
    unimix: float = 0.01
    reward_weight: float = 1.0
    continue_weight: float = 1.0

    def __post_init__(self):
        check_fields(self, "rssm config", positive_ints=("deter", "groups", "classes", "hidden", "seq_len"),
                     nonnegative=("free_bits", "dyn_scale", "rep_scale", "reward_weight", "continue_weight"))
        if not (0 <= self.unimix < 1):
            raise WmkitError(f"rssm config: unimix={self.unimix!r} must be in [0, 1)")


def symlog(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.log1p(x.abs())


def _mlp(d_in: int, hidden: int, d_out: int, layers: int = 2) -> nn.Sequential:
    mods, d = [], d_in
    for _ in range(layers):
        mods += [nn.Linear(d, hidden), nn.LayerNorm(hidden), nn.SiLU()]
        d = hidden
    return nn.Sequential(*mods, nn.Linear(d, d_out))


PRESETS = {
    "tiny": {"deter": 64, "groups": 8, "classes": 8, "hidden": 64, "seq_len": 16},
    "small": {},
    "base": {"deter": 512, "groups": 32, "classes": 16, "hidden": 512},
}


class RSSMModel(WorldModel):
    family = "rssm"
    config_class = RSSMConfig
    presets = PRESETS

    def __init__(self, spec: ModelSpec, config: RSSMConfig | None = None):
        config = config or RSSMConfig()
        spec = spec.with_(latent_dim=config.deter + config.groups * config.classes, decodes=("state",),
                          predicts=("reward", "termination"), context=1)
        super().__init__(spec, config)
        D, A, c = spec.obs_dim, spec.action_dim, config
        Z = c.groups * c.classes
        self.encoder = _mlp(D, c.hidden, c.hidden)
        self.img_in = nn.Sequential(nn.Linear(Z + A, c.hidden), nn.LayerNorm(c.hidden), nn.SiLU())
        self.gru = nn.GRUCell(c.hidden, c.deter)
        self.prior_net = _mlp(c.deter, c.hidden, Z, layers=1)
        self.post_net = _mlp(c.deter + c.hidden, c.hidden, Z, layers=1)
        self.decoder = _mlp(c.deter + Z, c.hidden, D)
        self.reward_head = _mlp(c.deter + Z, c.hidden, 1)
        self.cont_head = _mlp(c.deter + Z, c.hidden, 1)
        for name, size in (("obs", D), ("act", A)):
            self.register_buffer(f"{name}_mean", torch.zeros(size))
            self.register_buffer(f"{name}_std", torch.ones(size))
        self.register_buffer("reward_scale", torch.ones(()))

    def set_normalizer(self, stats: dict[str, torch.Tensor]) -> None:
        for name in ("obs", "act"):
            getattr(self, f"{name}_mean").copy_(stats[f"{name}_mean"])
            getattr(self, f"{name}_std").copy_(stats[f"{name}_std"].clamp_min(1e-6))
        if "reward_scale" in stats:
            self.reward_scale.copy_(stats["reward_scale"])

    # ---- pieces --------------------------------------------------------------------------------
    def _norm_obs(self, obs):
        return (obs - self.obs_mean) / self.obs_std

    def _embed(self, obs):
        return self.encoder(symlog(self._norm_obs(obs)))

    def _probs(self, logits):
        c = self.config
        p = torch.softmax(logits.reshape(*logits.shape[:-1], c.groups, c.classes), -1)
        return (1 - c.unimix) * p + c.unimix / c.classes

    def _mode(self, logits):
        p = self._probs(logits)
        return F.one_hot(p.argmax(-1), self.config.classes).to(p.dtype).flatten(-2)

    def _sample(self, logits):
        p = self._probs(logits)
        idx = torch.multinomial(p.reshape(-1, self.config.classes), 1).reshape(p.shape[:-1])
        hard = F.one_hot(idx, self.config.classes).to(p.dtype)
        return (hard + p - p.detach()).flatten(-2)  # straight-through gradients

    def _img_step(self, h, z, a):
        a_n = (a - self.act_mean) / self.act_std
        return self.gru(self.img_in(torch.cat([z, a_n], -1)), h)

    def _heads(self, h, z):
        feat = torch.cat([h, z], -1)
        obs = self.decoder(feat) * self.obs_std + self.obs_mean
        return obs, self.reward_head(feat)[..., 0] * self.reward_scale, self.cont_head(feat)[..., 0]

    # ---- verbs ---------------------------------------------------------------------------------
    def observe(self, obs, actions, *, frames=None, physics=None, sim_state=None) -> State:
        o, a = self.check_context(obs, actions)
        B = o.shape[0]
        c = self.config
        h = o.new_zeros(B, c.deter)
        z = self._mode(self.post_net(torch.cat([h, self._embed(o[:, 0])], -1)))
        for t in range(a.shape[1]):  # filter the context: the recurrence carries what it saw
            h = self._img_step(h, z, a[:, t])
            z = self._mode(self.post_net(torch.cat([h, self._embed(o[:, t + 1])], -1)))
        return State(h=h, z=z)

    def step(self, state: State, action) -> tuple[State, Prediction]:
        a = self.check_actions(action, ndim=2)
        if a.shape[0] != state.batch_size:
            raise WmkitError(f"action batch {a.shape[0]} does not match state batch {state.batch_size}")
        h = self._img_step(state["h"], state["z"], a)
        z = self._mode(self.prior_net(h))
        obs, reward, cont = self._heads(h, z)
        return State(h=h, z=z), Prediction(obs=obs, reward=reward, terminated=1 - torch.sigmoid(cont))

    @property
    def train_window(self) -> int:
        return self.config.seq_len

    def loss(self, batch):
        c = self.config
        obs, act = batch.obs, batch.actions  # [B, L+1, D], [B, L, A]
        B, L = act.shape[:2]
        emb = self._embed(obs)
        target = self._norm_obs(obs)
        h = obs.new_zeros(B, c.deter)
        post = self.post_net(torch.cat([h, emb[:, 0]], -1))
        z = self._sample(post)
        recon = (self.decoder(torch.cat([h, z], -1)) - target[:, 0]).pow(2).sum(-1).mean() / (L + 1)
        feats_h, feats_z, priors, posts = [], [], [], []
        for t in range(L):
            h = self._img_step(h, z, act[:, t])
            prior = self.prior_net(h)
            post = self.post_net(torch.cat([h, emb[:, t + 1]], -1))
            z = self._sample(post)
            feats_h.append(h)
            feats_z.append(z)
            priors.append(prior)
            posts.append(post)
        h_all, z_all = torch.stack(feats_h, 1), torch.stack(feats_z, 1)
        feat = torch.cat([h_all, z_all], -1)
        pred_n = self.decoder(feat)
        recon = recon + (pred_n - target[:, 1:]).pow(2).sum(-1).mean() * L / (L + 1)
        reward = self.reward_head(feat)[..., 0]
        rew_loss = F.mse_loss(reward, batch.rewards / self.reward_scale)
        cont_loss = F.binary_cross_entropy_with_logits(self.cont_head(feat)[..., 0], 1 - batch.terminated)
        p_prior, p_post = self._probs(torch.stack(priors, 1)), self._probs(torch.stack(posts, 1))
        dyn = _kl(p_post.detach(), p_prior).clamp_min(c.free_bits).mean()
        rep = _kl(p_post, p_prior.detach()).clamp_min(c.free_bits).mean()
        total = recon + c.reward_weight * rew_loss + c.continue_weight * cont_loss + c.dyn_scale * dyn + \
            c.rep_scale * rep
        metrics = {"recon": recon.item(), "reward_mse": rew_loss.item(), "continue_bce": cont_loss.item(),
                   "kl_dyn": dyn.item(), "kl_rep": rep.item()}
        return total, metrics


def _kl(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """KL(p || q) of [..., groups, classes] categoricals, summed over groups: [...]."""
    return (p * (p.clamp_min(1e-8).log() - q.clamp_min(1e-8).log())).sum((-1, -2))
