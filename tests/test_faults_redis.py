"""Store faults and secrets: a stalled Redis is exit 3, a rollback is recorded so a re-run does
not undo it, credentials never reach a log or a message, and the Dask dashboard stays local."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytest
import redis
from test_publish import FALLBACK, make_lists
from test_publish import ns as fresh_ns  # noqa: F401  (a fixture: a fresh namespace)

from pipeline.errors import StoreUnavailableError
from pipeline.publish import current_version, publish_lists, rollback
from pipeline.publish.connect import mask_url, unavailable
from pipeline.publish.keys import Keys
from tests.helpers import free_port, recpipe, workflow_file


def publish(redis_url: str, ns: str) -> Any:
    """One publish of 30 users' lists into ``ns`` (its report)."""
    return publish_lists(make_lists(30)[0], redis_url, ns, fallback_items=FALLBACK)


# -- 9. the namespace lock expiring under a stalled Redis is a store error (exit 3) ----------

def test_a_lock_lost_to_a_stalled_redis_is_exit_3(
        dask_client: Any, redis_url: str, fresh_ns: str,  # noqa: F811 (the fixture)
        monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.publish import writer

    ns = fresh_ns
    first = publish(redis_url, ns)
    verify = writer._verify_sample

    def stall(r: Any, *args: Any) -> None:  # Redis paused past the lock's TTL: the key expired
        verify(r, *args)
        r.delete(Keys(ns).lock)

    monkeypatch.setattr(writer, "_verify_sample", stall)
    with pytest.raises(StoreUnavailableError, match="lock was lost") as err:
        publish(redis_url, ns)
    assert err.value.exit_code == 3
    assert current_version(redis_url, ns) == first.version  # the previous version stays
    monkeypatch.setattr(writer, "_verify_sample", verify)
    again = publish(redis_url, ns)  # cleans up the rest
    assert current_version(redis_url, ns) == again.version
    r = redis.Redis.from_url(redis_url)
    written = {k.decode().split(":")[3] for k in r.scan_iter(f"recpipe:{ns}:v:*")}
    assert written == {first.version, again.version}


def test_a_lock_whose_reply_was_lost_is_ours(redis_url: str) -> None:
    """Redis stalled after running the lock's SET: the client's retry finds the lock holding
    its own token, and takes it instead of failing as "held by another publish" (exit 2)."""
    from pipeline.publish.lock import NamespaceLock

    r = redis.Redis.from_url(redis_url)
    key = f"recpipe:{{t{os.getpid()}-lost-reply}}:lock"
    lock = NamespaceLock(r, key)
    r.set(key, lock.token, px=30_000)  # what the first, timed-out SET did
    with lock:
        assert r.get(key).decode() == lock.token
    assert not r.exists(key)  # released as usual


def test_a_retried_flip_or_rollback_happens_once(
        dask_client: Any, redis_url: str, fresh_ns: str,  # noqa: F811 (the fixture)
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A stalled Redis runs a script but its reply times out, and redis-py sends it again: the
    pointer flip must not list its version twice, nor a rollback roll back two versions."""
    first = publish(redis_url, fresh_ns)
    real = redis.Redis.register_script

    def twice(self: redis.Redis, text: str) -> Any:
        script = real(self, text)
        if "RPUSH" not in text and "RPOP" not in text:
            return script

        def run(**kwargs: Any) -> Any:
            script(**kwargs)  # its reply was lost
            return script(**kwargs)

        return run

    monkeypatch.setattr(redis.Redis, "register_script", twice)
    second, third = publish(redis_url, fresh_ns), publish(redis_url, fresh_ns)
    r = redis.Redis.from_url(redis_url)
    versions = Keys(fresh_ns).versions
    assert [v.decode() for v in r.lrange(versions, 0, -1)] == \
        [first.version, second.version, third.version]
    assert rollback(redis_url, fresh_ns) == second.version
    assert current_version(redis_url, fresh_ns) == second.version
    assert [v.decode() for v in r.lrange(versions, 0, -1)] == [first.version, second.version]


# -- 6. a rollback is recorded, and its night is not published again without --force ---------

def test_a_rolled_back_version_stands(
        dask_client: Any, redis_url: str, fresh_ns: str,  # noqa: F811 (the fixture)
        caplog: pytest.LogCaptureFixture) -> None:
    from pipeline.publish import version_stands

    ns = fresh_ns
    first, second = publish(redis_url, ns), publish(redis_url, ns)
    assert rollback(redis_url, ns) == first.version
    r = redis.Redis.from_url(redis_url)
    assert r.sismember(Keys(ns).rolled_back, second.version)
    with caplog.at_level(logging.WARNING):
        assert version_stands(redis_url, ns, second.version)
    assert "was rolled back" in caplog.text and "--force" in caplog.text
    assert version_stands(redis_url, ns, first.version)  # current
    assert not version_stands(redis_url, ns, "20000101T000000Z")
    assert current_version(redis_url, ns) == first.version


# -- 8. one masking function hides every credential a URL can carry ---------------------------

@pytest.mark.parametrize(("url", "hidden"), [
    ("redis://user:pw-secret@host:6390/0?password=qs-secret", ["pw-secret", "qs-secret", "user"]),
    ("redis://host:6390/0?username=bob&password=qs-secret&db=1", ["bob", "qs-secret"]),
    ("rediss://:pw-secret@[::1]:6379/0?ssl_cert_reqs=required", ["pw-secret"]),
    ("unix:///run/redis.sock?password=qs-secret", ["qs-secret"]),
    ("redis://user:pw-secret@host:99999/0", ["pw-secret", "user"]),
])
def test_mask_url_hides_every_credential(url: str, hidden: list[str]) -> None:
    masked = mask_url(url)
    assert not any(secret in masked for secret in hidden), masked
    assert "***" in masked
    assert all(s not in str(unavailable(url, OSError("down"))) for s in hidden)


def test_a_query_password_never_reaches_the_command_line_output(tmp_path: Path) -> None:
    wf = workflow_file(tmp_path / "w.yaml", tmp_path, tmp_path / "runs", "x")
    url = f"redis://user:pw-secret@127.0.0.1:{free_port()}/0?password=qs-secret"
    result = recpipe("-v", "run", str(wf), "--date", "2026-03-01",
                     env={**os.environ, "REDIS_URL": url})
    assert result.returncode == 3, result.stderr
    assert "127.0.0.1" in result.stderr
    assert "qs-secret" not in result.stderr + result.stdout
    assert "pw-secret" not in result.stderr + result.stdout


# -- 7. the dashboard listens on this host only unless the workflow says otherwise ------------

def test_the_dashboard_binds_to_localhost_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline import cluster
    from pipeline.config import ClusterSpec

    seen: dict[str, Any] = {}
    monkeypatch.setattr(cluster, "LocalCluster", lambda **kwargs: seen.update(kwargs))
    cluster.local_cluster(ClusterSpec(n_workers=1))
    assert seen["dashboard_address"] == "127.0.0.1:0"
    cluster.local_cluster(ClusterSpec(n_workers=1, dashboard_address="0.0.0.0:8787"))
    assert seen["dashboard_address"] == "0.0.0.0:8787"
    script = cluster.jobqueue_cluster(ClusterSpec(kind="slurm", cores=2, memory="4GB")) \
        if _has_jobqueue() else None
    if script is not None:
        assert script.scheduler_spec["options"]["dashboard_address"] == "127.0.0.1:0"


def _has_jobqueue() -> bool:
    try:
        import dask_jobqueue  # noqa: F401
    except ImportError:
        return False
    return True


def test_a_real_local_cluster_dashboard_is_not_on_every_interface() -> None:
    from pipeline.cluster import local_cluster
    from pipeline.config import ClusterSpec

    with local_cluster(ClusterSpec(n_workers=1, memory_limit="1GiB")) as c:
        sockets = c.scheduler.http_server._sockets.values()
        hosts = {s.getsockname()[0] for s in sockets}
    assert hosts == {"127.0.0.1"}, hosts
