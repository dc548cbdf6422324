"""`transformer`: frame-by-frame causal attention over per-step tokens, with a KV cache.

The shape of IRIS's and of causal video models' dynamics (Micheli et al., ICLR 2023; the
frame-autoregressive models behind Genie-style worlds). Each step t is N tokens (one for a state
vector, one per grid cell of a frame) that embed the observation o_t and the action a_t; the output at
t predicts o_{t+1} (as a change), the reward r_t and whether the episode ends. Attention over time is
causal and banded: a token sees the same cell's tokens t - window + 1 .. t, with a learned bias per
head for each distance 0 .. window - 1 (no absolute positions in time), so a rollout can run for ever
at a constant cost and memory per step. With several tokens per step, each layer first mixes the cells
of one step (a 3 x 3 convolution over the grid, or attention among the cells as in Genie's
spatio-temporal blocks: space within a step, then time within a cell), which keeps every step causal.

Imagination keeps a KV cache: per layer and cell, the keys and values of the last `window - 1`
steps. One step embeds one step's tokens, attends to the cache, and appends to it; nothing before is
recomputed. The uncached path (`rollout_uncached`) re-runs the whole history at every step, the
reference the cached path must equal.

Two kinds of input (`inputs`):
- `state`: one token per step embeds the normalised state vector; the output predicts the next one as
  a normalised delta. Trained by teacher forcing (MSE on the deltas).
- `frames` (pixels only): a convolutional encoder (`frames.py`, `GridEncoder`) turns each frame into a
  grid of latents, one per `patch` x `patch` cell (8 x 8 cells of `latent` numbers for 64 x 64 frames at
  patch 8), so that a small object is a change in one or two cells rather than in a flat vector. Token
  (t, cell) embeds that cell's latent, the action and a learned position of the cell; the output
  predicts the cell's next latent as a residual, and imagination stays in latent space. A decoder
  turns any grid into a frame, and a linear probe reads the state vector out of the grid (trained with
  the grid held fixed, so the latent is learned from pixels alone; the probe only lets state metrics
  score a pixel model). An imagined frame is painted from the frame before (`paint`): by default a
  motion decoder reads the latents before and after the step and gives every pixel a k x k kernel
  and a mask, and the pixels under an open mask take their kernel's mix of their neighbours (dynamic
  neural advection, Finn et al. 2016), so objects slide and the static scene stays exactly as it was;
  "residual" adds D(z_t+1) - D(z_t) to the frame before; "decode" shows D(z_t+1). A pixel model
  observes `context` frames (4 by default: one frame shows where things are, not how fast they move).
  Losses: frames reconstructed from their own grid (every 4th), the teacher-forced next grid against
  the encoder's (held fixed), and the frames the model imagines open loop for the whole training
  window after its context (what evaluation scores), with pixels that change weighted `moving_weight`
  times more; a penalty on the mean advection mask; plus the probe.

Both: reward MSE and termination cross-entropy. Deterministic; `obs_std` is not predicted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from wmkit.errors import WmkitError, check_fields
from wmkit.models.base import ModelSpec, Prediction, State, WorldModel
from wmkit.models.frames import (GridDecoder, GridEncoder, advect, as_unit_frames, check_patch, moving_pixels,
                                 paint_residual, warp, weighted_mse)


@dataclass
class TransformerConfig:
    width: int = 128
    """size of each token (d_model)"""
    layers: int = 3
    heads: int = 4
    window: int = 64
    """steps each token attends to (itself included); the KV cache holds window - 1"""
    seq_len: int = 32
    """steps in each training window (after the context)"""
    mlp_ratio: int = 4
    inputs: str = "state"
    """what the model reads: "state" (state vectors) or "frames" (pixels only)"""
    patch: int = 8
    """side in pixels of each grid cell of a frame (inputs="frames")"""
    latent: int = 16
    """latent numbers per grid cell (inputs="frames")"""
    channels: int = 16
    """width of the first convolution of the frame encoder and decoder (inputs="frames")"""
    context: int = 4
    """frames a pixel model observes before it imagines (inputs="frames")"""
    mixing: str = "conv"
    """how the cells of one step exchange information (inputs="frames"): "conv" (a 3 x 3 convolution over
    the grid in every layer) or "attention" (all cells attend to each other, as in Genie)"""
    moving_weight: float = 5.0
    """extra weight of pixels that change, in the frame losses (inputs="frames")"""
    paint: str = "advect"
    """how an imagined frame is painted (inputs="frames"): "advect" moves the pixels of the frame before
    by a k x k kernel per pixel decoded from the latents before and after the step (Finn et al. 2016), so
    an object slides instead of fading out and in; "warp" moves them along a flow decoded the same way,
    one bilinear sample per pixel (up to `max_shift` pixels a step; far cheaper than a wide kernel);
    "residual" adds the change the decoder sees between
    the latents (D(z_t+1) - D(z_t)) to the frame before; "decode" shows D(z_t+1) as it is"""
    kernel: int = 5
    """side of the advection kernel: how far a pixel can move in one step (paint="advect")"""
    max_shift: float = 4.0
    """how far, in pixels, a pixel can move in one step (paint="warp")"""
    motion_sees_frame: bool = False
    """the motion decoder also reads the grid encoding of the frame shown (paint="advect" or "warp"): where the painted
    objects have drifted from where the latents put them, it can move them back"""
    mask_weight: float = 0.02
    """penalty on the mean advection mask (paint="advect" or "warp"): only what moves should be touched, or the
    static scene blurs a little at every imagined step"""
    latent_weight: float = 1.0
    reward_weight: float = 1.0
    termination_weight: float = 1.0

    def __post_init__(self):
        check_fields(self, "transformer config", positive_ints=("width", "layers", "heads", "window", "seq_len",
                                                                "mlp_ratio", "patch", "latent", "channels",
                                                                "context", "kernel"),
                     nonnegative=("latent_weight", "moving_weight", "mask_weight", "reward_weight",
                                  "termination_weight"))
        if not (isinstance(self.max_shift, (int, float)) and 0 < self.max_shift < math.inf):
            raise WmkitError(f"transformer config: max_shift={self.max_shift!r} must be a positive number of pixels")
        if self.inputs not in ("state", "frames"):
            raise WmkitError(f"transformer config: inputs={self.inputs!r} must be 'state' or 'frames'")
        if self.paint not in ("advect", "warp", "residual", "decode"):
            raise WmkitError(f"transformer config: paint={self.paint!r} must be 'advect', 'warp', 'residual' or "
                             f"'decode'")
        if self.kernel % 2 == 0:
            raise WmkitError(f"transformer config: kernel={self.kernel} must be odd (a pixel and its neighbours)")
        if self.mixing not in ("conv", "attention"):
            raise WmkitError(f"transformer config: mixing={self.mixing!r} must be 'conv' or 'attention'")
        if self.width % self.heads:
            raise WmkitError(f"transformer config: width={self.width} must be a multiple of heads={self.heads}")
        if self.window < 2:
            raise WmkitError(f"transformer config: window={self.window} must be at least 2")


PRESETS = {
    "tiny": {"width": 64, "layers": 2, "heads": 2, "window": 32, "seq_len": 16},
    "small": {},
    "base": {"width": 256, "layers": 4, "heads": 8, "window": 128, "seq_len": 48},
}
# pixel models (inputs="frames"): every training step imagines `seq_len` frames open loop
PIXEL_PRESETS = {
    "tiny": {"width": 32, "layers": 1, "heads": 2, "window": 8, "seq_len": 6, "latent": 8, "channels": 8},
    "small": {"width": 64, "layers": 2, "heads": 4, "window": 16, "seq_len": 12},
    "base": {"width": 128, "layers": 3, "heads": 4, "window": 32, "seq_len": 16, "channels": 32},
}


class _Block(nn.Module):
    """One layer over tokens [B, T, N, W]: attention among a step's N cells (when N > 1), causal
    attention over time within each cell, an MLP."""

    def __init__(self, c: TransformerConfig, spatial: bool):
        super().__init__()
        self.heads, self.dh = c.heads, c.width // c.heads
        self.norm1, self.norm2 = nn.LayerNorm(c.width), nn.LayerNorm(c.width)
        self.qkv = nn.Linear(c.width, 3 * c.width)
        self.proj = nn.Linear(c.width, c.width)
        self.mlp = nn.Sequential(nn.Linear(c.width, c.mlp_ratio * c.width), nn.GELU(),
                                 nn.Linear(c.mlp_ratio * c.width, c.width))
        self.mixing = c.mixing if spatial else None
        if self.mixing is not None:
            self.norm_s = nn.LayerNorm(c.width)
        if self.mixing == "attention":
            self.qkv_s = nn.Linear(c.width, 3 * c.width)
            self.proj_s = nn.Linear(c.width, c.width)
        elif self.mixing == "conv":
            self.conv_s = nn.Conv2d(c.width, c.width, 3, padding=1)

    def space(self, x):
        """The cells of one step exchange information (nothing crosses steps): attention among all
        cells, or a 3 x 3 convolution over the grid (neighbours only)."""
        if self.mixing is None:
            return x
        B, T, N, W = x.shape
        y = self.norm_s(x)
        if self.mixing == "attention":
            q, k, v = self.qkv_s(y).reshape(B * T, N, 3, self.heads, self.dh).permute(2, 0, 3, 1, 4)
            att = F.scaled_dot_product_attention(q, k, v)  # [B*T, heads, N, dh]
            return x + self.proj_s(att.transpose(1, 2).reshape(B, T, N, W))
        G = math.isqrt(N)
        y = self.conv_s(y.reshape(B * T, G, G, W).permute(0, 3, 1, 2))
        return x + y.permute(0, 2, 3, 1).reshape(B, T, N, W)

    def split(self, x):
        """[B, T, N, W] -> the temporal q, k, v, each [B*N, heads, T, dh]."""
        B, T, N, _ = x.shape
        qkv = self.qkv(self.norm1(x)).reshape(B, T, N, 3, self.heads, self.dh).permute(3, 0, 2, 4, 1, 5)
        q, k, v = qkv.reshape(3, B * N, self.heads, T, self.dh)
        return q, k, v

    def finish(self, x, att):
        """Residual updates from temporal attention outputs att [B*N, heads, T, dh]."""
        B, T, N, W = x.shape
        att = att.reshape(B, N, self.heads, T, self.dh).permute(0, 3, 1, 2, 4).reshape(B, T, N, W)
        x = x + self.proj(att)
        return x + self.mlp(self.norm2(x))


class TransformerModel(WorldModel):
    family = "transformer"
    config_class = TransformerConfig
    presets = PRESETS
    pixel_presets = PIXEL_PRESETS

    def __init__(self, spec: ModelSpec, config: TransformerConfig | None = None):
        config = config or TransformerConfig()
        pixels = config.inputs == "frames"
        if pixels:
            if spec.frame_size is None:
                raise WmkitError("a transformer with inputs='frames' needs frames: train on a dataset collected with "
                                 "--render 64 (wmkit collect ... --render 64)")
            check_patch(config.patch, spec.frame_size)
            cells = (spec.frame_size // config.patch) ** 2
            spec = spec.with_(latent_dim=cells * config.latent, decodes=("frame", "state"), context=config.context)
        else:
            cells = 1
            spec = spec.with_(latent_dim=config.width, decodes=("state",), frame_size=None, frame_camera=None,
                              context=1)
        spec = spec.with_(predicts=("reward", "termination"))
        super().__init__(spec, config)
        D, A, c = spec.obs_dim, spec.action_dim, config
        self.pixels, self.cells = pixels, cells
        x_dim = c.latent if pixels else D  # what one token reads besides the action
        if pixels:
            self.encoder = GridEncoder(spec.frame_size, c.patch, c.channels, c.latent)
            self.decoder = GridDecoder(spec.frame_size, c.patch, c.channels, c.latent)
            self.probe = nn.Linear(cells * c.latent, D)  # the state vector read out of the grid
            if c.paint in ("advect", "warp"):  # per-pixel motion from the latents before and after a step
                reads = (3 if c.motion_sees_frame else 2) * c.latent
                out = c.kernel ** 2 + 1 if c.paint == "advect" else 3
                self.motion = GridDecoder(spec.frame_size, c.patch, c.channels, reads, out=out)
                with torch.no_grad():  # start close to "nothing moves": kernels peaked at their centre (no
                    last = self.motion.convs[-1]  # flow), masks low
                    last.weight.mul_(0.1)
                    last.bias.zero_()
                    if c.paint == "advect":
                        last.bias[c.kernel ** 2 // 2] = 4.0
                    last.bias[-1] = -3.0
            self.cell_position = nn.Parameter(torch.randn(cells, c.width) * 0.02)
        self.embed = nn.Linear(x_dim + A, c.width)
        self.blocks = nn.ModuleList(_Block(c, spatial=cells > 1) for _ in range(c.layers))
        self.distance_bias = nn.Parameter(torch.zeros(c.heads, c.window))  # per head, distance 0 .. window-1
        self.norm = nn.LayerNorm(c.width)
        self.head = nn.Linear(c.width, x_dim + 2)  # per token: next input (a change), reward, termination logit
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
    # `x` is what the tokens of a step read besides the action, [..., N, X]: the raw state vector
    # (inputs="state", N = 1) or the frame's grid of latents (inputs="frames", N cells).
    def _tokens(self, x, act):
        """x [B, T, N, X], actions [B, T, A] -> tokens [B, T, N, W]."""
        if not self.pixels:
            x = (x - self.obs_mean) / self.obs_std
        a = ((act - self.act_mean) / self.act_std)[..., None, :].expand(*x.shape[:-1], act.shape[-1])
        tokens = self.embed(torch.cat([x, a], -1))
        return tokens + self.cell_position if self.pixels else tokens

    def _advance(self, x, h):
        """Final token states h [..., N, W] and the inputs x [..., N, X] they saw -> next x, prediction, raw change."""
        out = self.head(self.norm(h))
        dx = out[..., :-2]
        reward, logit = out[..., -2].mean(-1) * self.reward_scale, out[..., -1].mean(-1)
        if self.pixels:
            nxt = x + dx
            obs = self.probe(nxt.flatten(-2)) * self.obs_std + self.obs_mean
            pred = Prediction(obs=obs, reward=reward, terminated=torch.sigmoid(logit))  # `_paint` adds the frame
        else:
            nxt = x + dx * self.delta_std + self.delta_mean
            nxt = torch.maximum(torch.minimum(nxt, self.obs_high), self.obs_low)
            pred = Prediction(obs=nxt[..., 0, :], reward=reward, terminated=torch.sigmoid(logit))
        return nxt, pred, dx, logit

    def _paint(self, shown, x_prev, x_next, dec_prev=None, with_mask=False):
        """The frame shown after a step from latents x_prev to x_next, and the plain decode of x_next when
        the next step needs it (paint="residual"); with `with_mask`, also the advection mask (or None)."""
        mode, mask = self.config.paint, None
        if mode in ("advect", "warp"):
            grids = [x_prev, x_next, self.encoder(shown)] if self.config.motion_sees_frame else [x_prev, x_next]
            field = self.motion(torch.cat(grids, -1))
            frame, mask = advect(shown, field, with_mask=True) if mode == "advect" else \
                warp(shown, field, self.config.max_shift, with_mask=True)
            out = frame, None
        else:
            dec = self.decoder(x_next)
            out = (paint_residual(shown, dec, dec_prev), dec) if mode == "residual" else (dec, None)
        return (*out, mask) if with_mask else out

    def _frames_state(self, shown, x) -> dict:
        """What a pixel model's state carries besides the latent: the frame it shows (and, for
        paint="residual", the plain decode it was painted from)."""
        return {"frame": shown, "dec": self.decoder(x)} if self.config.paint == "residual" else {"frame": shown}

    def _inputs(self, obs, actions, frames):
        """The checked context as token inputs x [B, T+1, N, X] and actions [B, T, A]."""
        if not self.pixels:
            o, a = self.check_context(obs, actions)
            return o[:, :, None], a
        f, a = self.check_frame_context(frames, actions)
        return self.encoder(f), a

    def _banded_bias(self, T: int, device) -> torch.Tensor:
        """[heads, T, T] additive attention bias: learned per distance inside the window, -inf elsewhere."""
        i = torch.arange(T, device=device)
        dist = i[:, None] - i[None, :]
        inside = (dist >= 0) & (dist < self.config.window)
        bias = self.distance_bias[:, dist.clamp(0, self.config.window - 1)]
        return bias.masked_fill(~inside, -math.inf)

    def _sequence(self, tokens):
        """All steps at once (training, contexts, the uncached reference): [B, T, N, W] -> outputs, keys, values."""
        bias = self._banded_bias(tokens.shape[1], tokens.device)
        x, keys, values = tokens, [], []
        for block in self.blocks:
            x = block.space(x)
            q, k, v = block.split(x)
            keys.append(k)
            values.append(v)
            x = block.finish(x, F.scaled_dot_product_attention(q, k, v, attn_mask=bias))
        return x, keys, values

    def _cache_from(self, keys, values, batch: int):
        """Keep the last window - 1 steps of each layer: [B, layers, N, heads, n, dh]."""
        keep = self.config.window - 1

        def stack(ts):
            return torch.stack([t[:, :, -keep:].reshape(batch, self.cells, *t.shape[1:2], -1, t.shape[-1])
                                for t in ts], 1)
        return stack(keys), stack(values)

    def _one_step(self, x, a, cache_k, cache_v):
        """One cached step: inputs x [B, N, X], action [B, A] -> next x, prediction, new cache."""
        B, n = x.shape[0], cache_k.shape[4]
        h = self._tokens(x[:, None], a[:, None])  # [B, 1, N, W]
        bias = self.distance_bias[:, :n + 1].flip(-1)[:, None, :]  # distances n .. 0 to cached then self
        new_k, new_v = [], []
        for li, block in enumerate(self.blocks):
            h = block.space(h)
            q, k, v = block.split(h)
            k = torch.cat([cache_k[:, li].flatten(0, 1), k], 2)
            v = torch.cat([cache_v[:, li].flatten(0, 1), v], 2)
            new_k.append(k)
            new_v.append(v)
            h = block.finish(h, F.scaled_dot_product_attention(q, k, v, attn_mask=bias))
        nxt, pred, _, _ = self._advance(x, h[:, 0])
        k, v = self._cache_from(new_k, new_v, B)
        return nxt, pred, k, v

    def _observe(self, x, a) -> tuple[torch.Tensor, torch.Tensor]:
        """The cache after a context of inputs x [B, T+1, N, X] and actions [B, T, A]."""
        B, c = x.shape[0], self.config
        if a.shape[1] == 0:
            empty = x.new_zeros(B, c.layers, self.cells, c.heads, 0, c.width // c.heads)
            return empty, empty.clone()
        _, keys, values = self._sequence(self._tokens(x[:, :-1], a))
        return self._cache_from(keys, values, B)

    # ---- verbs ---------------------------------------------------------------------------------
    def observe(self, obs, actions, *, frames=None, physics=None, sim_state=None) -> State:
        x, a = self._inputs(obs, actions, frames)
        extra = self._frames_state(as_unit_frames(self.check_frames(frames)[:, -1]), x[:, -1]) if self.pixels else {}
        k, v = self._observe(x, a)
        return State(x=x[:, -1], k=k, v=v, **extra)

    def step(self, state: State, action) -> tuple[State, Prediction]:
        a = self.check_actions(action, ndim=2)
        if a.shape[0] != state.batch_size:
            raise WmkitError(f"action batch {a.shape[0]} does not match state batch {state.batch_size}")
        nxt, pred, k, v = self._one_step(state["x"], a, state["k"], state["v"])
        extra = {}
        if self.pixels:
            pred.frame, dec = self._paint(state["frame"], state["x"], nxt, state.tensors.get("dec"))
            extra = {"frame": pred.frame} if dec is None else {"frame": pred.frame, "dec": dec}
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
                shown, dec = self._paint(shown, hist_x[-1], nxt, dec)
                pred.frame = shown
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
        if self.pixels:
            return self._pixel_loss(batch)
        h, _, _ = self._sequence(self._tokens(obs[:, :-1, None], act))
        _, pred, delta, logit = self._advance(obs[:, :-1, None], h)
        target = (obs[:, 1:] - obs[:, :-1] - self.delta_mean) / self.delta_std
        main = F.mse_loss(delta[..., 0, :], target)
        return self._total(main, pred, logit, batch, {"delta_mse": main.item()})

    def _pixel_loss(self, batch):
        c = self.config
        if batch.frames is None:
            raise WmkitError("this model trains on frames; load the dataset with frames=True")
        obs, act = batch.obs, batch.actions
        C = self.spec.context - 1  # context steps the window starts with
        target = as_unit_frames(batch.frames)
        z = self.encoder(batch.frames)  # [B, L+1, N, X]
        # teacher forcing: every next grid from the true history (the encoder's grid is the target)
        h, _, _ = self._sequence(self._tokens(z[:, :-1], act))
        pred_z, pred, _, logit = self._advance(z[:, :-1], h)
        latent = F.mse_loss(pred_z, z[:, 1:].detach())
        # open loop: observe the context, then imagine the rest of the window as evaluation does
        k, v = self._observe(z[:, :C + 1], act[:, :C])
        x, last = z[:, C], target[:, C]
        shown, dec = last, (self.decoder(x) if c.paint == "residual" else None)
        imagined, masks = [], []
        for t in range(C, act.shape[1]):
            nxt, _, k, v = self._one_step(x, act[:, t], k, v)
            shown, dec, mask = self._paint(shown, x, nxt, dec, with_mask=True)
            imagined.append(shown)
            masks.append(mask)
            x = nxt
        shown, future = torch.stack(imagined, 1), target[:, C + 1:]  # [B, H, S, S, 3]
        # what moves (a few pixels: the pusher, the cup) counts `moving_weight` times more than the
        # static scene, or a small latent learns the background and blurs the objects away
        moving = moving_pixels(future, last[:, None])
        frame = weighted_mse(shown, future, 1.0 + c.moving_weight * moving)
        with torch.no_grad():  # how much better than holding the last frame (dB, over the imagined steps)
            gain = 10 * torch.log10((future - last[:, None]).pow(2).mean() / (shown - future).pow(2).mean().clamp_min(1e-10))
        recon_at = slice(0, None, 4)  # every 4th frame keeps D a decoder (decoding is most of the cost on a CPU)
        changing = moving_pixels(target[:, 1:], target[:, :-1])[:, recon_at]
        recon = weighted_mse(self.decoder(z[:, :-1][:, recon_at]), target[:, :-1][:, recon_at],
                              1.0 + c.moving_weight * changing)
        probe = F.mse_loss(self.probe(z.detach().flatten(-2)), (obs - self.obs_mean) / self.obs_std)
        main = recon + frame + c.latent_weight * latent + probe
        if c.paint in ("advect", "warp"):
            mask_mean = torch.stack(masks).mean()
            main = main + c.mask_weight * mask_mean
            metrics_extra = {"mask_mean": mask_mean.item()}
        else:
            metrics_extra = {}
        return self._total(main, pred, logit, batch, {"recon_mse": recon.item(), "frame_mse": frame.item(),
                                                      "latent_mse": latent.item(), "probe_mse": probe.item(),
                                                      "gain_over_copy_db": gain.item(), **metrics_extra})

    def _total(self, main, pred, logit, batch, metrics):
        rew_loss = F.mse_loss(pred.reward / self.reward_scale, batch.rewards / self.reward_scale)
        term_loss = F.binary_cross_entropy_with_logits(logit, batch.terminated)
        c = self.config
        total = main + c.reward_weight * rew_loss + c.termination_weight * term_loss
        return total, {**metrics, "reward_mse": rew_loss.item(), "termination_bce": term_loss.item()}

