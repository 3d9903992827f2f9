"""DCN-v2 (Wang et al., 2021): explicit feature crosses of bounded degree, then a deep MLP."""

from __future__ import annotations

import torch
from torch import nn

from .config import NeuralConfig
from .layers import Embeddings, mlp


class CrossLayer(nn.Module):
    """x_{l+1} = x_0 * (W x_l + b) + x_l, with a full-rank W."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.linear = nn.Linear(width, width)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x0: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return x0 * self.linear(x) + x


class DCNv2(nn.Module):
    """Embeddings and continuous features concatenated, crossed ``cross_layers`` times, then a
    stacked deep MLP ending in one logit."""

    def __init__(self, config: NeuralConfig) -> None:
        super().__init__()
        self.embeddings = Embeddings(config.cardinalities, config.embedding_dim)
        width = len(config.categorical) * config.embedding_dim + len(config.continuous)
        self.cross = nn.ModuleList(CrossLayer(width) for _ in range(config.cross_layers))
        self.deep = mlp(width, (*config.deep_mlp, 1), last_activation=False)

    def forward(self, cat: torch.Tensor, cont: torch.Tensor) -> torch.Tensor:
        x0 = torch.cat([*self.embeddings(cat), cont], 1)
        x = x0
        for layer in self.cross:
            x = layer(x0, x)
        return self.deep(x).squeeze(1)
