"""Building blocks shared by the rankers: per-column embedding tables and an MLP."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class Embeddings(nn.Module):
    """One table per categorical column, ``cardinality`` rows each (index 0 is padding)."""

    def __init__(self, cardinalities: Sequence[int], dim: int) -> None:
        super().__init__()
        self.tables = nn.ModuleList(nn.Embedding(c, dim, padding_idx=0) for c in cardinalities)
        for table in self.tables:
            nn.init.normal_(table.weight, std=0.05)
            with torch.no_grad():
                table.weight[0].zero_()

    def forward(self, cat: torch.Tensor) -> list[torch.Tensor]:
        """(n, c) int64 -> c tensors of (n, dim)."""
        return [table(cat[:, j]) for j, table in enumerate(self.tables)]


def mlp(inputs: int, widths: Sequence[int], last_activation: bool = True) -> nn.Sequential:
    """Linear + ReLU layers of ``widths``; the last ReLU is optional (for a logit layer)."""
    layers: list[nn.Module] = []
    for k, width in enumerate(widths):
        layers.append(nn.Linear(inputs, width))
        if last_activation or k < len(widths) - 1:
            layers.append(nn.ReLU())
        inputs = width
    return nn.Sequential(*layers)
