"""Neural click rankers (DLRM, DCN-v2) trained from the Parquet batch loader."""

from __future__ import annotations

import torch
from torch import nn

from .config import NeuralConfig
from .dcn import DCNv2
from .dlrm import DLRM


def build_model(config: NeuralConfig) -> nn.Module:
    """The ranker ``config.model`` names, its weights initialised from ``config.seed``."""
    torch.manual_seed(config.seed)
    return DLRM(config) if config.model == "dlrm" else DCNv2(config)


__all__ = ["DCNv2", "DLRM", "NeuralConfig", "build_model"]
