"""Run folders (``RUN_DIR/<name>/<date>/``) and the one guarded way a run deletes anything.

Why: a run replaces whole folders (a changed workflow, ``--force``, a stage's output), so a bad
date, a bad name or a path that leads elsewhere must never turn into deleting a user's data.
Every removal goes through ``RunFolder.remove``, which refuses a path outside the run folder and
a run folder without the marker file recpipe writes when it creates one.
"""

from __future__ import annotations

import json
import re
import shutil
from datetime import date as Date
from pathlib import Path

from pipeline.errors import ConfigError, DataError
from pipeline.manifest import MANIFEST, utc_now

MARKER = ".recpipe-run"
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def check_date(value: str) -> str:
    """``value`` if it is a real calendar date written YYYY-MM-DD; else ``ConfigError``."""
    try:
        ok = bool(_DATE.match(value)) and Date.fromisoformat(value).isoformat() == value
    except ValueError:
        ok = False
    if not ok:
        raise ConfigError(f"--date {value!r} is not a date: give a real calendar date as "
                          "YYYY-MM-DD, e.g. 2026-03-01")
    return value


def check_name(value: str) -> str:
    """``value`` if it can name a folder under ``run.dir`` (no separators, not ``.``/``..``)."""
    if not _NAME.match(value) or value in (".", ".."):
        raise ConfigError(f"workflow name {value!r} cannot name a run folder: use letters, "
                          "digits, _ . - (and not '.' or '..')")
    return value


class RunFolder:
    """``workflow_dir/date``: created with recpipe's marker, deleted only through ``remove``."""

    def __init__(self, workflow_dir: Path, date: str) -> None:
        check_name(workflow_dir.name)
        self.workflow_dir = workflow_dir
        self.date = check_date(date)
        self.root = workflow_dir / date

    def claim(self) -> None:
        """Create the run folder with the marker, or adopt one recpipe made (its marker, or a
        manifest of this workflow and date from before markers); refuse any other folder."""
        marker = self.root / MARKER
        if marker.is_file():
            return
        if self.root.is_symlink() or (self.root.exists() and not self._ours_without_marker()):
            raise DataError(
                f"{self.root} exists but was not created by recpipe (no {MARKER} file); move it "
                "away, or set run.dir in the workflow file to a folder recpipe may manage"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"created": utc_now(), "date": self.date}) + "\n")

    def _ours_without_marker(self) -> bool:
        if not self.root.is_dir():
            return False
        if not any(self.root.iterdir()):
            return True
        try:
            manifest = json.loads((self.root / MANIFEST).read_text())
        except (OSError, ValueError):
            return False
        return (isinstance(manifest, dict) and manifest.get("date") == self.date
                and manifest.get("workflow") == self.workflow_dir.name)

    def remove(self, path: Path) -> None:
        """Delete ``path`` (the run folder or something in it) if it exists; ``DataError`` if it
        lies outside the run folder or the run folder lacks the marker."""
        if not path.exists() and not path.is_symlink():
            return
        root = self.root.resolve()
        target = path.parent.resolve() / path.name  # a link itself, not where it points
        inside = target == root or root in target.parents
        if not inside or root.parent != self.workflow_dir.resolve() \
                or not (root / MARKER).is_file():
            raise DataError(
                f"refusing to delete {path}: only folders inside a run folder recpipe created "
                f"({self.root}, with its {MARKER} file) are deleted; move it away by hand"
            )
        if target.is_symlink() or target.is_file():
            target.unlink()
        else:
            shutil.rmtree(target)
