"""Benchmark: the quality of the lists a night publishes, against one-line baselines fitted on
the same training data, on logs split the way their users judge them.

Datasets (``--datasets``, comma-separated):

- ``movielens-100k``: global temporal split, the last 10% of interactions are the test period;
  relevant = rating >= 4; scored users: those with history and a relevant test item.
- ``repeat-purchases``: a synthetic grocery log (baskets of personal staples that drift, trials
  that stick, a popular head); the test is each user's last basket, every line relevant.
- ``synthetic-movies``: a synthetic film site (releases whose hype fades, users with tastes who
  come in bursts), split like MovieLens-100k but with six times its test users.

For each dataset the night runs ``--seeds`` times (``ranker.seed`` 0, 1, ...) on the training
part with ``workflows/movielens.yaml`` adapted only for paths, columns and feature columns. The
published lists are read back from Redis as an app reads them, and scored (NDCG@10, Recall@10)
beside baselines computed here, independently of recpipe's code: most popular, popular in the
last 30 days, item-kNN, EASE^R (lambda tuned on a validation cut from the end of the training
part, split the same way) and each user's own most frequent items. Last line: JSON.

    python scripts/bench_quality.py                          # both datasets, 5 seeds
    python scripts/bench_quality.py --datasets repeat-purchases --seeds 1
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.publish.keys import Keys  # noqa: E402

K = 10
DAY = 86_400
EASE_LAMBDAS = (10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0, 10000.0)


@dataclass
class Split:
    """A training log and what its users did next (``truth``: relevant (user, item) pairs)."""

    name: str
    train: pd.DataFrame  # user_id, item_id, timestamp (, rating)
    truth: pd.DataFrame  # user_id, item_id
    exclude_seen: bool  # whether a baseline may list what the user already had
    users: pd.DataFrame | None = None
    items: pd.DataFrame | None = None
    features: list[dict] = field(default_factory=list)
    rating: bool = True


# -- datasets -----------------------------------------------------------------------------------
def global_temporal(events: pd.DataFrame, fraction: float,
                    relevant: Callable[[pd.DataFrame], pd.Series]
                    ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The last ``fraction`` of interactions (by time) as the test period; truth = relevant test
    rows of users with training history."""
    events = events.sort_values("timestamp", kind="stable").reset_index(drop=True)
    cut = int(len(events) * (1 - fraction))
    train, test = events.iloc[:cut], events.iloc[cut:]
    test = test[relevant(test) & test["user_id"].isin(train["user_id"])]
    return train.reset_index(drop=True), test[["user_id", "item_id"]].drop_duplicates()


def last_basket(events: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each user's last basket (the events at their latest timestamp) as the test."""
    last = events.groupby("user_id")["timestamp"].transform("max")
    test = events[events["timestamp"] == last]
    train = events[events["timestamp"] < last]
    test = test[test["user_id"].isin(train["user_id"])]
    return train.reset_index(drop=True), test[["user_id", "item_id"]].drop_duplicates()


def movielens(root: Path) -> Split:
    from pipeline.datasets import fetch_movielens_100k

    data = fetch_movielens_100k(root / "data" / "movielens-100k")
    events = pd.read_parquet(data / "interactions")
    train, truth = global_temporal(events, 0.1, lambda t: t["rating"] >= 4)
    return Split("movielens-100k", train, truth, exclude_seen=True,
                 users=pd.read_parquet(data / "users"), items=pd.read_parquet(data / "items"),
                 features=[
                     {"op": "categorify",
                      "columns": ["user_id", "item_id", "gender", "occupation", "genre"]},
                     {"op": "normalize", "columns": ["age"]},
                     {"op": "target_encoding", "columns": ["item_id"], "target": "relevant",
                      "p_smooth": 20}])


def repeat_purchases(users: int = 600, items: int = 6000, seed: int = 0) -> pd.DataFrame:
    """Baskets of a synthetic grocery: every user has staples (each bought in a basket with its
    own propensity) drawn from a popular head and a favourite aisle; staples drift (one is
    replaced now and then) and a tried item sometimes becomes a staple, so what a user bought
    lately says more than what they bought once; orders come every few days to weeks."""
    rng = np.random.default_rng(seed)
    weight = 1.0 / (np.arange(items) + 30.0)
    aisles = 40
    aisle_of = rng.integers(0, aisles, items)
    rows: list[np.ndarray] = []
    for user in range(1, users + 1):
        favourite = rng.integers(0, aisles)
        prefer = np.where(aisle_of == favourite, 8.0, 1.0) * weight
        prefer /= prefer.sum()
        n_staples = int(rng.integers(8, 35))
        staples = rng.choice(items, n_staples, replace=False, p=prefer)
        propensity = rng.beta(1.2, 2.5, n_staples)
        baskets = int(rng.integers(6, 45))
        gap = rng.uniform(3, 21)
        when = 1_600_000_000 + int(rng.uniform(0, 120) * DAY)
        for _ in range(baskets):
            take = staples[rng.random(n_staples) < propensity]
            trials = rng.choice(items, rng.poisson(3), p=prefer)
            basket = np.unique(np.r_[take, trials])
            if len(basket):
                rows.append(np.c_[np.full(len(basket), user), basket + 1,
                                  np.full(len(basket), when)])
            for item in trials:  # a trial sticks sometimes, replacing the weakest staple
                if rng.random() < 0.15 and item not in staples:
                    weakest = int(np.argmin(propensity))
                    staples[weakest], propensity[weakest] = item, rng.beta(2.0, 2.0)
            if rng.random() < 0.3:  # tastes drift: a staple is dropped for another
                i = int(rng.integers(n_staples))
                staples[i] = rng.choice(items, p=prefer)
                propensity[i] = rng.beta(1.2, 2.5)
            when += int(rng.exponential(gap) * DAY) + 3600
    log = np.concatenate(rows)
    return pd.DataFrame({"user_id": log[:, 0], "item_id": log[:, 1], "timestamp": log[:, 2]})


def synthetic_movies(users: int = 4000, items: int = 2500, days: int = 900,
                     seed: int = 0) -> pd.DataFrame:
    """Ratings shaped like a film site's: films released over time with a quality and a hype
    that fades after release; users with tastes (latent factors) who arrive over the years
    (most early), rate a burst of films in their first session and come back now and then for
    smaller ones; each picks unseen released films by taste, quality and hype (Gumbel top-k of
    a softmax) and rates them by taste and quality. A test user's next films are partly what is
    new at the time, partly their long-standing taste."""
    rng = np.random.default_rng(seed)
    dim = 8
    release = np.where(rng.random(items) < 0.4, 0.0, rng.uniform(0, days, items))
    quality = rng.normal(0, 1, items)
    vectors = rng.normal(0, 1, (items, dim)) / np.sqrt(dim)
    arrival = days * rng.beta(0.7, 2.0, users)
    tastes = rng.normal(0, 1, (users, dim))
    rows: list[np.ndarray] = []
    for user in range(users):
        when, seen = arrival[user], np.zeros(items, dtype=bool)
        size = int(np.clip(rng.lognormal(3.2, 0.9), 5, 600))
        while when < days:
            released = (release <= when) & ~seen
            age = np.maximum(when - release, 0.0)
            utility = (1.5 * (vectors @ tastes[user]) + 1.2 * quality
                       + 4.5 * np.exp(-age / 60.0))
            noisy = np.where(released, utility + rng.gumbel(size=items), -np.inf)
            size = min(size, int(released.sum()))
            if size <= 0:
                break
            picked = np.argpartition(-noisy, size - 1)[:size]
            liking = vectors[picked] @ tastes[user] + quality[picked] + rng.normal(0, 1, size)
            rating = np.clip(np.round(2.4 + 0.9 * liking), 1, 5).astype(np.int64)
            stamp = (when * DAY + rng.uniform(0, 4 * 3600, size)).astype(np.int64)
            rows.append(np.c_[np.full(size, user + 1), picked + 1, rating, stamp])
            seen[picked] = True
            if rng.random() > 0.7:  # most users do not come back every time
                break
            when += rng.exponential(60.0)
            size = int(np.clip(rng.lognormal(1.8, 0.8), 1, 100))
    log = np.concatenate(rows)
    return pd.DataFrame({"user_id": log[:, 0], "item_id": log[:, 1], "rating": log[:, 2],
                         "timestamp": 1_000_000_000 + log[:, 3]})


def movies_split(seed: int = 0) -> Split:
    events = synthetic_movies(seed=seed)
    train, truth = global_temporal(events, 0.1, lambda t: t["rating"] >= 4)
    return Split("synthetic-movies", train, truth, exclude_seen=True,
                 features=[{"op": "categorify", "columns": ["user_id", "item_id"]},
                           {"op": "target_encoding", "columns": ["item_id"],
                            "target": "relevant", "p_smooth": 20}])


def repeat_split(seed: int = 0) -> Split:
    events = repeat_purchases(seed=seed)
    train, truth = last_basket(events)
    return Split("repeat-purchases", train, truth, exclude_seen=False, rating=False,
                 features=[{"op": "categorify", "columns": ["user_id", "item_id"]}])


DATASETS: dict[str, Callable[[Path], Split]] = {
    "movielens-100k": movielens,
    "repeat-purchases": lambda root: repeat_split(),
    "synthetic-movies": lambda root: movies_split(),
}


# -- baselines (independent of recpipe's code) --------------------------------------------------
def _matrix(train: pd.DataFrame, users: pd.Index, items: pd.Index) -> sp.csr_matrix:
    r, c = users.get_indexer(train["user_id"]), items.get_indexer(train["item_id"])
    keep = (r >= 0) & (c >= 0)
    x = sp.csr_matrix((np.ones(int(keep.sum()), np.float32), (r[keep], c[keep])),
                      shape=(len(users), len(items)))
    x.data[:] = 1.0
    return x


def _top(scores: np.ndarray, seen: sp.csr_matrix | None, items: pd.Index) -> list[list]:
    scores = np.array(scores, dtype=np.float64)
    if seen is not None:
        r, c = seen.nonzero()
        scores[r, c] = -np.inf
    best = np.argsort(-scores, axis=1, kind="stable")[:, :K]
    return [list(items[row]) for row in best]


def popular(train: pd.DataFrame, users: pd.Index, recent_days: float | None,
            exclude_seen: bool) -> list[list]:
    items = pd.Index(np.sort(train["item_id"].unique()))
    total = train["item_id"].value_counts().reindex(items).to_numpy(np.float64)
    score = total
    if recent_days is not None:
        start = train["timestamp"].max() - recent_days * DAY
        recent = train.loc[train["timestamp"] >= start, "item_id"].value_counts()
        score = recent.reindex(items).fillna(0).to_numpy() * 1e9 + total
    seen = _matrix(train, users, items) if exclude_seen else None
    return _top(np.broadcast_to(score, (len(users), len(items))), seen, items)


def own_most_frequent(train: pd.DataFrame, users: pd.Index) -> list[list]:
    """The user's items by count, then most recent; short lists padded with popular items."""
    counts = train.groupby(["user_id", "item_id"]).agg(n=("timestamp", "size"),
                                                       last=("timestamp", "max")).reset_index()
    counts = counts.sort_values(["user_id", "n", "last", "item_id"],
                                ascending=[True, False, False, True])
    mine = counts.groupby("user_id")["item_id"].apply(list)
    head = list(train["item_id"].value_counts().index[:3 * K])
    out = []
    for user in users:
        own = list(mine.get(user, []))[:K]
        out.append(own + [i for i in head if i not in own][:K - len(own)])
    return out


def item_knn(train: pd.DataFrame, users: pd.Index, exclude_seen: bool,
             neighbors: int = 100) -> list[list]:
    items = pd.Index(np.sort(train["item_id"].unique()))
    x = _matrix(train, users, items)
    gram = (x.T @ x).toarray().astype(np.float64)
    norms = np.sqrt(np.diag(gram))
    norms[norms == 0] = 1.0
    sim = gram / norms[:, None] / norms[None, :]
    np.fill_diagonal(sim, 0.0)
    if sim.shape[0] > neighbors:
        cut = np.partition(sim, -neighbors, axis=1)[:, -neighbors][:, None]
        sim = np.where(sim >= cut, sim, 0.0)
    return _top(x @ sim, x if exclude_seen else None, items)


def ease_scores(train: pd.DataFrame, users: pd.Index, items: pd.Index,
                lam: float) -> np.ndarray:
    x = _matrix(train, users, items)
    gram = (x.T @ x).toarray().astype(np.float64)
    gram[np.diag_indices_from(gram)] += lam
    p = np.linalg.inv(gram)
    b = -p / np.diag(p)[None, :]
    b[np.diag_indices_from(b)] = 0.0
    return np.asarray(x @ b), x


def ease(split: Split, users: pd.Index, validation: Callable[[pd.DataFrame], tuple]
         ) -> tuple[list[list], float]:
    """EASE^R with lambda picked on a validation cut from the end of the training part."""
    inner, valid_truth = validation(split.train)
    valid_users = pd.Index(np.sort(valid_truth["user_id"].unique()))
    items = pd.Index(np.sort(inner["item_id"].unique()))
    best, best_lam = -1.0, EASE_LAMBDAS[0]
    for lam in EASE_LAMBDAS:
        scores, x = ease_scores(inner, valid_users, items, lam)
        lists = _top(scores, x if split.exclude_seen else None, items)
        value = ndcg(dict(zip(valid_users, lists, strict=True)), valid_truth)[0]
        if value > best:
            best, best_lam = value, lam
    items = pd.Index(np.sort(split.train["item_id"].unique()))
    scores, x = ease_scores(split.train, users, items, best_lam)
    return _top(scores, x if split.exclude_seen else None, items), best_lam


# -- metrics -------------------------------------------------------------------------------------
def ndcg(lists: dict, truth: pd.DataFrame) -> tuple[float, float]:
    """Mean NDCG@K and Recall@K over the users in ``truth`` (binary relevance)."""
    relevant = truth.groupby("user_id")["item_id"].apply(set)
    discounts = 1.0 / np.log2(np.arange(2, K + 2))
    ndcgs, recalls = [], []
    for user, wanted in relevant.items():
        got = list(lists.get(user, []))[:K]
        hits = np.array([item in wanted for item in got], dtype=np.float64)
        ideal = discounts[:min(len(wanted), K)].sum()
        ndcgs.append(float(hits @ discounts[:len(hits)]) / ideal)
        recalls.append(hits.sum() / len(wanted))
    return float(np.mean(ndcgs)), float(np.mean(recalls))


# -- the night -----------------------------------------------------------------------------------
def write_inputs(split: Split, folder: Path) -> dict:
    (folder / "interactions").mkdir(parents=True)
    split.train.to_parquet(folder / "interactions" / "part.0.parquet", index=False)
    columns = {"user": "user_id", "item": "item_id", "timestamp": "timestamp"}
    if split.rating:
        columns["rating"] = "rating"
    data: dict = {"interactions": {"path": str(folder / "interactions"), "columns": columns}}
    for name, table, key in (("users", split.users, "user_id"),
                             ("items", split.items, "item_id")):
        if table is not None:
            (folder / name).mkdir()
            table.to_parquet(folder / name / f"{name}.parquet", index=False)
            data[name] = {"path": str(folder / name), "key": key}
    return data


def night_workflow(split: Split, data: dict, runs: Path, name: str, seed: int) -> dict:
    spec = yaml.safe_load((ROOT / "workflows" / "movielens.yaml").read_text())
    spec["name"] = name
    spec["data"] = data
    spec["features"] = split.features
    spec["run"] = {"dir": str(runs)}
    spec["ranker"]["seed"] = seed
    if not split.rating:
        spec.pop("label", None)
    return spec


def published_lists(redis_url: str, namespace: str, users: pd.Index) -> dict:
    """Each user's list as an app reads it: the current version's key, else its fallback."""
    import redis

    keys = Keys(namespace)
    r = redis.Redis.from_url(redis_url)
    version = r.get(keys.current).decode()
    fallback = json.loads(r.get(keys.fallback(version)))["items"]
    values = r.mget([keys.user(version, u) for u in users])
    return {u: (json.loads(v)["items"] if v is not None else fallback)
            for u, v in zip(users, values, strict=True)}


def run_night(split: Split, root: Path, redis_url: str, seed: int) -> tuple[dict, dict]:
    name = f"bq-{split.name}-s{seed}"
    spec = night_workflow(split, write_inputs(split, root / name / "data"), root / "runs", name,
                          seed)
    path = root / name / "night.yaml"
    path.write_text(yaml.safe_dump(spec))
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pipeline.cli", "run", str(path), "--date",
                    "2026-01-01", "--redis-url", redis_url], check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    manifest = json.loads(next((root / "runs" / name).rglob("manifest.json")).read_text())
    users = pd.Index(np.sort(split.truth["user_id"].unique()))
    return published_lists(redis_url, name, users), {"wall_s": round(wall, 1),
                                                     "manifest": manifest}


def evaluate(split: Split, root: Path, redis_url: str, seeds: int) -> dict:
    users = pd.Index(np.sort(split.truth["user_id"].unique()))
    validation = last_basket if not split.exclude_seen else (
        lambda t: global_temporal(t, 0.1, (lambda x: x["rating"] >= 4) if split.rating
                                  else (lambda x: pd.Series(True, index=x.index))))
    baselines: dict[str, list[list]] = {
        "popular": popular(split.train, users, None, split.exclude_seen),
        "popular_30d": popular(split.train, users, 30, split.exclude_seen),
        "item_knn": item_knn(split.train, users, split.exclude_seen),
    }
    baselines["ease"], lam = ease(split, users, validation)
    baselines["own_most_frequent"] = own_most_frequent(split.train, users)
    scores = {name: ndcg(dict(zip(users, lists, strict=True)), split.truth)
              for name, lists in baselines.items()}
    runs = []
    for seed in range(seeds):
        lists, info = run_night(split, root, redis_url, seed)
        value = ndcg(lists, split.truth)
        evaluation = info["manifest"]["stages"].get("evaluate", {})
        runs.append({"seed": seed, "ndcg": round(value[0], 4), "recall": round(value[1], 4),
                     "wall_s": info["wall_s"],
                     "published": (evaluation.get("choice") or {}).get("published"),
                     "stage_seconds": {n: s.get("seconds") for n, s in
                                       info["manifest"]["stages"].items()}})
        print(f"  {split.name} seed {seed}: NDCG@{K} {value[0]:.4f}  "
              f"({info['wall_s']:.0f} s)", flush=True)
    ndcgs = np.array([r["ndcg"] for r in runs])
    best = max(scores, key=lambda n: scores[n][0])
    return {
        "users": len(users), "train_rows": len(split.train),
        "recpipe": {"ndcg": round(float(ndcgs.mean()), 4),
                    "ndcg_std": round(float(ndcgs.std(ddof=1)) if len(ndcgs) > 1 else 0.0, 4),
                    "runs": runs},
        "baselines": {n: {"ndcg": round(v[0], 4), "recall": round(v[1], 4)}
                      for n, v in scores.items()},
        "ease_lambda": lam, "best_baseline": best,
        "margin_pct": round(100 * (ndcgs.mean() / scores[best][0] - 1), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench_quality_") as tmp:
        root = Path(tmp)
        url = os.environ.get("REDIS_URL")
        server = None
        if not url:
            from pipeline.publish.embedded import EmbeddedRedis

            server = EmbeddedRedis()
            url = server.start().url if hasattr(server, "start") else server.__enter__().url
        try:
            for name in args.datasets.split(","):
                split = DATASETS[name](ROOT)
                results[name] = evaluate(split, root, url, args.seeds)
        finally:
            if server is not None:
                server.__exit__(None, None, None)
    print(f"{'dataset':<18}{'recpipe':>16}{'best baseline':>26}{'margin':>9}")
    for name, r in results.items():
        best = r["best_baseline"]
        print(f"{name:<18}{r['recpipe']['ndcg']:>9.4f} ± {r['recpipe']['ndcg_std']:.4f}"
              f"{best:>17} {r['baselines'][best]['ndcg']:.4f}{r['margin_pct']:>8.1f}%")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
