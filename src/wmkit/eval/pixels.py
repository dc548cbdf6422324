"""Frame accuracy vs horizon for models that decode frames: PSNR and SSIM against copy-last.

For each horizon k, on held-out windows (as `accuracy.py`), the model observes a context of frames
and imagines k steps under the logged actions; the k-th decoded frame is compared with the true one:

    PSNR = 10 log10(1 / MSE)   (frames in [0, 1]; higher is better; identical frames are capped at 100 dB)
    SSIM = mean structural similarity (Wang et al. 2004: an 11 x 11 Gaussian window, sigma 1.5,
           C1 = 0.01^2, C2 = 0.03^2, per channel), 1 for identical frames

Copy-last holds the last context frame. `filmstrip` lays truth above imagination for a report.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from wmkit.errors import WmkitError
from wmkit.models.frames import as_unit_frames

HORIZONS = (1, 5, 10, 25, 50)


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-frame PSNR (dB) of frames [..., H, W, 3] in [0, 1]."""
    mse = (a - b).pow(2).flatten(-3).mean(-1)
    return (10 * torch.log10(1.0 / mse.clamp_min(1e-10))).clamp_max(100.0)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-x.pow(2) / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-frame SSIM of frames [..., H, W, 3] in [0, 1] (valid windows only)."""
    lead = a.shape[:-3]
    H, W = a.shape[-3:-1]
    x = a.reshape(-1, H, W, 3).permute(0, 3, 1, 2).reshape(-1, 1, H, W)
    y = b.reshape(-1, H, W, 3).permute(0, 3, 1, 2).reshape(-1, 1, H, W)
    win = _gaussian_window(min(11, H, W)).to(a)[None, None]
    mu_x, mu_y = F.conv2d(x, win), F.conv2d(y, win)
    var_x = F.conv2d(x * x, win) - mu_x.pow(2)
    var_y = F.conv2d(y * y, win) - mu_y.pow(2)
    cov = F.conv2d(x * y, win) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x.pow(2) + mu_y.pow(2) + c1) * (var_x + var_y + c2))
    return s.reshape(-1, 3, *s.shape[-2:]).mean((-1, -2, -3)).reshape(lead)


@torch.no_grad()
def evaluate_frames(model, dataset, horizons=HORIZONS, split: str = "val", windows: int = 64) -> dict:
    """PSNR and SSIM vs horizon for the model and copy-last, on frames of `dataset` (loaded with frames)."""
    if "frame" not in model.spec.decodes:
        raise WmkitError(f"the {model.family} model does not decode frames; pixel metrics need a pixel model")
    C = max(model.spec.context - 1, 0)
    rows = []
    for k in sorted(set(int(h) for h in horizons)):
        try:
            win = dataset.windows(C, k, split)
        except WmkitError as e:
            raise WmkitError(f"pixel accuracy at k={k}: {e}") from None
        batch = win.take(windows, with_state=False)
        if batch.frames is None:
            raise WmkitError("the dataset was loaded without frames; load_dataset(path, frames=True)")
        truth = as_unit_frames(batch.frames)
        if truth.shape[-2] != model.spec.frame_size:
            raise WmkitError(f"frames of {truth.shape[-2]} pixels; the model was trained on {model.spec.frame_size}")
        dev = model.device
        state = model.observe(batch.obs[:, :C + 1].to(dev), batch.actions[:, :C].to(dev),
                              frames=batch.frames[:, :C + 1].to(dev))
        pred = model.rollout(state, batch.actions[:, C:].to(dev))
        last, target = truth[:, C], truth[:, -1]
        got = pred.frame[:, -1].cpu()
        rows.append({"k": k, "psnr": float(psnr(got, target).mean()), "psnr_copy_last": float(psnr(last, target).mean()),
                     "ssim": float(ssim(got, target).mean()), "ssim_copy_last": float(ssim(last, target).mean()),
                     "windows": len(batch)})
    return {"by_k": rows, "context": C}


@torch.no_grad()
def filmstrip(model, dataset, steps: int = 8, every: int = 2, split: str = "val", episode: int = 0):
    """uint8 image: true frames (top row) above imagined ones (bottom) for one held-out window."""
    C = max(model.spec.context - 1, 0)
    win = dataset.windows(C, steps * every, split)
    batch = win.take(max(episode + 1, 1), with_state=False)
    b = batch.frames[episode:episode + 1]
    dev = model.device
    state = model.observe(batch.obs[episode:episode + 1, :C + 1].to(dev), batch.actions[episode:episode + 1, :C].to(dev),
                          frames=b[:, :C + 1].to(dev))
    pred = model.rollout(state, batch.actions[episode:episode + 1, C:].to(dev)).frame[0].cpu()
    pick = torch.arange(every - 1, steps * every, every)
    return truth_over_imagination(as_unit_frames(b[0, C + 1:])[pick], pred[pick])


def truth_over_imagination(truth: torch.Tensor, imagined: torch.Tensor):
    """uint8 image: frames [N, S, S, 3] in [0, 1] side by side, true ones above imagined ones."""
    rows = [torch.cat(list(r), dim=1) for r in (truth, imagined)]
    return (torch.cat(rows, dim=0) * 255).round().clamp(0, 255).to(torch.uint8).numpy()
