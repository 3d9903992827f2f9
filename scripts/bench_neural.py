"""Benchmark: DCN-v2 vs DLRM on a synthetic click log with a known logistic truth.

Writes a training and a test log (``pipeline.rankers.synthetic_clicks``: per-value effects of two
categoricals, two continuous features and one categorical x categorical interaction), trains both
rankers with the Parquet loader for ``--epochs`` and prints test AUC and log-loss beside the AUC
of the true click probabilities (the ceiling) and training time. Last line: JSON.

    python scripts/bench_neural.py --rows 500000 --epochs 2
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
from scipy.stats import rankdata

from pipeline.rankers.loader import LoaderColumns
from pipeline.rankers.neural import NeuralConfig
from pipeline.rankers.neural.ranker import NeuralRanker
from pipeline.rankers.synthetic_clicks import write_click_log


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Exact AUC, ties counted half (Mann-Whitney U)."""
    ranks = rankdata(scores)
    pos = labels == 1
    n_pos, n_neg = pos.sum(), (~pos).sum()
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def logloss(labels: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log1p(-p)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=500_000)
    ap.add_argument("--test-rows", type=int, default=100_000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=4096)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    out: dict[str, object] = {"rows": args.rows, "test_rows": args.test_rows,
                              "epochs": args.epochs, "batch_size": args.batch_size}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        schema = write_click_log(root / "train", args.rows, files=4, seed=args.seed)
        write_click_log(root / "test", args.test_rows, files=1, seed=args.seed + 1)
        columns = LoaderColumns.from_schema(schema)
        truth = pq.read_table(root / "test", columns=["click", "true_prob"])
        ceiling = auc(truth["click"].to_numpy(), truth["true_prob"].to_numpy())
        out["true_prob_auc"] = round(ceiling, 4)
        print(f"truth AUC {ceiling:.4f}  (the true click probabilities: the ceiling)")
        for kind in ("dlrm", "dcn"):
            config = NeuralConfig.from_columns(columns, model=kind, epochs=args.epochs,
                                               batch_size=args.batch_size, learning_rate=2e-3,
                                               seed=args.seed)
            t0 = time.perf_counter()
            ranker = NeuralRanker(config).fit(root / "train")
            seconds = time.perf_counter() - t0
            scores, labels = ranker.predict_parquet(root / "test")
            out[kind] = {"auc": round(auc(labels, scores), 4),
                         "logloss": round(logloss(labels, scores), 4),
                         "train_s": round(seconds, 1)}
            print(f"{kind:5s} AUC {out[kind]['auc']:.4f}  logloss {out[kind]['logloss']:.4f}  "
                  f"train {seconds:.1f} s")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
