"""Benchmark the four-stage nightly recommender (retrieve, filter, rank, reorder) on synthetic
data, on a 2-worker Dask LocalCluster, beside a naive per-user pandas loop in the same process.

1. writes a synthetic log (``--users`` users, ``--items`` items in taste clusters, ~20 events
   per user) as user-partitioned Parquet, an item table (genre, price) and block / availability
   tables;
2. fits the night's generators (popularity, co-occurrence neighbors, EASE^R, a BPR retrieval
   model for the embedding generator) and a real feature workflow, and trains a real XGBoost
   ranker on candidate rows of a user sample (untimed: these are the earlier stages' work);
3. times ``write_recommendations``: the real stages over every partition of users, with the
   seen filter, an attribute exclusion, availability, a block list, a category cap, MMR
   diversity and a boost switched on (``--no-rules`` for the bare four stages);
4. times the naive baseline: the same generators, filter, signals and model called one user at
   a time (a per-request implementation) on ``--naive-users`` users, extrapolated.

Prints a table, then as its last line a JSON object with ``users``, ``candidates_per_user``,
``users_per_s``, ``peak_rss_gib``, ``seconds`` per stage (summed over the workers' partitions)
and the naive figures.

    python scripts/bench_recommend.py                       # 100,000 users, 10,000 items
    python scripts/bench_recommend.py --users 20000 --partitions 8
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import shutil
import tempfile
import time
from pathlib import Path

import dask.dataframe as dd
import numpy as np
import pandas as pd
from distributed import Client, LocalCluster

from pipeline.candidates.context import NightContext
from pipeline.candidates.fit import CutoffInputs, fit_context
from pipeline.candidates.retrieve import filter_candidates, retrieve
from pipeline.candidates.rules import resolve_rules
from pipeline.cluster import worker_malloc_settings
from pipeline.config import CandidatesSpec, FilterSpec, RankerSpec, ReorderSpec
from pipeline.features import Categorify, Workflow
from pipeline.features.spec_ops import op_from_spec
from pipeline.io import DAY, ITEM, TIME, USER
from pipeline.rankers.ranker import load_scorer
from pipeline.rankers.xgb import train_xgboost
from pipeline.recommend.batch import write_recommendations
from pipeline.recommend.reorder import ReorderPlan, resolve_reorder
from pipeline.rows.build import (
    LabelWindows,
    map_user_partitions,
    ranker_feature_columns,
    training_partition,
)
from pipeline.rows.signals import add_signals, join_side_tables

START = 1_700_000_000
DAYS = 120
DATE = "2026-01-01"
GENRES = 20


def synthetic(users: int, items: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Events with taste clusters (co-occurrence has signal) and a Zipf head (popularity has
    signal), and an item table with a genre and a price."""
    rng = np.random.default_rng(seed)
    per_user = rng.poisson(20, users) + 1
    user = np.repeat(np.arange(users, dtype=np.int64), per_user)
    n = len(user)
    clusters = 50
    cluster = user % clusters
    in_cluster = (rng.zipf(1.3, n) % (items // clusters)) * clusters + cluster
    anywhere = rng.zipf(1.2, n) % items
    item = np.where(rng.random(n) < 0.6, in_cluster, anywhere).astype(np.int64)
    ts = START + rng.integers(0, DAYS * DAY, n)
    events = pd.DataFrame({USER: user, ITEM: item, TIME: ts,
                           "rating": rng.integers(1, 6, n).astype(np.int64)})
    catalogue = pd.DataFrame({ITEM: np.arange(items, dtype=np.int64),
                              "genre": (np.arange(items) * 7919 % GENRES).astype(str),
                              "price": rng.gamma(2.0, 10.0, items)})
    return events, catalogue


def write_partitioned(events: pd.DataFrame, out: Path, partitions: int) -> dd.DataFrame:
    """One Parquet file per contiguous range of users: the layout the prepare stage writes."""
    out.mkdir(parents=True)
    bounds = np.linspace(0, events[USER].max() + 1, partitions + 1).astype(np.int64)
    for i in range(partitions):
        part = events[(events[USER] >= bounds[i]) & (events[USER] < bounds[i + 1])]
        part.to_parquet(out / f"part.{i:05d}.parquet", index=False)
    return dd.read_parquet(out)


def feature_workflow(history: pd.DataFrame, items: pd.DataFrame, out: Path) -> Workflow:
    """A small real feature workflow: the item's genre categorified."""
    workflow = Workflow([op_from_spec(Categorify.Spec(op="categorify", columns=["genre"]))])
    workflow.fit(dd.from_pandas(history.merge(items, on=ITEM), npartitions=2))
    workflow.save(out)
    return workflow


EASE_LAMBDA = 300.0  # fixed: tuning it is the train stage's work, not the recommender's


def night_context(events: dd.DataFrame, cutoff: int, items: pd.DataFrame, spec: CandidatesSpec,
                  root: Path, k: int) -> NightContext:
    """Every generator fitted on the events before ``cutoff``, as the night's stages do."""
    inputs = CutoffInputs(candidates=spec, exclude_seen=True, seen_window_days=None, k=k,
                          items=items.set_index(ITEM)[["genre"]], ease_lambda=EASE_LAMBDA)
    return fit_context(events, cutoff, inputs, root / "workflow",
                       root / f"retrieval-{cutoff}")


def train_ranker(client: Client, events: pd.DataFrame, items: pd.DataFrame,
                 spec: CandidatesSpec, root: Path, k: int, users: int) -> tuple[Path, list[str]]:
    """A real XGBoost ranker on candidate rows of ``users`` users: features as of 14 days
    before the end, labels from those 14 days."""
    sample = events[events[USER] < users]
    part = write_partitioned(sample.assign(relevant=np.int8(1)), root / "train_events", 2)
    end = START + DAYS * DAY
    cutoff = end - 14 * DAY
    workflow = feature_workflow(sample[sample[TIME] < cutoff], items, root / "workflow")
    features = ranker_feature_columns(workflow, spec, repeat_on=False)
    ctx = night_context(part, cutoff, items, spec, root, k)
    ranker = RankerSpec(objective="rank:ndcg", num_boost_round=60, early_stopping_rounds=10,
                        params={"max_depth": 6, "eta": 0.1})
    windows = LabelWindows((ctx,), (end,), (1.0,), tuple(features), "relevant", ranker.rows,
                           ranker.seed, ranker.validation_fraction)
    rows = map_user_partitions(part, training_partition, windows)
    train_xgboost(client, rows, features, ranker, root / "model")
    return root / "model", features


def rule_tables(root: Path, items: pd.DataFrame, users: int, seed: int) -> FilterSpec:
    rng = np.random.default_rng(seed + 1)
    blocked = pd.DataFrame({USER: rng.integers(0, users, users), ITEM: rng.integers(0, 300,
                                                                                  users)})
    blocked.to_parquet(root / "blocklist.parquet", index=False)
    available = items.loc[rng.random(len(items)) < 0.95, [ITEM]].assign(date=DATE)
    available.to_parquet(root / "availability.parquet", index=False)
    return FilterSpec.model_validate({
        "exclude_seen": True, "exclude_items_where": [{"column": "price", "gt": 60}],
        "blocklist": root / "blocklist.parquet", "availability": root / "availability.parquet",
        "max_per_category": {"column": "genre", "m": 4}})


def naive_lists(events: pd.DataFrame, ctx: NightContext, model_dir: Path,
                users: np.ndarray) -> float:
    """The per-request implementation: the same generators, filter, signals, features and
    model called for one user at a time; returns seconds per user."""
    scorer = load_scorer(model_dir)
    workflow = Workflow.load(ctx.workflow_dir)
    started = time.perf_counter()
    for user in users:
        one = np.array([user])
        history = events[(events[USER] == user) & (events[TIME] < ctx.cutoff)]
        retrieved = retrieve(one, history, ctx)
        rows, _ = filter_candidates(retrieved.rows, history, ctx)
        rows = add_signals(retrieved, rows, history, ctx)
        encoded = workflow.transform(join_side_tables(rows, None, ctx.items))
        rows.assign(score=scorer.score(encoded)).nlargest(ctx.k, "score")
    return (time.perf_counter() - started) / len(users)


def profile_partition(parted: dd.DataFrame, ctx: NightContext, model_dir: Path,
                      plan: ReorderPlan | None) -> None:
    """cProfile of the four stages on the first partition, top 25 by cumulative time."""
    import cProfile
    import pstats

    from pipeline.recommend.batch import recommend_lists

    part = parted.partitions[0].compute()
    users = np.sort(part[USER].unique())
    recommend_lists(part, ctx, str(model_dir), users, plan)  # warm caches (model, workflow)
    profiler = cProfile.Profile()
    profiler.enable()
    recommend_lists(part, ctx, str(model_dir), users, plan)
    profiler.disable()
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(35)


def peak_rss_gib(client: Client) -> dict[str, float]:
    def peak() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB

    workers = client.run(peak)
    return {"client": round(peak(), 3), "worker_max": round(max(workers.values()), 3),
            "total": round(peak() + sum(workers.values()), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--partitions", type=int, default=0, help="0: one per 5,000 users")
    parser.add_argument("--popularity-n", type=int, default=100)
    parser.add_argument("--cooccurrence-n", type=int, default=80)
    parser.add_argument("--ease-n", type=int, default=100, help="0: no EASE^R generator")
    parser.add_argument("--embedding-n", type=int, default=100, help="0: no embedding generator")
    parser.add_argument("--embedding-search", choices=["auto", "exact", "faiss"],
                        default="auto")
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--train-users", type=int, default=5_000)
    parser.add_argument("--naive-users", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-rules", action="store_true", help="no business rules / reorder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", action="store_true",
                        help="also cProfile the stages on one partition in this process")
    args = parser.parse_args()
    partitions = args.partitions or max(2, args.users // 5_000)
    root = Path(tempfile.mkdtemp(prefix="bench_recommend_"))
    spec = CandidatesSpec.model_validate({
        "popularity": {"n": args.popularity_n},
        "cooccurrence": {"n": args.cooccurrence_n, "recent_items": 20, "neighbors": 50},
        "ease": {"n": args.ease_n} if args.ease_n else None, "repeat": None,
        "embedding": {"n": args.embedding_n, "search": args.embedding_search, "epochs": 5,
                      "batch_size": 65_536, "learning_rate": 0.05} if args.embedding_n else None})
    try:
        with (worker_malloc_settings(),  # as the nightly run's cluster (pipeline.cluster)
              LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                           dashboard_address=None) as cluster, Client(cluster) as client):
            clock = time.perf_counter()
            events, items = synthetic(args.users, args.items, args.seed)
            parted = write_partitioned(events, root / "events", partitions)
            model_dir, _ = train_ranker(client, events, items, spec, root, args.k,
                                        min(args.train_users, args.users))
            cutoff = START + DAYS * DAY
            ctx = night_context(parted, cutoff, items, spec, root, args.k)
            plan = None
            if not args.no_rules:
                reorder = ReorderSpec.model_validate({
                    "diversity": {"method": "mmr", "column": "genre", "lambda": 0.7},
                    "boosts": [{"column": "price", "lt": 5, "factor": 1.1}]})
                ctx = dataclasses.replace(
                    ctx, rules=resolve_rules(rule_tables(root, items, args.users, args.seed),
                                             items, "synthetic items", DATE))
                plan = resolve_reorder(reorder, items, "synthetic items")
            setup = time.perf_counter() - clock

            clock = time.perf_counter()
            stats = write_recommendations(parted, ctx, str(model_dir), root / "lists", plan)
            wall = time.perf_counter() - clock
            rss = peak_rss_gib(client)

            if args.profile:
                profile_partition(parted, ctx, model_dir, plan)
            sample = np.arange(min(args.naive_users, args.users))
            naive_s = naive_lists(events, ctx, model_dir, sample)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    users = int(stats["users"])
    seconds = {key.split(".", 1)[1]: round(v, 3) for key, v in stats.items()
               if key.startswith("seconds.")}
    result = {
        "users": users, "items": args.items, "partitions": partitions,
        "generators": {"popularity": args.popularity_n, "cooccurrence": args.cooccurrence_n,
                       "ease": args.ease_n, "embedding": args.embedding_n},
        "embedding_search": args.embedding_search if args.embedding_n else None,
        "workers": args.workers, "rules": not args.no_rules,
        "candidates_per_user": round(stats["candidates.retrieved"] / users, 1),
        "ranked_per_user": round(stats["candidates.ranked"] / users, 1),
        "wall_s": round(wall, 3), "users_per_s": round(users / wall, 1),
        "seconds": seconds, "full_list_share": round(stats["full_lists"] / users, 4),
        "removed": {key.split(".", 1)[1]: int(v) for key, v in stats.items()
                    if key.startswith("removed.")},
        "peak_rss_gib": rss["total"], "peak_rss": rss, "setup_s": round(setup, 1),
        "naive_users_per_s": round(1.0 / naive_s, 1),
        "speedup_vs_naive": round(users / wall * naive_s, 1),
    }
    print(f"{'stage':<10}{'cpu s (summed over workers)':>30}")
    for name, value in seconds.items():
        print(f"{name:<10}{value:>30.2f}")
    print(f"{'users':<28}{users:>12,}")
    print(f"{'candidates / user':<28}{result['candidates_per_user']:>12}")
    print(f"{'wall s':<28}{wall:>12.2f}")
    print(f"{'users / s (4 stages)':<28}{result['users_per_s']:>12,.0f}")
    print(f"{'users / s (naive loop)':<28}{result['naive_users_per_s']:>12,.0f}")
    print(f"{'peak RSS GiB (all procs)':<28}{rss['total']:>12.2f}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
