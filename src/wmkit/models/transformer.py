"""`transformer`: frame-by-frame causal attention over per-step tokens, with a KV cache.

The shape of IRIS's and of causal video models' dynamics (Micheli et al., ICLR 2023; the
frame-autoregressive models behind Genie-style worlds), on per-step tokens: token t embeds the
observation o_t and the action a_t, and the output at t predicts o_{t+1} (as a normalised delta),
the reward r_t and whether the episode ends. Attention is causal and banded: token t sees tokens
t - window + 1 .. t, with a learned bias per head for each distance 0 .. window - 1 (no absolute
positions), so a rollout can run for ever at a constant cost and memory per step.

Imagination keeps a KV cache: per layer, the keys and values of the last `window - 1` tokens. One
step embeds one token, attends to the cache, and appends to it; nothing before is recomputed. The
uncached path (`rollout_uncached`) re-runs the whole token history through the banded attention at
every step, the reference the cached path must equal.

Two kinds of input (`inputs`):
- `state`: token t embeds the normalised state vector; the output predicts the next one as a delta.
- `frames` (pixels only): a convolutional encoder (`frames.py`) turns each frame into a latent z_t,
  the token embeds (z_t, a_t), the output predicts z_{t+1} as a residual, and imagination stays in
  latent space: the predicted z is the next token's input. A decoder turns any z into a frame, and a
  linear probe reads the state vector out of z (trained with z held fixed, so the latent is learned
  from pixels alone; the probe only lets state metrics score a pixel model). With `frame_residual`
  (the default) an imagined frame is the previous frame plus D(z_{t+1}) - D(z_t): the decoder paints
  only what changes, and the static scene stays as sharp as the last real frame.

Trained with teacher forcing on windows of `seq_len` steps. State inputs: MSE on normalised deltas.
Frames: reconstruction of every 4th frame from its own z, of frame t+1 from the predicted z, and a
latent-consistency term (predicted z_{t+1} against the encoder's, held fixed). Both: reward MSE and
termination cross-entropy. Deterministic; `obs_std` is not predicted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from wmkit.errors import WmkitError, check_fields
from wmkit.models.base import ModelSpec, Prediction, State, WorldModel
from wmkit.models.frames import FrameDecoder, FrameEncoder, as_unit_frames


@dataclass
class TransformerConfig:
    width: int = 128
    """size of each token (d_model)"""
    layers: int = 3
    heads: int = 4
    window: int = 64
    """tokens each token attends to (itself included); the KV cache holds window - 1"""
    seq_len: int = 32
    """steps in each training window"""
    mlp_ratio: int = 4
    inputs: str = "state"
    """what the model reads: "state" (state vectors) or "frames" (pixels only)"""
    latent: int = 128
    """size of a frame's latent z (inputs="frames")"""
    channels: int = 32
    """width of the first convolution of the frame encoder and decoder (inputs="frames")"""
    moving_weight: float = 20.0
    """extra weight of pixels that change between consecutive frames, in the frame losses"""
    frame_residual: bool = True
    """paint each imagined frame as the last frame plus the change the decoder sees between the latents
    (D(z_t+1) - D(z_t)), so what does not move stays as sharp as the last real frame"""
    latent_weight: float = 1.0
    reward_weight: float = 1.0
    termination_weight: float = 1.0

    def __post_init__(self):
        check_fields(self, "transformer config", positive_ints=("width", "layers", "heads", "window", "seq_len",
                                                                "mlp_ratio", "latent", "channels"),
                     nonnegative=("latent_weight", "moving_weight", "reward_weight", "termination_weight"))
        if self.inputs not in ("state", "frames"):
            raise WmkitError(f"transformer config: inputs={self.inputs!r} must be 'state' or 'frames'")
        if self.width % self.heads:
            raise WmkitError(f"transformer config: width={self.width} must be a multiple of heads={self.heads}")
        if self.window < 2:
            raise WmkitError(f"transformer config: window={self.window} must be at least 2")


PRESETS = {
    "tiny": {"width": 64, "layers": 2, "heads": 2, "window": 32, "seq_len": 16},
    "small": {},
    "base": {"width": 256, "layers": 4, "heads": 8, "window": 128, "seq_len": 48},
}


class _Block(nn.Module):
    def __init__(self, c: TransformerConfig):
        super().__init__()
        self.heads, self.dh = c.heads, c.width // c.heads
        self.norm1, self.norm2 = nn.LayerNorm(c.width), nn.LayerNorm(c.width)
        self.qkv = nn.Linear(c.width, 3 * c.width)
        self.proj = nn.Linear(c.width, c.width)
        self.mlp = nn.Sequential(nn.Linear(c.width, c.mlp_ratio * c.width), nn.GELU(),
                                 nn.Linear(c.mlp_ratio * c.width, c.width))

    def split(self, x):
        """[B, T, W] -> q, k, v each [B, heads, T, dh]."""
        B, T, _ = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(B, T, 3, self.heads, self.dh).permute(2, 0, 3, 1, 4)
        return q, k, v

    def finish(self, x, att):
        """Residual updates from attention outputs att [B, heads, T, dh]."""
        B, _, T, _ = att.shape
        x = x + self.proj(att.transpose(1, 2).reshape(B, T, -1))
        return x + self.mlp(self.norm2(x))


class TransformerModel(WorldModel):
    family = "transformer"
    config_class = TransformerConfig
    presets = PRESETS

    def __init__(self, spec: ModelSpec, config: TransformerConfig | None = None):
        config = config or TransformerConfig()
        pixels = config.inputs == "frames"
        if pixels:
            if spec.frame_size is None:
                raise WmkitError("a transformer with inputs='frames' needs frames: train on a dataset collected with "
                                 "--render 64 (wmkit collect ... --render 64)")
            spec = spec.with_(latent_dim=config.latent, decodes=("frame", "state"))
        else:
            spec = spec.with_(latent_dim=config.width, decodes=("state",), frame_size=None, frame_camera=None)
        spec = spec.with_(predicts=("reward", "termination"), context=1)
        super().__init__(spec, config)
        D, A, c = spec.obs_dim, spec.action_dim, config
        self.pixels = pixels
        x_dim = c.latent if pixels else D
        if pixels:
            self.encoder = FrameEncoder(spec.frame_size, c.channels, c.latent)
            self.decoder = FrameDecoder(spec.frame_size, c.channels, c.latent)
            self.probe = nn.Linear(c.latent, D)  # the state vector read out of z
        self.embed = nn.Linear(x_dim + A, c.width)
        self.blocks = nn.ModuleList(_Block(c) for _ in range(c.layers))
        self.distance_bias = nn.Parameter(torch.zeros(c.heads, c.window))  # per head, distance 0 .. window-1
        self.norm = nn.LayerNorm(c.width)
        self.head = nn.Linear(c.width, x_dim + 2)  # next input (a delta), reward, termination logit
        for name, size in (("obs", D), ("act", A), ("delta", D)):
            self.register_buffer(f"{name}_mean", torch.zeros(size))
            self.register_buffer(f"{name}_std", torch.ones(size))
        self.register_buffer("reward_scale", torch.ones(()))
        self.register_buffer("obs_low", torch.full((D,), -math.inf))
        self.register_buffer("obs_high", torch.full((D,), math.inf))

    @classmethod
    def reads_frames(cls, config: dict) -> bool:
        return config.get("inputs") == "frames"

    def set_normalizer(self, stats: dict[str, torch.Tensor]) -> None:
        for name in ("obs", "act", "delta"):
            getattr(self, f"{name}_mean").copy_(stats[f"{name}_mean"])
            getattr(self, f"{name}_std").copy_(stats[f"{name}_std"].clamp_min(1e-6))
        if "reward_scale" in stats:
            self.reward_scale.copy_(stats["reward_scale"])
        if "obs_min" in stats:  # imagined states stay within the data's range widened by half of it
            span = stats["obs_max"] - stats["obs_min"]
            self.obs_low.copy_(stats["obs_min"] - 0.5 * span)
            self.obs_high.copy_(stats["obs_max"] + 0.5 * span)

    # ---- pieces --------------------------------------------------------------------------------
    # `x` is what a token reads besides the action: the raw state vector (inputs="state") or the
    # frame's latent z (inputs="frames").
    def _tokens(self, x, act):
        if not self.pixels:
            x = (x - self.obs_mean) / self.obs_std
        return self.embed(torch.cat([x, (act - self.act_mean) / self.act_std], -1))

    def _advance(self, x, h):
        """Final token states h [..., W] and the inputs x they saw -> next x, prediction, raw delta."""
        out = self.head(self.norm(h))
        dx, reward, logit = out[..., :-2], out[..., -2] * self.reward_scale, out[..., -1]
        if self.pixels:
            nxt = x + dx
            obs = self.probe(nxt) * self.obs_std + self.obs_mean
            pred = Prediction(obs=obs, reward=reward, terminated=torch.sigmoid(logit), frame=self.decoder(nxt))
            # (`frame` is the plain decode here; `_paint` turns it into the frame shown)
        else:
            nxt = x + dx * self.delta_std + self.delta_mean
            nxt = torch.maximum(torch.minimum(nxt, self.obs_high), self.obs_low)
            pred = Prediction(obs=nxt, reward=reward, terminated=torch.sigmoid(logit))
        return nxt, pred, dx, logit

    def _paint(self, shown, dec_prev, pred: Prediction):
        """The frame shown after a step: the plain decode, or the last frame plus the decoded change."""
        dec = pred.frame
        if self.config.frame_residual:
            pred.frame = (shown + dec - dec_prev).clamp(0.0, 1.0)
        return pred.frame, dec

    def _inputs(self, obs, actions, frames):
        """The checked context as token inputs x [B, T+1, X] and actions [B, T, A]."""
        if not self.pixels:
            return self.check_context(obs, actions)
        a = self.check_actions(actions, ndim=3)
        f = self.check_frames(frames)
        if a.ndim != 3 or a.shape[:2] != (f.shape[0], f.shape[1] - 1) or a.shape[-1] != self.spec.action_dim:
            raise WmkitError(f"context actions have shape {tuple(a.shape)}; expected [{f.shape[0]}, {f.shape[1] - 1}, "
                             f"{self.spec.action_dim}] (one action fewer than frames)")
        return self.encoder(f), a

    def check_frames(self, frames) -> torch.Tensor:
        S = self.spec.frame_size
        if frames is None:
            raise WmkitError(f"this model reads frames: pass frames=[B, T+1, {S}, {S}, 3] to observe")
        f = frames if isinstance(frames, torch.Tensor) else torch.as_tensor(frames)
        if f.ndim != 5 or tuple(f.shape[2:]) != (S, S, 3):
            raise WmkitError(f"frames have shape {tuple(f.shape)}; expected [B, T+1, {S}, {S}, 3] (RGB, the size "
                             f"the model was trained on)")
        return f.to(self.device)

    def _banded_bias(self, T: int, device) -> torch.Tensor:
        """[heads, T, T] additive attention bias: learned per distance inside the window, -inf elsewhere."""
        i = torch.arange(T, device=device)
        dist = i[:, None] - i[None, :]
        inside = (dist >= 0) & (dist < self.config.window)
        bias = self.distance_bias[:, dist.clamp(0, self.config.window - 1)]
        return bias.masked_fill(~inside, -math.inf)

    def _sequence(self, tokens):
        """All tokens at once (training, contexts, the uncached reference): [B, T, W] -> outputs, keys, values."""
        bias = self._banded_bias(tokens.shape[1], tokens.device)
        x, keys, values = tokens, [], []
        for block in self.blocks:
            q, k, v = block.split(x)
            keys.append(k)
            values.append(v)
            x = block.finish(x, F.scaled_dot_product_attention(q, k, v, attn_mask=bias))
        return x, keys, values

    def _cache_from(self, keys, values):
        """Keep the last window - 1 tokens of each layer: [B, layers, heads, n, dh]."""
        keep = self.config.window - 1
        return torch.stack([k[:, :, -keep:] for k in keys], 1), torch.stack([v[:, :, -keep:] for v in values], 1)

    # ---- verbs ---------------------------------------------------------------------------------
    def observe(self, obs, actions, *, frames=None, physics=None, sim_state=None) -> State:
        x, a = self._inputs(obs, actions, frames)
        B, dh, c = x.shape[0], self.config.width // self.config.heads, self.config
        # a pixel model carries the frame it shows and the plain decode of its latent
        extra = {"frame": as_unit_frames(self.check_frames(frames)[:, -1]), "dec": self.decoder(x[:, -1])} \
            if self.pixels else {}
        if a.shape[1] == 0:
            empty = x.new_zeros(B, c.layers, c.heads, 0, dh)
            return State(x=x[:, -1], k=empty, v=empty.clone(), **extra)
        _, keys, values = self._sequence(self._tokens(x[:, :-1], a))
        k, v = self._cache_from(keys, values)
        return State(x=x[:, -1], k=k, v=v, **extra)

    def step(self, state: State, action) -> tuple[State, Prediction]:
        a = self.check_actions(action, ndim=2)
        if a.shape[0] != state.batch_size:
            raise WmkitError(f"action batch {a.shape[0]} does not match state batch {state.batch_size}")
        x, cache_k, cache_v = state["x"], state["k"], state["v"]
        n = cache_k.shape[3]
        h = self._tokens(x, a)[:, None]  # [B, 1, W]
        bias = self.distance_bias[:, :n + 1].flip(-1)[:, None, :]  # distances n .. 0 to cached then self
        new_k, new_v = [], []
        for li, block in enumerate(self.blocks):
            q, k, v = block.split(h)
            k = torch.cat([cache_k[:, li], k], 2)
            v = torch.cat([cache_v[:, li], v], 2)
            new_k.append(k)
            new_v.append(v)
            h = block.finish(h, F.scaled_dot_product_attention(q, k, v, attn_mask=bias))
        nxt, pred, _, _ = self._advance(x, h[:, 0])
        k, v = self._cache_from(new_k, new_v)
        extra = {}
        if self.pixels:
            shown, dec = self._paint(state["frame"], state["dec"], pred)
            extra = {"frame": shown, "dec": dec}
        return State(x=nxt, k=k, v=v, **extra), pred

    @torch.no_grad()
    def rollout_uncached(self, obs, actions, future, frames=None) -> Prediction:
        """The reference: every step re-runs the whole history (context and imagined) without a cache."""
        x, a = self._inputs(obs, actions, frames)
        f = self.check_actions(future, ndim=3)
        hist_x, hist_a, preds = list(x.unbind(1)), list(a.unbind(1)), []
        if self.pixels:
            shown, dec = as_unit_frames(self.check_frames(frames)[:, -1]), self.decoder(x[:, -1])
        for t in range(f.shape[1]):
            hist_a.append(f[:, t])
            h, _, _ = self._sequence(self._tokens(torch.stack(hist_x, 1), torch.stack(hist_a, 1)))
            nxt, pred, _, _ = self._advance(hist_x[-1], h[:, -1])
            if self.pixels:
                shown, dec = self._paint(shown, dec, pred)
            hist_x.append(nxt)
            preds.append(pred)
        return Prediction.stack(preds)

    @property
    def train_window(self) -> int:
        return self.config.seq_len

    def loss(self, batch):
        obs, act = batch.obs, batch.actions  # [B, L+1, D], [B, L, A]
        c = self.config
        if act.shape[1] > c.window:
            raise WmkitError(f"training windows of {act.shape[1]} steps exceed the attention window "
                             f"{c.window}; lower seq_len or raise window")
        metrics = {}
        if self.pixels:
            if batch.frames is None:
                raise WmkitError("this model trains on frames; load the dataset with frames=True")
            target = as_unit_frames(batch.frames)
            z = self.encoder(batch.frames)
            h, _, _ = self._sequence(self._tokens(z[:, :-1], act))
            pred_z, pred, _, logit = self._advance(z[:, :-1], h)
            dec_pred = pred.frame  # `_advance` decoded the predicted latents already
            # what moves (a few pixels: the pusher, the cup) counts `moving_weight` times more than the
            # static scene, or a small latent learns the background and blurs the objects away
            moving = ((target[:, 1:] - target[:, :-1]).abs().amax(-1, keepdim=True) > 0.03).float()
            w = 1.0 + c.moving_weight * moving
            if c.frame_residual:  # the last real frame plus the decoded change
                dec_now = self.decoder(z[:, :-1])
                recon = _weighted_mse(dec_now[:, ::4], target[:, :-1:4], w[:, ::4])  # every 4th frame keeps D a decoder
                predicted = _weighted_mse(target[:, :-1] + dec_pred - dec_now, target[:, 1:], w)
            else:
                recon = F.mse_loss(self.decoder(z[:, ::4]), target[:, ::4])  # every 4th frame: decoding is the cost
                predicted = _weighted_mse(dec_pred, target[:, 1:], w)
            latent = F.mse_loss(pred_z, z[:, 1:].detach())
            probe = F.mse_loss(self.probe(z.detach()), (obs - self.obs_mean) / self.obs_std)
            main = recon + predicted + c.latent_weight * latent + probe
            metrics.update(recon_mse=recon.item(), frame_mse=predicted.item(), latent_mse=latent.item(),
                           probe_mse=probe.item())
        else:
            h, _, _ = self._sequence(self._tokens(obs[:, :-1], act))
            _, pred, delta, logit = self._advance(obs[:, :-1], h)
            target = (obs[:, 1:] - obs[:, :-1] - self.delta_mean) / self.delta_std
            main = F.mse_loss(delta, target)
            metrics["delta_mse"] = main.item()
        rew_loss = F.mse_loss(pred.reward / self.reward_scale, batch.rewards / self.reward_scale)
        term_loss = F.binary_cross_entropy_with_logits(logit, batch.terminated)
        total = main + c.reward_weight * rew_loss + c.termination_weight * term_loss
        return total, {**metrics, "reward_mse": rew_loss.item(), "termination_bce": term_loss.item()}


def _weighted_mse(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean of weight x squared error, divided by the mean weight (so it stays an MSE in scale)."""
    w = weight.expand_as(pred)
    return (w * (pred - target).pow(2)).mean() / w.mean()
