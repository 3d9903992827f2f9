"""One nightly run of a workflow: prepare -> features -> train -> evaluate -> recommend -> publish.

Stages meet only through artifacts in the run directory (``RUN_DIR/<name>/<date>/``): the
user-partitioned event log, the saved feature workflow, the ranker, the lists. Each stage records
itself in the manifest when it finishes; re-running a date skips finished stages (``force``
re-runs them), and publish counts as finished only while Redis still holds its version.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
import dask.dataframe as dd
import pandas as pd
from distributed import Client

from pipeline.config import WorkflowSpec
from pipeline.errors import ConfigError, DataError
from pipeline.io import ITEM, RATING, TIME, USER, read_interactions, read_side_table
from pipeline.manifest import MANIFEST, Manifest, utc_now
from pipeline.recommend.batch import (
    NightContext,
    load_feature_workflow,
    map_user_partitions,
    ranker_feature_columns,
    recommend_partition,
    training_partition,
)
from pipeline.recommend.cooccurrence import fit_cooccurrence
from pipeline.recommend.popularity import DAY, fit_popularity
from pipeline.recommend.rank_features import SIGNAL_FEATURES
from pipeline.train.metrics import ranking_metrics
from pipeline.train.xgb import train_xgboost

log = logging.getLogger(__name__)

STAGES = ("prepare", "features", "train", "evaluate", "recommend", "publish")


@dataclass(frozen=True)
class RunPaths:
    root: Path

    @property
    def events(self) -> Path:
        return self.root / "events"

    @property
    def workflow(self) -> Path:
        return self.root / "features" / "workflow"

    @property
    def model(self) -> Path:
        return self.root / "model"

    @property
    def lists(self) -> Path:
        return self.root / "recommendations"

    @property
    def fallback(self) -> Path:
        return self.root / "fallback.parquet"


class NightlyRun:
    """Runs the stages of one workflow for one date on a Dask client."""

    def __init__(self, spec: WorkflowSpec, date: str, client: Client, redis_url: str,
                 *, force: bool = False) -> None:
        self.spec, self.date, self.client, self.redis_url = spec, date, client, redis_url
        self.paths = RunPaths(spec.run.dir / spec.name / date)
        fingerprint = workflow_fingerprint(spec)
        if self.paths.root.exists() and (force or _recorded_fingerprint(self.paths.root)
                                         != fingerprint):
            if not force:
                log.warning("the workflow changed since %s last ran: re-running every stage",
                            date)
            shutil.rmtree(self.paths.root)
        self.manifest = Manifest.open(
            self.paths.root, workflow=spec.name, date=date, workflow_fingerprint=fingerprint,
            workflow_file=str(spec.source) if spec.source else None,
            workflow_spec=spec.model_dump(mode="json"),
        )
        self._side: tuple[pd.DataFrame | None, pd.DataFrame | None] | None = None

    # -- orchestration -------------------------------------------------------------------
    def run(self) -> Manifest:
        self.manifest.data.update(status="running", started=utc_now())
        self.manifest.save()
        steps: dict[str, Callable[[], dict[str, Any]]] = {
            "prepare": self.prepare, "features": self.fit_features, "train": self.train,
            "evaluate": self.evaluate, "recommend": self.recommend, "publish": self.publish,
        }
        ran_earlier_stage = False  # a stage that runs invalidates every stage after it
        for name in STAGES:
            if not ran_earlier_stage and self._finished(name):
                log.info("stage %s: already done for %s, skipped", name, self.date)
                continue
            ran_earlier_stage = True
            log.info("stage %s: started", name)
            self.manifest.record(name, status="running", started=utc_now())
            started = time.perf_counter()
            try:
                result = steps[name]()
            except BaseException as exc:
                self.manifest.record(name, status="failed", error=str(exc)[:2000])
                self.manifest.data.update(status="failed", finished=utc_now())
                self.manifest.save()
                raise
            seconds = round(time.perf_counter() - started, 3)
            self.manifest.record(name, status="done", seconds=seconds, finished=utc_now(),
                                 **result)
            log.info("stage %s: done in %.1f s", name, seconds)
        self.manifest.data.update(status="done", finished=utc_now())
        self.manifest.save()
        return self.manifest

    def _finished(self, name: str) -> bool:
        if not self.manifest.is_done(name):
            return False
        if name == "publish":
            from pipeline.publish import current_version

            version = self.manifest.stage("publish").get("version")
            return current_version(self.redis_url, self.spec.namespace) == version
        return True

    # -- inputs ----------------------------------------------------------------------------
    def _events(self) -> dd.DataFrame:
        return dd.read_parquet(self.paths.events)

    def _split(self) -> dict[str, int]:
        return self.manifest.stage("prepare")["split"]

    def _side_tables(self) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
        """User and item attributes the feature ops read, indexed by id (small, broadcast)."""
        if self._side is None:
            data = self.spec.data
            wanted = {c for op in self.spec.features for c in _op_columns(op)}
            tables = []
            for table_spec, key, what in ((data.users, USER, "data.users"),
                                          (data.items, ITEM, "data.items")):
                if table_spec is None:
                    tables.append(None)
                    continue
                frame = read_side_table(table_spec, key, what)
                columns = [c for c in frame.columns if c in wanted and c not in (USER, ITEM)]
                table = frame[[key, *columns]].compute()
                duplicated = table[key].duplicated()
                if duplicated.any():
                    raise DataError(
                        f"{what}: {table_spec.path} has {int(duplicated.sum())} duplicate "
                        f"'{table_spec.key}' values (e.g. {table[key][duplicated].iloc[0]!r}); "
                        "keys must be unique"
                    )
                tables.append(table.set_index(key))
            self._side = (tables[0], tables[1])
        return self._side

    def _context(self, cutoff: int) -> NightContext:
        cand = self.spec.candidates
        events = self._events()
        popular = fit_popularity(events, cutoff, cand.popularity.recent_days).items
        neighbours = None
        if cand.cooccurrence is not None and len(popular):
            neighbours = fit_cooccurrence(events, cutoff, pd.Index(popular[ITEM]),
                                          cand.cooccurrence.neighbors)
        users, items = self._side_tables()
        return NightContext(
            cutoff=cutoff, popular=popular, neighbours=neighbours, users=users, items=items,
            workflow_dir=str(self.paths.workflow), candidates=cand,
            exclude_seen=self.spec.filter.exclude_seen, k=self.spec.recommend.k,
        )

    # -- stages ------------------------------------------------------------------------------
    def prepare(self) -> dict[str, Any]:
        """Read the log, add the relevance label, repartition by user, fix the split times."""
        spec = self.spec
        _fetch_if_configured(spec)
        events = read_interactions(spec.data.interactions)
        label = spec.label
        if label.column != RATING or spec.data.interactions.columns.rating is None:
            raise ConfigError(
                f"label.column is '{label.column}' but data.interactions.columns has no rating "
                "mapping; add 'rating: <column>' under data.interactions.columns"
            )
        events = events.assign(**{label.name: (events[RATING] >= label.min_value)
                                  .astype("int8")})
        n_parts = max(events.npartitions, len(self.client.scheduler_info()["workers"]))
        events = events.shuffle(on=USER, npartitions=n_parts)
        shutil.rmtree(self.paths.events, ignore_errors=True)
        events.to_parquet(self.paths.events, write_index=False)
        events = self._events()
        rows, t_min, t_max, n_users, n_items = dask.compute(
            events.shape[0], events[TIME].min(), events[TIME].max(),
            events[USER].nunique(), events[ITEM].nunique(),
        )
        if rows == 0:
            raise DataError(f"data.interactions: {spec.data.interactions.path} has no rows")
        holdout_start = int(t_max) - int(spec.split.holdout_days * DAY)
        window = int(spec.split.label_days * DAY)
        label_starts = [holdout_start - window * (w + 1) for w in range(spec.split.label_windows)]
        if label_starts[-1] <= int(t_min):
            raise ConfigError(
                f"split: the log spans {(t_max - t_min) / DAY:.1f} days, too short for "
                f"holdout_days={spec.split.holdout_days} plus {spec.split.label_windows} "
                f"label window(s) of label_days={spec.split.label_days}; lower them"
            )
        split = {"first_event": int(t_min), "label_starts": label_starts,
                 "label_start": label_starts[-1], "holdout_start": holdout_start,
                 "last_event": int(t_max)}
        return {"rows": int(rows), "users": int(n_users), "items": int(n_items),
                "partitions": n_parts, "split": split,
                "inputs": {"interactions": str(spec.data.interactions.path)}}

    def fit_features(self) -> dict[str, Any]:
        """Fit the feature workflow on the history before the first label window (no leakage)."""
        from pipeline.features import Workflow

        events = self._events()
        history = events[events[TIME] < self._split()["label_start"]]
        users, items = self._side_tables()
        if users is not None:
            history = history.merge(users, left_on=USER, right_index=True, how="left")
        if items is not None:
            history = history.merge(items, left_on=ITEM, right_index=True, how="left")
        _check_op_columns(self.spec, set(history.columns) | set(SIGNAL_FEATURES))
        workflow = Workflow(build_ops(self.spec))
        workflow.fit(history)
        shutil.rmtree(self.paths.workflow, ignore_errors=True)
        workflow.save(self.paths.workflow)
        return {"fit_rows": int(history.shape[0].compute()),
                "output_schema": workflow.output_schema}

    def train(self) -> dict[str, Any]:
        """Stack one block of labelled candidate rows per label window, then train."""
        split = self._split()
        features = ranker_feature_columns(load_feature_workflow(self.paths.workflow))
        ends = [split["holdout_start"], *split["label_starts"][:-1]]
        blocks = [
            map_user_partitions(self._events(), training_partition, self._context(start), end,
                                features, self.spec.ranker.validation_fraction)
            for start, end in zip(split["label_starts"], ends, strict=True)
        ]
        rows = dd.concat(blocks)
        report = train_xgboost(self.client, rows, features, self.spec.ranker, self.paths.model)
        return {"model": str(self.paths.model), "features": features, **report.__dict__}

    def evaluate(self) -> dict[str, Any]:
        """Lists as of the holdout start, for users active in the holdout, vs popularity."""
        split, k = self._split(), self.spec.evaluation.k
        ctx = self._context(split["holdout_start"])
        events = self._events()
        truth = events[events[TIME] >= split["holdout_start"]][[USER, ITEM]]
        end = split["last_event"] + 1
        results = {}
        for name, model in (("ranker", str(self.paths.model)), ("popularity", None)):
            lists = map_user_partitions(events, recommend_partition, ctx, model, end)
            results[name] = ranking_metrics(lists, truth, k)
        for name, metrics in results.items():
            log.info("holdout %-10s NDCG@%d %.4f  Recall@%d %.4f  (%d users)", name, k,
                     metrics[f"ndcg@{k}"], k, metrics[f"recall@{k}"], metrics["users"])
        return {"metrics": results, "k": k}

    def recommend(self) -> dict[str, Any]:
        """Lists for every user as of the end of the log, written as Parquet."""
        split = self._split()
        ctx = self._context(split["last_event"] + 1)
        lists = map_user_partitions(self._events(), recommend_partition, ctx,
                                    str(self.paths.model), None)
        shutil.rmtree(self.paths.lists, ignore_errors=True)
        lists.to_parquet(self.paths.lists, write_index=False)
        fallback = ctx.popular.head(self.spec.recommend.k)[[ITEM, "pop_rank"]]
        fallback.to_parquet(self.paths.fallback, index=False)
        lists = dd.read_parquet(self.paths.lists)
        rows, users, sizes = dask.compute(lists.shape[0], lists[USER].nunique(),
                                        lists.groupby(USER).size().value_counts())
        full = int(sizes.get(self.spec.recommend.k, 0))
        return {"rows": int(rows), "users": int(users), "full_lists": full,
                "k": self.spec.recommend.k}

    def publish(self) -> dict[str, Any]:
        from pipeline.publish import publish_lists

        fallback = pd.read_parquet(self.paths.fallback)
        report = publish_lists(
            dd.read_parquet(self.paths.lists), self.redis_url, self.spec.namespace,
            fallback_items=fallback[ITEM].tolist(),
            fallback_scores=(1.0 / fallback["pop_rank"]).round(6).tolist(),
            keep_versions=self.spec.publish.keep_versions,
            ttl_seconds=self.spec.publish.ttl_seconds,
        )
        return {"version": report.version, "users": report.users,
                "keys_written": report.keys_written,
                "removed_versions": list(report.removed_versions)}


def workflow_fingerprint(spec: WorkflowSpec) -> str:
    """A hash of everything the workflow file says: a changed file means a different run."""
    text = json.dumps(spec.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _recorded_fingerprint(run_dir: Path) -> str | None:
    path = run_dir / MANIFEST
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text()).get("workflow_fingerprint")
    except json.JSONDecodeError:
        return None


def build_ops(spec: WorkflowSpec) -> list[Any]:
    """Feature ops from the workflow file's ``features`` list."""
    from pipeline.features import Categorify, FillMissing, Normalize, TargetEncoding

    ops: list[Any] = []
    for op in spec.features:
        if op.op == "categorify":
            ops.append(Categorify(op.columns, freq_threshold=op.freq_threshold,
                                  num_buckets=op.num_buckets))
        elif op.op == "normalize":
            ops.append(Normalize(op.columns))
        elif op.op == "fill_missing":
            ops.append(FillMissing(op.columns, value=op.value))
        elif op.op == "target_encoding":
            ops.append(TargetEncoding(op.columns, target=op.target, p_smooth=op.p_smooth,
                                      kfold=op.kfold, seed=op.seed))
    return ops


def _op_columns(op: Any) -> list[str]:
    cols: list[str] = []
    for c in op.columns:
        cols.extend([c] if isinstance(c, str) else c)
    return cols


def _check_op_columns(spec: WorkflowSpec, available: set[str]) -> None:
    for i, op in enumerate(spec.features):
        missing = [c for c in _op_columns(op) if c not in available]
        if missing:
            raise ConfigError(
                f"features[{i}] ({op.op}) names column(s) {', '.join(map(repr, missing))} that "
                f"neither the interactions nor the user/item tables have; available: "
                f"{', '.join(sorted(available))}"
            )


def _fetch_if_configured(spec: WorkflowSpec) -> None:
    if spec.data.fetch and not spec.data.interactions.path.exists():
        from pipeline.datasets import DATASETS

        log.info("fetching %s into %s", spec.data.fetch, spec.data.interactions.path.parent)
        DATASETS[spec.data.fetch](spec.data.interactions.path.parent)
