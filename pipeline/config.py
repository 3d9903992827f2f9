"""Workflow file (YAML) -> a typed, validated spec.

Every key is checked on load: an unknown key, a wrong type or a missing column mapping stops the
run before any work starts, with a message that names the key path and the fix. Relative paths
are resolved against the workflow file's folder so a workflow runs the same from any directory.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipeline.errors import ConfigError


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
        None, description="dataset to fetch into the interactions' parent folder when missing"
    )
    interactions: InteractionsSpec
    users: SideTableSpec | None = None
    items: SideTableSpec | None = None


class LabelSpec(_Strict):
    """The relevance label: ``column >= min_value`` (e.g. rating >= 4), named ``name``."""

    name: str = "relevant"
    column: str = "rating"
    min_value: float = 4.0


class SplitSpec(_Strict):
    """Temporal split: the last ``holdout_days`` are held out for evaluation. Before them lie
    ``label_windows`` consecutive windows of ``label_days``; for each, the ranker learns to predict
    the window's interactions from the history before it (stacked windows: more training users)."""

    holdout_days: float = Field(14.0, gt=0)
    label_days: float = Field(14.0, gt=0)
    label_windows: int = Field(4, ge=1)


class CategorifyOp(_Strict):
    op: Literal["categorify"]
    columns: list[str] = Field(min_length=1)
    freq_threshold: int = Field(0, ge=0)
    num_buckets: int = Field(1, ge=1)


class NormalizeOp(_Strict):
    op: Literal["normalize"]
    columns: list[str] = Field(min_length=1)


class FillMissingOp(_Strict):
    op: Literal["fill_missing"]
    columns: list[str] = Field(min_length=1)
    value: float | None = None


class TargetEncodingOp(_Strict):
    op: Literal["target_encoding"]
    columns: list[str | list[str]] = Field(min_length=1)
    target: str
    p_smooth: float = Field(20.0, ge=0)
    kfold: int = Field(5, ge=1)
    seed: int = 0


_OP_MODELS: dict[str, type[BaseModel]] = {
    "categorify": CategorifyOp,
    "normalize": NormalizeOp,
    "fill_missing": FillMissingOp,
    "target_encoding": TargetEncodingOp,
}

FeatureOp = Annotated[
    CategorifyOp | NormalizeOp | FillMissingOp | TargetEncodingOp, Field(discriminator="op")
]


class PopularitySpec(_Strict):
    n: int = Field(100, ge=1)
    recent_days: float = Field(30.0, gt=0)


class CooccurrenceSpec(_Strict):
    n: int = Field(100, ge=1)
    recent_items: int = Field(20, ge=1, description="how many of the user's latest items seed it")
    neighbors: int = Field(100, ge=1, description="neighbours kept per item")


class CandidatesSpec(_Strict):
    popularity: PopularitySpec = PopularitySpec()
    cooccurrence: CooccurrenceSpec | None = CooccurrenceSpec()


class FilterSpec(_Strict):
    exclude_seen: bool = True


class RankerSpec(_Strict):
    model: Literal["xgboost"] = "xgboost"
    objective: Literal["binary:logistic", "rank:ndcg", "rank:pairwise"] = "binary:logistic"
    num_boost_round: int = Field(300, ge=1)
    early_stopping_rounds: int = Field(30, ge=1)
    validation_fraction: float = Field(0.2, gt=0, lt=1)
    params: dict[str, float | int | str] = Field(default_factory=dict)
    seed: int = 0


class RecommendSpec(_Strict):
    k: int = Field(20, ge=1, le=1000)


class EvaluationSpec(_Strict):
    k: int = Field(10, ge=1)


class PublishSpec(_Strict):
    namespace: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]+$")
    keep_versions: int = Field(3, ge=1)
    ttl_seconds: int | None = Field(None, ge=1)


class ClusterSpec(_Strict):
    kind: Literal["local", "address"] = "local"
    address: str | None = None
    n_workers: int | None = Field(None, ge=1)
    threads_per_worker: int = Field(1, ge=1)
    memory_limit: str = "auto"
    connect_timeout: str = Field("20s", description="how long to wait for a scheduler address")

    @model_validator(mode="after")
    def _address_given(self) -> ClusterSpec:
        if self.kind == "address" and not self.address:
            raise ValueError("cluster.kind 'address' needs cluster.address (tcp://HOST:PORT)")
        return self


class RunSpec(_Strict):
    dir: Path = Path("runs")


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
    evaluation: EvaluationSpec = EvaluationSpec()
    publish: PublishSpec = PublishSpec()
    cluster: ClusterSpec = ClusterSpec()
    run: RunSpec = RunSpec()
    source: Path | None = Field(None, exclude=True)

    @property
    def namespace(self) -> str:
        return self.publish.namespace or self.name


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
    return {"data": data, "run": spec.run.model_copy(update={"dir": resolve(spec.run.dir)})}


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
