"""`rssm`: a recurrent state-space model on state vectors or frames, after DreamerV3.

Hafner et al., "Mastering Diverse Domains through World Models" (2023). Kept: a deterministic
recurrent path h_t = GRU(h_{t-1}, [z_{t-1}, a_{t-1}]) beside a stochastic state z_t of `groups`
categorical variables with `classes` classes each; a prior p(z_t | h_t) for imagination and a
posterior q(z_t | h_t, o_t) for perception; straight-through one-hot samples in training; the
stabilisers: symlog inputs, 1% unimix on every categorical, KL balancing (dynamics 0.5, representation
0.1) and free bits (1 nat). Decoder, reward and continue heads read [h_t, z_t].
Not here: two-hot reward regression.

Two kinds of input (`inputs`):
- `state`: an MLP embeds the symlog of the normalised state vector. The decoder predicts the change
  from the last observed or imagined state (`decode_delta`, normalised by the data's spread of
  changes; off: it rebuilds the whole state from [h, z]), and the recurrence also reads that state
  (`feed_obs`): through the quantised z alone the exact state never reaches the dynamics, and a
  one-step prediction needs it. Besides the DreamerV3 losses it trains on its own open-loop
  imagination (`imagine_weight`): from each window's first state the prior imagines the rest of the
  window (modes, straight-through) and the decoded states are scored against the truth; or, with
  `imagine_horizon` K, K steps from every step of the window at once (K sequential steps). As in the
  ensemble, the recurrence's input also reads the world's feature set (`features`, 'auto' by default),
  and with a motion prior (`prior`, off by default) the decoded change is a residual on the prior's
  next state under the action rather than on the last state.
- `frames` (pixels only): DreamerV3's convolutional encoder and decoder (`frames.py`, flat latents)
  on each frame, `context` frames observed (4 by default); the decoder reconstructs every frame from
  [h_t, z_t], and with `frame_residual` an imagined frame is the last real frame plus the decoded change
  D(t+k) - D(t), as in the transformer. A linear probe reads the state vector from [h, z] (held fixed).

Unlike the ensemble, the state carries memory: `observe` filters the whole context through the
recurrence, so an early observation can shape late predictions. Predictions use the mode of each
categorical (deterministic); training samples.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from wmkit.errors import WmkitError, check_fields
from wmkit.models.base import ModelSpec, Prediction, State, WorldModel
from wmkit.models.frames import (FrameDecoder, FrameEncoder, as_unit_frames, moving_pixels, paint_residual,
                                 weighted_mse)
from wmkit.worlds.features import feature_set, resolve_features
from wmkit.worlds.priors import motion_prior, resolve_prior


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
    decode_delta: bool = True
    """decode the change from the last observed or imagined state (state inputs), not the whole state"""
    feed_obs: bool = True
    """state inputs: the recurrence also reads the last observed or imagined state, so the exact state
    reaches the dynamics (otherwise it passes only through the quantised z, which loses the precision a
    one-step prediction needs)"""
    imagine_weight: float = 1.0
    """weight of the open-loop loss: from the window's first state, the prior imagines the rest of the
    window (mode of each categorical, straight-through gradients) and the decoded states are scored
    against the truth, which is what `rollout` is asked to do (state inputs)"""
    imagine_horizon: int = 0
    """steps the open-loop loss imagines: 0, the rest of the window from its first step; K > 0, K steps from
    every step of the teacher-forced pass that has K steps after it (the filtered h and z there), all starts
    in one batch: K sequential steps instead of seq_len, and each start's h already carries its past"""
    inputs: str = "state"
    """what the model reads: "state" (state vectors) or "frames" (pixels only)"""
    channels: int = 16
    """width of the first convolution of the frame encoder and decoder (inputs="frames")"""
    context: int = 4
    """frames a pixel model observes before it imagines (inputs="frames")"""
    moving_weight: float = 5.0
    """extra weight of pixels that change, in the frame loss (inputs="frames")"""
    frame_residual: bool = True
    """paint each imagined frame as the last real frame plus the decoded change (inputs="frames")"""
    features: str = "auto"
    """state inputs with `feed_obs`: the world's feature set (`wmkit.worlds.features`) read beside the state
    by the recurrence's input; 'auto' (the world's own, or none), 'none' or a set's name"""
    prior: str = "none"
    """state inputs: a motion prior (`wmkit.worlds.priors`); the decoded change is then added to the prior's
    next state under the action instead of to the last state (residual physics, as in the ensemble);
    'none', 'auto' (the world's own) or a prior's name"""

    before_field_existed = {"features": "none", "prior": "none", "imagine_horizon": 0}

    def __post_init__(self):
        check_fields(self, "rssm config", positive_ints=("deter", "groups", "classes", "hidden", "seq_len",
                                                         "channels", "context"),
                     nonnegative=("free_bits", "dyn_scale", "rep_scale", "reward_weight", "continue_weight",
                                  "moving_weight", "imagine_weight"))
        if not (0 <= self.unimix < 1):
            raise WmkitError(f"rssm config: unimix={self.unimix!r} must be in [0, 1)")
        if self.inputs not in ("state", "frames"):
            raise WmkitError(f"rssm config: inputs={self.inputs!r} must be 'state' or 'frames'")
        if not isinstance(self.imagine_horizon, int) or isinstance(self.imagine_horizon, bool) or \
                not 0 <= self.imagine_horizon <= self.seq_len:
            raise WmkitError(f"rssm config: imagine_horizon={self.imagine_horizon!r} must be a whole number of steps "
                             f"from 0 (the whole window) to seq_len={self.seq_len}")
        if self.prior != "none" and (self.inputs == "frames" or not self.decode_delta):
            raise WmkitError(f"rssm config: prior={self.prior!r} needs state inputs with decode_delta=True "
                             f"(the prior's next state is what the decoded change is added to); use prior=none")


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
PIXEL_PRESETS = {  # inputs="frames"
    "tiny": {"deter": 64, "groups": 8, "classes": 8, "hidden": 64, "seq_len": 8, "channels": 8},
    "small": {"seq_len": 16},
    "base": {"deter": 512, "groups": 32, "classes": 16, "hidden": 512, "seq_len": 32, "channels": 32},
}


class RSSMModel(WorldModel):
    family = "rssm"
    config_class = RSSMConfig
    presets = PRESETS
    pixel_presets = PIXEL_PRESETS

    def __init__(self, spec: ModelSpec, config: RSSMConfig | None = None):
        config = config or RSSMConfig()
        pixels = config.inputs == "frames"
        if pixels:
            if spec.frame_size is None:
                raise WmkitError("an rssm with inputs='frames' needs frames: train on a dataset collected with "
                                 "--render 64 (wmkit collect ... --render 64)")
            spec = spec.with_(decodes=("frame", "state"), context=config.context)
        else:
            spec = spec.with_(decodes=("state",), frame_size=None, frame_camera=None, context=1)
        spec = spec.with_(latent_dim=config.deter + config.groups * config.classes,
                          predicts=("reward", "termination"))
        reads_state = config.feed_obs and not pixels  # only the recurrence's state input reads features
        config = replace(config, features=resolve_features(config.features, spec.world) if reads_state else "none",
                         prior=resolve_prior(config.prior, spec.world))
        super().__init__(spec, config)
        self.features = feature_set(config.features)
        self.prior = motion_prior(config.prior, spec.world)
        D, A, c = spec.obs_dim, spec.action_dim, config
        Z = c.groups * c.classes
        self.pixels = pixels
        if pixels:
            self.encoder = FrameEncoder(spec.frame_size, c.channels, c.hidden)
            self.frame_decoder = FrameDecoder(spec.frame_size, c.channels, c.deter + Z)
            self.decoder = nn.Linear(c.deter + Z, D)  # a probe: the state vector read from [h, z], held fixed
        else:
            self.encoder = _mlp(D, c.hidden, c.hidden)
            self.decoder = _mlp(c.deter + Z, c.hidden, D)
        n_features = self.features.dim if self.features is not None else 0
        self.img_in = nn.Sequential(nn.Linear(Z + A + (D + n_features if self._feeds else 0), c.hidden),
                                    nn.LayerNorm(c.hidden), nn.SiLU())
        self.gru = nn.GRUCell(c.hidden, c.deter)
        self.prior_net = _mlp(c.deter, c.hidden, Z, layers=1)
        self.post_net = _mlp(c.deter + c.hidden, c.hidden, Z, layers=1)
        self.reward_head = _mlp(c.deter + Z, c.hidden, 1)
        self.cont_head = _mlp(c.deter + Z, c.hidden, 1)
        for name, size in (("obs", D), ("act", A), ("delta", D)):
            self.register_buffer(f"{name}_mean", torch.zeros(size))
            self.register_buffer(f"{name}_std", torch.ones(size))
        self.register_buffer("reward_scale", torch.ones(()))

    @classmethod
    def reads_frames(cls, config: dict) -> bool:
        return config.get("inputs") == "frames"

    @property
    def _deltas(self) -> bool:
        return self.config.decode_delta and not self.pixels

    @property
    def _feeds(self) -> bool:
        return self.config.feed_obs and not self.pixels

    def set_normalizer(self, stats: dict[str, torch.Tensor]) -> None:
        for name in ("obs", "act", "delta"):
            getattr(self, f"{name}_mean").copy_(stats[f"{name}_mean"])
            getattr(self, f"{name}_std").copy_(stats[f"{name}_std"].clamp_min(1e-6))
        if "reward_scale" in stats:
            self.reward_scale.copy_(stats["reward_scale"])

    # ---- pieces --------------------------------------------------------------------------------
    def _norm_obs(self, obs):
        return (obs - self.obs_mean) / self.obs_std

    def _embed(self, obs, frames=None):
        if self.pixels:
            return self.encoder(frames)
        return self.encoder(symlog(self._norm_obs(obs)))

    def _probs(self, logits):
        c = self.config
        p = torch.softmax(logits.reshape(*logits.shape[:-1], c.groups, c.classes), -1)
        return (1 - c.unimix) * p + c.unimix / c.classes

    def _mode(self, logits, straight_through: bool = False):
        p = self._probs(logits)
        hard = F.one_hot(p.argmax(-1), self.config.classes).to(p.dtype)
        return (hard + p - p.detach() if straight_through else hard).flatten(-2)

    def _sample(self, logits):
        p = self._probs(logits)
        idx = torch.multinomial(p.reshape(-1, self.config.classes), 1).reshape(p.shape[:-1])
        hard = F.one_hot(idx, self.config.classes).to(p.dtype)
        return (hard + p - p.detach()).flatten(-2)  # straight-through gradients

    def _img_step(self, h, z, a, obs=None):
        """The next h from h, z, the action and (with `feed_obs`) the state they were at."""
        parts = [z, (a - self.act_mean) / self.act_std]
        if self._feeds:
            parts.append(symlog(self._norm_obs(obs)))
            if self.features is not None:
                parts.append(self.features(obs, a))
        return self.gru(self.img_in(torch.cat(parts, -1)), h)

    def _base(self, last_obs, action):
        """What the decoded (normalised) change is added to: the prior's next state, or the last state plus
        the data's mean change (state inputs with `decode_delta`)."""
        return self.prior(last_obs, action) if self.prior is not None else last_obs + self.delta_mean

    def _decode_state(self, feat, last_obs, action):
        """The state vector decoded from [h, z]; with `decode_delta` the change is added to `_base` of
        `last_obs` and the step's `action`."""
        out = self.decoder(feat)
        return self._base(last_obs, action) + out * self.delta_std if self._deltas else \
            out * self.obs_std + self.obs_mean

    def _heads(self, h, z, last_obs, action):
        """Decoded state vector, reward and continue logit from [h, z]."""
        feat = torch.cat([h, z], -1)
        return (self._decode_state(feat, last_obs, action), self.reward_head(feat)[..., 0] * self.reward_scale,
                self.cont_head(feat)[..., 0])

    # ---- verbs ---------------------------------------------------------------------------------
    def observe(self, obs, actions, *, frames=None, physics=None, sim_state=None) -> State:
        if self.pixels:
            f, a = self.check_frame_context(frames, actions)
            emb = self._embed(None, f)
        else:
            o, a = self.check_context(obs, actions)
            emb = self._embed(o)
        B, c = emb.shape[0], self.config
        h = emb.new_zeros(B, c.deter)
        z = self._mode(self.post_net(torch.cat([h, emb[:, 0]], -1)))
        for t in range(a.shape[1]):  # filter the context: the recurrence carries what it saw
            h = self._img_step(h, z, a[:, t], None if self.pixels else o[:, t])
            z = self._mode(self.post_net(torch.cat([h, emb[:, t + 1]], -1)))
        if self.pixels:  # the frame shown and the plain decode it was painted from
            dec = self.frame_decoder(torch.cat([h, z], -1))
            return State(h=h, z=z, frame=as_unit_frames(f[:, -1]), dec=dec)
        return State(h=h, z=z, obs=o[:, -1])

    def step(self, state: State, action) -> tuple[State, Prediction]:
        a = self.check_actions(action, ndim=2)
        if a.shape[0] != state.batch_size:
            raise WmkitError(f"action batch {a.shape[0]} does not match state batch {state.batch_size}")
        h = self._img_step(state["h"], state["z"], a, None if self.pixels else state["obs"])
        z = self._mode(self.prior_net(h))
        obs, reward, cont = self._heads(h, z, None if self.pixels else state["obs"], a)
        pred = Prediction(obs=obs, reward=reward, terminated=1 - torch.sigmoid(cont))
        if not self.pixels:
            return State(h=h, z=z, obs=obs), pred
        dec = self.frame_decoder(torch.cat([h, z], -1))
        pred.frame = paint_residual(state["frame"], dec, state["dec"]) if self.config.frame_residual else dec
        return State(h=h, z=z, frame=pred.frame, dec=dec), pred

    @property
    def train_window(self) -> int:
        return self.config.seq_len

    def loss(self, batch):
        c = self.config
        obs, act = batch.obs, batch.actions  # [B, L+1, D], [B, L, A]
        B, L = act.shape[:2]
        if self.pixels and batch.frames is None:
            raise WmkitError("this model trains on frames; load the dataset with frames=True")
        emb = self._embed(obs, batch.frames)
        h = obs.new_zeros(B, c.deter)
        post = self.post_net(torch.cat([h, emb[:, 0]], -1))
        z = self._sample(post)
        feats_h, feats_z, priors, posts = [h], [z], [], []
        for t in range(L):
            h = self._img_step(h, z, act[:, t], obs[:, t])  # teacher forced: the true state
            prior = self.prior_net(h)
            post = self.post_net(torch.cat([h, emb[:, t + 1]], -1))
            z = self._sample(post)
            feats_h.append(h)
            feats_z.append(z)
            priors.append(prior)
            posts.append(post)
        feat_all = torch.cat([torch.stack(feats_h, 1), torch.stack(feats_z, 1)], -1)  # [B, L+1, F]
        feat = feat_all[:, 1:]
        metrics = {}
        if self.pixels:
            target = as_unit_frames(batch.frames)
            moving = torch.zeros_like(target[..., :1])
            moving[:, 1:] = moving_pixels(target[:, 1:], target[:, :-1])
            recon = weighted_mse(self.frame_decoder(feat_all), target, 1.0 + c.moving_weight * moving)
            probe = F.mse_loss(self.decoder(feat_all.detach()), self._norm_obs(obs))
            metrics["probe_mse"] = probe.item()
            recon = recon + probe
        elif self._deltas:  # the change from the last observation (nothing to change from at t = 0)
            target = (obs[:, 1:] - self._base(obs[:, :-1], act)) / self.delta_std
            recon = (self.decoder(feat) - target).pow(2).sum(-1).mean()
        else:
            recon = (self.decoder(feat_all) - self._norm_obs(obs)).pow(2).sum(-1).mean()
        imagined = 0.0
        if not self.pixels and c.imagine_weight:
            K = c.imagine_horizon or L
            starts = L - K + 1  # every step with K steps after it (only the first when K = L)
            h0, z0 = feat_all[:, :starts].flatten(0, 1).split([c.deter, feat_all.shape[-1] - c.deter], -1)
            seg_obs = obs.unfold(1, K + 1, 1).transpose(-1, -2).flatten(0, 1)  # [B * starts, K + 1, D]
            seg_act = act.unfold(1, K, 1).transpose(-1, -2).flatten(0, 1)  # [B * starts, K, A]
            imagined = self._imagine_loss(h0, z0, seg_obs, seg_act)
            metrics["imagined_mse"] = imagined.item()
        reward = self.reward_head(feat)[..., 0]
        rew_loss = F.mse_loss(reward, batch.rewards / self.reward_scale)
        cont_loss = F.binary_cross_entropy_with_logits(self.cont_head(feat)[..., 0], 1 - batch.terminated)
        p_prior, p_post = self._probs(torch.stack(priors, 1)), self._probs(torch.stack(posts, 1))
        dyn = _kl(p_post.detach(), p_prior).clamp_min(c.free_bits).mean()
        rep = _kl(p_post, p_prior.detach()).clamp_min(c.free_bits).mean()
        total = recon + c.imagine_weight * imagined + c.reward_weight * rew_loss + c.continue_weight * cont_loss + \
            c.dyn_scale * dyn + c.rep_scale * rep
        metrics.update(recon=recon.item(), reward_mse=rew_loss.item(), continue_bce=cont_loss.item(),
                       kl_dyn=dyn.item(), kl_rep=rep.item())
        return total, metrics

    def _imagine_loss(self, h, z, obs, act):
        """Mean squared error (normalised, summed over dimensions) of the states imagined open loop from
        each segment's first step (h, z there; obs [N, K+1, D], act [N, K, A]), as `rollout` does it, with
        straight-through gradients through the modes."""
        cur, err = obs[:, 0], 0.0
        for t in range(act.shape[1]):
            h = self._img_step(h, z, act[:, t], cur)
            z = self._mode(self.prior_net(h), straight_through=True)
            cur = self._decode_state(torch.cat([h, z], -1), cur, act[:, t])
            err = err + ((cur - obs[:, t + 1]) / self.obs_std).pow(2).sum(-1).mean()
        return err / act.shape[1]


def _kl(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """KL(p || q) of [..., groups, classes] categoricals, summed over groups: [...]."""
    return (p * (p.clamp_min(1e-8).log() - q.clamp_min(1e-8).log())).sum((-1, -2))
