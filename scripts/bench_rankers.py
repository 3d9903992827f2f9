"""Benchmark: test AUC of XGBoost, DCN-v2 and logistic regression on one synthetic click log.

The log (``pipeline.train.synthetic_clicks``) has a known logistic truth: per-value effects of
two categoricals, two continuous features and one categorical x categorical interaction. Each
model gets the categoricals in the form it can use:

- XGBoost (``hist``, native categorical splits) reads the codes as pandas categories, early
  stopping on a 10% validation slice of the training rows;
- DCN-v2 embeds them (the nightly ``ranker.model: dcn`` network, trained with the Parquet
  loader as ``scripts/bench_neural.py`` does);
- logistic regression (``pipeline.train.baselines.logistic``, IRLS) reads their out-of-fold
  target encodings (the feature workflow's ``TargetEncoding``), plus the continuous columns.

Prints test AUC, log loss and training seconds beside the AUC of the true click probabilities
(the ceiling). Last line: JSON.

    python scripts/bench_rankers.py --rows 200000
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import torch
from scipy.stats import rankdata

from pipeline.features import TargetEncoding, Workflow
from pipeline.train.baselines.logistic import fit_logistic
from pipeline.train.loader import LoaderColumns
from pipeline.train.neural import NeuralConfig
from pipeline.train.neural.ranker import NeuralRanker
from pipeline.train.synthetic_clicks import write_click_log

LABEL = "click"


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Exact AUC, ties counted half (Mann-Whitney U)."""
    ranks = rankdata(scores)
    pos = labels == 1
    n_pos, n_neg = pos.sum(), (~pos).sum()
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def logloss(labels: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log1p(-p)))


def xgboost_scores(train: pd.DataFrame, test: pd.DataFrame, cats: list[str],
                   conts: list[str], args: argparse.Namespace) -> np.ndarray:
    import xgboost as xgb

    sizes = {c: int(max(train[c].max(), test[c].max())) + 1 for c in cats}

    def matrix(frame: pd.DataFrame) -> Any:
        x = frame[cats + conts].astype({c: pd.CategoricalDtype(range(n))
                                        for c, n in sizes.items()})
        return xgb.DMatrix(x, frame[LABEL], enable_categorical=True)

    cut = int(len(train) * 0.9)
    fit, valid = matrix(train.iloc[:cut]), matrix(train.iloc[cut:])
    params = {"objective": "binary:logistic", "tree_method": "hist", "eval_metric": "logloss",
              "max_depth": 6, "eta": 0.1, "max_cat_to_onehot": 1, "nthread": args.threads,
              "seed": args.seed}
    booster = xgb.train(params, fit, num_boost_round=args.xgb_rounds, evals=[(valid, "valid")],
                        early_stopping_rounds=20, verbose_eval=False)
    return booster.predict(matrix(test), iteration_range=(0, booster.best_iteration + 1))


def dcn_scores(root: Path, schema: dict[str, Any], args: argparse.Namespace) -> np.ndarray:
    config = NeuralConfig.from_columns(LoaderColumns.from_schema(schema), model="dcn",
                                       epochs=args.epochs, batch_size=args.batch_size,
                                       learning_rate=2e-3, seed=args.seed)
    ranker = NeuralRanker(config, device="cpu").fit(root / "train")
    return ranker.predict_parquet(root / "test")[0]


def logistic_scores(train: pd.DataFrame, test: pd.DataFrame, cats: list[str],
                    conts: list[str]) -> np.ndarray:
    workflow = Workflow([TargetEncoding(cats, target=LABEL)])
    parts = max(1, len(train) // 50_000)
    encoded = workflow.fit_transform(dd.from_pandas(train, npartitions=parts)).compute()
    features = [*conts, *(f"TE_{c}_{LABEL}" for c in cats)]
    rows = dd.from_pandas(encoded[[*features, LABEL]].astype("f8"), npartitions=parts).persist()
    model = fit_logistic(rows, features, label=LABEL)
    return model.predict(workflow.transform(test))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--test-rows", type=int, default=50_000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=4096)
    ap.add_argument("--xgb-rounds", type=int, default=500)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    dask.config.set(scheduler="threads", num_workers=args.threads)
    out: dict[str, Any] = {"rows": args.rows, "test_rows": args.test_rows,
                           "epochs": args.epochs, "batch_size": args.batch_size}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        schema = write_click_log(root / "train", args.rows, files=4, seed=args.seed)
        write_click_log(root / "test", args.test_rows, files=1, seed=args.seed + 1)
        columns = LoaderColumns.from_schema(schema)
        cats, conts = list(columns.categorical), list(columns.continuous)
        train = pd.read_parquet(root / "train")
        test = pd.read_parquet(root / "test")
        labels = test[LABEL].to_numpy()
        ceiling = auc(labels, test["true_prob"].to_numpy())
        out["true_prob_auc"] = round(ceiling, 4)
        print(f"{'truth':9s} AUC {ceiling:.4f}  (the true click probabilities: the ceiling)")
        models = {
            "xgboost": lambda: xgboost_scores(train, test, cats, conts, args),
            "dcn": lambda: dcn_scores(root, schema, args),
            "logistic": lambda: logistic_scores(train, test, cats, conts),
        }
        for name, fit_and_score in models.items():
            t0 = time.perf_counter()
            scores = np.asarray(fit_and_score(), dtype=np.float64)
            seconds = time.perf_counter() - t0
            out[name] = {"auc": round(auc(labels, scores), 4),
                         "logloss": round(logloss(labels, scores), 4),
                         "train_s": round(seconds, 1)}
            print(f"{name:9s} AUC {out[name]['auc']:.4f}  logloss {out[name]['logloss']:.4f}  "
                  f"fit + score {seconds:.1f} s")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
