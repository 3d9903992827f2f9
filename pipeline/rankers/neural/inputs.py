"""Ranker rows -> a neural ranker's inputs: integer codes for embedding tables, scaled floats.

Why one module for both sides: the train stage writes the loader's Parquet with
:meth:`RankerInputs.loader_frame` and the recommend stage scores candidates with
:meth:`RankerInputs.arrays`, so training and serving cannot drift apart. Roles come from the
feature workflow's output schema: a ranker feature tagged ``categorical`` with a
``cardinality`` is embedded (table size = cardinality), every other one (candidate signals,
normalised and target-encoded columns) is a float input, standardised with the training rows'
mean and standard deviation (the raw signals span days and log counts), missing -> 0 (the mean).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pipeline.errors import ConfigError, DataError

from .config import NeuralConfig

# The training rows hold every feature as float32, exact for integer codes below 2^24.
MAX_CARDINALITY = 2**24
LABEL = "label"


@dataclass(frozen=True)
class RankerInputs:
    """Which ranker features are embedded (with table sizes), which are floats, and the floats'
    standardisation (``mean``, ``scale``: one per continuous column)."""

    categorical: tuple[str, ...]
    cardinalities: tuple[int, ...]
    continuous: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]

    @classmethod
    def from_schema(cls, schema: Mapping[str, Mapping[str, Any]],
                    features: Sequence[str]) -> RankerInputs:
        """Roles of ``features`` (the training rows' columns) from the workflow output schema;
        unscaled until :meth:`with_scaling`."""
        cats, cards, conts = [], [], []
        for name in features:
            entry = schema.get(name, {})
            if "categorical" not in entry.get("tags", []):
                conts.append(name)
                continue
            card = entry.get("cardinality")
            if not card:
                raise ConfigError(
                    f"feature {name!r} is tagged categorical but the feature workflow gives no "
                    "cardinality, so no embedding table can be sized for it; categorify it "
                    "(or tag it otherwise) in the workflow file's features")
            if card > MAX_CARDINALITY:
                raise ConfigError(
                    f"feature {name!r} has {card} categories; the training rows hold codes as "
                    f"float32, exact only below {MAX_CARDINALITY}: cap it (categorify max_size "
                    "or hash_bucket)")
            cats.append(name)
            cards.append(int(card))
        if not cats:
            raise ConfigError(
                "the neural rankers need at least one categorical feature for their embedding "
                "tables, and the feature workflow produces none: add a categorify op (e.g. on "
                "item_id) to the workflow file's features")
        return cls(tuple(cats), tuple(cards), tuple(conts), (0.0,) * len(conts),
                   (1.0,) * len(conts))

    @classmethod
    def from_config(cls, config: NeuralConfig) -> RankerInputs:
        """The inputs a checkpoint was trained on (its scaling lives in ``config.extra``)."""
        scaling = config.extra.get("scaling")
        if scaling is None:
            raise DataError("this neural checkpoint has no input scaling: it was not trained "
                            "by the nightly train stage; retrain it with the workflow")
        return cls(config.categorical, config.cardinalities, config.continuous,
                   tuple(scaling["mean"]), tuple(scaling["scale"]))

    def with_scaling(self, mean: Sequence[float], scale: Sequence[float]) -> RankerInputs:
        """These inputs standardised by ``mean`` / ``scale``; a non-finite mean becomes 0 and a
        non-finite or zero scale 1 (a constant or empty column passes through centred)."""
        m = np.nan_to_num(np.asarray(mean, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        s = np.asarray(scale, dtype=np.float64)
        s = np.where(np.isfinite(s) & (s > 0), s, 1.0)
        return RankerInputs(self.categorical, self.cardinalities, self.continuous,
                            tuple(float(v) for v in m), tuple(float(v) for v in s))

    def scaling(self) -> dict[str, list[float]]:
        """The standardisation, as stored in the checkpoint's ``NeuralConfig.extra``."""
        return {"mean": list(self.mean), "scale": list(self.scale)}

    @property
    def features(self) -> list[str]:
        """The columns read: categorical first, then continuous."""
        return [*self.categorical, *self.continuous]

    def arrays(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """``(codes (n, c) int64, floats (n, d) float32)`` for the rows of ``frame``."""
        n = len(frame)
        codes = np.empty((n, len(self.categorical)), dtype=np.int64)
        for j, (name, card) in enumerate(zip(self.categorical, self.cardinalities,
                                             strict=True)):
            codes[:, j] = _codes(frame[name], name, card)
        floats = np.empty((n, len(self.continuous)), dtype=np.float32)
        for j, name in enumerate(self.continuous):
            x = frame[name].to_numpy(dtype=np.float32, na_value=np.nan)
            x = (x - np.float32(self.mean[j])) / np.float32(self.scale[j])
            floats[:, j] = np.where(np.isfinite(x), x, np.float32(0.0))
        return codes, floats

    def loader_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The columns the Parquet batch loader reads: codes, scaled floats and the label."""
        codes, floats = self.arrays(frame)
        columns: dict[str, np.ndarray] = {n: codes[:, j] for j, n in enumerate(self.categorical)}
        columns.update({n: floats[:, j] for j, n in enumerate(self.continuous)})
        columns[LABEL] = frame[LABEL].to_numpy(dtype=np.float32)
        return pd.DataFrame(columns, index=pd.RangeIndex(len(frame)))


def _codes(column: pd.Series, name: str, cardinality: int) -> np.ndarray:
    """Integer codes of one categorical column (float32 in training rows, int64 after the
    workflow's transform); a code outside the table means model and workflow disagree."""
    values = column.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(values) | (values < 0) | (values >= cardinality) | (values % 1 != 0)
    if bad.any():
        raise DataError(
            f"categorical feature {name!r} holds {values[np.argmax(bad)].item():g}, not a code "
            f"of its {cardinality}-row embedding table: the ranker and the feature workflow it "
            "is used with disagree; retrain the ranker with this workflow")
    return values.astype(np.int64)
