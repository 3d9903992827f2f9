"""Publishing to a password-protected Redis: the URL's password is used, a wrong one is explained
with the password masked; and the ``cluster=`` URL flag is read and removed."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator

import pytest
import redis
from test_publish import FALLBACK, make_lists

from pipeline.errors import StoreUnavailableError
from pipeline.publish import current_version, publish_lists
from pipeline.publish.connect import split_cluster_flag, with_cluster_flag
from pipeline.publish.embedded import EmbeddedRedis
from pipeline.publish.keys import Keys

PASSWORD = "s3cret/pa:ss"  # '/' and ':' must survive URL quoting


@pytest.fixture(scope="module")
def protected() -> Iterator[EmbeddedRedis]:
    """``redis-server --requirepass`` (Debian's if installed, else the embedded valkey)."""
    with EmbeddedRedis(password=PASSWORD, binary=shutil.which("redis-server")) as server:
        yield server


def test_publish_with_password_in_url(dask_client: object, protected: EmbeddedRedis) -> None:
    url = protected.url
    assert url.startswith("redis://:s3cret%2Fpa%3Ass@127.0.0.1:")
    lists, expected = make_lists(n_users=50, npartitions=2)
    report = publish_lists(lists, url, "auth", fallback_items=FALLBACK)
    assert current_version(url, "auth") == report.version
    with redis.Redis(port=protected.port, password=PASSWORD) as r:
        user, (items, scores) = next(iter(expected.items()))
        raw = r.get(Keys("auth").user(report.version, user))
        assert raw is not None and json.loads(raw) == {"items": items, "scores": scores}


@pytest.mark.parametrize("auth", [":wrong@", ""], ids=["wrong-password", "no-password"])
def test_bad_password_is_named_with_the_password_masked(
    protected: EmbeddedRedis, auth: str
) -> None:
    url = f"redis://{auth}127.0.0.1:{protected.port}/0"
    lists, _ = make_lists(n_users=5, npartitions=1)
    with pytest.raises(StoreUnavailableError, match="check the password") as info:
        publish_lists(lists, url, "auth", fallback_items=FALLBACK)
    message = str(info.value)
    assert f"127.0.0.1:{protected.port}/0" in message
    assert "wrong" not in message
    if auth:
        assert f"redis://:***@127.0.0.1:{protected.port}/0" in message


def test_cluster_flag_is_parsed_and_removed() -> None:
    assert split_cluster_flag("redis://h:1/0?cluster=true") == ("redis://h:1/0", True)
    assert split_cluster_flag("rediss://:p@h:1/0?cluster=no&ssl_cert_reqs=none") == (
        "rediss://:p@h:1/0?ssl_cert_reqs=none",
        False,
    )
    assert split_cluster_flag("redis://h:1/0") == ("redis://h:1/0", None)
    assert with_cluster_flag("redis://h:1/0?cluster=1", False) == "redis://h:1/0?cluster=false"
    with pytest.raises(StoreUnavailableError, match="cluster=true or false"):
        split_cluster_flag("redis://:secret@h:1/0?cluster=maybe")
