"""Benchmark: test AUC of XGBoost, DCN-v2 and logistic regression on one synthetic click log.

The log (``pipeline.rankers.synthetic_clicks``) has a known logistic truth: per-value effects of
two categoricals, two continuous features and one categorical x categorical interaction. Each
model gets the categoricals in the form it can use:

- XGBoost (``hist``, native categorical splits) reads the codes as pandas categories, early
  stopping on a 10% validation slice of the training rows;
- DCN-v2 embeds them (the nightly ``ranker.model: dcn`` network, trained with the Parquet
  loader as ``scripts/bench_neural.py`` does);
- logistic regression (``pipeline.evaluate.baselines.logistic``, IRLS) reads their out-of-fold
  target encodings (the feature workflow's ``TargetEncoding``), plus the continuous columns.

Prints test AUC, log loss and training seconds beside the AUC of the true click probabilities
(the ceiling). Last line: JSON.

``--clicklog-rows N`` runs the comparison on the feature benchmark's click log instead
(``scripts/gen_clicklog.py``: N rows in files of 1M, timestamps increasing): the last file is the
test set (a temporal split), the feature benchmark's workflow (``scripts/bench_features.py``:
Categorify, FillMedian >> Normalize, out-of-fold TargetEncoding) is fitted on the rest on a
2-worker Dask cluster, and all three models read its output: XGBoost and logistic regression
every transformed column (codes, normalised values, target encodings), DCN-v2 the codes through
embeddings sized by the workflow's output schema and the rest as continuous inputs. That log has
no known truth, so no ceiling is printed.

    python scripts/bench_rankers.py --rows 200000
    python scripts/bench_rankers.py --clicklog-rows 10000000 --epochs 1 --batch-size 65536
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

from pipeline.features import TargetEncoding, Workflow
from pipeline.rankers.loader import LoaderColumns
from pipeline.rankers.logistic import fit_logistic
from pipeline.rankers.neural import NeuralConfig
from pipeline.rankers.neural.ranker import NeuralRanker
from pipeline.rankers.synthetic_clicks import write_click_log

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_neural import auc, logloss  # noqa: E402  (the same exact AUC and log loss)

LABEL = "click"


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


def fit_and_score_each(models: dict[str, Any], labels: np.ndarray) -> dict[str, Any]:
    """Run each ``fit_and_score`` callable; its test AUC, log loss and seconds, printed too."""
    out: dict[str, Any] = {}
    for name, fit_and_score in models.items():
        t0 = time.perf_counter()
        scores = np.asarray(fit_and_score(), dtype=np.float64)
        seconds = time.perf_counter() - t0
        out[name] = {"auc": round(auc(labels, scores), 4),
                     "logloss": round(logloss(labels, scores), 4),
                     "train_s": round(seconds, 1)}
        print(f"{name:9s} AUC {out[name]['auc']:.4f}  logloss {out[name]['logloss']:.4f}  "
              f"fit + score {seconds:.1f} s")
    return out


def clicklog_comparison(args: argparse.Namespace) -> dict[str, Any]:
    """XGBoost, DCN-v2 and logistic regression on the feature benchmark's click log."""
    import xgboost as xgb
    from bench_features import CATS, build_workflow
    from distributed import Client, LocalCluster
    from gen_clicklog import generate

    from pipeline.cluster import worker_malloc_settings
    from pipeline.features.output import to_parquet

    files = generate(args.clicklog_rows, Path(f"/tmp/recpipe-bench/clicklog-{args.clicklog_rows}"))
    if len(files) < 2:
        raise SystemExit("--clicklog-rows needs at least two files (2,000,000 rows)")
    out: dict[str, Any] = {"data": "clicklog", "rows": args.clicklog_rows,
                           "train_files": len(files) - 1, "test_files": 1,
                           "epochs": args.epochs, "batch_size": args.batch_size}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        with (worker_malloc_settings(),
              LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster,
              Client(cluster)):
            workflow = build_workflow()
            train = workflow.fit_transform(dd.read_parquet([str(f) for f in files[:-1]]))
            to_parquet(train, root / "train", workflow.output_schema)
            to_parquet(workflow.transform(dd.read_parquet(str(files[-1]))), root / "test",
                       workflow.output_schema)
        out["features_s"] = round(time.perf_counter() - t0, 1)
        schema = workflow.output_schema
        continuous = [c for c in schema if c not in (*CATS, "timestamp", LABEL)]
        features = [*CATS, *continuous]
        test = pd.read_parquet(root / "test", columns=[*features, LABEL])
        labels = test[LABEL].to_numpy()
        print(f"features fitted and written in {out['features_s']} s; "
              f"train {args.clicklog_rows - len(test):,} rows, test {len(test):,}")

        def xgboost_model() -> np.ndarray:
            frame = pd.read_parquet(root / "train", columns=[*features, LABEL])
            x = frame[features].to_numpy(dtype=np.float32)
            y = frame[LABEL].to_numpy()
            del frame
            cut = int(len(x) * 0.9)  # rows are in time order: the latest 10% early-stop
            fit = xgb.QuantileDMatrix(x[:cut], y[:cut], feature_names=features)
            valid = xgb.QuantileDMatrix(x[cut:], y[cut:], ref=fit, feature_names=features)
            del x
            params = {"objective": "binary:logistic", "tree_method": "hist",
                      "eval_metric": "logloss", "max_depth": 8, "eta": 0.1,
                      "nthread": args.threads, "seed": args.seed}
            booster = xgb.train(params, fit, num_boost_round=args.xgb_rounds,
                                evals=[(valid, "valid")], early_stopping_rounds=20,
                                verbose_eval=False)
            out["xgboost_trees"] = booster.best_iteration + 1
            return booster.inplace_predict(test[features].to_numpy(dtype=np.float32),
                                           iteration_range=(0, booster.best_iteration + 1))

        def dcn_model() -> np.ndarray:
            cards = tuple(int(schema[c]["cardinality"]) for c in CATS)
            config = NeuralConfig(tuple(CATS), cards, tuple(continuous), LABEL, model="dcn",
                                  epochs=args.epochs, batch_size=args.batch_size,
                                  learning_rate=2e-3, seed=args.seed)
            ranker = NeuralRanker(config, device="cpu").fit(root / "train")
            return ranker.predict_parquet(root / "test")[0]

        def logistic_model() -> np.ndarray:
            rows = dd.read_parquet(root / "train", columns=[*features, LABEL])
            rows = rows.astype({c: "f8" for c in features}).persist()
            model = fit_logistic(rows, features, label=LABEL)
            return model.predict(test)

        out.update(fit_and_score_each({"xgboost": xgboost_model, "dcn": dcn_model,
                                        "logistic": logistic_model}, labels))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--test-rows", type=int, default=50_000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=4096)
    ap.add_argument("--xgb-rounds", type=int, default=500)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--clicklog-rows", type=int, default=0,
                    help="compare on the feature benchmark's click log of this many rows")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.clicklog_rows:
        print(json.dumps(clicklog_comparison(args)))
        return 0
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
        out.update(fit_and_score_each(models, labels))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
