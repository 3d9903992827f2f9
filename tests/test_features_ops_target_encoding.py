"""TargetEncoding against a plain pandas reference: multi-column groups, several targets,
out-of-fold values, and statistics that survive save/load with their folds."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.features import TargetEncoding, Workflow
from pipeline.features.stats.folds import fold_ids, row_fold_hash

rows = st.lists(
    st.tuples(
        st.one_of(st.none(), st.integers(0, 3)),
        st.sampled_from(["a", "b", "c"]),
        st.one_of(st.none(), st.sampled_from([0.0, 1.0])),
        st.floats(-5, 5, allow_nan=False),
    ),
    min_size=1,
    max_size=50,
).filter(lambda r: any(y is not None and u is not None for u, _, y, _ in r))


def frame_of(data: list) -> pd.DataFrame:
    u, i, y, r = zip(*data, strict=True)
    return pd.DataFrame(
        {
            "user": pd.Series(u, dtype="Int64"),
            "item": pd.Series(i, dtype="str"),
            "click": pd.Series(y, dtype="float64"),
            "rating": np.array(r, dtype=np.float64),
        }
    )


def reference(
    frame: pd.DataFrame, keys: list[str], target: str, p: float, folds: np.ndarray | None
) -> np.ndarray:
    """Plain pandas: per fold, smoothed means from the other folds' rows (all rows if None)."""
    fold = np.zeros(len(frame), dtype=int) if folds is None else folds
    out = np.empty(len(frame))
    for f in np.unique(fold):
        rest = frame[fold != f] if folds is not None else frame
        rest = rest[rest[target].notna()]
        prior = rest[target].mean() if len(rest) else frame[target].mean()
        stats = rest.dropna(subset=keys).groupby(keys)[target].agg(["sum", "size"])
        lookup = frame[keys].merge(stats.reset_index(), on=keys, how="left")
        s, n = lookup["sum"].fillna(0).to_numpy(), lookup["size"].fillna(0).to_numpy()
        enc = (s + p * prior) / np.where(n + p > 0, n + p, 1)
        enc = np.where(n + p > 0, enc, prior)
        enc = np.where(frame[keys].isna().any(axis=1), prior, enc)
        out[fold == f] = enc[fold == f]
    return out.astype(np.float32)


@settings(max_examples=20, deadline=None)
@given(data=rows, p=st.sampled_from([0.0, 1.0, 20.0]), kfold=st.integers(1, 4),
       seed=st.integers(0, 3))
def test_groups_and_targets_match_pandas(data: list, p: float, kfold: int, seed: int) -> None:
    frame = frame_of(data)
    op = TargetEncoding(["user", ["user", "item"]], target=["click", "rating"], p_smooth=p,
                        kfold=kfold, seed=seed)
    wf = Workflow([op])
    train = wf.fit_transform(frame)
    infer = wf.transform(frame.drop(columns=["click", "rating"]))
    folds = fold_ids(row_fold_hash(frame, ["user", "item"]), seed, kfold)
    for keys in (["user"], ["user", "item"]):
        for target in ("click", "rating"):
            name = "TE_" + "_".join(keys) + "_" + target
            expected_train = reference(frame, keys, target, p, folds if kfold > 1 else None)
            np.testing.assert_allclose(train[name], expected_train, rtol=2e-6, atol=1e-6)
            np.testing.assert_allclose(infer[name], reference(frame, keys, target, p, None),
                                       rtol=2e-6, atol=1e-6)
            assert infer[name].dtype == np.float32


def test_null_target_rows_of_a_fold_their_key_lacks() -> None:
    """A training row with a null target adds no entry for its fold; its out-of-fold value
    then uses every entry of its key (the table has no entry to read for it)."""
    rng = np.random.default_rng(3)
    n = 400
    frame = pd.DataFrame({
        "user": pd.Series(rng.integers(0, 40, n), dtype="Int64"),
        "item": pd.Series(rng.choice(["a", "b"], n), dtype="str"),
        "click": pd.Series(np.where(rng.random(n) < 0.6, np.nan, rng.integers(0, 2, n)),
                           dtype="float64"),
        "rating": rng.normal(size=n),
    })
    op = TargetEncoding(["user"], target="click", p_smooth=2.0, kfold=7, seed=1)
    train = Workflow([op]).fit_transform(frame)
    folds = fold_ids(row_fold_hash(frame, ["user"]), 1, 7)
    known = frame[frame["click"].notna()]
    entries = set(zip(known["user"], folds[frame["click"].notna().to_numpy()], strict=True))
    lacking = [(u, f) not in entries and u in set(known["user"])
               for u, f in zip(frame["user"], folds, strict=True)]
    assert sum(lacking) > 20  # the case under test happens
    np.testing.assert_allclose(train["TE_user_click"],
                               reference(frame, ["user"], "click", 2.0, folds), rtol=2e-6)


def test_null_target_rows_of_keys_seen_in_one_fold() -> None:
    """Out of fold, the table leaves out keys seen in one fold; a null-target row of such a
    key still gets that fold's entry when it sits in another fold, the prior in the same one."""
    users = np.arange(300)
    frame = pd.DataFrame({
        "user": pd.Series(np.r_[users, users], dtype="Int64"),
        "click": np.r_[np.arange(300) % 2, np.full(300, np.nan)],
    })
    op = TargetEncoding(["user"], target="click", p_smooth=1.0, kfold=3, seed=5)
    train = Workflow([op]).fit_transform(frame)
    folds = fold_ids(row_fold_hash(frame, ["user"]), 5, 3)
    same = folds[300:] == folds[:300]
    assert 50 < same.sum() < 250  # both cases happen
    expected = reference(frame, ["user"], "click", 1.0, folds)
    np.testing.assert_allclose(train["TE_user_click"], expected, rtol=2e-6)
    priors = expected[:300]  # every key is seen once: its row encodes to its fold's prior
    assert len(np.unique(expected[300:][~same])) > len(np.unique(priors))


def test_out_of_fold_state_round_trips_and_merges(tmp_path) -> None:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"u": rng.integers(0, 30, 400), "i": rng.integers(0, 20, 400),
                          "y": rng.integers(0, 2, 400)})
    wf = Workflow([TargetEncoding(["u", ["u", "i"]], target="y", p_smooth=3.0, kfold=3)])
    train = wf.fit_transform(frame)
    wf.save(tmp_path)
    loaded = Workflow.load(tmp_path)
    pd.testing.assert_frame_equal(loaded.transform(frame), wf.transform(frame))
    op = next(o for o in loaded.ops if isinstance(o, TargetEncoding))
    fitted = next(o for o in wf.ops if isinstance(o, TargetEncoding))
    for name, stats in fitted.stats_.items():
        again = op.stats_[name]
        assert again.n_folds == 3
        np.testing.assert_array_equal(again.key, stats.key)
        np.testing.assert_array_equal(again.count, stats.count)
        np.testing.assert_array_equal(again.fold, stats.fold)
    # Out-of-fold values need the per-fold statistics: the loaded op still gives them.
    from pipeline.features.base import PartitionContext

    got = op.transform(frame, PartitionContext(frame, out_of_fold=True))
    np.testing.assert_array_equal(got["TE_u_y"], train["TE_u_y"].to_numpy())


def test_split_statistics_merge_to_the_whole() -> None:
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"u": rng.integers(0, 50, 300).astype(str), "i": rng.integers(0, 9, 300),
                          "y": rng.random(300)})
    op = TargetEncoding([["u", "i"]], target="y", kfold=4)
    op.prepare(frame.dtypes)
    from pipeline.features.base import PartitionContext

    whole = op.partition_stats(frame, PartitionContext(frame, True))
    parts = [op.partition_stats(frame.iloc[a:b], PartitionContext(frame.iloc[a:b], True))
             for a, b in ((0, 70), (70, 71), (71, 300))]
    merged = op.merge_stats(op.merge_stats(parts[0], parts[1]), parts[2])
    for name in whole:
        w, m = whole[name], merged[name]
        np.testing.assert_array_equal(w.key, m.key)
        np.testing.assert_array_equal(w.indptr, m.indptr)
        np.testing.assert_array_equal(w.count, m.count)
        np.testing.assert_allclose(w.sum, m.sum)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**16), n=st.integers(1, 300), ranges=st.integers(1, 6),
       pair=st.booleans(), text=st.booleans())
def test_key_ranges_give_the_several_fold_keys_of_the_whole(
    seed: int, n: int, ranges: int, pair: bool, text: bool
) -> None:
    """The keys of several folds, taken range by range straight into one table, are those of
    the joined statistics (packed pairs, hashed strings and plain ids alike)."""
    from pipeline.features.base import PartitionContext
    from pipeline.features.stats.te_stats import KeyRanges

    rng = np.random.default_rng(seed)
    users = rng.integers(0, 40, n)
    frame = pd.DataFrame({"u": users.astype(str) if text else users,
                          "i": rng.integers(0, 15, n), "y": rng.integers(0, 2, n)})
    op = TargetEncoding([["u", "i"] if pair else "u"], target="y", kfold=3)
    op.prepare(frame.dtypes)
    (stats,) = op.partition_stats(frame, PartitionContext(frame, True)).values()
    expected = stats.several_folds()
    got = KeyRanges(list(stats.split(ranges))).several_folds()
    for field in ("key", "indptr", "fold", "count", "sum", "total_count", "total_sum"):
        np.testing.assert_array_equal(getattr(got, field), getattr(expected, field))
    for a, b in zip(got.raw_values, expected.raw_values, strict=True):
        np.testing.assert_array_equal(a, b)
    assert got.packed == expected.packed
