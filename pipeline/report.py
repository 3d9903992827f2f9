"""Console summary of a finished run: stage timings and holdout metrics beside the baseline."""

from __future__ import annotations

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
    metrics, k = evaluation.get("metrics"), evaluation.get("k")
    if metrics:
        lines.append(f"  holdout ({next(iter(metrics.values()))['users']} users):")
        lines.append(f"    {'model':<12} {'NDCG@' + str(k):>9} {'Recall@' + str(k):>10}")
        for model, m in metrics.items():
            lines.append(f"    {model:<12} {m[f'ndcg@{k}']:>9.4f} {m[f'recall@{k}']:>10.4f}")
    return lines


def print_summary(manifest: Manifest) -> None:
    click.echo("\n".join(summary_lines(manifest)))
