"""Reading inputs: canonical columns on success, errors that name the file and column."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pipeline.config import InteractionColumns, InteractionsSpec, SideTableSpec
from pipeline.errors import DataError
from pipeline.io import read_interactions, read_side_table


def write(tmp_path: Path, frame: pd.DataFrame, name: str = "logs") -> Path:
    folder = tmp_path / name
    folder.mkdir()
    frame.to_parquet(folder / "part-0.parquet", index=False)
    return folder


COLUMNS = InteractionColumns(user="uid", item="sku", timestamp="ts", rating="stars")


def test_interactions_are_renamed_and_timestamps_become_seconds(tmp_path: Path) -> None:
    frame = pd.DataFrame({"uid": [1, 2], "sku": ["a", "b"], "stars": [5, 3],
                          "ts": pd.to_datetime(["2024-01-01", "2024-01-02"]), "extra": [0, 0]})
    got = read_interactions(InteractionsSpec(path=write(tmp_path, frame),
                                             columns=COLUMNS)).compute()
    assert list(got.columns) == ["user_id", "item_id", "timestamp", "rating"]
    assert got["timestamp"].tolist() == [1704067200, 1704153600]


def test_missing_path_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data.interactions: .*nowhere does not exist"):
        read_interactions(InteractionsSpec(path=tmp_path / "nowhere", columns=COLUMNS))


def test_missing_column_names_file_role_and_present_columns(tmp_path: Path) -> None:
    frame = pd.DataFrame({"uid": [1], "item": ["a"], "ts": [1], "stars": [4]})
    with pytest.raises(DataError, match=r"has no column 'sku' \(item_id\); it has: uid, item, "
                                        r"ts, stars"):
        read_interactions(InteractionsSpec(path=write(tmp_path, frame), columns=COLUMNS))


def test_string_timestamps_are_refused(tmp_path: Path) -> None:
    frame = pd.DataFrame({"uid": [1], "sku": ["a"], "ts": ["yesterday"], "stars": [4]})
    with pytest.raises(DataError, match=r"column 'ts' .* must be integer epoch seconds"):
        read_interactions(InteractionsSpec(path=write(tmp_path, frame), columns=COLUMNS))


def test_empty_folder_and_side_table_key(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no Parquet files"):
        read_interactions(InteractionsSpec(path=tmp_path / "empty", columns=COLUMNS))
    users = write(tmp_path, pd.DataFrame({"id": [1], "age": [30]}), "users")
    with pytest.raises(DataError, match=r"data.users: .* no column 'uid' \(key\)"):
        read_side_table(SideTableSpec(path=users, key="uid"), "user_id", "data.users")
    table = read_side_table(SideTableSpec(path=users, key="id"), "user_id", "data.users")
    assert list(table.columns) == ["user_id", "age"]
