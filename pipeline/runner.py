"""One nightly run of a workflow: prepare -> features -> train -> evaluate -> recommend -> publish.

Stages meet only through artifacts in the run directory (``RUN_DIR/<name>/<date>/``): the
user-partitioned event log, the saved feature workflow, the ranker, the lists. Each stage records
itself in the manifest when it finishes; re-running a date skips finished stages (``force``
re-runs them), and publish counts as finished only while Redis still holds its version.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
from distributed import Client

from pipeline.candidates.context import NightContext
from pipeline.candidates.fit import CutoffInputs, fit_context, tune_ease_lambda
from pipeline.candidates.rules import fallback_items, resolve_rules
from pipeline.checks import check_op_columns, op_columns
from pipeline.cleaning import (
    duplicate_count,
    read_usable_interactions,
    report_duplicates,
    without_duplicates,
)
from pipeline.config import WorkflowSpec
from pipeline.errors import ConfigError, DataError
from pipeline.incremental import plan_night
from pipeline.io import ITEM, TIME, USER, naming_bad_file, read_side_table, with_relevance
from pipeline.manifest import MANIFEST, Manifest, utc_now
from pipeline.progress import Progress
from pipeline.rankers.ranker import train_ranker
from pipeline.rankers.tuning import tune_xgboost
from pipeline.recommend.batch import RANKER, write_recommendations
from pipeline.recommend.reorder import ReorderPlan, resolve_reorder
from pipeline.rows.build import (
    LabelWindows,
    known_window_users,
    load_feature_workflow,
    map_user_partitions,
    ranker_feature_columns,
    training_partition,
)
from pipeline.rows.signals import BASE_SIGNALS
from pipeline.runfolder import RunFolder
from pipeline.split import HOUR, plan_split, window_bounds

log = logging.getLogger(__name__)

STAGES = ("prepare", "features", "train", "evaluate", "recommend", "publish")
# A log whose users come back to items this often keeps seen items as candidates (exclude_seen:
# auto): a film is rated once, a grocery staple is bought again and again.
REPEAT_SHARE_KEEPS_SEEN = 0.05
LAMBDA_CARRY_GROWTH = 0.05  # an incremental night re-tunes EASE^R's λ past this log growth


@dataclass(frozen=True)
class RunPaths:
    root: Path

    @property
    def events(self) -> Path:
        return self.root / "events"

    def workflow_at(self, cutoff: int) -> Path:
        """The feature workflow fitted on the history before ``cutoff``."""
        return self.root / "features" / f"cutoff-{cutoff}"

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
            wanted = {c for op in self.spec.features for c in op_columns(op)}
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

    def _cutoff_inputs(self, with_lambda: bool = True) -> CutoffInputs:
        prepared = self.manifest.stage("prepare")
        users, items = self._side_tables()
        lam = self.manifest.stage("train").get("ease", {}).get("lambda") if with_lambda else None
        return CutoffInputs(
            candidates=self.spec.candidates, exclude_seen=bool(prepared["exclude_seen"]),
            seen_window_days=self.spec.filter.seen_window_days, k=self.spec.recommend.k,
            users=users, items=items, ease_lambda=lam)

    def _context(self, cutoff: int, lam: float | None = None) -> NightContext:
        """Every generator fitted on the history before ``cutoff``, with the feature workflow
        fitted as of the same cutoff."""
        inputs = self._cutoff_inputs(with_lambda=lam is None)
        if lam is not None:
            inputs = dataclasses.replace(inputs, ease_lambda=lam)
        return fit_context(self._events(), cutoff, inputs, self.paths.workflow_at(cutoff),
                           self.paths.retrieval(cutoff))

    def _serving_context(self, cutoff: int) -> tuple[NightContext, ReorderPlan | None]:
        """The context of ``cutoff`` plus the business rules, and the reorder plan: both shape
        the nightly lists only (training and holdout evaluation see the same candidates and
        features without them)."""
        items, source = None, "(no data.items)"
        if self.spec.data.items is not None:
            source = str(self.spec.data.items.path)
            items = read_side_table(self.spec.data.items, ITEM, "data.items").compute()
        rules = resolve_rules(self.spec.filter, items, source, self.date)
        return (dataclasses.replace(self._context(cutoff), rules=rules),
                resolve_reorder(self.spec.reorder, items, source))

    def _cutoffs(self) -> list[int]:
        """Every cutoff the night fits statistics at, oldest first: the label windows' starts,
        the holdout's start, and the end of the log (the lists it publishes)."""
        split = self._split()
        return [*reversed(split["label_starts"]), split["holdout_start"],
                split["last_event"] + 1]

    def _features(self) -> list[str]:
        split = self._split()
        workflow = load_feature_workflow(self.paths.workflow_at(split["holdout_start"]))
        return ranker_feature_columns(workflow, self.spec.candidates, self._repeat_on())

    def _repeat_on(self) -> bool:
        exclude = bool(self.manifest.stage("prepare")["exclude_seen"])
        return self.spec.candidates.repeat is not None and not (
            exclude and self.spec.filter.seen_window_days is None)

    # -- stages ------------------------------------------------------------------------------
    def prepare(self) -> dict[str, Any]:
        """Read the log, add the relevance label, repartition by user, fix the split times and
        decide whether seen items stay candidates."""
        spec = self.spec
        _fetch_if_configured(spec)
        where = (spec.data.interactions.path, "data.interactions")
        with naming_bad_file(*where):  # a corrupt page: an error naming its file
            usable = read_usable_interactions(spec.data.interactions)
            events = with_relevance(usable.events, spec)
            n_parts = max(events.npartitions, len(self.client.scheduler_info()["workers"]))
            events = events.shuffle(on=USER, npartitions=n_parts)
            if spec.data.drop_duplicates:
                events = without_duplicates(events)
            self.folder.remove(self.paths.events)
            events.to_parquet(self.paths.events, write_index=False)
        events = self._events()
        rows, t_min, t_max, n_users, n_items, pairs, hourly, repeated = dask.compute(
            events.shape[0], events[TIME].min(), events[TIME].max(),
            events[USER].nunique(), events[ITEM].nunique(),
            events[[USER, ITEM]].map_partitions(lambda part: len(part.drop_duplicates()),
                                                meta=("pairs", "int64")).sum(),
            (events[TIME] // HOUR).value_counts(), duplicate_count(events),
        )
        duplicates = usable.rows - int(rows) if spec.data.drop_duplicates else int(repeated)
        report_duplicates(duplicates, spec.data.drop_duplicates, where[0])
        if rows == 0:
            raise DataError(f"data.interactions: {spec.data.interactions.path} has no rows")
        bounds = window_bounds(spec.split, hourly, int(t_min), int(t_max))
        window_users = events.map_partitions(
            _window_user_counts, bounds, int(t_max) + 1, spec.label.name,
            meta=pd.DataFrame({"window": pd.Series(dtype="int64"),
                               "users": pd.Series(dtype="int64")}),
        ).groupby("window")["users"].sum().compute().sort_index()
        counts = [int(v) for v in window_users.to_numpy()]
        split = {**plan_split(spec.split, bounds, counts[1:], int(t_min), int(t_max)),
                 "holdout_users": counts[0]}
        repeat_share = 1.0 - int(pairs) / int(rows)
        exclude_seen = spec.filter.exclude_seen
        if exclude_seen == "auto":
            exclude_seen = repeat_share < REPEAT_SHARE_KEEPS_SEEN
        log.info("%d events, %.1f%% of them repeats: seen items %s", rows, 100 * repeat_share,
                 "excluded" if exclude_seen else "stay candidates")
        return {"rows": int(rows), "users": int(n_users), "items": int(n_items),
                "partitions": n_parts, "split": split, "repeat_share": round(repeat_share, 6),
                "dropped": usable.dropped, "duplicates": duplicates,
                "exclude_seen": bool(exclude_seen),
                "inputs": {"interactions": str(spec.data.interactions.path)}}

    def fit_features(self) -> dict[str, Any]:
        """Fit the feature workflow as of every cutoff (point in time: a window's rows are
        encoded with statistics of the history before it, the published lists with all of it):
        the first cutoff from scratch, each later one by merging the events since the one
        before (incremental nights start from the base night's workflows)."""
        from pipeline.features import Workflow

        cutoffs = self._cutoffs()
        base = self._incremental_base()
        base_cutoffs = _manifest_cutoffs(base) if base is not None else []
        check_op_columns(self.spec, set(self._history(None, cutoffs[0]).columns)
                          | set(BASE_SIGNALS))
        fitted: list[dict[str, Any]] = []
        previous: tuple[int, Path] | None = None
        self.progress.measure("cutoffs", 0, len(cutoffs))
        for i, cutoff in enumerate(cutoffs):
            out = self.paths.workflow_at(cutoff)
            start = previous
            if i < len(base_cutoffs) and base_cutoffs[i] <= cutoff:
                start = (base_cutoffs[i], base / "features" / f"cutoff-{base_cutoffs[i]}")
            workflow, rows, mode = self._fit_workflow(Workflow, start, cutoff)
            self.folder.remove(out)
            workflow.save(out)
            fitted.append({"cutoff": cutoff, "rows": rows, "mode": mode})
            previous = (cutoff, out)
            self.progress.measure("cutoffs", i + 1, len(cutoffs))
        return {"cutoffs": fitted, "fit_rows": sum(f["rows"] for f in fitted),
                "output_schema": workflow.output_schema}

    def _fit_workflow(self, workflow_type: Any, start: tuple[int, Path] | None,
                      cutoff: int) -> tuple[Any, int, str]:
        """The workflow as of ``cutoff``: ``start`` (a cutoff and its saved workflow) updated
        with the events since, or a full fit when there is none or an op cannot update."""
        if start is not None:
            history = self._history(start[0], cutoff)
            workflow = workflow_type.load(start[1])
            rows = int(history.shape[0].compute())
            try:
                if rows:
                    workflow.fit(history, update=True)
                return workflow, rows, "update"
            except ConfigError as exc:
                log.warning("feature workflow at %d: %s; refitting it in full", cutoff, exc)
        history = self._history(None, cutoff)
        workflow = workflow_type(build_ops(self.spec))
        workflow.fit(history)
        return workflow, int(history.shape[0].compute()), "full"

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
        """Tune EASE^R's λ on the newest label window, build every window's training rows in
        one pass over the user partitions (a chosen number of users per window, capped
        negatives), then train the ranker on them."""
        split = self._split()
        ease = self._ease_lambda(split)
        lam = ease.get("lambda") if ease else None
        starts = split["label_starts"]
        ends = [split["holdout_start"], *starts[:-1]]
        contexts = [self._context(start, lam) for start in starts]
        features = self._features()
        ranker = self.spec.ranker
        counts = split["window_users"]
        shares = tuple(min(1.0, ranker.rows.users_per_window / max(int(c), 1)) for c in counts)
        windows = LabelWindows(tuple(contexts), tuple(ends), shares, tuple(features),
                               self.spec.label.name, ranker.rows, ranker.seed,
                               ranker.validation_fraction)
        rows = map_user_partitions(self._events(), training_partition, windows)
        # Kept for the evaluate stage (extra seeds, logistic regression): built once, each
        # partition written where it was built.
        out = self.paths.root / "train_rows"
        self.folder.remove(out)
        out.mkdir(parents=True)
        self.progress.compute([dask.delayed(_write_part)(part, out / f"part.{i:05d}.parquet")
                               for i, part in enumerate(rows.to_delayed())])
        rows = dd.read_parquet(out)
        base = self._incremental_base()  # incremental: go on from the last good model
        warm = base / "model" if base is not None else None
        tuning: dict[str, Any] | None = None
        workflow = load_feature_workflow(self.paths.workflow_at(split["holdout_start"]))
        if ranker.tuning.n_trials:
            report, tuning = tune_xgboost(self.client, rows, features, ranker,
                                          self.paths.model, warm_start=warm)
        else:
            report = train_ranker(self.client, rows, features, workflow.output_schema,
                                  ranker, self.paths.model, warm_start=warm)
        return {"model": str(self.paths.model), "ranker": ranker.model, "features": features,
                "warm_start": str(warm) if warm else None, "ease": ease,
                "window_users": [int(c) for c in counts],
                "user_shares": [round(s, 6) for s in shares],
                **report.__dict__, "tuning": tuning}

    def _ease_lambda(self, split: dict[str, Any]) -> dict[str, Any] | None:
        """EASE^R's λ: fixed in the workflow, carried over from the base night when the log
        barely grew, or tuned on the newest label window."""
        ease = self.spec.candidates.ease
        if ease is None:
            return None
        if ease.lambda_ is not None:
            return {"lambda": ease.lambda_, "source": "workflow"}
        carried = self._carried_lambda()
        if carried is not None:
            return carried
        tuned = tune_ease_lambda(self._events(), split["label_starts"][0],
                                 split["holdout_start"], self.spec.label.name,
                                 self.spec.candidates,
                                 bool(self.manifest.stage("prepare")["exclude_seen"]),
                                 self.spec.evaluation.k,
                                 lambda i, n: self.progress.measure("EASE^R λ values", i, n))
        return {**tuned, "source": "tuned"}

    def _carried_lambda(self) -> dict[str, Any] | None:
        """The base night's tuned λ, when this night is incremental and its log grew by less
        than ``LAMBDA_CARRY_GROWTH`` (λ moves with the data's size and density, slowly)."""
        base = self._incremental_base()
        if base is None:
            return None
        stages = _manifest_of(base).get("stages", {})
        lam = (stages.get("train", {}).get("ease") or {}).get("lambda")
        before, now = stages.get("prepare", {}).get("rows"), self.manifest.stage("prepare")["rows"]
        if lam is None or not before or now > before * (1 + LAMBDA_CARRY_GROWTH):
            return None
        return {"lambda": lam, "source": f"carried over from {base.name}"}

    def evaluate(self) -> dict[str, Any]:
        """The ranker (over ``evaluation.seeds`` seeds) and every baseline, as lists on the
        holdout at a short and a long horizon, and which lists the night publishes; see
        ``pipeline.evaluate.night``."""
        from pipeline.evaluate.night import NightData, evaluate_night

        split = self._split()
        holdout = split["holdout_start"]
        workflow = load_feature_workflow(self.paths.workflow_at(holdout))

        def training_rows() -> dd.DataFrame:  # the rows the train stage wrote
            return dd.read_parquet(self.paths.root / "train_rows")

        data = NightData(events=self._events(), split=split, context=self._context(holdout),
                         training_rows=training_rows, features=self._features(),
                         model_dir=self.paths.model, out=self.paths.root / "evaluation",
                         schema=workflow.output_schema, relevant=self.spec.label.name)
        return evaluate_night(self.client, self.spec, data, self.progress)

    def recommend(self) -> dict[str, Any]:
        """Lists for every user as of the end of the log from the source the evaluate stage
        chose (the ranker, or a baseline that beat it), written as Parquet, with the rows each
        filter rule removed and each stage's seconds (summed over partitions)."""
        split, k = self._split(), self.spec.recommend.k
        choice = self.manifest.stage("evaluate").get("choice") or {}
        source = choice.get("published", RANKER)
        model = choice.get("model_dir", str(self.paths.model)) if "published" in choice else (
            str(self.paths.model))
        ctx, reorder = self._serving_context(split["last_event"] + 1)
        self.folder.remove(self.paths.lists)
        stats = write_recommendations(self._events(), ctx, model, self.paths.lists, reorder,
                                      signal=None if model is not None else source,
                                      progress=self.progress)
        fallback = fallback_items(ctx.popular, ctx.rules, k)[[ITEM, "pop_rank"]]
        fallback.to_parquet(self.paths.fallback, index=False)
        users, full = int(stats.get("users", 0)), int(stats.get("full_lists", 0))
        return {"rows": int(stats.get("rows", 0)), "users": users, "full_lists": full,
                "full_list_share": round(full / users, 6) if users else None, "k": k,
                "source": source,
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
    if dumped["ranker"].get("neural") is None:  # optional sections: unset, the hash ignores them
        dumped["ranker"].pop("neural", None)
    if not dumped["data"].get("drop_duplicates"):  # likewise
        dumped["data"].pop("drop_duplicates", None)
    text = json.dumps(dumped, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _write_part(part: pd.DataFrame, path: Path) -> None:
    part.to_parquet(path, index=False)


def _manifest_cutoffs(run_dir: Path) -> list[int]:
    """The cutoffs a finished night fitted its feature workflows at, oldest first."""
    fitted = _manifest_of(run_dir).get("stages", {}).get("features", {}).get("cutoffs", [])
    return [int(entry["cutoff"]) for entry in fitted]


def _window_user_counts(events: pd.DataFrame, bounds: list[int], end: int,
                        relevant: str) -> pd.DataFrame:
    """How many users of this partition the holdout, then each label window, holds
    (``known_window_users``); ``bounds``: the holdout's start, then the windows' starts, newest
    first; ``end``: the end of the log."""
    ends = [end, *bounds[:-1]]
    counts = [len(known_window_users(events, start, stop, relevant))
              for start, stop in zip(bounds, ends, strict=True)]
    return pd.DataFrame({"window": np.arange(len(counts), dtype=np.int64),
                         "users": np.array(counts, dtype=np.int64)})


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


def _fetch_if_configured(spec: WorkflowSpec) -> None:
    if spec.data.fetch and not spec.data.interactions.path.exists():
        from pipeline.datasets import DATASETS

        log.info("fetching %s into %s", spec.data.fetch, spec.data.interactions.path.parent)
        DATASETS[spec.data.fetch](spec.data.interactions.path.parent)
