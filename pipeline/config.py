"""Workflow file (YAML) -> a typed, validated spec.

Every key is checked on load: an unknown key, a wrong type or a missing column mapping stops the
run before any work starts, with a message that names the key path and the fix. Relative paths
are resolved against the workflow file's folder so a workflow runs the same from any directory.
"""

from __future__ import annotations

import difflib
import operator
import os
from functools import reduce
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipeline.errors import ConfigError
from pipeline.features.spec_ops import spec_models


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InteractionColumns(_Strict):
    """Which input columns hold the user id, item id, event time and (optional) rating."""

    user: str
    item: str
    timestamp: str
    rating: str | None = None


class InteractionsSpec(_Strict):
    path: Path
    columns: InteractionColumns


class SideTableSpec(_Strict):
    """A user or item attribute table, joined on ``key``."""

    path: Path
    key: str


class DataSpec(_Strict):
    fetch: Literal["movielens-100k"] | None = Field(
        None, description="dataset to fetch into the interactions' parent folder when missing "
        "(only a missing or empty folder: nothing there is ever overwritten)"
    )
    drop_duplicates: bool = Field(
        False, description="drop repeated (user, item, timestamp) rows (always counted)")
    interactions: InteractionsSpec
    users: SideTableSpec | None = None
    items: SideTableSpec | None = None


class LabelSpec(_Strict):
    """The relevance label: ``column >= min_value`` (e.g. rating >= 4), named ``name``."""

    name: str = "relevant"
    column: str = "rating"
    min_value: float = 4.0


class SplitSpec(_Strict):
    """Temporal split: the last ``holdout_fraction`` of the interactions (or the last
    ``holdout_days``) are held out for evaluation. Before them lie ``label_windows`` consecutive
    windows, each as large as the holdout (or ``label_days`` long); for each, the ranker learns
    to predict the window's relevant interactions from the history before it, so it learns the
    horizon it is judged on. ``auto`` takes as many windows as it needs for
    ``min_training_users`` (user, window) queries: a log whose users come in bursts (a film site)
    needs more windows than one whose users come back every week. Metrics are reported over the
    whole holdout (the long horizon) and its first ``short_days`` (the short one)."""

    holdout_fraction: float | None = Field(None, gt=0, lt=0.5)
    holdout_days: float | None = Field(None, gt=0)
    label_days: float | None = Field(None, gt=0, description="default: windows hold as many "
                                     "interactions as the holdout")
    label_windows: int | Literal["auto"] = Field(
        "auto", description="auto: add windows back in time until they hold "
        "min_training_users users (at most max_label_windows)")
    min_training_users: int = Field(4000, ge=1)
    max_label_windows: int = Field(12, ge=1)
    short_days: float = Field(7.0, gt=0)

    @model_validator(mode="after")
    def _one_holdout(self) -> SplitSpec:
        if self.holdout_fraction is not None and self.holdout_days is not None:
            raise ValueError("give split.holdout_fraction or split.holdout_days, not both")
        return self

    @property
    def by_fraction(self) -> bool:
        """Whether the holdout is a share of the interactions (the default: 10%)."""
        return self.holdout_days is None

    @property
    def fraction(self) -> float:
        return self.holdout_fraction if self.holdout_fraction is not None else 0.1


_OP_MODELS: dict[str, type[BaseModel]] = dict(spec_models())
"""Each ``features:`` entry's model by its ``op`` name, declared beside the op it builds."""

FeatureOp = Annotated[reduce(operator.or_, _OP_MODELS.values()), Field(discriminator="op")]


class PopularitySpec(_Strict):
    n: int = Field(100, ge=1)
    recent_days: float = Field(30.0, gt=0)


class CooccurrenceSpec(_Strict):
    """Items that co-occur (cosine of their user sets) with each user's latest items. The
    ``max_items`` most popular items have neighbors: the Gram matrix behind them grows with the
    square of the catalogue."""

    n: int = Field(100, ge=1)
    recent_items: int = Field(20, ge=1, description="how many of the user's latest items seed it")
    neighbors: int = Field(100, ge=1, description="neighbors kept per item")
    max_items: int = Field(4096, ge=2)


class RepeatSpec(_Strict):
    """The user's own most frequent past items (repeat consumption: groceries, music). Skipped
    when ``filter.exclude_seen`` (with no ``seen_window_days``) would remove them all again."""

    n: int = Field(50, ge=1)


class EmbeddingSpec(_Strict):
    """Each user's ``n`` best items by the night's retrieval model (BPR matrix factorisation,
    trained on the history before each cutoff). ``search``: ``exact`` blocked matrix products
    (torch, CPU or GPU), ``faiss`` an approximate HNSW index (sub-linear in the catalogue; needs
    the faiss package), ``auto`` faiss from ``faiss_min_items`` items when it is installed."""

    n: int = Field(100, ge=1)
    dim: int = Field(32, ge=1, le=1024)
    epochs: int = Field(20, ge=1)
    learning_rate: float = Field(0.02, gt=0)
    reg: float = Field(1e-5, ge=0)
    batch_size: int = Field(8192, ge=1)
    seed: int = 0
    search: Literal["auto", "exact", "faiss"] = "auto"
    faiss_min_items: int = Field(200_000, ge=1)

    def model_params(self) -> dict[str, Any]:
        """The retrieval model's training parameters (``BPRRetrieval``'s keyword arguments)."""
        return self.model_dump(include={"dim", "epochs", "learning_rate", "reg", "batch_size",
                                        "seed"})


class EaseSpec(_Strict):
    """EASE^R item-item model: each user's ``n`` best items, and its score for every candidate.
    λ is tuned each night on the last label window over ``lambdas`` (or fixed by ``lambda``);
    the catalogue is the ``max_items`` most popular items (an ``items x items`` matrix), unless
    the log has fewer users than that, when all items are kept (the user-side form)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    n: int = Field(100, ge=1)
    max_items: int = Field(4096, ge=2)
    lambda_: float | None = Field(None, gt=0, alias="lambda")
    lambdas: list[float] = Field(
        default_factory=lambda: [float(v) for v in (10, 30, 100, 300, 1000, 3000, 10000,
                                                    30000)],
        min_length=1)


class CandidatesSpec(_Strict):
    popularity: PopularitySpec = PopularitySpec()
    cooccurrence: CooccurrenceSpec | None = CooccurrenceSpec()
    repeat: RepeatSpec | None = RepeatSpec()
    ease: EaseSpec | None = EaseSpec()
    embedding: EmbeddingSpec | None = None


class ItemCondition(_Strict):
    """An item-attribute test: ``column`` compared with exactly one of equals / in / lt / gt."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    column: str
    equals: str | int | float | bool | None = None
    in_: list[str | int | float | bool] | None = Field(None, alias="in")
    lt: float | None = None
    gt: float | None = None

    @model_validator(mode="after")
    def _one_test(self) -> ItemCondition:
        given = [k for k in ("equals", "in_", "lt", "gt") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"the condition on column '{self.column}' needs exactly one of "
                             f"equals, in, lt, gt (got {len(given)})")
        return self


class CategoryCap(_Strict):
    column: str
    m: int = Field(ge=1, description="at most this many items per value of column")


class FilterSpec(_Strict):
    exclude_seen: bool | Literal["auto"] = Field(
        "auto", description="auto: exclude seen items unless the log's users come back to "
        "items (a repeat share of at least 5% of the interactions)")
    seen_window_days: float | None = Field(
        None, gt=0, description="exclude only items seen in the last N days (repeat domains)")
    exclude_items_where: list[ItemCondition] = Field(default_factory=list)
    blocklist: Path | None = Field(None, description="Parquet of (user_id, item_id) pairs")
    availability: Path | None = Field(None, description="Parquet of (item_id, date): items "
                                      "available on each date")
    max_per_category: CategoryCap | None = None


class DiversitySpec(_Strict):
    """``mmr``: greedy maximal marginal relevance, similarity 1 for items sharing ``column``;
    ``caps``: items beyond the first ``m`` per value of ``column`` are moved below the rest."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    method: Literal["mmr", "caps"] = "mmr"
    column: str
    lambda_: float = Field(0.7, ge=0, le=1, alias="lambda")
    m: int = Field(2, ge=1)
    pool: int = Field(100, ge=1, description="mmr: best-scored candidates per user considered")


class Boost(ItemCondition):
    factor: float = Field(gt=0)


class ReorderSpec(_Strict):
    diversity: DiversitySpec | None = None
    boosts: list[Boost] = Field(default_factory=list)


class ParamRange(_Strict):
    """One searched XGBoost parameter: uniform (or log-uniform) in ``[low, high]``."""

    low: float
    high: float
    log: bool = False
    integer: bool = False

    @model_validator(mode="after")
    def _check(self) -> ParamRange:
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0, got {self.low}")
        return self


def _default_space() -> dict[str, ParamRange]:
    return {
        "eta": ParamRange(low=0.01, high=0.3, log=True),
        "max_depth": ParamRange(low=3, high=10, integer=True),
        "min_child_weight": ParamRange(low=1, high=50, log=True),
        "subsample": ParamRange(low=0.5, high=1.0),
        "colsample_bytree": ParamRange(low=0.5, high=1.0),
        "lambda": ParamRange(low=1e-3, high=10, log=True),
    }


class TuningSpec(_Strict):
    """Optional Optuna search over ``space``; each trial early-stops on the validation users."""

    n_trials: int = Field(0, ge=0, description="0: no search, train with ranker.params")
    timeout_seconds: float | None = Field(None, gt=0, description="stop starting trials after")
    seed: int = 0
    space: dict[str, ParamRange] = Field(default_factory=_default_space, min_length=1)


Width = Annotated[int, Field(ge=1)]

NEURAL_MODELS = ("dlrm", "dcn")


class NeuralSpec(_Strict):
    """Hyperparameters of the neural rankers (``ranker.model: dlrm`` or ``dcn``); the features
    and embedding-table sizes come from the feature workflow, not from here."""

    embedding_dim: int = Field(16, ge=1)
    epochs: int = Field(2, ge=1)
    batch_size: int = Field(4096, ge=1)
    learning_rate: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    bottom_mlp: tuple[Width, ...] = Field((64,), description="DLRM: continuous -> embedding")
    top_mlp: tuple[Width, ...] = Field((64, 32), description="DLRM: interactions -> logit")
    cross_layers: int = Field(3, ge=0, description="DCN-v2 cross layers")
    deep_mlp: tuple[Width, ...] = Field((128, 64), description="DCN-v2: after the crosses")
    score_batch_size: int = Field(65_536, ge=1, description="candidate rows scored at a time")


class TrainingRowsSpec(_Strict):
    """How many training rows the ranker sees, chosen rather than implied by the log: at most
    ``users_per_window`` users of each label window (those with a relevant interaction in it,
    sampled with the ranker's seed), all their positive candidates and at most
    ``negatives_per_positive`` negatives per positive (``min_negatives`` at least), drawn from
    the generators' candidates."""

    users_per_window: int = Field(20_000, ge=1)
    negatives_per_positive: int = Field(10, ge=1)
    min_negatives: int = Field(30, ge=0)


class RankerSpec(_Strict):
    model: Literal["xgboost", "dlrm", "dcn"] = "xgboost"
    objective: Literal["binary:logistic", "rank:ndcg", "rank:pairwise"] = "binary:logistic"
    num_boost_round: int = Field(300, ge=1)
    early_stopping_rounds: int = Field(30, ge=1)
    validation_fraction: float = Field(0.2, gt=0, lt=1)
    params: dict[str, float | int | str] = Field(default_factory=dict)
    seed: int = 0
    rows: TrainingRowsSpec = TrainingRowsSpec()
    warm_start: bool = Field(False, description="continue from the newest earlier night's "
                             "model (its features must equal today's)")
    tuning: TuningSpec = TuningSpec()
    neural: NeuralSpec | None = Field(None, description="dlrm / dcn settings (defaults if "
                                      "omitted)")

    @property
    def is_neural(self) -> bool:
        return self.model in NEURAL_MODELS

    @property
    def neural_settings(self) -> NeuralSpec:
        return self.neural or NeuralSpec()

    @model_validator(mode="after")
    def _settings_fit_the_model(self) -> RankerSpec:
        """Settings of the other kind of ranker would be silently ignored: refuse them."""
        if not self.is_neural:
            if self.neural is not None:
                raise ValueError(f"ranker.neural applies to ranker.model dlrm or dcn, not "
                                 f"{self.model}; drop it or choose a neural model")
            return self
        if self.objective != "binary:logistic":
            raise ValueError(f"ranker.objective {self.objective} is an XGBoost objective; the "
                             f"neural ranker {self.model} learns click probabilities (log loss): "
                             "drop ranker.objective or set it to binary:logistic")
        xgb_only = [k for k in ("num_boost_round", "early_stopping_rounds")
                    if k in self.model_fields_set]
        xgb_only += ["params"] if self.params else []
        xgb_only += ["tuning"] if self.tuning.n_trials else []
        if xgb_only:
            keys = ", ".join(f"ranker.{k}" for k in xgb_only)
            raise ValueError(f"{keys} apply to ranker.model xgboost only; {self.model} takes "
                             "its settings under ranker.neural (embedding_dim, epochs, "
                             "batch_size, learning_rate, ...)")
        return self


class RecommendSpec(_Strict):
    k: int = Field(20, ge=1, le=1000)


BaselineName = Literal["popularity", "repeat", "itemknn", "ease", "logistic"]


class EvaluationSpec(_Strict):
    """Holdout evaluation: the ranker over ``seeds`` seeds beside the baselines. With
    ``publish_best`` the night publishes a baseline's lists instead of the ranker's when the
    baseline's paired gain on the holdout's long horizon exceeds ``publish_best_stderrs``
    standard errors (a tie on one holdout is chance, not a reason to switch)."""

    k: int = Field(10, ge=1)
    seeds: int = Field(1, ge=1, le=50, description="ranker trainings per night (mean ± std)")
    baselines: list[BaselineName] = Field(
        default_factory=lambda: ["popularity", "repeat", "itemknn", "ease"])
    publish_best: bool = True
    publish_best_stderrs: float = Field(1.0, ge=0.0, description="how many standard errors a "
                                        "baseline's gain over the ranker must exceed")
    max_users: int = Field(20_000, ge=1, description="holdout users evaluated (a stable sample "
                           "when more were active): enough for the metrics, bounded in cost")


class PublishSpec(_Strict):
    namespace: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]+$")
    keep_versions: int = Field(3, ge=1)
    ttl_seconds: int | None = Field(None, ge=1)


class ClusterSpec(_Strict):
    """Where the Dask workers come from. ``local``: processes on this host; ``local-cuda``: one
    worker per GPU (dask-cuda); ``address``: a running scheduler; ``slurm`` / ``pbs``: batch jobs
    of workers submitted by dask-jobqueue."""

    kind: Literal["local", "local-cuda", "address", "slurm", "pbs"] = "local"
    address: str | None = None
    n_workers: int | None = Field(None, ge=1, description="local: processes; local-cuda: GPUs")
    threads_per_worker: int = Field(1, ge=1)
    memory_limit: str = "auto"
    connect_timeout: str = Field("20s", description="how long to wait for a scheduler address")
    dashboard_address: str = Field(
        "127.0.0.1:0", description="where a scheduler recpipe starts serves its dashboard (no "
        "login): this host only, a free port; e.g. '0.0.0.0:8787' to open it to the network")
    # local-cuda (and GPU batch jobs)
    rmm_pool_size: str | None = Field(None, description="RMM pool per GPU worker, e.g. '24GB'")
    device_memory_limit: str | None = Field(
        None, description="GPU memory (bytes, '20GB' or a fraction) above which workers spill")
    enable_cudf_spill: bool = False
    # slurm / pbs
    queue: str | None = None
    account: str | None = None
    cores: int | None = Field(None, ge=1, description="cores per job")
    memory: str | None = Field(None, description="memory per job, e.g. '64GB'")
    processes: int = Field(1, ge=1, description="worker processes per job")
    walltime: str = "02:00:00"
    jobs: int = Field(1, ge=1, description="how many worker jobs to submit")
    gpus_per_job: int = Field(0, ge=0)
    job_extra_directives: list[str] = Field(default_factory=list)
    interface: str | None = Field(None, description="network interface, e.g. 'ib0'")
    local_directory: str | None = None
    wait_timeout: str = Field("30m", description="how long to wait for queued worker jobs")

    @model_validator(mode="after")
    def _kind_needs(self) -> ClusterSpec:
        if self.kind == "address" and not self.address:
            raise ValueError("cluster.kind 'address' needs cluster.address (tcp://HOST:PORT)")
        if self.kind in ("slurm", "pbs") and (self.cores is None or self.memory is None):
            raise ValueError(f"cluster.kind '{self.kind}' needs cluster.cores and "
                             "cluster.memory (per job, e.g. cores: 8, memory: 64GB)")
        if self.gpus_per_job and self.kind not in ("slurm", "pbs"):
            raise ValueError("cluster.gpus_per_job applies to kind 'slurm' or 'pbs'; for one "
                             "machine's GPUs use kind 'local-cuda'")
        return self


class RunSpec(_Strict):
    """Run folders, and incremental nights: with ``incremental`` the feature statistics update
    from the new data only and the ranker warm-starts from the last good model, except every
    ``full_refit_every_days`` days (and when no earlier good run exists), when all is refit."""

    dir: Path = Path("runs")
    incremental: bool = False
    full_refit_every_days: int = Field(7, ge=1)


class WorkflowSpec(_Strict):
    """The whole nightly workflow, one file per recommender a team runs."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    data: DataSpec
    label: LabelSpec = LabelSpec()
    split: SplitSpec = SplitSpec()
    features: list[FeatureOp] = Field(default_factory=list)
    candidates: CandidatesSpec = CandidatesSpec()
    filter: FilterSpec = FilterSpec()
    ranker: RankerSpec = RankerSpec()
    recommend: RecommendSpec = RecommendSpec()
    reorder: ReorderSpec = ReorderSpec()
    evaluation: EvaluationSpec = EvaluationSpec()
    publish: PublishSpec = PublishSpec()
    cluster: ClusterSpec = ClusterSpec()
    run: RunSpec = RunSpec()
    source: Path | None = Field(None, exclude=True)

    @property
    def namespace(self) -> str:
        return self.publish.namespace or self.name

    @model_validator(mode="after")
    def _name_is_a_folder(self) -> WorkflowSpec:
        """The name is a folder under ``run.dir``: '.' or '..' would point elsewhere."""
        if self.name in (".", ".."):
            raise ValueError(f"name {self.name!r} cannot name a run folder; use letters, digits, "
                             "_ . - (not '.' or '..')")
        return self


def label_problem(spec: WorkflowSpec) -> str | None:
    """Why the relevance label cannot be computed from the interactions, or None if it can.

    ``label.column`` names the rating either by its canonical name ``rating`` or by the source
    column ``data.interactions.columns.rating`` maps; both mean the same column. A log without a
    rating mapping needs no label settings: every event is relevant.
    """
    column, rating = spec.label.column, spec.data.interactions.columns.rating
    if rating is None:
        if column != "rating":
            return (f"label.column is '{column}', but data.interactions.columns maps no rating, "
                    "so there is nothing to threshold: add 'rating: <column>' under "
                    "data.interactions.columns, or drop label.column to count every event as "
                    "relevant (an implicit log: clicks, plays, purchases)")
        return None  # an implicit log: every event is relevant
    if column not in ("rating", rating):
        return (f"label.column is '{column}', but the rating column is '{rating}' "
                f"(data.interactions.columns.rating): set label.column to '{rating}' or "
                "'rating', or map that column as the rating")
    return None


def check_label(spec: WorkflowSpec) -> None:
    """``ConfigError`` if the relevance label cannot be computed (see ``label_problem``)."""
    problem = label_problem(spec)
    if problem:
        raise ConfigError(problem)


def load_workflow(path: str | Path) -> WorkflowSpec:
    """Read and validate a workflow file; raise ``ConfigError`` naming the key and the fix."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"workflow file {path} does not exist: pass the path to a YAML file "
                          "such as workflows/movielens.yaml")
    try:
        raw = yaml.safe_load(os.path.expandvars(path.read_text()))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must hold a mapping of keys (name, data, ...), not {raw!r}")
    return parse_workflow(raw, source=path)


def parse_workflow(raw: dict[str, Any], *, source: Path | None = None) -> WorkflowSpec:
    """Validate a workflow given as a dict; relative paths resolve against ``source``'s folder."""
    where = str(source) if source else "workflow"
    try:
        spec = WorkflowSpec.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, where)) from None
    base = source.parent.resolve() if source else Path.cwd()
    return spec.model_copy(update={"source": source, **_resolved_paths(spec, base)})


def _resolved_paths(spec: WorkflowSpec, base: Path) -> dict[str, Any]:
    def resolve(p: Path) -> Path:
        p = p.expanduser()
        return p if p.is_absolute() else (base / p).resolve()

    data = spec.data.model_copy(
        update={
            "interactions": spec.data.interactions.model_copy(
                update={"path": resolve(spec.data.interactions.path)}
            ),
            "users": spec.data.users
            and spec.data.users.model_copy(update={"path": resolve(spec.data.users.path)}),
            "items": spec.data.items
            and spec.data.items.model_copy(update={"path": resolve(spec.data.items.path)}),
        }
    )
    rules = spec.filter.model_copy(update={
        "blocklist": spec.filter.blocklist and resolve(spec.filter.blocklist),
        "availability": spec.filter.availability and resolve(spec.filter.availability),
    })
    return {"data": data, "filter": rules,
            "run": spec.run.model_copy(update={"dir": resolve(spec.run.dir)})}


def _explain(exc: ValidationError, where: str) -> str:
    lines = [f"{where}: the workflow file is invalid:"]
    for err in exc.errors():
        loc = [str(p) for p in err["loc"] if not str(p).startswith(("function-after", "tagged"))]
        key = ".".join(loc) or "(top level)"
        if err["type"] == "extra_forbidden":
            parent, name = ".".join(loc[:-1]), loc[-1]
            allowed = _allowed_keys(loc[:-1])
            hint = difflib.get_close_matches(name, allowed, n=1)
            fix = f"did you mean '{hint[0]}'?" if hint else f"allowed keys: {', '.join(allowed)}"
            lines.append(f"  - unknown key '{key}': {fix}" if parent else
                         f"  - unknown top-level key '{name}': {fix}")
        elif err["type"] == "missing":
            lines.append(f"  - missing key '{key}': {_MISSING_HINTS.get(loc[-1], 'add it')}")
        else:
            lines.append(f"  - '{key}': {err['msg']} (got {err.get('input')!r})")
    return "\n".join(lines)


_MISSING_HINTS = {
    "user": "name the interactions column that holds the user id, e.g. 'user: user_id'",
    "item": "name the interactions column that holds the item id, e.g. 'item: item_id'",
    "timestamp": "name the interactions column that holds the event time, e.g. "
    "'timestamp: timestamp'",
    "columns": "map the interactions' columns: 'columns: {user: ..., item: ..., timestamp: ...}'",
    "path": "give the path of the Parquet file or folder",
    "key": "name the column that joins this table to the interactions",
    "name": "give the workflow a name (letters, digits, _ . -)",
    "data": "say where the interactions are: 'data: {interactions: {path: ..., columns: ...}}'",
    "interactions": "add 'interactions: {path: ..., columns: {user: ..., item: ..., "
    "timestamp: ...}}'",
    "target": "name the label column to encode against, e.g. 'target: relevant'",
}


def _allowed_keys(loc: list[str]) -> list[str]:
    model: Any = WorkflowSpec
    for part in loc:
        if part.isdigit():
            continue
        if part in _OP_MODELS:
            model = _OP_MODELS[part]
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        model = _model_of(field.annotation)
        if model is None:
            return []
    return sorted(k for k in getattr(model, "model_fields", {}) if k != "source")


def _model_of(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_of(arg)
        if found is not None:
            return found
    return None
