"""The training loop shared by one-process and data-parallel training.

Mixed precision on CUDA (bfloat16 where supported, else float16 with a gradient scaler); full
precision on CPU. Loss sums stay on the device so the loop never waits for the GPU per step.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from torch import nn

from ..loader import Batch
from .config import NeuralConfig


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` if given, else CUDA when available, else CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _amp_dtype(device: torch.device) -> torch.dtype | None:
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def train_epochs(
    model: nn.Module,
    loader: Iterable[Batch],
    config: NeuralConfig,
    device: torch.device,
    epochs: int | None = None,
) -> list[float]:
    """Train ``model`` (plain or DDP-wrapped) in place; returns the mean log-loss per epoch."""
    model.to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=config.learning_rate,
                           weight_decay=config.weight_decay)
    amp = _amp_dtype(device)
    scaler = torch.amp.GradScaler("cuda", enabled=amp == torch.float16)
    loss_fn = nn.BCEWithLogitsLoss(reduction="sum")
    history = []
    for epoch in range(epochs or config.epochs):
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        total = torch.zeros((), device=device)
        rows = 0
        for batch in loader:
            b = batch.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
                logits = model(b.categorical, b.continuous)
            loss = loss_fn(logits.float(), b.label)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss / len(b.label)).backward()
            scaler.step(opt)
            scaler.update()
            total += loss.detach()
            rows += len(b.label)
        history.append(float(total) / max(rows, 1))
    return history


@torch.no_grad()
def predict(
    model: nn.Module, loader: Iterable[Batch], device: torch.device
) -> tuple[np.ndarray, np.ndarray]:
    """Click probabilities and labels of every batch, in loader order (use shuffle=False)."""
    model.to(device).eval()
    amp = _amp_dtype(device)
    scores, labels = [], []
    for batch in loader:
        b = batch.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            logits = model(b.categorical, b.continuous)
        scores.append(torch.sigmoid(logits.float()).cpu().numpy())
        labels.append(b.label.cpu().numpy())
    if not scores:
        return np.empty(0, np.float32), np.empty(0, np.float32)
    return np.concatenate(scores), np.concatenate(labels)
