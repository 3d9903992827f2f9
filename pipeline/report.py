"""Console summary of a finished run: which lists were published and why, the stage timings, the
holdout metrics of both horizons and the retrieval recall.

The formatting helpers here (human durations, counts, scores, the published line, why a section
is missing) are shared with the HTML report so both say the same thing the same way.
"""

from __future__ import annotations

from typing import Any

import click

from pipeline.manifest import Manifest

RANKER = "ranker"  # the manifest's name for the trained model's lists (pipeline.recommend.batch)
METRICS = ("ndcg", "recall", "map", "coverage")
ERROR_CHARS = 90  # of a failed stage's error on its line: the log holds the rest


def human_seconds(seconds: float | None) -> str:
    """``0.21 s``, ``12.3 s``, ``2 min 05 s``, ``1 h 02 min``: a duration a person reads at once."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds:.2f} s"
    if round(seconds, 1) < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def count(value: Any) -> str:
    """An integer with thousands separators (``90,000``); anything else as it is."""
    if isinstance(value, bool) or not isinstance(value, int):
        return "-" if value is None else str(value)
    return f"{value:,}"


def score(value: float | None, std: float | None = None, seeds: int = 1) -> str:
    """A metric with three decimals, ``mean ± std`` when it was measured over several seeds."""
    if value is None:
        return "-"
    if seeds > 1 and std is not None:
        return f"{value:.3f} ± {std:.3f}"
    return f"{value:.3f}"


def gain(entry: dict[str, float]) -> str:
    """A baseline's paired gain over the ranker and its standard error: ``-0.012 ± 0.028``."""
    return f"{entry['gain']:+.3f} ± {entry['stderr']:.3f}"


def metric_keys(k: Any) -> list[str]:
    return [f"{name}@{k}" for name in METRICS]


def why_missing(stages: dict[str, Any], stage: str, key: str) -> str:
    """Why ``stages[stage][key]`` is absent, in words: the night stopped before the stage, the
    stage failed, or it predates the key (an older night)."""
    found = stages.get(stage)
    if not found:
        failed = next((name for name, s in stages.items() if s.get("status") == "failed"), None)
        return f"the night stopped before {stage}" + (f": {failed} failed" if failed else "")
    status = found.get("status")
    if status == "failed":
        return f"the {stage} stage failed: {found.get('error') or 'no error recorded'}"
    if status != "done":
        return f"the {stage} stage did not finish (status {status})"
    return f"this night's {stage} stage recorded no {key}: an older night"


def closest_baseline(choice: dict[str, Any]) -> str | None:
    """The baseline whose NDCG came nearest the ranker's (or beat it by the most)."""
    margins = choice.get("baseline_gain_over_ranker") or {}
    return max(margins, key=lambda name: margins[name]["gain"]) if margins else None


def published_line(stages: dict[str, Any]) -> str:
    """One line: the published source and the reason, with the closest baseline's margin."""
    choice = stages.get("evaluate", {}).get("choice")
    if not choice:
        source = stages.get("recommend", {}).get("source")
        known = f"{source} (no reason recorded: " if source else "unknown ("
        return f"published: {known}{why_missing(stages, 'evaluate', 'choice')})"
    line = f"published: {choice['published']} ({choice.get('reason')}"
    closest = closest_baseline(choice)
    if closest and choice["published"] == RANKER:
        entry = choice["baseline_gain_over_ranker"][closest]
        line += f"; closest baseline {closest} {gain(entry)} {choice.get('metric')}"
    return line + ")"


def summary_lines(manifest: Manifest) -> list[str]:
    data = manifest.data
    stages = data["stages"]
    lines = [f"recpipe run '{data.get('workflow')}' {data.get('date')}: {data.get('status')}",
             f"  run directory: {manifest.run_dir}", "  " + published_line(stages)]
    lines.extend(stage_lines(stages))
    evaluation = stages.get("evaluate", {})
    if evaluation.get("metrics"):
        lines.extend(metrics_table(evaluation))
    else:
        lines.append(f"  no holdout metrics: {why_missing(stages, 'evaluate', 'metrics')}")
    lines.append("  " + retrieval_line(stages))
    return lines


def stage_lines(stages: dict[str, Any]) -> list[str]:
    """One line per stage: status, duration and the counts that matter for it."""
    lines = []
    for name, stage in stages.items():
        extra = ""
        if name == "recommend":
            extra = (f"  {count(stage.get('users'))} users, {count(stage.get('full_lists'))} "
                     "full lists")
        if name == "publish":
            extra = f"  version {stage.get('version')}, {count(stage.get('users'))} users"
        if stage.get("error"):
            extra = f"  {str(stage['error'])[:ERROR_CHARS]}"
        lines.append(f"  {name:<10} {stage.get('status', '?'):<7} "
                     f"{human_seconds(stage.get('seconds')):>11}{extra}")
    return lines


def metrics_table(evaluation: dict[str, Any]) -> list[str]:
    """The long horizon's metrics per model (``mean ± std`` over the seeds) with the short
    horizon's NDCG beside them; the published source is starred."""
    metrics, k = evaluation["metrics"], evaluation.get("k")
    seeds = evaluation.get("seeds", 1)
    short = (evaluation.get("horizons") or {}).get("short") or {}
    days = evaluation.get("horizon_days") or {}
    users = evaluation.get("horizon_users") or {}
    published = (evaluation.get("choice") or {}).get("published")
    keys = metric_keys(k)
    long_users = users.get("long", next(iter(metrics.values())).get("users"))
    horizon = f"{days['long']:.1f} days, " if "long" in days else ""
    width = 16 if seeds > 1 else 13
    lines = [f"  long horizon ({horizon}{count(long_users)} users; ranker over {seeds} seed(s)"
             f"{'; * published' if published else ''}):",
             "    " + f"{'model':<19}" + "".join(f"{key.upper():>{width}}" for key in keys)
             + (f"  {'short NDCG':>{width}}" if short else "")]
    ndcg = keys[0]
    for model, row in metrics.items():
        name = f"{model} *" if model == published else model
        cells = "".join(f"{score(row.get(key), row.get(f'{key}_std'), seeds):>{width}}"
                        for key in keys)
        if short:
            other = short.get(model, {})
            cells += f"  {score(other.get(ndcg), other.get(f'{ndcg}_std'), seeds):>{width}}"
        lines.append(f"    {name:<19}{cells}")
    if short:
        length = f"{days['short']:.1f} days, " if "short" in days else ""
        lines.append(f"    (short horizon: {length}{count(users.get('short'))} users)")
    return lines


def retrieval_line(stages: dict[str, Any]) -> str:
    """Recall of the holdout's items among the candidates: the merged set, then each generator."""
    retrieval = stages.get("evaluate", {}).get("retrieval")
    if not retrieval or not retrieval.get("recall"):
        return f"no retrieval recall: {why_missing(stages, 'evaluate', 'retrieval')}"
    recall = retrieval["recall"]
    parts = [f"{name} {recall[name]:.3f}" for name in sorted(
        recall, key=lambda n: (n != "merged", -recall[n]))]
    return f"retrieval recall ({count(retrieval.get('users'))} users): " + ", ".join(parts)


def print_summary(manifest: Manifest) -> None:
    click.echo("\n".join(summary_lines(manifest)))
