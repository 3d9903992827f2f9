"""The nightly neural ranker (``ranker.model: dlrm`` or ``dcn``).

Trained on the same rows as the XGBoost ranker (``train_rows``: float32 ranker features,
``label``, ``is_valid``, ``qid``): the training users' rows are converted to the loader's form
(integer codes, standardised floats; ``neural.inputs``) and written as Parquet, one DDP rank per
Dask worker trains on them (``distributed.train_on_dask``: the work stays on the cluster, as
XGBoost's does, and a GPU worker trains on its GPU), and the validation users' rows are scored on
the workers with the saved checkpoint for the report's log loss and AUC. The model folder then
holds the checkpoint (``model.json`` + ``weights.npz``, no pickle) and, written last, the ranker
card (``ranker.json``, kind ``neural``) that tells the recommend stage how to score.
"""

from __future__ import annotations

import logging
import math
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
import dask.dataframe as dd
import pandas as pd
from distributed import Client

from pipeline.config import RankerSpec
from pipeline.errors import ConfigError
from pipeline.metrics import click_metrics
from pipeline.rankers import checkpoint
from pipeline.rankers.card import NEURAL, ranker_card, write_ranker_card
from pipeline.rankers.loader import list_partitions
from pipeline.rankers.neural.config import NeuralConfig
from pipeline.rankers.neural.inputs import LABEL, RankerInputs
from pipeline.rankers.neural.scorer import load_neural_scorer
from pipeline.rankers.torch_ddp import train_on_dask
from pipeline.rankers.xgb import previous_night_model, training_row_counts

log = logging.getLogger(__name__)

Schema = Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True)
class NeuralTrainReport:
    metric: str
    best_score: float | None  # validation log loss (None without validation users)
    valid_auc: float | None
    train_logloss: list[float]  # mean per epoch, rank 0's rows
    train_rows: int
    valid_rows: int
    positives: int
    ranks: int


def neural_config(inputs: RankerInputs, spec: RankerSpec) -> NeuralConfig:
    """The architecture and optimiser settings of ``spec`` over ``inputs``' features."""
    nn = spec.neural_settings
    return NeuralConfig(
        inputs.categorical, inputs.cardinalities, inputs.continuous, LABEL, model=spec.model,
        embedding_dim=nn.embedding_dim, bottom_mlp=tuple(nn.bottom_mlp),
        top_mlp=tuple(nn.top_mlp), cross_layers=nn.cross_layers, deep_mlp=tuple(nn.deep_mlp),
        learning_rate=nn.learning_rate, weight_decay=nn.weight_decay,
        batch_size=nn.batch_size, epochs=nn.epochs, seed=spec.seed,
        extra={"scaling": inputs.scaling()},
    )


def train_neural(
    client: Client, rows: dd.DataFrame, features: list[str], schema: Schema,
    spec: RankerSpec, out: Path, warm_start: Path | None = None,
) -> NeuralTrainReport:
    """Train ``spec.model`` on ``rows`` and save it in ``out``.

    ``schema`` is the feature workflow's output schema (which features are categorical, and
    their table sizes). ``warm_start`` (a model folder; with ``spec.warm_start``, the newest
    earlier night's) starts from that checkpoint's weights and input scaling; its features,
    table sizes and architecture must equal today's.
    """
    n_train, n_valid, positives = training_row_counts(rows, "binary:logistic")
    previous = warm_start if warm_start is not None else (
        previous_night_model(out.parent) if spec.warm_start else None)
    train = rows[~rows["is_valid"]]
    inputs = RankerInputs.from_schema(schema, features)
    if previous is not None:
        inputs = _warm_inputs(previous, inputs)
    else:
        inputs = _fitted_scaling(train, inputs)
    config = neural_config(inputs, spec)
    if previous is not None:
        checkpoint.warm_start_state(previous, config)  # refuses other features, on the client
    shutil.rmtree(out, ignore_errors=True)
    data = out.with_name(out.name + "-loader-rows")
    shutil.rmtree(data, ignore_errors=True)
    try:
        empty = pd.DataFrame({c: pd.Series(dtype=t) for c, t in rows.dtypes.items()})
        train.map_partitions(inputs.loader_frame, meta=inputs.loader_frame(empty)).to_parquet(
            data, write_index=False)
        workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
        ranks = min(len(workers), len(list_partitions(data)))
        ranker, _ = train_on_dask(client, config, data, workers=workers[:ranks],
                                  warm_start=previous)
    finally:
        shutil.rmtree(data, ignore_errors=True)
    ranker.save(out, {"train_rows": n_train, "positives": positives})
    valid: dict[str, Any] = {"auc": None, "logloss": None}
    if n_valid:
        scores = rows[rows["is_valid"]].map_partitions(
            _labelled_scores, str(out), spec.neural_settings.score_batch_size,
            meta={"label": "f4", "score": "f4"})
        valid = click_metrics(scores, probabilities=True)
    report = NeuralTrainReport(
        metric="logloss", best_score=_finite(valid["logloss"]),
        valid_auc=_finite(valid["auc"]), train_logloss=list(ranker.history_),
        train_rows=n_train, valid_rows=n_valid, positives=positives, ranks=ranks)
    write_ranker_card(out, {
        "kind": NEURAL, "model": spec.model, "features": features,
        "categorical": dict(zip(inputs.categorical, inputs.cardinalities, strict=True)),
        "continuous": list(inputs.continuous), "seed": spec.seed,
        "score_batch_size": spec.neural_settings.score_batch_size,
        "valid_logloss": report.best_score, "valid_auc": report.valid_auc,
        "train_logloss": report.train_logloss,
        "warm_start": str(previous) if previous is not None else None})
    log.info("trained %s on %d rank(s): valid logloss %s, AUC %s", spec.model, ranks,
             report.best_score, report.valid_auc)
    return report


def _fitted_scaling(train: dd.DataFrame, inputs: RankerInputs) -> RankerInputs:
    """Standardise the float inputs by the training users' mean and standard deviation."""
    conts = list(inputs.continuous)
    if not conts:
        return inputs
    mean, std = dask.compute(train[conts].mean(), train[conts].std())
    return inputs.with_scaling(mean.to_numpy(), std.to_numpy())


def _finite(value: Any) -> float | None:
    """A metric for JSON: None where it is undefined (one class only, no rows)."""
    return float(value) if value is not None and math.isfinite(value) else None


def _warm_inputs(previous: Path, today: RankerInputs) -> RankerInputs:
    """Today's inputs with the previous checkpoint's scaling (its weights were learnt on it),
    after checking that ``previous`` is a neural model at all."""
    kind = ranker_card(previous).get("kind")
    if kind != NEURAL:
        raise ConfigError(
            f"warm start: the model at {previous} is a {kind} ranker, not a neural one; set "
            "ranker.warm_start: false (on incremental nights run.incremental: false) for one "
            "night to train the neural ranker from scratch")
    saved, _ = checkpoint.load_checkpoint(previous)
    before = RankerInputs.from_config(saved)
    if before.continuous != today.continuous:
        return today  # warm_start_state names the difference
    return today.with_scaling(before.mean, before.scale)


def _labelled_scores(frame: pd.DataFrame, model_dir: str, batch_size: int) -> pd.DataFrame:
    scorer = load_neural_scorer(model_dir, batch_size)
    return pd.DataFrame({"label": frame["label"].to_numpy(dtype="f4"),
                         "score": scorer.score(frame)})
