"""A small CNN that names the glyph in a 16×16 image: the CPU stand-in for FID/IS/CLIP.

Trained on the same rendered glyphs as the built-in diffusion model, it gives the *class accuracy*
of generated samples, which the pruning views and the sweep report.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class GlyphClassifier(nn.Module):
    """(N, 1, 16, 16) images in [0, 1] -> (N, num_classes) logits."""

    def __init__(self, num_classes: int, width: int = 32, size: int = 16):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.GELU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.GELU(),  # size/2
            nn.Conv2d(2 * width, 4 * width, 3, stride=2, padding=1), nn.GELU(),  # size/4
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.Dropout(0.2), nn.Linear(4 * width * (size // 4) ** 2, 256), nn.GELU(),
            nn.Linear(256, num_classes),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))

    @torch.no_grad()
    def predict(self, images: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        """Class ids, (N,). Inputs outside [0, 1] are clipped (samples overshoot slightly)."""
        self.eval()
        out = [self(images[i:i + batch_size].clamp(0, 1)).argmax(1) for i in range(0, len(images), batch_size)]
        return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


def corrupt(images: torch.Tensor, gen: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """What pruning does to a sample that still reads as its glyph: grain, slight blur, contrast.

    Each image is corrupted with probability ``p``: Gaussian grain (std up to 0.25), a 3×3 blur mixed in
    with weight up to 0.7, and contrast/brightness changes (gain 0.6–1.3, offset ±0.15). Trained on
    these, the classifier scores a grainy but legible sample as its letter (the model card reports its
    accuracy on clean and on noised real glyphs).
    """
    n = images.shape[0]
    u = lambda *shape: torch.rand(shape, generator=gen)  # noqa: E731
    pick = (u(n) < p).float().view(n, 1, 1, 1)
    blur = F.avg_pool2d(F.pad(images, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    mix = 0.7 * u(n, 1, 1, 1)
    x = (1 - mix) * images + mix * blur
    x = x * (0.6 + 0.7 * u(n, 1, 1, 1)) + 0.3 * (u(n, 1, 1, 1) - 0.5)
    x = x + 0.25 * u(n, 1, 1, 1) * torch.randn(images.shape, generator=gen)
    return (pick * x.clamp(0, 1) + (1 - pick) * images)


def train_classifier(images: torch.Tensor, labels: torch.Tensor, num_classes: int, epochs: int = 4,
                     batch_size: int = 256, lr: float = 2e-3, seed: int = 0, log=print) -> GlyphClassifier:
    """Plain Adam with a cosine schedule; images (N, 1, H, W) in [0, 1], labels (N,)."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = GlyphClassifier(num_classes, size=images.shape[-1])
    steps = epochs * ((len(images) + batch_size - 1) // batch_size)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(images), generator=gen)
        total = 0.0
        for i in range(0, len(images), batch_size):
            idx = order[i:i + batch_size]
            # One-pixel random shifts: samples are never exactly centred.
            x = torch.roll(images[idx], shifts=tuple(torch.randint(-1, 2, (2,), generator=gen).tolist()), dims=(2, 3))
            x = corrupt(x, gen)
            loss = F.cross_entropy(model(x), labels[idx], label_smoothing=0.05)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        log(f"classifier epoch {epoch + 1}/{epochs}: loss {total / len(images):.4f}")
    return model.eval()
