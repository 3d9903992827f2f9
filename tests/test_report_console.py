"""The console summary at the end of ``recpipe run``: the published lists and why first, then the
stage timings, the long horizon's metrics with the short horizon's NDCG, and retrieval recall.

``night_manifest`` (a night's manifest with every key the reports read) is shared with the HTML
report's tests.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest

from pipeline.manifest import Manifest
from pipeline.report import human_seconds, summary_lines

DAY = 86_400
HOLDOUT = 1_767_225_600  # 2026-01-01 00:00 UTC
LAST_EVENT = HOLDOUT + 21 * DAY
MODELS = {"ranker": 0.1801, "popularity": 0.1679, "repeat": 0.1657, "ease": 0.0926}
SHORT = {"ranker": 0.1699, "popularity": 0.1845, "repeat": 0.1845, "ease": 0.1179}
GAINS = {"popularity": (-0.012248, 0.027827), "repeat": (-0.014472, 0.028183),
         "ease": (-0.087565, 0.02723)}


def horizon(ndcg: dict[str, float], users: int, std: float) -> dict[str, dict[str, Any]]:
    """A metrics table: NDCG as given, the other metrics derived so each column has one best."""
    return {model: {"runs": 1, "users": users, "ndcg@10": v, "ndcg@10_std": std,
                    "recall@10": v * 0.9, "recall@10_std": std, "map@10": v * 0.6,
                    "map@10_std": std, "coverage@10": 0.2 - v, "coverage@10_std": std}
            for model, v in ndcg.items()}


def choice(published: str) -> dict[str, Any]:
    gains = dict(GAINS)
    if published != "ranker":
        gains[published] = (0.015, 0.004)
    reason = ("no baseline beat the ranker" if published == "ranker" else
              f"{published} beat the ranker by 0.0150 ndcg@10 (standard error 0.0040)")
    return {"published": published, "metric": "ndcg@10", "horizon": "long", "enabled": True,
            "reason": reason, "scores": {m: round(v, 6) for m, v in MODELS.items()},
            "baseline_gain_over_ranker": {m: {"gain": g, "stderr": s}
                                          for m, (g, s) in gains.items()},
            "model_dir": "/runs/x/model" if published == "ranker" else None}


def night_manifest(published: str = "ranker", seeds: int = 1) -> dict[str, Any]:
    """A finished night as the new night writes it (prepare's split, per-cutoff features,
    EASE^R's λ, both horizons, retrieval recall, the choice of published lists)."""
    std = 0.004 if seeds > 1 else 0.0
    long, short = horizon(MODELS, 34, std), horizon(SHORT, 12, std)
    starts = [HOLDOUT - 14 * DAY, HOLDOUT - 30 * DAY]
    return {
        "format_version": 1, "workflow": "films", "date": "2026-01-22", "status": "done",
        "started": "2026-01-22T02:00:00+00:00", "finished": "2026-01-22T03:05:00+00:00",
        "incremental": {"mode": "full", "reason": "run.incremental is off", "base": None,
                        "last_full": "2026-01-22"},
        "workflow_spec": {"label": {"name": "relevant"},
                          "data": {"drop_duplicates": False, "items": None},
                          "filter": {"exclude_seen": "auto"}},
        "stages": {
            "prepare": {
                "status": "done", "seconds": 12.2612, "finished": "2026-01-22T02:00:12+00:00",
                "rows": 12345, "users": 40, "items": 30, "partitions": 2,
                "split": {"first_event": HOLDOUT - 60 * DAY, "last_event": LAST_EVENT,
                          "holdout_start": HOLDOUT, "label_starts": starts,
                          "label_start": starts[-1], "window_users": [25, 31],
                          "short_end": HOLDOUT + 7 * DAY, "by": "fraction"},
                "repeat_share": 0.2534, "exclude_seen": False,
                "dropped": {"null_user": 3, "null_item": 0}, "duplicates": 7},
            "features": {
                "status": "done", "seconds": 125.0, "finished": "2026-01-22T02:02:17+00:00",
                "cutoffs": [{"cutoff": c, "rows": 100, "mode": m} for c, m in (
                    (starts[1], "full"), (starts[0], "update"), (HOLDOUT, "update"),
                    (LAST_EVENT + 1, "update"))],
                "fit_rows": 400,
                "output_schema": {
                    "user_id": {"dtype": "int64", "tags": ["categorical"], "cardinality": 40},
                    "genre": {"dtype": "int64", "tags": ["categorical"], "cardinality": 5},
                    "age": {"dtype": "float32", "tags": ["continuous"], "cardinality": None}}},
            "train": {
                "status": "done", "seconds": 3725.4, "finished": "2026-01-22T03:04:23+00:00",
                "ranker": "xgboost", "features": ["pop_rank_log", "ease_score"],
                "ease": {"lambda": 300.0, "source": "tuned", "validation_users": 25,
                         "items": 30, "tried": {"100": 0.116, "300": 0.133, "1000": 0.126}},
                "window_users": [25, 31], "user_shares": [1.0, 0.5], "train_rows": 4321,
                "best_iteration": 17, "best_score": 0.3296, "metric": "ndcg@10"},
            "evaluate": {
                "status": "done", "seconds": 0.4567, "finished": "2026-01-22T03:04:24+00:00",
                "metrics": long, "horizons": {"short": short, "long": long},
                "horizon_users": {"short": 12, "long": 34},
                "horizon_days": {"short": 7.0, "long": 21.8}, "k": 10, "seeds": seeds,
                "per_seed": {m: [v] * seeds for m, v in MODELS.items()},
                "retrieval": {"users": 34,
                              "n": {"popularity": 50, "cooccurrence": 50, "repeat": 50,
                                    "ease": 100},
                              "recall": {"cooccurrence": 0.095631, "ease": 0.437969,
                                         "popularity": 0.213435, "merged": 0.538633},
                              "candidates_per_user": {"cooccurrence": 20.05, "ease": 100.0,
                                                      "popularity": 26.29, "merged": 117.31}},
                "timings": {"holdout_lists": 0.509}, "choice": choice(published)},
            "recommend": {
                "status": "done", "seconds": 2.12, "finished": "2026-01-22T03:04:26+00:00",
                "rows": 400, "users": 40, "full_lists": 40, "k": 10, "source": published,
                "filter_removed": {"seen": 1234},
                "stage_seconds": {"retrieve": 0.278, "filter": 0.02, "rank": 1.245}},
            "publish": {
                "status": "done", "seconds": 0.211, "finished": "2026-01-22T03:04:27+00:00",
                "version": "20260122T030427Z", "users": 40, "keys_written": 42}}}


def stopped_after_features() -> dict[str, Any]:
    """A night whose train stage failed: no evaluate, recommend or publish."""
    data = night_manifest()
    for stage in ("evaluate", "recommend", "publish"):
        del data["stages"][stage]
    data["status"] = "failed"
    data["stages"]["train"] = {"status": "failed", "seconds": 4.2, "error": "XGBoostError: boom"}
    return data


def lines_of(data: dict[str, Any]) -> list[str]:
    return summary_lines(Manifest(Path("/runs/films/2026-01-22"), data))


@pytest.mark.parametrize(("seconds", "text"), [
    (0.211, "0.21 s"), (12.2612, "12.3 s"), (59.96, "1 min 00 s"), (125.0, "2 min 05 s"),
    (3725.4, "1 h 02 min"), (None, "-")])
def test_durations_read_as_a_person_says_them(seconds: float | None, text: str) -> None:
    assert human_seconds(seconds) == text


def test_summary_leads_with_the_published_lists_then_timings_metrics_and_recall() -> None:
    lines = lines_of(night_manifest())
    assert len(lines) <= 25
    assert lines[2] == ("  published: ranker (no baseline beat the ranker; closest baseline "
                        "popularity -0.012 ± 0.028 ndcg@10)")
    stages = {line.split()[0]: line for line in lines[3:9]}
    assert list(stages) == ["prepare", "features", "train", "evaluate", "recommend", "publish"]
    assert "12.3 s" in stages["prepare"] and "2 min 05 s" in stages["features"]
    assert "1 h 02 min" in stages["train"] and "0.46 s" in stages["evaluate"]
    assert "40 users, 40 full lists" in stages["recommend"]
    text = "\n".join(lines)
    assert not re.search(r"\d\.\d{4}", text), "a raw float slipped through"
    assert "long horizon (21.8 days, 34 users; ranker over 1 seed(s); * published)" in text
    ranker = next(line for line in lines if line.strip().startswith("ranker *"))
    # long-horizon NDCG, Recall, MAP, coverage, then the short horizon's NDCG
    assert ranker.split()[2:] == ["0.180", "0.162", "0.108", "0.020", "0.170"]
    assert "(short horizon: 7.0 days, 12 users)" in text
    assert lines[-1] == ("  retrieval recall (34 users): merged 0.539, ease 0.438, "
                         "popularity 0.213, cooccurrence 0.096")


def test_summary_names_a_published_baseline_and_the_spread_over_seeds() -> None:
    lines = lines_of(night_manifest(published="popularity", seeds=3))
    assert lines[2] == ("  published: popularity (popularity beat the ranker by 0.0150 ndcg@10 "
                        "(standard error 0.0040))")
    text = "\n".join(lines)
    assert "ranker over 3 seed(s)" in text and "0.180 ± 0.004" in text
    assert any(line.strip().startswith("popularity *") for line in lines)


def test_a_night_that_stopped_early_says_why_in_one_line_each() -> None:
    lines = lines_of(stopped_after_features())
    assert lines[2] == "  published: unknown (the night stopped before evaluate: train failed)"
    assert "XGBoostError: boom" in next(line for line in lines if line.startswith("  train"))
    assert "  no holdout metrics: the night stopped before evaluate: train failed" in lines
    assert lines[-1] == "  no retrieval recall: the night stopped before evaluate: train failed"


def test_an_older_night_without_choice_horizons_or_retrieval() -> None:
    data = copy.deepcopy(night_manifest())
    evaluation = data["stages"]["evaluate"]
    for key in ("choice", "horizons", "horizon_users", "horizon_days", "retrieval"):
        del evaluation[key]
    lines = lines_of(data)
    assert lines[2] == ("  published: ranker (no reason recorded: this night's evaluate stage "
                        "recorded no choice: an older night)")
    assert any("long horizon (34 users; ranker over 1 seed(s))" in line for line in lines)
    assert not any("short NDCG" in line for line in lines)
    assert lines[-1].startswith("  no retrieval recall: this night's evaluate stage")
