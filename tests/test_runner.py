"""The nightly run's bookkeeping: a failed run resumes at its first unfinished stage, a finished
date is not redone, and a changed workflow file re-runs the date."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import load_workflow
from pipeline.errors import StoreUnavailableError
from pipeline.publish import current_version
from pipeline.runner import STAGES, NightlyRun
from tests.helpers import free_port, workflow_file, write_synthetic_log


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_log(tmp_path_factory.mktemp("data"))


def finished_at(run: Any) -> dict[str, str]:
    return {name: stage.get("finished") for name, stage in run.data["stages"].items()}


def test_failed_publish_resumes_without_redoing_earlier_stages(
    synthetic: Path, tmp_path: Path, dask_client: Any, redis_url: str
) -> None:
    name = f"resume-{uuid.uuid4().hex[:6]}"
    spec = load_workflow(workflow_file(tmp_path / "w.yaml", synthetic, tmp_path / "runs", name))
    down = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(StoreUnavailableError):
        NightlyRun(spec, "2026-02-01", dask_client, down).run()
    failed = NightlyRun(spec, "2026-02-01", dask_client, redis_url).manifest
    assert failed.data["status"] == "failed"
    assert failed.stage("publish")["status"] == "failed"
    before = finished_at(failed)

    resumed = NightlyRun(spec, "2026-02-01", dask_client, redis_url).run()
    assert resumed.data["status"] == "done"
    after = finished_at(resumed)
    assert all(after[s] == before[s] for s in STAGES[:-1]), "finished stages were redone"
    assert current_version(redis_url, name) == resumed.stage("publish")["version"]

    again = NightlyRun(spec, "2026-02-01", dask_client, redis_url).run()
    assert finished_at(again) == after


def test_changed_workflow_reruns_the_date(synthetic: Path, tmp_path: Path, dask_client: Any,
                                          redis_url: str) -> None:
    name = f"changed-{uuid.uuid4().hex[:6]}"
    path = workflow_file(tmp_path / "w.yaml", synthetic, tmp_path / "runs", name)
    first = NightlyRun(load_workflow(path), "2026-02-01", dask_client, redis_url).run()
    workflow_file(path, synthetic, tmp_path / "runs", name, recommend={"k": 5})
    second = NightlyRun(load_workflow(path), "2026-02-01", dask_client, redis_url).run()
    assert second.stage("prepare")["finished"] >= first.stage("publish")["finished"]
    assert second.stage("recommend")["k"] == 5
    assert second.stage("publish")["version"] != first.stage("publish")["version"]
