"""The embedding generator: exact top-N against a brute-force numpy reference, faiss against
exact, the per-row signal, the merge with the other generators, and retraining only when the
model's inputs change."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.candidates import embedding as emb
from pipeline.candidates.bpr import BPRRetrieval, fit_retrieval
from pipeline.candidates.embedding import EmbeddingIndex, resolve_search
from pipeline.candidates.generators import (
    NO_RANK,
    merge_candidates,
    popularity_candidates,
)
from pipeline.errors import ConfigError, DataError


def random_index(users: int, items: int, dim: int = 8, seed: int = 0) -> EmbeddingIndex:
    rng = np.random.default_rng(seed)
    return EmbeddingIndex(
        users=pd.Index(np.arange(100, 100 + users)),
        user_vectors=rng.normal(size=(users, dim)).astype(np.float32),
        items=pd.Index(np.arange(1, items + 1) * 10),
        item_vectors=rng.normal(size=(items, dim)).astype(np.float32),
        item_bias=rng.normal(scale=0.1, size=items).astype(np.float32))


def brute_force(index: EmbeddingIndex, user: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    at = index.users.get_loc(user)
    scores = index.item_vectors @ index.user_vectors[at] + index.item_bias
    order = np.argsort(-scores, kind="stable")[:n]
    return index.items.to_numpy()[order], scores[order]


@pytest.mark.parametrize("backend", ["faiss-flat", "torch"])
def test_exact_top_n_matches_brute_force_and_skips_unknown_users(
        backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if backend == "torch":  # what runs without faiss (and on a GPU)
        monkeypatch.setattr(emb, "_optional_faiss", lambda: None)
    else:
        pytest.importorskip("faiss")
    index = random_index(users=30, items=50)
    asked = np.array([100, 7, 105, 129])  # 7 has no vector
    top = index.top_n(asked, n=12, search="exact")
    assert list(top["user_id"].unique()) == [100, 105, 129]
    for user, rows in top.groupby("user_id"):
        items, scores = brute_force(index, user, 12)
        assert rows["emb_rank"].tolist() == list(range(1, 13))
        np.testing.assert_array_equal(rows["item_id"].to_numpy(), items)
        np.testing.assert_allclose(rows["emb_score"].to_numpy(), scores, rtol=1e-5, atol=1e-5)


def test_top_n_larger_than_the_catalogue_returns_every_item() -> None:
    index = random_index(users=3, items=5)
    top = index.top_n(np.array([100, 101]), n=20, search="exact")
    assert top.groupby("user_id").size().tolist() == [5, 5]


def test_no_known_users_gives_an_empty_frame_with_the_columns() -> None:
    top = random_index(users=3, items=5).top_n(np.array([1, 2]), n=4, search="exact")
    assert top.empty and list(top.columns) == ["user_id", "item_id", "emb_score", "emb_rank"]


def test_faiss_search_finds_nearly_the_exact_top_n() -> None:
    pytest.importorskip("faiss")
    index = random_index(users=40, items=3000, dim=16, seed=3)
    users = index.users.to_numpy()
    exact = index.top_n(users, n=20, search="exact")
    approx = random_index(users=40, items=3000, dim=16, seed=3).top_n(users, n=20,
                                                                     search="faiss")
    hits = exact.merge(approx, on=["user_id", "item_id"]).shape[0]
    assert hits / len(exact) >= 0.95
    # whatever it returns is scored as the model scores it, best first
    np.testing.assert_allclose(approx["emb_score"].to_numpy(),
                               index.pair_scores(approx["user_id"].to_numpy(),
                                                 approx["item_id"].to_numpy()),
                               rtol=1e-4, atol=1e-4)
    assert (approx.groupby("user_id")["emb_score"].diff().dropna() <= 1e-6).all()


def test_auto_search_picks_faiss_only_for_large_catalogues() -> None:
    assert resolve_search("auto", 1_000, 200_000) == "exact"
    assert resolve_search("exact", 10**7, 1) == "exact"
    expected = "faiss" if emb._optional_faiss() is not None else "exact"
    assert resolve_search("auto", 300_000, 200_000) == expected


def test_faiss_asked_for_but_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "faiss", None)  # import faiss -> ImportError
    with pytest.raises(ConfigError, match="pip install faiss-cpu"):
        resolve_search("faiss", 10, 1)
    assert resolve_search("auto", 10**6, 1) == "exact"


def test_pair_scores_are_the_dot_product_plus_bias_and_nan_for_new_ids() -> None:
    index = random_index(users=4, items=6)
    users = np.array([100, 103, 999, 101])
    items = np.array([20, 60, 20, 12345])
    scores = index.pair_scores(users, items)
    expected = index.user_vectors[[0, 3]] * index.item_vectors[[1, 5]]
    np.testing.assert_allclose(scores[:2], expected.sum(1) + index.item_bias[[1, 5]],
                               rtol=1e-6)
    assert np.isnan(scores[2:]).all()


def test_merge_keeps_the_embedding_rank_and_source_on_both_merge_paths() -> None:
    popular = pd.DataFrame({"item_id": [10, 20, 30], "pop_rank": [1, 2, 3]})
    by_pop = popularity_candidates(np.array([1, 2]), popular, 2)
    by_cooc = pd.DataFrame({"user_id": [1], "item_id": [30], "cooc_score": np.float32(0.5),
                            "cooc_rank": [1]})
    by_emb = pd.DataFrame({"user_id": [1, 2, 2], "item_id": [20, 40, 10],
                           "emb_score": np.float32([1.0, 0.9, 0.2]), "emb_rank": [1, 1, 2]})
    found = {"popularity": by_pop, "cooccurrence": by_cooc, "embedding": by_emb}
    fast = merge_candidates(found)
    text = {"user_id": str, "item_id": str}
    plain = merge_candidates({name: frame.astype(text) for name, frame in found.items()})
    for merged in (fast, plain):
        got = merged.astype(text).set_index(["user_id", "item_id"]).sort_index()
        assert got.loc[("2", "40"), "source"] == "embedding"
        assert got.loc[("2", "10"), "source"] == "popularity+embedding"
        assert got.loc[("1", "30"), "source"] == "cooccurrence"
        assert got.loc[("1", "30"), "emb_rank"] == NO_RANK
        assert got.loc[("2", "10"), "emb_rank"] == 2
        assert "emb_score" not in got.columns  # a signal computed for every row instead
        assert len(got) == 6


def test_fit_retrieval_retrains_only_when_its_inputs_change(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    events = pd.DataFrame({"user_id": rng.integers(0, 30, 600),
                           "item_id": rng.integers(0, 40, 600),
                           "timestamp": rng.integers(0, 1000, 600)})
    params = {"dim": 4, "epochs": 2, "seed": 0}
    out = tmp_path / "cutoff-500"
    fit_retrieval(events, 500, params, out)
    card = json.loads((out / "retrieval.json").read_text())
    assert card["cutoff"] == 500 and card["params"] == params
    stamp = (out / "items.parquet").stat().st_mtime_ns
    fit_retrieval(events, 500, params, out)
    assert (out / "items.parquet").stat().st_mtime_ns == stamp  # kept: same cutoff and params
    fit_retrieval(events, 500, {**params, "dim": 6}, out)
    assert EmbeddingIndex.load(out).user_vectors.shape[1] == 6
    # only the history before the cutoff trains it
    before = events[events["timestamp"] < 500]
    assert set(EmbeddingIndex.load(out).users) == set(before["user_id"])


def test_loaded_model_scores_what_bpr_learned(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    events = pd.DataFrame({"user_id": rng.integers(0, 20, 400),
                           "item_id": rng.integers(0, 25, 400)})
    model = BPRRetrieval(dim=4, epochs=3).fit(events)
    model.save(tmp_path)
    index = EmbeddingIndex.load(tmp_path)
    expected = model.user_factors_[0] @ model.item_factors_[3] + model.item_bias_[3]
    got = index.pair_scores(np.array([model.user_ids_[0]]), np.array([model.item_ids_[3]]))
    np.testing.assert_allclose(got, [expected], rtol=1e-5)


def test_missing_model_folder_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=str(tmp_path)):
        EmbeddingIndex.load(tmp_path)
