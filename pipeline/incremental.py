"""Incremental nights: what tonight may reuse from the last good night, and when to refit all.

Why a plan decided once, before the stages: the feature and train stages must agree (both reuse
the same earlier night or neither does), and the manifest records the decision so a resumed run
makes the same one and the report can show it. A night is "good" when its manifest says done;
a failed or half-finished night is never a base. Every ``full_refit_every_days`` days after the
last full night (and whenever there is no good night to build on) everything is refit, so small
drifts from merging statistics or boosting on top of old trees cannot pile up for ever.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import date as Date
from pathlib import Path
from typing import Any

from pipeline.config import WorkflowSpec
from pipeline.manifest import MANIFEST


@dataclass(frozen=True)
class NightPlan:
    mode: str  # "full" or "incremental"
    reason: str
    base: str | None = None  # the good night's run folder this night builds on
    last_full: str | None = None  # date of the last full refit this night descends from

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _manifest(run_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((run_dir / MANIFEST).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def last_good_night(run_dir: Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest earlier date folder beside ``run_dir`` whose run finished."""
    if not run_dir.parent.is_dir():
        return None
    for sibling in sorted(run_dir.parent.iterdir(), reverse=True):
        if not sibling.is_dir() or sibling.name >= run_dir.name:
            continue
        data = _manifest(sibling)
        if data and data.get("status") == "done":
            return sibling, data
    return None


def _days_between(earlier: str, later: str) -> int | None:
    try:
        return (Date.fromisoformat(later) - Date.fromisoformat(earlier)).days
    except ValueError:
        return None


def plan_night(spec: WorkflowSpec, run_dir: Path, date: str) -> NightPlan:
    """Full or incremental for ``date``, and on which earlier night to build."""
    if not spec.run.incremental:
        return NightPlan("full", "run.incremental is off", last_full=date)
    found = last_good_night(run_dir)
    if found is None:
        return NightPlan("full", "no earlier finished night to build on", last_full=date)
    base, data = found
    last_full = (data.get("incremental") or {}).get("last_full") or base.name
    age = _days_between(last_full, date)
    if age is None or age >= spec.run.full_refit_every_days:
        return NightPlan("full", f"last full refit {last_full} is {age} day(s) old "
                         f"(run.full_refit_every_days={spec.run.full_refit_every_days})",
                         last_full=date)
    return NightPlan("incremental", f"building on {base.name}", base=str(base),
                     last_full=last_full)
