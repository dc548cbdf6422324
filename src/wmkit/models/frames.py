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
