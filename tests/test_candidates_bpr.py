"""BPR matrix factorisation: it finds the item groups users interact with, saves its embeddings
as Parquet, and the exact top-N agrees with a full sort."""

from __future__ import annotations

from pathlib import Path

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from pipeline.candidates.bpr import BPRRetrieval, exact_top_n, read_embeddings, top_n_frame
from pipeline.errors import DataError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def grouped_interactions(users: int = 240, items: int = 120, groups: int = 4,
                         per_user: int = 12) -> pd.DataFrame:
    """User u likes only items of group u % groups; ids are strings to check raw ids survive."""
    rng = np.random.default_rng(0)
    rows = []
    for g in range(groups):
        group_items = np.arange(g, items, groups)
        group_users = np.arange(g, users, groups)
        picks = np.stack([rng.choice(group_items, per_user, replace=False) for _ in group_users])
        rows.append(pd.DataFrame({"user_id": np.repeat(group_users, per_user),
                                  "item_id": picks.reshape(-1)}))
    frame = pd.concat(rows, ignore_index=True)
    frame["user_id"] = "u" + frame["user_id"].astype(str)
    return frame


def test_bpr_learns_groups_and_saves_parquet(tmp_path: Path) -> None:
    frame = grouped_interactions()
    model = BPRRetrieval(dim=8, epochs=30, learning_rate=0.05, batch_size=512, seed=0,
                         device="cpu")
    model.fit(dd.from_pandas(frame, npartitions=3))  # a Dask frame is reduced to its pairs
    assert model.history_[-1] < model.history_[0] * 0.6
    model.save(tmp_path / "emb")
    users = pq.read_table(tmp_path / "emb" / "users.parquet")
    assert users.schema.field("embedding").type.list_size == 8
    uid, umat, _ = read_embeddings(tmp_path / "emb" / "users.parquet", "user_id")
    assert sorted(uid) == sorted(frame["user_id"].unique())
    np.testing.assert_array_equal(umat, model.user_factors_)
    top = top_n_frame(tmp_path / "emb", 10, device="cpu")
    assert len(top) == 240 * 10 and top.groupby("user_id")["rank"].max().eq(10).all()
    group = top["user_id"].str[1:].astype(int) % 4
    in_group = (top["item_id"] % 4 == group).mean()
    assert in_group > 0.8  # random lists would score 0.25


def test_exact_top_n_matches_a_full_sort() -> None:
    rng = np.random.default_rng(1)
    users, items = rng.normal(size=(37, 5)), rng.normal(size=(50, 5))
    bias = rng.normal(size=50)
    scores, index = exact_top_n(users, items, 7, item_bias=bias, block_size=8, device="cpu")
    full = users @ items.T + bias
    expected = np.argsort(-full, axis=1)[:, :7]
    np.testing.assert_array_equal(index, expected)
    np.testing.assert_allclose(scores, np.take_along_axis(full, expected, 1), rtol=1e-5)
    few_scores, few = exact_top_n(users, items[:3], 10, device="cpu")  # n > items: all of them
    assert few.shape == (37, 3) and (np.diff(few_scores, axis=1) <= 0).all()


def test_top_n_for_some_users_and_bad_input(tmp_path: Path) -> None:
    frame = grouped_interactions(users=40, items=20, per_user=4)
    BPRRetrieval(dim=4, epochs=2, device="cpu").fit(frame).save(tmp_path / "emb")
    top = top_n_frame(tmp_path / "emb", 3, user_ids=["u5", "nobody", "u7"], device="cpu")
    assert top["user_id"].tolist() == ["u5"] * 3 + ["u7"] * 3  # unknown users are left out
    with pytest.raises(DataError, match=r"lack column\(s\) \['item_id'\]"):
        BPRRetrieval().fit(frame.rename(columns={"item_id": "item"}))
    with pytest.raises(DataError, match="null"):
        BPRRetrieval().fit(pd.DataFrame({"user_id": ["a", None], "item_id": [1, 2]}))
