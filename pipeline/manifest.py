"""The run directory's JSON manifest: inputs, row counts, timings, metrics, versions.

Written atomically (temp file + rename) after every stage, so a crash leaves the last complete
state on disk and a later run can tell which stages finished.
"""

from __future__ import annotations

import json
import os
import platform
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
_PACKAGES = ["recpipe", "dask", "distributed", "pandas", "pyarrow", "xgboost", "xgboost-cpu",
             "redis", "torch"]


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def package_versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


class Manifest:
    """A dict persisted at ``run_dir/manifest.json``; stages record themselves under ``stages``."""

    def __init__(self, run_dir: Path, data: dict[str, Any]) -> None:
        self.run_dir = run_dir
        self.data = data

    @classmethod
    def open(cls, run_dir: Path, **header: Any) -> Manifest:
        path = run_dir / MANIFEST
        if path.exists():
            data = json.loads(path.read_text())
        else:
            data = {"format_version": FORMAT_VERSION, "created": utc_now(), "stages": {}}
        data.update(header)
        data["versions"] = package_versions()
        return cls(run_dir, data)

    def stage(self, name: str) -> dict[str, Any]:
        return self.data["stages"].get(name, {})

    def is_done(self, name: str) -> bool:
        return self.stage(name).get("status") == "done"

    def record(self, name: str, **fields: Any) -> None:
        self.data["stages"][name] = {**self.stage(name), **fields}
        self.save()

    def save(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        path = self.run_dir / MANIFEST
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.data, indent=2, sort_keys=False, default=str) + "\n")
        os.replace(tmp, path)
