"""Scoring candidate rows with a saved neural ranker, inside Dask workers.

Loaded once per process (keyed by the checkpoint card's mtime, like the XGBoost booster) and run
in batches under ``torch.no_grad`` with one torch thread on CPU: a worker already runs one task
per core, and more OpenMP threads would only compete with the other workers.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pipeline.errors import DataError

from .. import checkpoint
from . import build_model
from .fit import pick_device
from .inputs import RankerInputs


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` intra-op torch threads, then restore the previous count."""
    before = torch.get_num_threads()
    if before != n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if before != n:
            torch.set_num_threads(before)


@dataclass(frozen=True)
class NeuralScorer:
    """A DLRM or DCN-v2 in eval mode and the inputs it reads."""

    model: torch.nn.Module
    inputs: RankerInputs
    device: torch.device
    batch_size: int = 65_536
    kind: str = "neural"

    @property
    def features(self) -> list[str]:
        return self.inputs.features

    @classmethod
    def load(cls, model_dir: str | Path, batch_size: int = 65_536) -> NeuralScorer:
        config, state = checkpoint.load_checkpoint(model_dir)
        model = build_model(config)
        model.load_state_dict(state)
        device = pick_device()
        model.to(device).eval()
        return cls(model, RankerInputs.from_config(config), device, batch_size)

    def score(self, encoded: pd.DataFrame) -> np.ndarray:
        """Click probabilities (float32) for the rows of ``encoded``, in row order."""
        if len(encoded) == 0:
            return np.empty(0, dtype=np.float32)
        codes, floats = self.inputs.arrays(encoded)
        out = np.empty(len(encoded), dtype=np.float32)
        cat, cont = torch.from_numpy(codes), torch.from_numpy(floats)
        with torch_threads(1), torch.no_grad():
            for start in range(0, len(out), self.batch_size):
                stop = min(start + self.batch_size, len(out))
                logits = self.model(cat[start:stop].to(self.device),
                                    cont[start:stop].to(self.device))
                out[start:stop] = torch.sigmoid(logits.float()).cpu().numpy()
        return out


@functools.lru_cache(maxsize=4)
def _load(model_dir: str, mtime_ns: int, batch_size: int) -> NeuralScorer:
    return NeuralScorer.load(model_dir, batch_size)


def load_neural_scorer(model_dir: str | Path, batch_size: int = 65_536) -> NeuralScorer:
    """The checkpoint at ``model_dir`` as a scorer; cached per process (once per Dask worker)."""
    card = Path(model_dir) / checkpoint.CARD
    if not card.is_file():
        raise DataError(f"no neural ranker checkpoint at {card}: run the train stage first")
    return _load(str(model_dir), card.stat().st_mtime_ns, batch_size)
