"""Console summary of a finished run: stage timings and holdout metrics beside the baseline."""

from __future__ import annotations

from typing import Any

import click

from pipeline.manifest import Manifest


def summary_lines(manifest: Manifest) -> list[str]:
    data = manifest.data
    lines = [f"recpipe run '{data.get('workflow')}' {data.get('date')}: {data.get('status')}",
             f"  run directory: {manifest.run_dir}"]
    for name, stage in data["stages"].items():
        extra = ""
        if name == "recommend":
            extra = f"  {stage.get('users')} users, {stage.get('full_lists')} full lists"
        if name == "publish":
            extra = f"  version {stage.get('version')}, {stage.get('users')} users"
        lines.append(f"  {name:<10} {stage.get('status', '?'):<7} "
                     f"{stage.get('seconds', 0.0):>8.1f} s{extra}")
    evaluation = data["stages"].get("evaluate", {})
    if evaluation.get("metrics"):
        lines.extend(metrics_table(evaluation))
    return lines


def _cell(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    if value is None:
        return "-"
    std = row.get(f"{key}_std")
    return f"{value:.4f}" if std is None else f"{value:.4f} ± {std:.4f}"


def metrics_table(evaluation: dict[str, Any]) -> list[str]:
    """Holdout metrics per model, ``mean ± std`` over the seeds, and the verdict."""
    metrics, k = evaluation["metrics"], evaluation.get("k")
    seeds = evaluation.get("seeds", 1)
    keys = [f"{name}@{k}" for name in ("ndcg", "recall", "map", "coverage")]
    users = next(iter(metrics.values()))["users"]
    lines = [f"  holdout ({users} users, ranker over {seeds} seed(s)):",
             "    " + f"{'model':<18}" + "".join(f"{key.upper():>18}" for key in keys)]
    for model, row in metrics.items():
        lines.append("    " + f"{model:<18}" + "".join(f"{_cell(row, key):>18}" for key in keys))
    verdict = evaluation.get("verdict") or {}
    if verdict and verdict["beats_every_baseline"] is None:
        lines.append(f"  one {verdict['best_ranker']} run: no verdict against the baselines "
                     "(run with --seeds 5 for mean ± std)")
    elif verdict:
        lost = [m for m, v in verdict["margins"].items() if not v["beaten"]]
        lines.append(f"  {verdict['best_ranker']} beats every baseline on {verdict['metric']} "
                     "by > 2 std" if not lost else
                     f"  {verdict['best_ranker']} does not beat by > 2 std: {', '.join(lost)}")
    return lines


def print_summary(manifest: Manifest) -> None:
    click.echo("\n".join(summary_lines(manifest)))
