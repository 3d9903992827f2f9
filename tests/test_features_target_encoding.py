"""TargetEncoding: smoothed group means, unseen -> global mean, out-of-fold training values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.errors import ConfigError, DataError
from pipeline.features import Categorify, TargetEncoding, Workflow
from pipeline.features.stats.folds import fold_ids, row_fold_hash

TRAIN = pd.DataFrame(
    {
        "item_id": ["a", "a", "b", "b", "b", "c"],
        "user_id": [1, 2, 1, 1, 2, 2],
        "relevant": [1, 0, 1, 1, 0, 1],
    }
)


def test_smoothed_means_and_unseen_keys() -> None:
    wf = Workflow([TargetEncoding(["item_id"], target="relevant", p_smooth=1.0)]).fit(TRAIN)
    # Inference frames need no target column.
    out = wf.transform(pd.DataFrame({"item_id": ["a", "b", "c", "zzz", None]}))
    g = 4 / 6
    expected = [(1 + g) / 3, (2 + g) / 4, (1 + g) / 2, g, g]
    assert out["TE_item_id_relevant"].dtype == np.float32
    np.testing.assert_allclose(out["TE_item_id_relevant"], np.float32(expected), rtol=1e-7)
    assert list(out.columns) == ["item_id", "TE_item_id_relevant"]


def test_multi_column_groups_and_names() -> None:
    te = TargetEncoding(["item_id", ["user_id", "item_id"]], target="relevant", p_smooth=0.0)
    out = Workflow([te]).fit(TRAIN).transform(TRAIN)
    assert out["TE_user_id_item_id_relevant"].tolist() == [1.0, 0.0, 1.0, 1.0, 0.0, 1.0]
    np.testing.assert_allclose(out["TE_item_id_relevant"], [0.5, 0.5, 2 / 3, 2 / 3, 2 / 3, 1.0])


def test_te_reads_raw_keys_even_when_categorify_replaces_them() -> None:
    wf = Workflow(
        [Categorify(["item_id"]), TargetEncoding(["item_id"], target="relevant", p_smooth=0.0)]
    )
    out = wf.fit(TRAIN).transform(TRAIN)
    assert out["item_id"].tolist() == [4, 4, 3, 3, 3, 5]
    np.testing.assert_allclose(out["TE_item_id_relevant"], [0.5, 0.5, 2 / 3, 2 / 3, 2 / 3, 1.0])


def reference_oof(frame: pd.DataFrame, p: float, kfold: int, seed: int) -> np.ndarray:
    """Plain pandas: per fold, encode its rows from the other folds' rows only."""
    folds = fold_ids(row_fold_hash(frame, ["item_id"]), seed, kfold)
    out = np.empty(len(frame))
    for f in range(kfold):
        rest = frame[folds != f]
        prior = rest["relevant"].mean()
        means = rest.groupby("item_id")["relevant"].agg(["sum", "size"])
        for i in np.flatnonzero(folds == f):
            key = frame["item_id"].iloc[i]
            s, n = means.loc[key] if key in means.index else (0.0, 0)
            out[i] = (s + p * prior) / (n + p)
    return out


def test_fit_transform_gives_out_of_fold_values() -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "item_id": rng.choice(list("abcde"), 200),
            "ts": np.arange(200),
            "relevant": rng.integers(0, 2, 200),
        }
    )
    wf = Workflow([TargetEncoding(["item_id"], target="relevant", p_smooth=5.0, kfold=4, seed=7)])
    train = wf.fit_transform(frame)["TE_item_id_relevant"].to_numpy()
    np.testing.assert_allclose(train, reference_oof(frame, 5.0, 4, 7), rtol=1e-6)
    # Inference uses all rows; training values differ from it.
    infer = wf.transform(frame)["TE_item_id_relevant"].to_numpy()
    assert not np.allclose(train, infer)
    # A different seed assigns different folds.
    wf2 = Workflow([TargetEncoding(["item_id"], target="relevant", p_smooth=5.0, kfold=4, seed=8)])
    assert not np.allclose(wf2.fit_transform(frame)["TE_item_id_relevant"], train)


def test_kfold_1_means_in_sample_values() -> None:
    wf = Workflow([TargetEncoding(["item_id"], target="relevant", kfold=1)])
    a = wf.fit_transform(TRAIN)
    pd.testing.assert_frame_equal(a, wf.transform(TRAIN))


def test_continuous_target_and_null_targets() -> None:
    frame = pd.DataFrame({"k": [1, 1, 2, 2], "y": [0.5, None, 2.5, 1.5]})
    out = Workflow([TargetEncoding(["k"], target="y", p_smooth=0.0)]).fit(frame).transform(frame)
    assert out["TE_k_y"].tolist() == [0.5, 0.5, 2.0, 2.0]


def test_non_numeric_target_is_a_data_error() -> None:
    frame = pd.DataFrame({"k": [1, 2], "y": ["yes", "no"]})
    with pytest.raises(DataError, match=r"target column 'y'.*must be numeric"):
        Workflow([TargetEncoding(["k"], target="y")]).fit(frame)


def test_all_null_target_is_a_data_error() -> None:
    frame = pd.DataFrame({"k": [1, 2], "y": [np.nan, np.nan]})
    with pytest.raises(DataError, match="no non-null values"):
        Workflow([TargetEncoding(["k"], target="y")]).fit(frame)


@pytest.mark.parametrize(
    "params",
    [
        {"columns": ["k"], "target": "k"},
        {"columns": ["k"], "target": "y", "p_smooth": -1},
        {"columns": ["k"], "target": "y", "kfold": 0},
        {"columns": ["k"], "target": "y", "kfold": 65},  # a fold bitmask is one uint64
        {"columns": [], "target": "y"},
        {"columns": ["k", "k"], "target": "y"},
    ],
)
def test_bad_parameters(params: dict) -> None:
    with pytest.raises(ConfigError):
        TargetEncoding(**params)


def test_out_of_fold_encodings_do_not_anticorrelate_with_the_label() -> None:
    """Folds must not depend on the target: with the label in the fold hash, one key's positives
    shared a fold, so each positive's encoding left out exactly the other positives."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"item_id": np.zeros(2000, dtype=np.int64),
                          "relevant": rng.integers(0, 2, 2000).astype(np.float64)})
    out = Workflow([TargetEncoding(["item_id"], target="relevant", kfold=5)]).fit_transform(frame)
    corr = np.corrcoef(out["TE_item_id_relevant"], frame["relevant"])[0, 1]
    assert abs(corr) < 0.1, corr
    assert out["TE_item_id_relevant"].nunique() == 5  # one value per fold of the single key
