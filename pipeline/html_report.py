"""``recpipe report RUN_DIR``: one self-contained HTML page about a night, for the morning check.

It leads with the verdict (which lists were published and why), then the retrieval recall, the
metrics of both holdout horizons, a handful of users' histories beside the lists they got, and
the night's workings: stage timings, row counts, the split, the training (EASE^R's λ), the
feature statistics and the trend over the last nights. A section the manifest has no data for
(an older night, a night that stopped early) is left out with one line saying why.

Why one file with PNGs inlined as base64: it can be mailed, attached to a ticket or opened from
a shared drive with no server and no network (no CDN scripts). Everything comes from artifacts
already on disk: the run's manifest, its events and lists, the feature workflow of the last
cutoff, and the manifests of the other nights of the same workflow (the run folder's siblings).
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from pipeline.errors import DataError
from pipeline.io import ITEM, RATING, TIME, USER
from pipeline.manifest import MANIFEST
from pipeline.report import (
    RANKER,
    closest_baseline,
    count,
    gain,
    human_seconds,
    metric_keys,
    published_line,
    score,
    why_missing,
)

TREND_NIGHTS = 14
SAMPLE_USERS = 5
HISTORY_EVENTS = 10  # the most recent events shown per sampled user
LIST_ROWS = 10  # ranks shown per sampled user's list: the k the metrics judge
MIN_HISTORY = 5  # fewer events than this say too little to judge a list by
TITLE_COLUMNS = ("title", "name")  # an item table column a person recognises items by
TITLE_CHARS = 38  # longer titles are cut so a history and a list fit side by side
BLUE, RED = "#4c72b0", "#c44e52"
STYLE = (
    "body{font-family:sans-serif;margin:2em;max-width:80em;color:#222}"
    "h2{margin-top:1.6em;border-bottom:1px solid #ddd}.verdict h2{margin-top:.5em}"
    "table{border-collapse:collapse;margin:.5em 0}"
    "td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left;vertical-align:top}"
    "th{background:#eee}.r{text-align:right;font-variant-numeric:tabular-nums}"
    ".verdict{border:2px solid #4c72b0;border-radius:6px;padding:.4em 1.2em;background:#f4f7fb}"
    ".verdict.baseline{border-color:#c44e52;background:#fbf3f3}.lead{font-size:1.15em}"
    ".missing{color:#555;font-style:italic}.pair{display:flex;gap:1.5em;flex-wrap:wrap}"
    ".pair table{font-size:.88em}"
    "img{max-width:100%}figure{margin:.5em 0}small{color:#555}"
)


class Html(str):
    """Markup already escaped: table cells pass it through as it is."""


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def bold(text: str) -> Html:
    return Html(f"<b>{esc(text)}</b>")


def day(epoch: float | None, with_time: bool = False) -> str:
    """An epoch second as a UTC date (and time): the log's timestamps are UTC epoch seconds."""
    if epoch is None:
        return "-"
    moment = datetime.fromtimestamp(epoch, timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M" if with_time else "%Y-%m-%d")


# --- what the report reads ------------------------------------------------------------------


def load_manifest(run_dir: Path) -> dict[str, Any]:
    path = run_dir / MANIFEST
    if not path.is_file():
        raise DataError(f"{run_dir} has no {MANIFEST}: pass a run folder such as "
                        "runs/<workflow>/<date>")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is not valid JSON ({exc}); re-run the date") from None


def workflow_dir(run_dir: Path, manifest: dict[str, Any]) -> Path | None:
    """The feature workflow the published lists used: the last cutoff's (a night before the
    per-cutoff layout saved one workflow at ``features/workflow``)."""
    cutoffs = manifest.get("stages", {}).get("features", {}).get("cutoffs") or []
    if cutoffs:
        return run_dir / "features" / f"cutoff-{max(c['cutoff'] for c in cutoffs)}"
    old = run_dir / "features" / "workflow"
    return old if old.is_dir() else None


def fitted_rows(manifest: dict[str, Any]) -> int | None:
    """The rows the last cutoff's workflow was fitted on: the whole log when that cutoff lies
    past the last event (the workflow of the published lists), else unknown."""
    stages = manifest.get("stages", {})
    cutoffs = stages.get("features", {}).get("cutoffs")
    if not cutoffs:
        return stages.get("features", {}).get("fit_rows")
    last_event = stages.get("prepare", {}).get("split", {}).get("last_event")
    if last_event is not None and max(c["cutoff"] for c in cutoffs) > last_event:
        return stages.get("prepare", {}).get("rows")
    return None


def null_rates(folder: Path, rows: int | None) -> dict[str, float]:
    """Per column, the share of null values the fit saw: from Categorify's counts and nulls, and
    from the count of values in Normalize's moments."""
    nulls: dict[str, float] = {}
    saved = folder / "workflow.json"
    if not saved.is_file():
        return nulls
    for op in json.loads(saved.read_text()).get("ops", []):
        tables = op.get("tables", {})
        for column, state in op.get("state", {}).get("columns", {}).items():
            table = folder / tables.get(column, "")
            if "nulls" in state and table.is_file():
                seen = int(pq.read_table(table, columns=["count"]).column(0).to_numpy().sum())
                total = seen + int(state["nulls"])
                nulls[column] = state["nulls"] / total if total else 0.0
        moments = folder / tables.get("moments", "")
        if rows and tables.get("moments") and moments.is_file():
            frame = pq.read_table(moments, columns=["column", "count"]).to_pandas()
            for column, seen in zip(frame["column"], frame["count"], strict=True):
                nulls[column] = 1.0 - int(seen) / rows
    return nulls


def feature_table(run_dir: Path, manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Per output column: dtype, tags, cardinality, and the null rate of the fit data."""
    schema = manifest.get("stages", {}).get("features", {}).get("output_schema") or {}
    folder = workflow_dir(run_dir, manifest)
    nulls = null_rates(folder, fitted_rows(manifest)) if folder else {}
    return [{"column": name, "dtype": col.get("dtype"), "tags": ", ".join(col.get("tags", [])),
             "cardinality": col.get("cardinality"), "null_rate": nulls.get(name)}
            for name, col in schema.items()]


def trend(run_dir: Path, nights: int = TREND_NIGHTS) -> list[tuple[str, dict[str, Any]]]:
    """``(date, evaluate stage)`` of the last evaluated nights of this workflow up to this one,
    oldest first."""
    found = []
    for sibling in sorted(run_dir.parent.iterdir()):
        path = sibling / MANIFEST
        if sibling.name > run_dir.name or not path.is_file():
            continue
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError:
            continue
        evaluation = data.get("stages", {}).get("evaluate", {})
        if evaluation.get("metrics"):
            found.append((sibling.name, evaluation))
    return found[-nights:]


@dataclass
class UserSample:
    user: Any
    events: int  # all of the user's events in the log
    history: pd.DataFrame  # the most recent events, newest first
    seen: dict[Any, int]  # how often the user had each item, over the whole log
    lists: pd.DataFrame  # rank, item, score, source


def parquet_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.parquet")) if folder.is_dir() else []


def listed_users(files: list[Path]) -> pd.Index:
    """The users with a list, read one file at a time and one column only."""
    parts = [pd.unique(pq.read_table(f, columns=[USER]).column(0).to_numpy()) for f in files]
    return pd.Index(np.concatenate(parts)).unique() if parts else pd.Index([])


def event_counts(files: list[Path]) -> pd.Series:
    """Events per user, from the user column alone, one partition at a time."""
    counts = [pd.Series(pq.read_table(f, columns=[USER]).column(0).to_numpy()).value_counts()
              for f in files]
    return pd.concat(counts).groupby(level=0).sum() if counts else pd.Series(dtype="int64")


def pick_users(counts: pd.Series, listed: pd.Index, n: int) -> list[Any]:
    """``n`` users with a list, by a fixed hash of their id (the same users night after night
    while they stay active), those with at least MIN_HISTORY events first."""
    eligible = counts[counts.index.isin(listed)]
    hashed = pd.util.hash_pandas_object(eligible.index.to_series(), index=False).to_numpy()
    order = np.lexsort((hashed, eligible.to_numpy() < MIN_HISTORY))
    return eligible.index[order[:n]].tolist()


def read_users(files: list[Path], columns: list[str], users: list[Any]) -> pd.DataFrame:
    """The rows of ``users`` only: pyarrow filters each file, so no whole log is loaded."""
    parts = []
    for path in files:
        present = [c for c in columns if c in pq.read_schema(path).names]
        parts.append(pq.read_table(path, columns=present,
                                   filters=[(USER, "in", users)]).to_pandas())
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


def item_titles(manifest: dict[str, Any], items: list[Any]) -> dict[Any, str]:
    """Titles of ``items`` from the workflow's item table, when it is still where the night
    read it and has a title column; ids alone say little to a person."""
    spec = ((manifest.get("workflow_spec") or {}).get("data") or {}).get("items") or {}
    if not spec.get("path") or not Path(spec["path"]).exists():
        return {}
    try:
        dataset = ds.dataset(spec["path"], format="parquet")
        key = spec.get("key") or ITEM
        title = next((c for c in TITLE_COLUMNS if c in dataset.schema.names), None)
        if title is None or key not in dataset.schema.names:
            return {}
        table = dataset.to_table(columns=[key, title], filter=ds.field(key).isin(items))
    except (pa.ArrowException, OSError):
        return {}  # the titles only decorate the sample: an unreadable table leaves the ids
    return dict(zip(table.column(key).to_pylist(), table.column(title).to_pylist(), strict=True))


def sample_users(run_dir: Path, manifest: dict[str, Any],
                 n: int = SAMPLE_USERS) -> tuple[list[UserSample], int]:
    """A few users' histories beside their lists, and how many users had a list."""
    events, lists = parquet_files(run_dir / "events"), parquet_files(run_dir / "recommendations")
    listed = listed_users(lists)
    chosen = pick_users(event_counts(events), listed, n)
    if not chosen:
        return [], len(listed)
    label = ((manifest.get("workflow_spec") or {}).get("label") or {}).get("name", "relevant")
    log = read_users(events, [USER, ITEM, TIME, RATING, label], chosen)
    got = read_users(lists, [USER, "rank", ITEM, "score", "source"], chosen)
    out = []
    for user in chosen:
        mine = log[log[USER] == user].sort_values(TIME, ascending=False, kind="stable")
        out.append(UserSample(
            user, len(mine), mine.head(HISTORY_EVENTS).reset_index(drop=True),
            mine.groupby(ITEM).size().to_dict(),
            got[got[USER] == user].sort_values("rank").head(LIST_ROWS).reset_index(drop=True)))
    return out, len(listed)


# --- charts ---------------------------------------------------------------------------------


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    _pyplot().close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def _bars(ax: Any, labels: list[str], values: list[float], colors: list[str],
          errors: list[float] | None, top: float, texts: list[str] | None = None) -> None:
    """Horizontal bars, first label on top, each labelled at its end (``texts``, else its value)
    instead of a legend that hides them; ``top`` is the figure's largest bar end, so panels
    share a scale."""
    ys = list(range(len(labels)))[::-1]
    shown = [0.0 if math.isnan(v) else v for v in values]
    texts = texts or ["-" if math.isnan(v) else f"{v:.3f}" for v in values]
    ax.barh(ys, shown, color=colors, xerr=errors, capsize=3 if errors else 0)
    for y, value, end, text in zip(ys, shown, errors or [0.0] * len(values), texts, strict=True):
        ax.text(value + end + top * 0.01, y, text, va="center", fontsize=9)
    ax.set_yticks(ys, labels)
    ax.set_xlim(0, top * 1.22)  # room for the labels at the bars' ends
    ax.spines[["top", "right"]].set_visible(False)


def _top(values: list[float], errors: list[float] | None = None) -> float:
    ends = [v + e for v, e in zip(values, errors or [0.0] * len(values), strict=True)]
    return max([e for e in ends if not math.isnan(e)] + [1e-9])


def recall_chart(names: list[str], recall: dict[str, float]) -> str:
    """Recall per generator, the merged set on top in red."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 0.38 * len(names) + 1.1))
    values = [recall[n] for n in names]
    _bars(ax, names, values, [RED if n == "merged" else BLUE for n in names], None,
          _top(values))
    ax.set_xlabel("recall")
    ax.set_title("recall of the holdout's relevant items among the candidates", fontsize=10)
    return _png(fig)


def timings_chart(timed: list[tuple[str, float]]) -> str:
    """Seconds per stage, each bar labelled with its human duration."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 0.38 * len(timed) + 1.1))
    values = [t for _, t in timed]
    _bars(ax, [n for n, _ in timed], values, [BLUE] * len(timed), None, _top(values),
          [human_seconds(t) for t in values])
    ax.set_xlabel("seconds")
    ax.set_title("stage timings", fontsize=10)
    return _png(fig)


def horizons_chart(evaluation: dict[str, Any]) -> str:
    """NDCG per model, one panel per horizon on one scale, the published source in red."""
    plt = _pyplot()
    horizons = _horizon_tables(evaluation)
    published = (evaluation.get("choice") or {}).get("published")
    key, seeds = metric_keys(evaluation.get("k"))[0], evaluation.get("seeds", 1)
    models = list(next(iter(horizons.values())))
    fig, axes = plt.subplots(1, len(horizons), figsize=(5.2 * len(horizons),
                                                       0.38 * len(models) + 1.3),
                             sharey=True, squeeze=False)
    panels = []
    for table in horizons.values():
        values = [table.get(m, {}).get(key, math.nan) for m in models]
        errors = [table.get(m, {}).get(f"{key}_std", 0.0) for m in models] if seeds > 1 else None
        panels.append((values, errors))
    top = max(_top(values, errors) for values, errors in panels)
    for ax, horizon, (values, errors) in zip(axes[0], horizons, panels, strict=True):
        _bars(ax, models, values, [RED if m == published else BLUE for m in models], errors,
              top)
        ax.set_title(f"{key}, {_horizon_words(evaluation, horizon)}", fontsize=10)
    return _png(fig)


def lambda_chart(ease: dict[str, Any]) -> str:
    """EASE^R's validation NDCG per λ tried, the chosen λ marked and labelled."""
    plt = _pyplot()
    tried = sorted((float(lam), value) for lam, value in ease["tried"].items())
    fig, ax = plt.subplots(figsize=(6.4, 2.8))
    ax.plot([t for t, _ in tried], [v for _, v in tried], marker="o", color=BLUE)
    chosen = ease.get("lambda")
    hit = [(t, v) for t, v in tried if chosen is not None and t == float(chosen)]
    if hit:
        ax.plot(*hit[0], marker="o", markersize=10, color=RED)
        ax.annotate(f"λ = {hit[0][0]:g}", hit[0], textcoords="offset points", xytext=(0, 9),
                    ha="center", va="bottom")
    ax.set_xscale("log")
    ax.margins(x=0.08, y=0.2)  # room for the chosen λ's label
    ax.set_xlabel("λ")
    ax.set_ylabel("validation NDCG")
    ax.set_title("EASE^R: validation NDCG per λ tried", fontsize=10)
    ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)


def trend_chart(nights: list[tuple[str, dict[str, Any]]]) -> str:
    """NDCG per model over the nights; the legend sits right of the plot, clear of the lines."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 3.2))
    dates = [d for d, _ in nights]
    last = nights[-1][1]
    key = metric_keys(last.get("k"))[0]
    xs = list(range(len(dates)))  # positions, not date strings: matplotlib logs about those
    for model in last["metrics"]:
        ys = [e["metrics"].get(model, {}).get(key, math.nan) for _, e in nights]
        ax.plot(xs, ys, marker="o", label=model)
    ax.set_xticks(xs, dates)
    ax.set_ylabel(key)
    ax.set_title(f"{key} on the long horizon, last {len(nights)} nights", fontsize=10)
    ax.tick_params(axis="x", rotation=45)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)


# --- HTML pieces ----------------------------------------------------------------------------


def _table(headers: list[str], rows: list[list[Any]], align: str = "") -> str:
    """A table; ``align`` has one letter per column, ``r`` for right-aligned numbers."""
    def cls(i: int) -> str:
        return ' class="r"' if i < len(align) and align[i] == "r" else ""

    def cell(value: Any) -> str:
        return value if isinstance(value, Html) else esc(value)

    head = "".join(f"<th{cls(i)}>{esc(h)}</th>" for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(f"<td{cls(i)}>{cell(v)}</td>" for i, v in enumerate(row))
                   + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure(name: str, data: str, caption: str) -> str:
    return (f'<figure><img id="plot-{name}" alt="{esc(caption)}" '
            f'src="data:image/png;base64,{data}"><figcaption><small>{esc(caption)}</small>'
            "</figcaption></figure>")


def _missing(title: str, reason: str) -> str:
    return f'<p class="missing"><b>{esc(title)}</b> not shown: {esc(reason)}.</p>'


def _horizon_tables(evaluation: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The metrics per horizon, short first; a night before the horizons had one table."""
    horizons = evaluation.get("horizons") or {}
    ordered = {h: horizons[h] for h in ("short", "long") if horizons.get(h)}
    return ordered or {"holdout": evaluation["metrics"]}


def _horizon_words(evaluation: dict[str, Any], horizon: str) -> str:
    """``long horizon (21.8 days, 59 users)``."""
    days = (evaluation.get("horizon_days") or {}).get(horizon)
    users = (evaluation.get("horizon_users") or {}).get(horizon)
    if users is None:
        users = next(iter(_horizon_tables(evaluation).get(horizon, {}).values()), {}).get("users")
    details = ", ".join(p for p in (f"{days:.1f} days" if days is not None else "",
                                    f"{count(users)} users" if users is not None else "") if p)
    name = f"{horizon} horizon" if horizon in ("short", "long") else horizon
    return f"{name} ({details})" if details else name


def reading(entry: dict[str, float]) -> str:
    """A baseline's margin in words: more than two standard errors either way, or noise."""
    if entry["gain"] > 0 and entry["gain"] > 2 * entry["stderr"]:
        return "baseline clearly better"
    if entry["gain"] < 0 and -entry["gain"] > 2 * entry["stderr"]:
        return "ranker clearly better"
    return "within noise (under two standard errors)"


def advice(choice: dict[str, Any], evaluation: dict[str, Any]) -> str:
    """One plain sentence: what was published, how sure the night was, what to do about it."""
    margins = choice.get("baseline_gain_over_ranker") or {}
    metric, published = choice.get("metric", "NDCG"), choice["published"]
    where = f"the {_horizon_words(evaluation, choice.get('horizon', 'long'))}"
    closest = closest_baseline(choice)
    if published != RANKER:
        entry = margins.get(published)
        by = f" by {gain(entry)} {metric}" if entry else ""
        sure = (", a clear win" if entry and reading(entry).startswith("baseline")
                else ", within two standard errors: a close call")
        return (f"The {published} lists are live instead of the ranker's: {published} beat the "
                f"ranker{by} over {where}{sure}. Look at the ranker's training below (best "
                "iteration, training rows, features); the next night chooses again and goes "
                "back to the ranker once the ranker wins.")
    if closest and margins[closest]["gain"] > 0 and not choice.get("enabled", True):
        return (f"Choosing is off (evaluation.publish_best: false), so the ranker's lists went "
                f"out although {closest} beat it by {gain(margins[closest])} {metric} over "
                f"{where}. Look at the ranker's training, or turn evaluation.publish_best on to "
                "publish the better lists.")
    if not margins:
        return ("The ranker's lists went out by default: too few holdout users for a paired "
                "comparison with the baselines, so nothing says they are better.")
    close = [name for name, entry in margins.items() if reading(entry).startswith("within")]
    if not close:
        return ("The ranker's lists went out and the ranker beat every baseline by more than two "
                "standard errors: nothing to do.")
    return (f"The ranker's lists went out, but the ranker is not clearly better than "
            f"{_words(close)} (less than two standard errors apart): nothing to do tonight; "
            f"if it stays this close for several nights, the ranker adds little over {closest}.")


def _words(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


# --- sections, in the order a person reads them ---------------------------------------------


def header_section(run_dir: Path, manifest: dict[str, Any]) -> str:
    title = f"recpipe {manifest.get('workflow')} {manifest.get('date')}"
    parts = [f"<h1>{esc(title)}: {esc(manifest.get('status'))}</h1>",
             f"<p>run folder <code>{esc(run_dir)}</code>, started {esc(manifest.get('started'))},"
             f" finished {esc(manifest.get('finished'))}</p>"]
    plan = manifest.get("incremental")
    if plan:
        parts.append(f"<p>night plan: <b>{esc(plan.get('mode'))}</b> ({esc(plan.get('reason'))};"
                     f" last full refit {esc(plan.get('last_full'))})</p>")
    return "".join(parts)


def verdict_section(stages: dict[str, Any]) -> str:
    """Which lists were published, the night's reason, every baseline's margin, and advice."""
    evaluation = stages.get("evaluate", {})
    choice = evaluation.get("choice")
    if not choice:
        return _missing("The verdict", published_line(stages))
    published, metric = choice["published"], choice.get("metric", "ndcg")
    scores = choice.get("scores") or {}
    margins = choice.get("baseline_gain_over_ranker") or {}
    rows = [[bold(f"{RANKER} (published)") if published == RANKER else RANKER,
             score(scores.get(RANKER)), "", "", ""]]
    for name in sorted(margins, key=lambda n: -margins[n]["gain"]):
        entry = margins[name]
        ratio = entry["gain"] / entry["stderr"] if entry["stderr"] else math.nan
        rows.append([bold(f"{name} (published)") if name == published else name,
                     score(scores.get(name)), gain(entry),
                     "" if math.isnan(ratio) else f"{ratio:+.1f}", reading(entry)])
    what = ("the ranker's" if published == RANKER
            else f"the {published} baseline's, not the ranker's")
    kind = "verdict" if published == RANKER else "verdict baseline"
    parts = [f'<section class="{kind}"><h2>Published lists: {esc(what)}</h2>',
             f'<p class="lead">{esc(advice(choice, evaluation))}</p>',
             f"<p>The night's reason: <i>{esc(choice.get('reason'))}</i>. Chosen on {esc(metric)}"
             f" over the {esc(_horizon_words(evaluation, choice.get('horizon', 'long')))}; "
             f"publishing a better baseline is {'on' if choice.get('enabled') else 'off'} "
             "(evaluation.publish_best). A gain is the baseline's mean per-user gain over the "
             "ranker, ± its standard error.</p>",
             _table(["lists", metric, "gain over the ranker", "in standard errors", "reading"],
                    rows, "lrrrl")]
    source = stages.get("recommend", {}).get("source")
    if source and source != published:
        parts.append(f"<p><b>Mismatch:</b> the recommend stage wrote the {esc(source)} lists, "
                     f"not the {esc(published)} lists evaluate chose.</p>")
    return "".join(parts) + "</section>"


def retrieval_section(stages: dict[str, Any]) -> str:
    """How many of the holdout's relevant items reached the candidates, per generator."""
    retrieval = stages.get("evaluate", {}).get("retrieval") or {}
    recall = retrieval.get("recall")
    if not recall:
        return _missing("Retrieval", why_missing(stages, "evaluate", "retrieval"))
    budget, per_user = retrieval.get("n") or {}, retrieval.get("candidates_per_user") or {}
    names = sorted(recall, key=lambda n: (n != "merged", -recall[n]))
    unmeasured = sorted(set(budget) - set(recall))
    rows = [[bold(n) if n == "merged" else n, count(budget.get(n)),
             f"{per_user[n]:,.1f}" if n in per_user else "-",
             bold(f"{recall[n]:.3f}") if n == "merged" else f"{recall[n]:.3f}"] for n in names]
    rows += [[n, count(budget[n]), "-", "not measured"] for n in unmeasured]
    chart = recall_chart(names, recall)
    merged = (f" The merged candidates hold {recall['merged']:.1%} of them, "
              f"{per_user['merged']:,.0f} candidates per user on average."
              if "merged" in recall and "merged" in per_user else "")
    return ("<h2>Retrieval</h2>"
            f"<p>Share of each long-horizon user's relevant holdout items that a generator "
            f"proposed ({count(retrieval.get('users'))} users), at the candidate budget "
            f"<i>n</i>: the ranker can only order what retrieval found.{esc(merged)}</p>"
            + _table(["generator", "budget n", "candidates per user", "recall"], rows, "lrrr")
            + _figure("retrieval", chart, "recall per generator; merged: all generators together"))


def horizon_table(table: dict[str, Any], keys: list[str], seeds: int,
                  published: str | None) -> str:
    """Models by metrics, ``mean ± std`` when several seeds ran, best per column in bold."""
    best = {key: max((row.get(key) for row in table.values() if row.get(key) is not None),
                     default=None) for key in keys}
    rows = []
    for model, row in table.items():
        cells = [score(row.get(k), row.get(f"{k}_std"), seeds) for k in keys]
        cells = [bold(c) if row.get(k) is not None and row.get(k) == best[k] else c
                 for c, k in zip(cells, keys, strict=True)]
        name = bold(f"{model} ★ published") if model == published else model
        rows.append([name, *cells, count(row.get("users"))])
    return _table(["model", *keys, "users"], rows, "l" + "r" * (len(keys) + 1))


def horizons_section(stages: dict[str, Any]) -> str:
    evaluation = stages.get("evaluate", {})
    if not evaluation.get("metrics"):
        return _missing("Metrics by horizon", why_missing(stages, "evaluate", "metrics"))
    keys, seeds = metric_keys(evaluation.get("k")), evaluation.get("seeds", 1)
    published = (evaluation.get("choice") or {}).get("published")
    spread = (f"mean ± standard deviation over {seeds} seeds" if seeds > 1
              else "one seed, so no spread")
    parts = ["<h2>Metrics by horizon</h2>",
             f"<p>Every model's lists scored on the holdout ({spread}); the best value of each "
             "column in bold, ★ marks the published lists. The long horizon chooses them.</p>"]
    for horizon, table in _horizon_tables(evaluation).items():
        parts += [f"<h3>{esc(_horizon_words(evaluation, horizon)).capitalize()}</h3>",
                  horizon_table(table, keys, seeds, published)]
    parts.append(_figure("horizons", horizons_chart(evaluation),
                         f"{keys[0]} per model and horizon; red: the published lists"))
    return "".join(parts)


def history_table(sample: UserSample, titles: dict[Any, str], label: str) -> str:
    columns = [c for c in (RATING, label) if c in sample.history.columns]
    rows = [[day(int(e[TIME]), True), e[ITEM], _title(titles, e[ITEM]),
             *[e[c] if c == RATING else "✓" if e[c] else "" for c in columns]]
            for _, e in sample.history.iterrows()]
    headers = ["date (UTC)", "item", "title", *columns]
    return _drop_empty(headers, rows, "lrl" + "r" * len(columns))


def list_table(sample: UserSample, titles: dict[Any, str]) -> str:
    rows = [[int(e["rank"]), e[ITEM], _title(titles, e[ITEM]), f"{e['score']:.3f}",
             str(e.get("source", "")).replace("+", " + "),
             f"×{sample.seen[e[ITEM]]}" if e[ITEM] in sample.seen else ""]
            for _, e in sample.lists.iterrows()]
    return _drop_empty(["rank", "item", "title", "score", "candidates from", "had before"],
                       rows, "rrlrlr")


def _title(titles: dict[Any, str], item: Any) -> str:
    title = str(titles.get(item) or "")
    return title if len(title) <= TITLE_CHARS else title[:TITLE_CHARS - 1] + "…"


OPTIONAL = {"title", "had before"}  # columns left out when empty: no item table, no repeats


def _drop_empty(headers: list[str], rows: list[list[Any]], align: str) -> str:
    """The table without the OPTIONAL columns that are empty in every row."""
    keep = [i for i, h in enumerate(headers)
            if h not in OPTIONAL or any(str(r[i]) != "" for r in rows)]
    return _table([headers[i] for i in keep], [[r[i] for i in keep] for r in rows],
                  "".join(align[i] for i in keep))


def users_section(run_dir: Path, manifest: dict[str, Any]) -> str:
    """Each sampled user's latest events beside the list they got, to judge it by eye."""
    if not parquet_files(run_dir / "recommendations"):
        return _missing("A handful of users", "the run folder has no recommendations/ (the night "
                        "stopped before recommend)")
    if not parquet_files(run_dir / "events"):
        return _missing("A handful of users", "the run folder has no events/")
    samples, listed = sample_users(run_dir, manifest)
    if not samples:
        return _missing("A handful of users", "no user with a list has events in events/")
    label = ((manifest.get("workflow_spec") or {}).get("label") or {}).get("name", "relevant")
    items = sorted({i for s in samples for i in [*s.history[ITEM], *s.lists[ITEM]]})
    titles = item_titles(manifest, items)
    parts = ["<h2>A handful of users</h2>",
             f"<p>{len(samples)} of the {count(listed)} users with a list, drawn by a fixed hash "
             f"of their id among those with at least {MIN_HISTORY} events (the same users come "
             f"back night after night while they stay active). Left: their {HISTORY_EVENTS} most "
             f"recent events; right: the first {LIST_ROWS} ranks of the list they got. "
             "<i>had before</i>: how often the user had that item in the log.</p>"]
    for sample in samples:
        parts += [f"<h3>user {esc(sample.user)} <small>· {count(sample.events)} events · "
                  f"{len(sample.lists)} ranks shown</small></h3>",
                  '<div class="pair"><div>', history_table(sample, titles, label),
                  "</div><div>", list_table(sample, titles), "</div></div>"]
    return "".join(parts)


def stages_section(stages: dict[str, Any]) -> str:
    timed = [(n, s["seconds"]) for n, s in stages.items() if s.get("seconds") is not None]
    rows = [[n, s.get("status"), human_seconds(s.get("seconds")), s.get("finished"),
             s.get("error") or ""] for n, s in stages.items()]
    parts = ["<h2>Stages</h2>", _table(["stage", "status", "took", "finished", "error"], rows,
                                       "llrll")]
    inner = [(f"{name} stage", stages.get(name, {}).get(key) or {})
             for name, key in (("recommend", "stage_seconds"), ("evaluate", "timings"))]
    for what, steps in inner:
        if steps:
            parts.append(f"<p>{esc(what)}: " + " · ".join(
                f"{esc(step)} {human_seconds(sec)}" for step, sec in steps.items()) + "</p>")
    if timed:
        parts.append(_figure("timings", timings_chart(timed), "time per stage"))
    return "".join(parts)


COUNTS = (("prepare", ("rows", "users", "items", "partitions", "duplicates")),
          ("features", ("fit_rows",)), ("train", ("train_rows", "valid_rows", "positives")),
          ("recommend", ("rows", "users", "full_lists")), ("publish", ("users", "keys_written")))
# count dicts, each entry a row under its stage: ids a night dropped, candidates a rule removed
COUNT_GROUPS = {"prepare": ("dropped", "rows dropped: {} id"),
                "recommend": ("filter_removed", "candidates removed by the {} filter")}


def count_rows(stages: dict[str, Any]) -> list[list[Any]]:
    """``[stage, what, count]`` in the night's order."""
    rows = []
    for stage, keys in COUNTS:
        found = stages.get(stage, {})
        rows += [[stage, key.replace("_", " "), count(found[key])] for key in keys if key in found]
        group, words = COUNT_GROUPS.get(stage, ("", ""))
        rows += [[stage, words.format(kind.replace("_", " ")), count(n)]
                 for kind, n in (found.get(group) or {}).items()]
    return rows


def counts_section(stages: dict[str, Any], spec: dict[str, Any]) -> str:
    rows = count_rows(stages)
    if not rows:
        return _missing("Row counts", why_missing(stages, "prepare", "rows"))
    parts = ["<h2>Row counts</h2>", _table(["stage", "what", "count"], rows, "llr")]
    duplicates = stages.get("prepare", {}).get("duplicates")
    if duplicates:
        dropped = ((spec.get("data") or {}).get("drop_duplicates"))
        parts.append(f"<p>{count(duplicates)} duplicate (user, item, timestamp) rows: "
                     + ("dropped (data.drop_duplicates)." if dropped else
                        "kept and counted twice (set data.drop_duplicates: true to drop them).")
                     + "</p>")
    return "".join(parts)


def split_section(stages: dict[str, Any], spec: dict[str, Any]) -> str:
    """The label windows and the holdout as dates, with the users each holds."""
    prepare = stages.get("prepare", {})
    split = prepare.get("split")
    if not split or "label_starts" not in split:
        return _missing("Split", why_missing(stages, "prepare", "split"))
    starts, users = split["label_starts"], split.get("window_users") or []
    shares = stages.get("train", {}).get("user_shares") or []
    ends = [split["holdout_start"], *starts[:-1]]
    rows = []
    for i in reversed(range(len(starts))):
        rows.append([f"label window {len(starts) - i}", day(starts[i], True), day(ends[i], True),
                     f"{(ends[i] - starts[i]) / 86_400:.1f}",
                     count(users[i]) if i < len(users) else "-",
                     f"{shares[i]:.0%}" if i < len(shares) else "-"])
    horizons = stages.get("evaluate", {}).get("horizon_users") or {}
    for name, end in (("short", split.get("short_end")), ("long", split["last_event"] + 1)):
        if end is not None:
            rows.append([bold(f"holdout, {name} horizon"), day(split["holdout_start"], True),
                         day(end, True), f"{(end - split['holdout_start']) / 86_400:.1f}",
                         count(horizons.get(name)) if name in horizons else "-", ""])
    seen = ((spec.get("filter") or {}).get("exclude_seen"))
    decision = "excluded from the lists" if prepare.get("exclude_seen") else "kept as candidates"
    how = " (exclude_seen: auto, from the repeat share)" if seen == "auto" else ""
    repeat = (f"<p>{prepare['repeat_share']:.1%} of the events repeat a (user, item) pair: seen "
              f"items are {decision}{how}.</p>" if "repeat_share" in prepare else "")
    return ("<h2>Split</h2>"
            f"<p>The log runs from {day(split.get('first_event'))} to "
            f"{day(split.get('last_event'))} (UTC); windows are cut by {esc(split.get('by'))}. "
            "Users: those with a relevant event in the window (training queries; holdout users "
            "evaluated); share: of those, the share the ranker trained on.</p>"
            + _table(["window", "from", "to", "days", "users", "share"], rows, "lllrrr")
            + repeat)


def training_section(stages: dict[str, Any]) -> str:
    train = stages.get("train", {})
    if not train.get("status"):
        return _missing("Training", why_missing(stages, "train", "status"))
    facts = [f"ranker <b>{esc(train.get('ranker', '?'))}</b>"]
    if train.get("best_iteration") is not None:
        facts.append(f"best iteration {count(train['best_iteration'])}")
    if train.get("best_score") is not None:
        facts.append(f"validation {esc(train.get('metric', 'score'))} "
                     f"{train['best_score']:.3f}")
    if train.get("train_rows") is not None:
        facts.append(f"{count(train['train_rows'])} training rows")
    if train.get("features"):
        facts.append(f"{len(train['features'])} features")
    parts = ["<h2>Training</h2>", f"<p>{', '.join(facts)}.</p>"]
    ease = train.get("ease") or {}
    if ease.get("tried"):
        best, lam = max(ease["tried"].values()), ease.get("lambda")
        lam = f"{lam:g}" if isinstance(lam, (int, float)) else esc(lam)
        parts += [f"<p>EASE^R: λ = <b>{lam}</b> ({esc(ease.get('source'))};"
                  f" {count(ease.get('validation_users'))} validation users, "
                  f"{count(ease.get('items'))} items; best validation NDCG {best:.3f}).</p>",
                  _figure("ease", lambda_chart(ease), "EASE^R's validation NDCG per λ tried")]
    elif ease:
        parts.append(f"<p>EASE^R: λ = {esc(ease.get('lambda'))} ({esc(ease.get('source'))}).</p>")
    else:
        parts.append(_missing("EASE^R's λ", why_missing(stages, "train", "ease")))
    return "".join(parts)


def features_section(run_dir: Path, manifest: dict[str, Any]) -> str:
    stages = manifest.get("stages", {})
    features = feature_table(run_dir, manifest)
    if not features:
        return _missing("Feature statistics", why_missing(stages, "features", "output_schema"))
    cutoffs = stages.get("features", {}).get("cutoffs") or []
    folder = workflow_dir(run_dir, manifest)
    where = ""
    if cutoffs and folder:
        modes = Counter(c.get("mode") for c in cutoffs)
        where = (f"<p>{len(cutoffs)} feature workflows, one per cutoff ("
                 + ", ".join(f"{n} {esc(m)}" for m, n in modes.items())
                 + f"); the published lists used the last, <code>{esc(folder.relative_to(run_dir))}"
                 "</code>, whose statistics are below.</p>")
    rows = [[f["column"], f["dtype"], f["tags"], count(f["cardinality"]),
             "" if f["null_rate"] is None else f"{f['null_rate']:.2%}"] for f in features]
    return ("<h2>Feature statistics</h2>" + where
            + _table(["column", "dtype", "tags", "cardinality", "null rate"], rows, "lllrr"))


def trend_section(nights: list[tuple[str, dict[str, Any]]]) -> str:
    if not nights:
        return _missing("Trend", "no night of this workflow recorded holdout metrics")
    key = metric_keys(nights[-1][1].get("k"))[0]
    models = list(nights[-1][1]["metrics"])
    rows = []
    for date, evaluation in nights:
        published = (evaluation.get("choice") or {}).get("published", "")
        values = [score(evaluation["metrics"].get(m, {}).get(key)) for m in models]
        cells = [bold(v) if m == published else v for m, v in zip(models, values, strict=True)]
        rows.append([date, published, *cells])
    parts = ["<h2>Trend</h2>",
             f"<p>{key} on the long horizon over "
             + (f"the last {len(nights)} evaluated nights" if len(nights) > 1 else "this night")
             + "; the published lists in bold.</p>",
             _table(["date", "published", *models], rows, "ll" + "r" * len(models))]
    if len(nights) > 1:
        parts.append(_figure("trend", trend_chart(nights), f"{key} per model and night"))
    else:
        parts.append("<p><small>The chart needs two nights or more.</small></p>")
    return "".join(parts)


def render(run_dir: Path) -> str:
    manifest = load_manifest(run_dir)
    stages = manifest.get("stages", {})
    spec = manifest.get("workflow_spec") or {}
    body = [header_section(run_dir, manifest), verdict_section(stages),
            retrieval_section(stages), horizons_section(stages),
            users_section(run_dir, manifest), stages_section(stages),
            counts_section(stages, spec), split_section(stages, spec),
            training_section(stages), features_section(run_dir, manifest),
            trend_section(trend(run_dir))]
    title = f"recpipe {manifest.get('workflow')} {manifest.get('date')}"
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{esc(title)}</title>"
            f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>\n")


def write_report(run_dir: Path, out: Path | None = None) -> Path:
    out = out or run_dir / "report.html"
    out.write_text(render(run_dir), encoding="utf-8")
    return out
