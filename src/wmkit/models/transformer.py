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

Trained with teacher forcing on windows of `seq_len` steps (MSE on normalised deltas, reward MSE,
termination cross-entropy). Deterministic; `obs_std` is not predicted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from wmkit.errors import WmkitError, check_fields
from wmkit.models.base import ModelSpec, Prediction, State, WorldModel


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
    reward_weight: float = 1.0
    termination_weight: float = 1.0

    def __post_init__(self):
        check_fields(self, "transformer config", positive_ints=("width", "layers", "heads", "window", "seq_len",
                                                                "mlp_ratio"),
                     nonnegative=("reward_weight", "termination_weight"))
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
        spec = spec.with_(latent_dim=config.width, decodes=("state",), predicts=("reward", "termination"), context=1)
        super().__init__(spec, config)
        D, A, c = spec.obs_dim, spec.action_dim, config
        self.embed = nn.Linear(D + A, c.width)
        self.blocks = nn.ModuleList(_Block(c) for _ in range(c.layers))
        self.distance_bias = nn.Parameter(torch.zeros(c.heads, c.window))  # per head, distance 0 .. window-1
        self.norm = nn.LayerNorm(c.width)
        self.head = nn.Linear(c.width, D + 2)  # delta (normalised), reward, termination logit
        for name, size in (("obs", D), ("act", A), ("delta", D)):
            self.register_buffer(f"{name}_mean", torch.zeros(size))
            self.register_buffer(f"{name}_std", torch.ones(size))
        self.register_buffer("reward_scale", torch.ones(()))
        self.register_buffer("obs_low", torch.full((D,), -math.inf))
        self.register_buffer("obs_high", torch.full((D,), math.inf))

    def set_normalizer(self, stats: dict[str, torch.Tensor]) -> None:
        for name in ("obs", "act", "delta"):
            getattr(self, f"{name}_mean").copy_(stats[f"{name}_mean"])
            getattr(self, f"{name}_std").copy_(stats[f"{name}_std"].clamp_min(1e-6))
        if "reward_std" in stats:
            self.reward_scale.copy_(stats["reward_std"].clamp_min(1e-6))
        if "obs_min" in stats:  # imagined states stay within the data's range widened by half of it
            span = stats["obs_max"] - stats["obs_min"]
            self.obs_low.copy_(stats["obs_min"] - 0.5 * span)
            self.obs_high.copy_(stats["obs_max"] + 0.5 * span)

    # ---- pieces --------------------------------------------------------------------------------
    def _tokens(self, obs, act):
        x = torch.cat([(obs - self.obs_mean) / self.obs_std, (act - self.act_mean) / self.act_std], -1)
        return self.embed(x)

    def _outputs(self, x, obs):
        """Final token states x [..., W] and the observations they saw -> next obs, reward, logit, delta."""
        out = self.head(self.norm(x))
        D = self.spec.obs_dim
        delta = out[..., :D]
        nxt = obs + delta * self.delta_std + self.delta_mean
        nxt = torch.maximum(torch.minimum(nxt, self.obs_high), self.obs_low)
        return nxt, out[..., D] * self.reward_scale, out[..., D + 1], delta

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
    def observe(self, obs, actions, *, physics=None, sim_state=None) -> State:
        o, a = self.check_context(obs, actions)
        B, dh, c = o.shape[0], self.config.width // self.config.heads, self.config
        if a.shape[1] == 0:
            empty = o.new_zeros(B, c.layers, c.heads, 0, dh)
            return State(obs=o[:, -1], k=empty, v=empty.clone())
        _, keys, values = self._sequence(self._tokens(o[:, :-1], a))
        k, v = self._cache_from(keys, values)
        return State(obs=o[:, -1], k=k, v=v)

    def step(self, state: State, action) -> tuple[State, Prediction]:
        a = self.check_actions(action, ndim=2)
        if a.shape[0] != state.batch_size:
            raise WmkitError(f"action batch {a.shape[0]} does not match state batch {state.batch_size}")
        obs, cache_k, cache_v = state["obs"], state["k"], state["v"]
        n = cache_k.shape[3]
        x = self._tokens(obs, a)[:, None]  # [B, 1, W]
        bias = self.distance_bias[:, :n + 1].flip(-1)[:, None, :]  # distances n .. 0 to cached then self
        new_k, new_v = [], []
        for li, block in enumerate(self.blocks):
            q, k, v = block.split(x)
            k = torch.cat([cache_k[:, li], k], 2)
            v = torch.cat([cache_v[:, li], v], 2)
            new_k.append(k)
            new_v.append(v)
            x = block.finish(x, F.scaled_dot_product_attention(q, k, v, attn_mask=bias))
        nxt, reward, logit, _ = self._outputs(x[:, 0], obs)
        k, v = self._cache_from(new_k, new_v)
        return State(obs=nxt, k=k, v=v), Prediction(obs=nxt, reward=reward, terminated=torch.sigmoid(logit))

    @torch.no_grad()
    def rollout_uncached(self, obs, actions, future) -> Prediction:
        """The reference: every step re-runs the whole history (context and imagined) without a cache."""
        o, a = self.check_context(obs, actions)
        f = self.check_actions(future, ndim=3)
        hist_o, hist_a, preds = [o[:, t] for t in range(o.shape[1])], list(a.unbind(1)), []
        for t in range(f.shape[1]):
            hist_a.append(f[:, t])
            x, _, _ = self._sequence(self._tokens(torch.stack(hist_o, 1), torch.stack(hist_a, 1)))
            nxt, reward, logit, _ = self._outputs(x[:, -1], hist_o[-1])
            hist_o.append(nxt)
            preds.append(Prediction(obs=nxt, reward=reward, terminated=torch.sigmoid(logit)))
        return Prediction.stack(preds)

    @property
    def train_window(self) -> int:
        return self.config.seq_len

    def loss(self, batch):
        obs, act = batch.obs, batch.actions  # [B, L+1, D], [B, L, A]
        if act.shape[1] > self.config.window:
            raise WmkitError(f"training windows of {act.shape[1]} steps exceed the attention window "
                             f"{self.config.window}; lower seq_len or raise window")
        x, _, _ = self._sequence(self._tokens(obs[:, :-1], act))
        _, reward, logit, delta = self._outputs(x, obs[:, :-1])
        target = (obs[:, 1:] - obs[:, :-1] - self.delta_mean) / self.delta_std
        mse = F.mse_loss(delta, target)
        rew_loss = F.mse_loss(reward / self.reward_scale, batch.rewards / self.reward_scale)
        term_loss = F.binary_cross_entropy_with_logits(logit, batch.terminated)
        c = self.config
        total = mse + c.reward_weight * rew_loss + c.termination_weight * term_loss
        return total, {"delta_mse": mse.item(), "reward_mse": rew_loss.item(), "termination_bce": term_loss.item()}
