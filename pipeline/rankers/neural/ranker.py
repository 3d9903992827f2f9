"""One-process neural ranker with scikit-learn conventions: parameters in ``__init__``, learned
state in ``model_`` / ``history_``, ``fit`` returns self."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import checkpoint
from ..loader import ParquetBatchLoader
from . import build_model
from .config import NeuralConfig
from .fit import pick_device, predict, train_epochs

PathLike = str | os.PathLike[str]


class NeuralRanker:
    """A DLRM or DCN-v2 click ranker trained on transformed Parquet with the batch loader."""

    def __init__(self, config: NeuralConfig, device: str | torch.device | None = None,
                 loader_options: Mapping[str, Any] | None = None) -> None:
        self.config = config
        self.device = pick_device(device)
        self.loader_options = dict(loader_options or {})
        self.model_: torch.nn.Module | None = None
        self.history_: list[float] = []

    def loader(self, paths: PathLike | Sequence[PathLike], *, train: bool, rank: int = 0,
               world_size: int = 1) -> ParquetBatchLoader:
        """The loader this ranker trains (``train=True``, shuffled) or scores with."""
        opts = {"batch_size": self.config.batch_size, "seed": self.config.seed,
                "pin_memory": self.device.type == "cuda", **self.loader_options}
        return ParquetBatchLoader(paths, self.config.columns, shuffle=train, binary_label=train,
                                  rank=rank, world_size=world_size, **opts)

    def new_model(self, warm_start: PathLike | None = None) -> torch.nn.Module:
        """A fresh model, or one holding the weights of a compatible checkpoint."""
        model = build_model(self.config)
        if warm_start is not None:
            model.load_state_dict(checkpoint.warm_start_state(warm_start, self.config))
        return model

    def fit(self, paths: PathLike | Sequence[PathLike],
            warm_start: PathLike | None = None) -> NeuralRanker:
        loader = self.loader(paths, train=True)
        model = self.new_model(warm_start)
        self.history_ = train_epochs(model, loader, self.config, self.device)
        self.model_ = model
        return self

    def predict_parquet(self, paths: PathLike | Sequence[PathLike]) -> tuple[np.ndarray,
                                                                             np.ndarray]:
        """Probabilities and labels for every row of ``paths`` (row order kept)."""
        if self.model_ is None:
            raise RuntimeError("NeuralRanker is not fitted: call fit() or NeuralRanker.load()")
        return predict(self.model_, self.loader(paths, train=False), self.device)

    def save(self, directory: PathLike, metrics: Mapping[str, Any] | None = None) -> Path:
        if self.model_ is None:
            raise RuntimeError("NeuralRanker is not fitted: nothing to save")
        return checkpoint.save_checkpoint(directory, self.config, self.model_.state_dict(),
                                          {"train_logloss": self.history_, **(metrics or {})})

    @classmethod
    def load(cls, directory: PathLike, device: str | torch.device | None = None) -> NeuralRanker:
        config, state = checkpoint.load_checkpoint(directory)
        ranker = cls(config, device)
        model = build_model(config)
        model.load_state_dict(state)
        ranker.model_ = model.to(ranker.device)
        return ranker
