"""Neural ranker checkpoints: weights in numpy's ``.npz`` (read with ``allow_pickle=False``, so
no code runs on load) and the model config as JSON; warm start checks the features match.

``model.json`` is written last: a folder without it is an unfinished checkpoint.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.errors import ConfigError, DataError

from .neural.config import NeuralConfig

FORMAT_VERSION = 1
CARD = "model.json"
WEIGHTS = "weights.npz"


def state_to_numpy(state: Mapping[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """CPU numpy copies of a state dict (float32 for any reduced-precision tensor)."""
    out = {}
    for name, tensor in state.items():
        t = tensor.detach().cpu()
        if t.dtype in (torch.bfloat16, torch.float16):
            t = t.float()
        out[name] = t.numpy().copy()
    return out


def save_checkpoint(
    directory: str | os.PathLike[str],
    config: NeuralConfig,
    state: Mapping[str, torch.Tensor | np.ndarray],
    metrics: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``weights.npz`` then ``model.json`` into ``directory``; returns the folder."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    arrays = {k: v if isinstance(v, np.ndarray) else state_to_numpy({k: v})[k]
              for k, v in state.items()}
    tmp = path / (WEIGHTS + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path / WEIGHTS)
    card = {
        "format_version": FORMAT_VERSION,
        "kind": "neural_ranker",
        "config": config.to_json(),
        "features": config.features(),
        "weights": WEIGHTS,
        "tensors": {k: {"shape": list(a.shape), "dtype": str(a.dtype)} for k, a in arrays.items()},
        "metrics": dict(metrics or {}),
    }
    tmp_card = path / (CARD + ".tmp")
    tmp_card.write_text(json.dumps(card, indent=2, sort_keys=True))
    os.replace(tmp_card, path / CARD)
    return path


def load_checkpoint(
    directory: str | os.PathLike[str],
) -> tuple[NeuralConfig, dict[str, torch.Tensor]]:
    """The config and weights saved by :func:`save_checkpoint`."""
    path = Path(directory)
    card_path = path / CARD
    if not card_path.is_file():
        raise DataError(f"no neural ranker checkpoint at {path} ({CARD} is missing); train one "
                        "first, or drop the warm start")
    card = json.loads(card_path.read_text())
    if card.get("format_version") != FORMAT_VERSION or card.get("kind") != "neural_ranker":
        raise DataError(f"{card_path} is not a format-{FORMAT_VERSION} neural ranker checkpoint")
    config = NeuralConfig.from_json(card["config"])
    with np.load(path / card["weights"], allow_pickle=False) as npz:
        state = {k: torch.from_numpy(npz[k]) for k in npz.files}
    return config, state


def feature_differences(saved: NeuralConfig, today: NeuralConfig) -> list[str]:
    """Human-readable differences between two configs' features (empty when they match)."""
    a, b = saved.features(), today.features()
    diffs = []
    for col in sorted(set(a["categorical"]) | set(b["categorical"])):
        ca, cb = a["categorical"].get(col), b["categorical"].get(col)
        if ca != cb:
            diffs.append(f"categorical {col!r}: checkpoint {ca}, today {cb} rows"
                         if ca and cb else f"categorical {col!r} only in "
                         f"{'the checkpoint' if ca else 'today'}")
    if list(a["categorical"]) != list(b["categorical"]) and not diffs:
        diffs.append("categorical columns are in a different order")
    if a["continuous"] != b["continuous"]:
        diffs.append(f"continuous: checkpoint {a['continuous']!r}, today {b['continuous']!r}")
    if a["label"] != b["label"]:
        diffs.append(f"label: checkpoint {a['label']!r}, today {b['label']!r}")
    arch = ("model", "embedding_dim", "bottom_mlp", "top_mlp", "cross_layers", "deep_mlp")
    for key in arch:
        was, now = getattr(saved, key), getattr(today, key)
        if was != now:
            diffs.append(f"{key}: checkpoint {was!r}, today {now!r}")
    return diffs


def warm_start_state(
    directory: str | os.PathLike[str], config: NeuralConfig
) -> dict[str, torch.Tensor]:
    """Weights of the checkpoint at ``directory``, if it was trained on today's features."""
    saved, state = load_checkpoint(directory)
    diffs = feature_differences(saved, config)
    if diffs:
        raise ConfigError(
            f"cannot warm start from {directory}: its features differ from today's ("
            + "; ".join(diffs)
            + "). Train from scratch (drop the warm start) or refit the features as before"
        )
    return state
