"""``recpipe report RUN_DIR``: one self-contained HTML page about a night, for the morning check.

Why one file with PNGs inlined as base64: it can be mailed, attached to a ticket or opened from
a shared drive with no server and no network (no CDN scripts). Everything comes from artifacts
already on disk: the run's manifest, the saved feature workflow, and the manifests of the other
nights of the same workflow (the run folder's siblings) for the trend.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import statistics
from pathlib import Path
from typing import Any

from pipeline.errors import DataError
from pipeline.manifest import MANIFEST

TREND_NIGHTS = 14


def load_manifest(run_dir: Path) -> dict[str, Any]:
    path = run_dir / MANIFEST
    if not path.is_file():
        raise DataError(f"{run_dir} has no {MANIFEST}: pass a run folder such as "
                        "runs/<workflow>/<date>")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is not valid JSON ({exc}); re-run the date") from None


def feature_table(run_dir: Path, manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Per output column: dtype, tags, cardinality, and the null rate of the fit data."""
    features = manifest.get("stages", {}).get("features", {})
    schema = features.get("output_schema") or {}
    fit_rows = features.get("fit_rows")
    nulls: dict[str, float] = {}
    saved = run_dir / "features" / "workflow" / "workflow.json"
    if saved.is_file():
        import pandas as pd

        for op in json.loads(saved.read_text()).get("ops", []):
            for column, state in op.get("state", {}).get("columns", {}).items():
                table = run_dir / "features" / "workflow" / op.get("tables", {}).get(column, "")
                if "nulls" in state and table.is_file():
                    seen = int(pd.read_parquet(table, columns=["count"])["count"].sum())
                    total = seen + int(state["nulls"])
                    nulls[column] = state["nulls"] / total if total else 0.0
            moments = op.get("tables", {}).get("moments")
            if moments and fit_rows and (run_dir / "features" / "workflow" / moments).is_file():
                frame = pd.read_parquet(run_dir / "features" / "workflow" / moments)
                for column, count in zip(frame["column"], frame["count"], strict=True):
                    nulls[column] = 1.0 - int(count) / fit_rows
    return [{"column": name, "dtype": col.get("dtype"), "tags": ", ".join(col.get("tags", [])),
             "cardinality": col.get("cardinality"), "null_rate": nulls.get(name)}
            for name, col in schema.items()]


def metric_spread(model_metrics: dict[str, Any]) -> dict[str, tuple[float, float | None]]:
    """``{metric: (value, spread over seeds or None)}``: from a ``per_seed`` list of metric dicts
    or ``<metric>_std`` keys, when the evaluation recorded several seeds."""
    per_seed = model_metrics.get("per_seed")
    out: dict[str, tuple[float, float | None]] = {}
    for name, value in model_metrics.items():
        if not isinstance(value, (int, float)) or "@" not in name or name.endswith("_std"):
            continue
        spread = model_metrics.get(f"{name}_std")
        if spread is None and isinstance(per_seed, list) and len(per_seed) > 1:
            values = [s[name] for s in per_seed if isinstance(s.get(name), (int, float))]
            spread = statistics.stdev(values) if len(values) > 1 else None
        out[name] = (float(value), None if spread is None else float(spread))
    return out


def trend(run_dir: Path, nights: int = TREND_NIGHTS) -> list[tuple[str, dict[str, Any]]]:
    """``(date, evaluate metrics)`` of the last finished nights of this workflow, oldest first."""
    found = []
    for sibling in sorted(run_dir.parent.iterdir()):
        path = sibling / MANIFEST
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError:
            continue
        metrics = data.get("stages", {}).get("evaluate", {}).get("metrics")
        if metrics:
            found.append((sibling.name, metrics))
    return found[-nights:]


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def plots(manifest: dict[str, Any], nights: list[tuple[str, dict[str, Any]]]) -> dict[str, str]:
    """Base64 PNGs: stage timings, metrics beside the baselines, the trend over nights."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: dict[str, str] = {}
    stages = manifest.get("stages", {})
    timed = [(n, s["seconds"]) for n, s in stages.items() if "seconds" in s]
    if timed:
        fig, ax = plt.subplots(figsize=(6, 0.4 * len(timed) + 1))
        ax.barh([n for n, _ in timed][::-1], [t for _, t in timed][::-1], color="#4c72b0")
        ax.set_xlabel("seconds")
        ax.set_title("stage timings")
        out["timings"] = _png(fig)
    metrics = stages.get("evaluate", {}).get("metrics") or {}
    if metrics:
        models = list(metrics)
        names = sorted({m for model in models for m in metric_spread(metrics[model])})
        fig, ax = plt.subplots(figsize=(max(5, 1.6 * len(names)), 3.2))
        width = 0.8 / len(models)
        for i, model in enumerate(models):
            spread = metric_spread(metrics[model])
            values = [spread.get(n, (math.nan, None))[0] for n in names]
            errors = [spread.get(n, (0, None))[1] or 0 for n in names]
            ax.bar([j + i * width for j in range(len(names))], values, width, yerr=errors,
                   capsize=3, label=model)
        ax.set_xticks([j + width * (len(models) - 1) / 2 for j in range(len(names))], names)
        ax.set_title("holdout metrics (error bars: spread over seeds)")
        ax.legend()
        out["metrics"] = _png(fig)
    if len(nights) > 1:
        fig, ax = plt.subplots(figsize=(6, 3.2))
        dates = [d for d, _ in nights]
        for model in nights[-1][1]:
            for name in [n for n in metric_spread(nights[-1][1][model]) if n.startswith("ndcg")]:
                ys = [m.get(model, {}).get(name, math.nan) for _, m in nights]
                ax.plot(dates, ys, marker="o", label=f"{model} {name}")
        ax.set_title(f"last {len(nights)} nights")
        ax.tick_params(axis="x", rotation=45)
        ax.legend(fontsize=8)
        out["trend"] = _png(fig)
    return out


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4f}" if not math.isnan(v) else ""
        return html.escape("" if v is None else str(v))

    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _plan_line(plan: dict[str, Any] | None) -> str:
    if not plan:
        return ""
    return (f"<p>night plan: <b>{html.escape(str(plan.get('mode')))}</b> "
            f"({html.escape(str(plan.get('reason')))}; last full refit "
            f"{html.escape(str(plan.get('last_full')))})</p>")


def render(run_dir: Path) -> str:
    manifest = load_manifest(run_dir)
    stages = manifest.get("stages", {})
    nights = trend(run_dir)
    images = plots(manifest, nights)
    title = f"recpipe {manifest.get('workflow')} {manifest.get('date')}"
    parts = [f"<h1>{html.escape(title)}: {html.escape(str(manifest.get('status')))}</h1>",
             f"<p>run folder <code>{html.escape(str(run_dir))}</code>, started "
             f"{html.escape(str(manifest.get('started')))}, finished "
             f"{html.escape(str(manifest.get('finished')))}</p>",
             _plan_line(manifest.get("incremental")),
             "<h2>Stages</h2>",
             _table(["stage", "status", "seconds", "finished", "error"],
                    [[n, s.get("status"), s.get("seconds"), s.get("finished"), s.get("error")]
                     for n, s in stages.items()])]
    counts = [[stage, key, stages[stage][key]] for stage, keys in (
        ("prepare", ("rows", "users", "items", "partitions")), ("features", ("fit_rows",)),
        ("train", ("train_rows", "valid_rows", "positives")),
        ("recommend", ("rows", "users", "full_lists")), ("publish", ("users", "version")))
        for key in keys if key in stages.get(stage, {})]
    parts += ["<h2>Row counts</h2>", _table(["stage", "what", "count"], counts)]
    features = feature_table(run_dir, manifest)
    if features:
        parts += ["<h2>Feature statistics</h2>",
                  _table(["column", "dtype", "tags", "cardinality", "null rate"],
                         [[f["column"], f["dtype"], f["tags"], f["cardinality"], f["null_rate"]]
                          for f in features])]
    metrics = stages.get("evaluate", {}).get("metrics") or {}
    if metrics:
        rows = [[model, name, value, spread]
                for model, m in metrics.items() for name, (value, spread) in
                metric_spread(m).items()]
        parts += ["<h2>Holdout metrics</h2>", _table(["model", "metric", "value",
                                                      "spread over seeds"], rows)]
    if nights:
        names = sorted({n for _, m in nights for model in m for n in metric_spread(m[model])})
        rows = [[d, model, *[m[model].get(n) for n in names]] for d, m in nights for model in m]
        parts += ["<h2>Trend</h2>", _table(["date", "model", *names], rows)]
    parts += ["<h2>Plots</h2>"] + [
        f'<figure><img id="plot-{name}" alt="{name}" src="data:image/png;base64,{data}">'
        f"<figcaption>{name}</figcaption></figure>" for name, data in images.items()]
    style = ("body{font-family:sans-serif;margin:2em;max-width:70em}table{border-collapse:"
             "collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:"
             "right}th{background:#eee}td:first-child{text-align:left}img{max-width:100%}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title><style>{style}</style></head><body>{''.join(parts)}</body></html>\n")


def write_report(run_dir: Path, out: Path | None = None) -> Path:
    out = out or run_dir / "report.html"
    out.write_text(render(run_dir), encoding="utf-8")
    return out
