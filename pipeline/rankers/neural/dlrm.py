"""DLRM (Naumov et al., 2019): embeddings and a bottom MLP meet in pairwise dot products."""

from __future__ import annotations

import torch
from torch import nn

from .config import NeuralConfig
from .layers import Embeddings, mlp


class DLRM(nn.Module):
    """Continuous features -> bottom MLP -> a vector like an embedding; the dot products of every
    pair of vectors, with the bottom output, feed the top MLP, which ends in one logit."""

    def __init__(self, config: NeuralConfig) -> None:
        super().__init__()
        d = config.embedding_dim
        self.embeddings = Embeddings(config.cardinalities, d)
        self.bottom = (mlp(len(config.continuous), (*config.bottom_mlp, d))
                       if config.continuous else None)
        vectors = len(config.categorical) + (1 if self.bottom is not None else 0)
        pairs = vectors * (vectors - 1) // 2
        self.top = mlp(pairs + d, (*config.top_mlp, 1), last_activation=False)
        rows, cols = torch.triu_indices(vectors, vectors, offset=1)
        self.register_buffer("rows", rows, persistent=False)
        self.register_buffer("cols", cols, persistent=False)

    def forward(self, cat: torch.Tensor, cont: torch.Tensor) -> torch.Tensor:
        vectors = self.embeddings(cat)
        if self.bottom is not None:
            dense = self.bottom(cont)
            vectors = [dense, *vectors]
        else:
            dense = torch.stack(vectors, 1).mean(1)
        t = torch.stack(vectors, 1)  # (n, F, d)
        dots = torch.bmm(t, t.transpose(1, 2))[:, self.rows, self.cols]
        return self.top(torch.cat([dense, dots], 1)).squeeze(1)
