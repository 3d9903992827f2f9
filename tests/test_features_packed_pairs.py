"""Integer pairs keyed by their packed values (``group_keys.packed_keys``):
the bijection is inverted exactly, rows that do not fit 32 bits fall back to hashes, and target
statistics of packed, hashed and mixed pairs encode, merge and round-trip like the pandas
reference."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.features import TargetEncoding, Workflow
from pipeline.features.base import PartitionContext
from pipeline.features.stats.folds import fold_ids, row_fold_hash
from pipeline.features.stats.group_keys import (
    _spread,
    _unspread,
    key_of,
    packable_rows,
    packed_keys,
    unpack_pair,
)
from tests.test_features_ops_target_encoding import reference

uint64s = st.integers(0, 2**64 - 1)
# ids on both sides of the packable range [0, 2**32), and nulls
ids = st.one_of(st.none(), st.sampled_from([0, 1, 7, 2**32 - 1]),
                st.sampled_from([-1, 2**32, 2**40, -(2**63), 2**63 - 1]))


@given(st.lists(uint64s, max_size=50))
def test_unspread_inverts_spread(bits: list[int]) -> None:
    x = np.array(bits, dtype=np.uint64)
    np.testing.assert_array_equal(_unspread(_spread(x)), x)
    np.testing.assert_array_equal(_spread(_unspread(x)), x)


@given(st.lists(st.tuples(st.integers(-(2**63), 2**63 - 1), st.integers(-(2**63), 2**63 - 1)),
                min_size=1, max_size=40))
def test_packed_keys_unpack_and_hash_the_rest(pairs: list[tuple[int, int]]) -> None:
    a = np.array([p[0] for p in pairs], dtype=np.int64)
    b = np.array([p[1] for p in pairs], dtype=np.int64)
    fits = packable_rows((a, b), ("int", "int"))
    assert fits is not None
    np.testing.assert_array_equal(fits, (a >= 0) & (a < 2**32) & (b >= 0) & (b < 2**32))
    packed, all_packed = packed_keys((a, b), ("int", "int"))
    assert all_packed == bool(fits.all())
    hashed = key_of((a, b), ("int", "int"))
    np.testing.assert_array_equal(packed[~fits], hashed[~fits])
    got_a, got_b = unpack_pair(packed[fits])
    np.testing.assert_array_equal(got_a, a[fits])
    np.testing.assert_array_equal(got_b, b[fits])


def test_only_integer_pairs_pack() -> None:
    a = np.array([1, 2], dtype=np.int64)
    assert packable_rows((a,), ("int",)) is None
    assert packable_rows((a, a.astype(float)), ("int", "float")) is None
    assert packable_rows((a, a, a), ("int", "int", "int")) is None
    key, packed = packed_keys((a, a, a), ("int",) * 3)
    assert not packed
    np.testing.assert_array_equal(key, key_of((a, a, a), ("int",) * 3))


def pair_frame(data: list[tuple[int | None, int | None, float]]) -> pd.DataFrame:
    u, i, y = zip(*data, strict=True)
    return pd.DataFrame({"u": pd.Series(u, dtype="Int64"), "i": pd.Series(i, dtype="Int64"),
                         "y": np.array(y, dtype=np.float64)})


@settings(max_examples=25, deadline=None)
@given(data=st.lists(st.tuples(ids, ids, st.sampled_from([0.0, 1.0, 0.5])), min_size=1,
                     max_size=40).filter(lambda r: any(u is not None and i is not None
                                                       for u, i, _ in r)),
       kfold=st.integers(1, 3), seed=st.integers(0, 2))
def test_integer_pairs_encode_like_pandas(data: list, kfold: int, seed: int) -> None:
    frame = pair_frame(data)
    wf = Workflow([TargetEncoding([["u", "i"]], target="y", p_smooth=2.0, kfold=kfold,
                                  seed=seed)])
    train = wf.fit_transform(frame)
    folds = fold_ids(row_fold_hash(frame, ["u", "i"]), seed, kfold)
    expected = reference(frame, ["u", "i"], "y", 2.0, folds if kfold > 1 else None)
    np.testing.assert_allclose(train["TE_u_i_y"], expected, rtol=2e-6, atol=1e-6)
    infer = wf.transform(frame.drop(columns=["y"]))
    np.testing.assert_allclose(infer["TE_u_i_y"], reference(frame, ["u", "i"], "y", 2.0, None),
                               rtol=2e-6, atol=1e-6)


def test_packed_and_hashed_statistics_merge_to_the_whole(tmp_path) -> None:
    """One partition's pairs all pack, another's do not (ids past 32 bits): the merged
    statistics carry every key's values, equal the whole frame's, and survive save/load."""
    rng = np.random.default_rng(4)
    small = pd.DataFrame({"u": rng.integers(0, 20, 200), "i": rng.integers(0, 9, 200),
                          "y": rng.integers(0, 2, 200).astype(float)})
    large = small.assign(u=small["u"] + np.where(rng.random(200) < 0.5, 2**33, 0))
    frame = pd.concat([small, large], ignore_index=True)
    op = TargetEncoding([["u", "i"]], target="y", kfold=3)
    op.prepare(frame.dtypes)
    ctx = PartitionContext(frame, True)
    halves = (frame.iloc[:200], frame.iloc[200:])  # the rows of ``small``, of ``large``
    parts = [op.partition_stats(p, PartitionContext(p, True)) for p in halves]
    assert parts[0]["TE_u_i_y"].packed and not parts[1]["TE_u_i_y"].packed
    whole = op.partition_stats(frame, ctx)["TE_u_i_y"]
    merged = op.merge_stats(*parts)["TE_u_i_y"]
    for got in (merged, op.merge_stats(parts[1], parts[0])["TE_u_i_y"]):
        assert not got.packed
        np.testing.assert_array_equal(got.key, whole.key)
        for mine, theirs in zip(got.raw_values, whole.raw_values, strict=True):
            np.testing.assert_array_equal(mine, theirs)
        np.testing.assert_array_equal(got.count, whole.count)
        np.testing.assert_allclose(got.sum, whole.sum)

    # A packed statistic split into key ranges joins back packed, values still readable.
    packed = parts[0]["TE_u_i_y"]
    pieces = packed.split(4)
    joined = type(packed).concatenate(pieces)
    assert joined.packed and joined.values == ()
    np.testing.assert_array_equal(joined.raw_values[0], packed.raw_values[0])
    table = packed.table()
    assert set(zip(table["u"], table["i"], strict=True)) == set(
        zip(small["u"], small["i"], strict=True))

    wf = Workflow([TargetEncoding([["u", "i"]], target="y", kfold=3)])
    wf.fit(frame)
    wf.save(tmp_path)
    loaded = Workflow.load(tmp_path)
    pd.testing.assert_frame_equal(loaded.transform(frame), wf.transform(frame))


def test_a_hashed_pair_does_not_collide_with_the_packed_pair_of_its_bits() -> None:
    """pandas hashes 0 to 0, so the hashed pair (0, b) was keyed like the packed pair whose bits
    are b: (0, 2**32) and (1, 0) collided (found by the property test above)."""
    frame = pair_frame([(0, 2**32, 0.0), (1, 0, 1.0), (1, 0, 0.0), (0, 2**32, 1.0)])
    wf = Workflow([TargetEncoding([["u", "i"]], target="y", p_smooth=2.0, kfold=1)])
    got = wf.fit_transform(frame)
    np.testing.assert_allclose(got["TE_u_i_y"], reference(frame, ["u", "i"], "y", 2.0, None),
                               rtol=2e-6)
    a, b = np.array([0, 1], dtype=np.int64), np.array([2**32, 0], dtype=np.int64)
    key, packed = packed_keys((a, b), ("int", "int"))
    assert not packed and key[0] != key[1]


def test_a_packed_table_encodes_rows_that_do_not_pack() -> None:
    """Fitted on pairs that all pack, applied to rows whose ids do not fit 32 bits: those rows
    are unseen (the prior), the packed ones keep their encodings."""
    fit = pair_frame([(1, 0, 1.0), (1, 0, 0.0), (2, 5, 1.0), (0, 7, 0.0)])
    wf = Workflow([TargetEncoding([["u", "i"]], target="y", p_smooth=2.0, kfold=1)])
    wf.fit(fit)
    op = next(o for o in wf.ops if isinstance(o, TargetEncoding))
    assert op.stats_["TE_u_i_y"].packed
    serve = pair_frame([(1, 0, 0.0), (0, 2**32, 0.0), (-1, 5, 0.0), (2, 5, 0.0)])
    got = wf.transform(serve.drop(columns=["y"]))["TE_u_i_y"].to_numpy()
    both = pd.concat([fit, serve.assign(y=np.nan)], ignore_index=True)
    expected = reference(both, ["u", "i"], "y", 2.0, None)[len(fit):]
    np.testing.assert_allclose(got, expected, rtol=2e-6)
    assert got[1] == got[2] == np.float32(fit["y"].mean())
