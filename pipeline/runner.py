"""One nightly run of a workflow: prepare -> features -> train -> evaluate -> recommend -> publish.

Stages meet only through artifacts in the run directory (``RUN_DIR/<name>/<date>/``): the
user-partitioned event log, the saved feature workflow, the ranker, the lists. Each stage records
itself in the manifest when it finishes; re-running a date skips finished stages (``force``
re-runs them), and publish counts as finished only while Redis still holds its version.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
import dask.dataframe as dd
import pandas as pd
from distributed import Client

from pipeline.checks import check_op_columns, op_columns
from pipeline.cleaning import (
    duplicate_count,
    read_usable_interactions,
    report_duplicates,
    without_duplicates,
)
from pipeline.config import WorkflowSpec, check_label
from pipeline.errors import ConfigError, DataError
from pipeline.incremental import plan_night
from pipeline.io import ITEM, RATING, TIME, USER, naming_bad_file, read_side_table
from pipeline.manifest import MANIFEST, Manifest, utc_now
from pipeline.progress import Progress
from pipeline.recommend.batch import (
    NightContext,
    load_feature_workflow,
    map_user_partitions,
    ranker_feature_columns,
    training_partition,
    write_recommendations,
)
from pipeline.recommend.cooccurrence import fit_cooccurrence
from pipeline.recommend.popularity import DAY, fit_popularity
from pipeline.recommend.rank_features import SIGNAL_FEATURES
from pipeline.recommend.rules import fallback_items
from pipeline.runfolder import RunFolder
from pipeline.train.rankers import train_ranker
from pipeline.train.retrieval import fit_retrieval
from pipeline.train.tuning import tune_xgboost

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

    def retrieval(self, cutoff: int) -> Path:
        """The retrieval model trained on the history before ``cutoff`` (one per label window,
        the holdout and the night's lists)."""
        return self.root / "retrieval" / f"cutoff-{cutoff}"


class NightlyRun:
    """Runs the stages of one workflow for one date on a Dask client."""

    def __init__(self, spec: WorkflowSpec, date: str, client: Client, redis_url: str,
                 *, force: bool = False, progress: Progress | None = None) -> None:
        self.spec, self.date, self.client, self.redis_url = spec, date, client, redis_url
        self.progress = progress or Progress(None)
        self.folder = RunFolder(spec.run.dir / spec.name, date)  # checks the date and name
        self.paths = RunPaths(self.folder.root)
        fingerprint = workflow_fingerprint(spec)
        self.folder.claim()
        if force or ((self.paths.root / MANIFEST).exists()
                     and _recorded_fingerprint(self.paths.root) != fingerprint):
            if not force:
                log.warning("the workflow changed since %s last ran: re-running every stage",
                            date)
            self.folder.remove(self.paths.root)
            self.folder.claim()
        self.manifest = Manifest.open(
            self.paths.root, workflow=spec.name, date=date, workflow_fingerprint=fingerprint,
            workflow_file=str(spec.source) if spec.source else None,
            workflow_spec=spec.model_dump(mode="json"),
        )
        self._side: tuple[pd.DataFrame | None, pd.DataFrame | None] | None = None

    # -- orchestration -------------------------------------------------------------------
    def run(self) -> Manifest:
        self.manifest.data.update(status="running", started=utc_now())
        if "incremental" not in self.manifest.data:  # a resumed run keeps its first decision
            plan = plan_night(self.spec, self.paths.root, self.date)
            self.manifest.data["incremental"] = plan.as_dict()
            log.info("night plan: %s (%s)", plan.mode, plan.reason)
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
                prepared = self.manifest.stage("prepare")
                with self.progress.stage(name, rows=prepared.get("rows"),
                                         partitions=prepared.get("partitions")):
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
            from pipeline.publish import version_stands

            version = self.manifest.stage("publish").get("version")
            return version_stands(self.redis_url, self.spec.namespace, version)
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
                with naming_bad_file(table_spec.path, what):
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
        embedding_dir = None
        if cand.embedding is not None:
            params = cand.embedding.model_params()
            embedding_dir = str(fit_retrieval(events, cutoff, params,
                                              self.paths.retrieval(cutoff), TIME))
        users, items = self._side_tables()
        return NightContext(
            cutoff=cutoff, popular=popular, neighbours=neighbours, users=users, items=items,
            workflow_dir=str(self.paths.workflow), candidates=cand,
            exclude_seen=self.spec.filter.exclude_seen, k=self.spec.recommend.k,
            seen_window_days=self.spec.filter.seen_window_days, embedding_dir=embedding_dir,
        )

    def _serving_context(self, ctx: NightContext) -> NightContext:
        """``ctx`` plus the business rules and reorder plan, which shape the nightly lists only
        (training and holdout evaluation see the same candidates and features without them)."""
        from pipeline.recommend.reorder import resolve_reorder
        from pipeline.recommend.rules import resolve_rules

        items, source = None, "(no data.items)"
        if self.spec.data.items is not None:
            source = str(self.spec.data.items.path)
            items = read_side_table(self.spec.data.items, ITEM, "data.items").compute()
        return dataclasses.replace(
            ctx, rules=resolve_rules(self.spec.filter, items, source, self.date),
            reorder=resolve_reorder(self.spec.reorder, items, source))

    # -- stages ------------------------------------------------------------------------------
    def prepare(self) -> dict[str, Any]:
        """Read the log, add the relevance label, repartition by user, fix the split times."""
        spec = self.spec
        _fetch_if_configured(spec)
        check_label(spec)
        where = (spec.data.interactions.path, "data.interactions")
        with naming_bad_file(*where):  # a corrupt page: an error naming its file
            usable = read_usable_interactions(spec.data.interactions)
            events, label = usable.events, spec.label
            events = events.assign(**{label.name: (events[RATING] >= label.min_value)
                                      .astype("int8")})
            n_parts = max(events.npartitions, len(self.client.scheduler_info()["workers"]))
            events = events.shuffle(on=USER, npartitions=n_parts)
            if spec.data.drop_duplicates:
                events = without_duplicates(events)
            self.folder.remove(self.paths.events)
            events.to_parquet(self.paths.events, write_index=False)
        events = self._events()
        rows, t_min, t_max, n_users, n_items, repeated = dask.compute(
            events.shape[0], events[TIME].min(), events[TIME].max(),
            events[USER].nunique(), events[ITEM].nunique(), duplicate_count(events),
        )
        duplicates = usable.rows - int(rows) if spec.data.drop_duplicates else int(repeated)
        report_duplicates(duplicates, spec.data.drop_duplicates, where[0])
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
                "partitions": n_parts, "split": split, "dropped": usable.dropped,
                "duplicates": duplicates,
                "inputs": {"interactions": str(spec.data.interactions.path)}}

    def fit_features(self) -> dict[str, Any]:
        """Fit the feature workflow on the history before the first label window (no leakage)."""
        from pipeline.features import Workflow

        label_start = self._split()["label_start"]
        base = self._incremental_base()
        refused = None
        if base is not None:
            updated = self._update_features(base, label_start)
            if isinstance(updated, dict):
                return updated
            refused = updated
        history = self._history(None, label_start)
        _check_op_columns(self.spec, set(history.columns) | set(SIGNAL_FEATURES))
        workflow = Workflow(build_ops(self.spec))
        workflow.fit(history)
        self.folder.remove(self.paths.workflow)
        workflow.save(self.paths.workflow)
        return {"fit_rows": int(history.shape[0].compute()), "updated_from": None,
                "update_refused": refused, "output_schema": workflow.output_schema}

    def _update_features(self, base: Path, label_start: int) -> dict[str, Any] | str:
        """Incremental night: merge the statistics of the events the base night's fit had not
        seen (its label start to ours) into its saved workflow. A string: why it could not (the
        feature workflow or one of its ops cannot update), and the caller refits in full."""
        from pipeline.features import Workflow

        if "update" not in inspect.signature(Workflow.fit).parameters:
            reason = "Workflow.fit(update=True) is not available"
            log.warning("incremental night: %s; refitting the feature statistics in full",
                        reason)
            return reason
        since = _manifest_of(base)["stages"]["prepare"]["split"]["label_start"]
        history = self._history(since, label_start)
        _check_op_columns(self.spec, set(history.columns) | set(SIGNAL_FEATURES))
        workflow = Workflow.load(base / "features" / "workflow")
        rows = int(history.shape[0].compute())
        if rows:
            try:
                workflow.fit(history, update=True)
            except ConfigError as exc:
                log.warning("incremental night: %s; refitting the feature statistics in full",
                            exc)
                return str(exc)
        self.folder.remove(self.paths.workflow)
        workflow.save(self.paths.workflow)
        return {"fit_rows": rows, "updated_from": str(base),
                "output_schema": workflow.output_schema}

    def _history(self, since: int | None, until: int) -> dd.DataFrame:
        """Events in ``[since, until)`` joined with the user and item attributes."""
        events = self._events()
        keep = events[TIME] < until
        if since is not None:
            keep &= events[TIME] >= since
        history = events[keep]
        users, items = self._side_tables()
        if users is not None:
            history = history.merge(users, left_on=USER, right_index=True, how="left")
        if items is not None:
            history = history.merge(items, left_on=ITEM, right_index=True, how="left")
        return history

    def _incremental_base(self) -> Path | None:
        """The good night this one builds on, when the night plan is incremental."""
        plan = self.manifest.data.get("incremental") or {}
        return Path(plan["base"]) if plan.get("mode") == "incremental" else None

    def train(self) -> dict[str, Any]:
        """Stack one block of labelled candidate rows per label window, then train."""
        split = self._split()
        workflow = load_feature_workflow(self.paths.workflow)
        features = ranker_feature_columns(workflow, self.spec.candidates)
        ends = [split["holdout_start"], *split["label_starts"][:-1]]
        blocks = [
            map_user_partitions(self._events(), training_partition, self._context(start), end,
                                features, self.spec.ranker.validation_fraction)
            for start, end in zip(split["label_starts"], ends, strict=True)
        ]
        rows = dd.concat(blocks)
        # Kept for the evaluate stage (extra seeds, logistic regression): built once.
        self.folder.remove(self.paths.root / "train_rows")
        rows.to_parquet(self.paths.root / "train_rows", write_index=False)
        rows = dd.read_parquet(self.paths.root / "train_rows")
        base = self._incremental_base()  # incremental: go on from the last good model
        warm = base / "model" if base is not None else None
        tuning: dict[str, Any] | None = None
        if self.spec.ranker.tuning.n_trials:
            report, tuning = tune_xgboost(self.client, rows, features, self.spec.ranker,
                                          self.paths.model, warm_start=warm)
        else:
            report = train_ranker(self.client, rows, features, workflow.output_schema,
                                  self.spec.ranker, self.paths.model, warm_start=warm)
        return {"model": str(self.paths.model), "ranker": self.spec.ranker.model,
                "features": features, "warm_start": str(warm) if warm else None,
                **report.__dict__, "tuning": tuning}

    def evaluate(self) -> dict[str, Any]:
        """The ranker (over ``evaluation.seeds`` seeds) and every baseline, as lists on the
        holdout; see ``pipeline.train.evaluate``."""
        from pipeline.train.evaluate import NightData, evaluate_night

        split = self._split()
        workflow = load_feature_workflow(self.paths.workflow)
        features = ranker_feature_columns(workflow, self.spec.candidates)

        def training_rows() -> dd.DataFrame:  # the rows the train stage wrote
            return dd.read_parquet(self.paths.root / "train_rows")

        data = NightData(events=self._events(), split=split, context=self._context,
                         training_rows=training_rows, features=features,
                         model_dir=self.paths.model, out=self.paths.root / "evaluation",
                         schema=workflow.output_schema)
        return evaluate_night(self.client, self.spec, data)

    def recommend(self) -> dict[str, Any]:
        """Lists for every user as of the end of the log, written as Parquet, with the rows
        each filter rule removed and each stage's seconds (summed over partitions)."""
        split, k = self._split(), self.spec.recommend.k
        ctx = self._serving_context(self._context(split["last_event"] + 1))
        self.folder.remove(self.paths.lists)
        stats = write_recommendations(self._events(), ctx, str(self.paths.model), None,
                                      self.paths.lists)
        fallback = fallback_items(ctx.popular, ctx.rules, k)[[ITEM, "pop_rank"]]
        fallback.to_parquet(self.paths.fallback, index=False)
        users, full = int(stats.get("users", 0)), int(stats.get("full_lists", 0))
        return {"rows": int(stats.get("rows", 0)), "users": users, "full_lists": full,
                "full_list_share": round(full / users, 6) if users else None, "k": k,
                "filter_removed": {key.split(".", 1)[1]: int(v) for key, v in stats.items()
                                   if key.startswith("removed.")},
                "stage_seconds": {key.split(".", 1)[1]: round(v, 3) for key, v in stats.items()
                                  if key.startswith("seconds.")}}

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


def finished_night(spec: WorkflowSpec, date: str, redis_url: str) -> Manifest | None:
    """The manifest of ``date`` if that night finished with this workflow and Redis still
    serves its version: a scheduler's re-run then needs no cluster at all."""
    root = spec.run.dir / spec.name / date
    if _recorded_fingerprint(root) != workflow_fingerprint(spec):
        return None
    manifest = Manifest(root, _manifest_of(root))
    if manifest.data.get("status") != "done" or not all(map(manifest.is_done, STAGES)):
        return None
    from pipeline.publish import version_stands

    version = manifest.stage("publish").get("version")
    return manifest if version_stands(redis_url, spec.namespace, version) else None


def workflow_fingerprint(spec: WorkflowSpec) -> str:
    """A hash of everything the workflow file says about the results: a changed file means a
    different run. Where the work runs (``cluster``) and where run folders live (``run.dir``) are
    left out: neither changes the results, and a moved folder or a new cluster resumes."""
    dumped = spec.model_dump(mode="json", exclude={"cluster": True, "run": {"dir"}})
    if dumped["ranker"].get("neural") is None:  # added later: unset, the hash stays as it was
        dumped["ranker"].pop("neural", None)
    if not dumped["data"].get("drop_duplicates"):  # likewise
        dumped["data"].pop("drop_duplicates", None)
    text = json.dumps(dumped, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _manifest_of(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / MANIFEST).read_text())


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
    from pipeline.features.spec_ops import op_from_spec

    return [op_from_spec(op) for op in spec.features]


def _op_columns(op: Any) -> list[str]:
    return op_columns(op)


def _check_op_columns(spec: WorkflowSpec, available: set[str]) -> None:
    check_op_columns(spec, available)


def _fetch_if_configured(spec: WorkflowSpec) -> None:
    if spec.data.fetch and not spec.data.interactions.path.exists():
        from pipeline.datasets import DATASETS

        log.info("fetching %s into %s", spec.data.fetch, spec.data.interactions.path.parent)
        DATASETS[spec.data.fetch](spec.data.interactions.path.parent)
