"""Frames in and out of a latent vector: the convolutional encoder and decoder pixel models share.

Square RGB frames of side S (a power of two, 16 or more) go through log2(S / 4) stride-2 convolutions
down to 4 x 4, then a linear layer to the latent; the decoder mirrors it with transposed convolutions
(the layout of DreamerV3's and of World Models' VAE codecs, without the stochastic bottleneck).
Frames arrive as uint8 [..., S, S, 3] (as datasets store them) or floats in [0, 1]; decoded frames are
floats in [0, 1], [..., S, S, 3].
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from wmkit.errors import WmkitError


def check_frame_size(size) -> int:
    if not isinstance(size, int) or size < 16 or size & (size - 1):
        raise WmkitError(f"frame size {size!r} must be a power of two of at least 16 (e.g. collect with --render 64)")
    return size


def as_unit_frames(frames: torch.Tensor) -> torch.Tensor:
    """uint8 or float frames -> float32 in [0, 1], same shape."""
    if frames.dtype == torch.uint8:
        return frames.float() / 255.0
    return frames.float()


def moving_pixels(a: torch.Tensor, b: torch.Tensor, threshold: float = 0.03) -> torch.Tensor:
    """1.0 where frames a and b ([..., S, S, 3] in [0, 1]) differ by more than `threshold` in any channel,
    else 0.0: [..., S, S, 1]. The pixel losses weight these (the pusher, the cup) above the static scene."""
    return ((a - b).abs().amax(-1, keepdim=True) > threshold).float()


def weighted_mse(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean of weight x squared error, divided by the mean weight (so it stays an MSE in scale)."""
    w = weight.expand_as(pred)
    return (w * (pred - target).pow(2)).mean() / w.mean()


def paint_residual(shown: torch.Tensor, dec: torch.Tensor, dec_prev: torch.Tensor) -> torch.Tensor:
    """The frame shown plus the change its decoder sees between two latents, kept in [0, 1]."""
    return (shown + dec - dec_prev).clamp(0.0, 1.0)


class FrameEncoder(nn.Module):
    def __init__(self, size: int, channels: int, out: int):
        super().__init__()
        self.size = check_frame_size(size)
        layers, c_in = [], 3
        for i in range(int(math.log2(size // 4))):
            c_out = channels * 2 ** i
            layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.GroupNorm(1, c_out), nn.SiLU()]
            c_in = c_out
        self.convs = nn.Sequential(*layers)
        self.out = nn.Linear(c_in * 16, out)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """[..., S, S, 3] -> [..., out]."""
        lead = frames.shape[:-3]
        x = as_unit_frames(frames).reshape(-1, self.size, self.size, 3).permute(0, 3, 1, 2) - 0.5
        return self.out(self.convs(x).flatten(1)).reshape(*lead, -1)


class FrameDecoder(nn.Module):
    def __init__(self, size: int, channels: int, latent: int):
        super().__init__()
        self.size = check_frame_size(size)
        n = int(math.log2(size // 4))
        self.c_top = channels * 2 ** (n - 1)
        self.inp = nn.Linear(latent, self.c_top * 16)
        layers, c_in = [], self.c_top
        for i in reversed(range(n)):
            last = i == 0
            c_out = 3 if last else channels * 2 ** (i - 1)
            layers.append(nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1))
            if not last:
                layers += [nn.GroupNorm(1, c_out), nn.SiLU()]
            c_in = c_out
        self.convs = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """[..., latent] -> [..., S, S, 3] in [0, 1]."""
        lead = z.shape[:-1]
        x = self.inp(z.reshape(-1, z.shape[-1])).reshape(-1, self.c_top, 4, 4)
        x = torch.sigmoid(self.convs(x)).permute(0, 2, 3, 1)
        return x.reshape(*lead, self.size, self.size, 3)


class GridEncoder(nn.Module):
    """Frames -> a grid of latents, one per `patch` x `patch` cell: [..., S, S, 3] -> [..., (S/patch)^2, latent].

    log2(patch) stride-2 convolutions, a 3 x 3 convolution, then a 1 x 1 projection to `latent` channels per
    cell, squashed into (-1, 1) so the latent cannot drift in scale. Unlike `FrameEncoder` the latent keeps the layout of the scene: an object a few pixels wide is
    a change in one or two cells, not in every number of a flat vector.
    """

    def __init__(self, size: int, patch: int, channels: int, latent: int):
        super().__init__()
        self.size, self.patch = check_frame_size(size), check_patch(patch, size)
        layers, c_in = [], 3
        for i in range(int(math.log2(patch))):
            c_out = channels * 2 ** i
            layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.GroupNorm(1, c_out), nn.SiLU()]
            c_in = c_out
        layers += [nn.Conv2d(c_in, c_in, 3, padding=1), nn.SiLU(), nn.Conv2d(c_in, latent, 1)]
        self.convs = nn.Sequential(*layers)

    @property
    def cells(self) -> int:
        return (self.size // self.patch) ** 2

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        lead = frames.shape[:-3]
        x = as_unit_frames(frames).reshape(-1, self.size, self.size, 3).permute(0, 3, 1, 2) - 0.5
        z = torch.tanh(self.convs(x))  # [N, latent, G, G]
        return z.flatten(2).transpose(1, 2).reshape(*lead, self.cells, -1)


class GridDecoder(nn.Module):
    """A grid of latents -> frames: [..., (S/patch)^2, latent] -> [..., S, S, 3] in [0, 1] (mirrors `GridEncoder`).

    With `out` set it paints that many raw numbers per pixel instead (e.g. motion kernels or a flow)."""

    def __init__(self, size: int, patch: int, channels: int, latent: int, out: int | None = None):
        super().__init__()
        self.size, self.patch = check_frame_size(size), check_patch(patch, size)
        self.grid = size // patch
        n = int(math.log2(patch))
        c_in = channels * 2 ** (n - 1)
        layers = [nn.Conv2d(latent, c_in, 3, padding=1), nn.GroupNorm(1, c_in), nn.SiLU()]
        for i in reversed(range(n)):
            last = i == 0
            c_out = (out or 3) if last else channels * 2 ** (i - 1)
            layers.append(nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1))
            if not last:
                layers += [nn.GroupNorm(1, c_out), nn.SiLU()]
            c_in = c_out
        self.convs = nn.Sequential(*layers)
        self.out = out

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        lead, G = z.shape[:-2], self.grid
        x = z.reshape(-1, G * G, z.shape[-1]).transpose(1, 2).reshape(-1, z.shape[-1], G, G)
        x = self.convs(x)
        if self.out is None:  # a frame
            x = torch.sigmoid(x)
        return x.permute(0, 2, 3, 1).reshape(*lead, self.size, self.size, self.out or 3)


def advect(frames: torch.Tensor, logits: torch.Tensor, with_mask: bool = False):
    """Move pixels: each output pixel mixes the k x k pixels around it by a softmax kernel, composited
    over the pixel it replaces by a mask (Finn et al. 2016's dynamic neural advection).

    frames [B, S, S, 3], logits [B, S, S, k*k + 1] (the kernel's k*k logits, then the mask's logit)
    -> [B, S, S, 3] (and the mask [B, S, S, 1] with `with_mask`). Where the mask is 0 the pixel stays
    exactly as it was. The frame's edge is
    repeated outwards, so nothing dark leaks in from outside.
    """
    B, S, _, _ = frames.shape
    k = math.isqrt(logits.shape[-1] - 1)
    x = F.pad(frames.permute(0, 3, 1, 2), (k // 2,) * 4, mode="replicate")
    patches = F.unfold(x, k).reshape(B, 3, k * k, S, S)
    w = torch.softmax(logits[..., :-1], -1).permute(0, 3, 1, 2)[:, None]  # [B, 1, k*k, S, S]
    moved = (patches * w).sum(2).permute(0, 2, 3, 1)
    mask = torch.sigmoid(logits[..., -1:])
    out = frames + mask * (moved - frames)
    return (out, mask) if with_mask else out


def warp(frames: torch.Tensor, field: torch.Tensor, max_shift: float, with_mask: bool = False):
    """Move pixels along a flow: each output pixel samples the frame before (bilinearly) at itself plus an
    offset of up to `max_shift` pixels, composited over the pixel it replaces by a mask.

    frames [B, S, S, 3], field [B, S, S, 3] (the offset's x and y, squashed by tanh to +- max_shift, then the
    mask's logit) -> [B, S, S, 3] (and the mask [B, S, S, 1] with `with_mask`). One sample per pixel where
    `advect` mixes k x k: far cheaper, and an object keeps its edges where a kernel spreads it; the edge
    of the frame is repeated outwards.
    """
    B, S, _, _ = frames.shape
    axis = torch.linspace(-1.0, 1.0, S, device=frames.device, dtype=frames.dtype)
    base = torch.stack(torch.meshgrid(axis, axis, indexing="xy"), -1)  # [S, S, 2]: (x, y) of each pixel
    offset = torch.tanh(field[..., :2]) * (max_shift * 2.0 / (S - 1))
    moved = F.grid_sample(frames.permute(0, 3, 1, 2), base + offset, mode="bilinear", padding_mode="border",
                          align_corners=True).permute(0, 2, 3, 1)
    mask = torch.sigmoid(field[..., 2:3])
    out = frames + mask * (moved - frames)
    return (out, mask) if with_mask else out


def check_patch(patch, size: int) -> int:
    if not isinstance(patch, int) or patch < 2 or patch & (patch - 1) or patch > size // 2:
        raise WmkitError(f"patch {patch!r} must be a power of two from 2 to {size // 2} (half the frame side {size})")
    return patch
