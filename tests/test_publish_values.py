"""The bulk encoder writes exactly the bytes ``keys.encode`` (plain ``json``) would, per user."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.publish.keys import encode, round_significant
from pipeline.publish.values import encode_partition

scores = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.integers(-1000, 1000).map(float),  # integral scores print with ".0"
    st.floats(1e-7, 1.0),
)
ids = st.one_of(st.integers(-(2**63), 2**63 - 1), st.text(max_size=6))


def expected(frame: pd.DataFrame) -> dict[str, str]:
    ordered = frame.sort_values(["user_id", "rank"], kind="stable")
    return {
        str(user): encode(
            group["item_id"].tolist(), round_significant(group["score"].to_numpy()).tolist()
        )
        for user, group in ordered.groupby("user_id", sort=False)
    }


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.integers(0, 5), st.integers(1, 4), ids, scores), min_size=1, max_size=40
    ),
    string_items=st.booleans(),
)
def test_bulk_encoding_matches_json(rows: list[tuple], string_items: bool) -> None:
    users, ranks, items, values = zip(*rows, strict=True)
    if string_items:
        items = tuple(f'é"{i}\\\n' if isinstance(i, int) else i for i in items)
    else:
        items = tuple(i if isinstance(i, int) else len(i) for i in items)
    frame = pd.DataFrame(
        {
            "user_id": np.array(users, dtype=np.int64),
            "rank": np.array(ranks, dtype=np.int64),
            "item_id": pd.Series(items, dtype=object if string_items else np.int64),
            "score": np.array(values, dtype=np.float64),
        }
    )
    encoded = encode_partition(frame)
    got = dict(zip(encoded.users.to_pylist(), encoded.values.to_pylist(), strict=True))
    assert got == expected(frame)
    assert encoded.k == frame.groupby("user_id").size().max()


def test_string_user_ids_and_sorted_input_take_the_fast_path() -> None:
    frame = pd.DataFrame(
        {
            "user_id": ["a", "a", "b", "ü"],
            "rank": [1, 2, 1, 1],
            "item_id": [3, 4, 5, 6],
            "score": [0.5, 0.25, 1e-9, 123456789012.0],
        }
    )
    encoded = encode_partition(frame)
    assert encoded.users.to_pylist() == ["a", "b", "ü"]
    assert dict(
        zip(encoded.users.to_pylist(), encoded.values.to_pylist(), strict=True)
    ) == expected(frame)


def test_ids_json_escapes_are_escaped_exactly_as_json_does() -> None:
    """DEL (0x7f) is ASCII but ``json`` escapes it; so are control, non-ASCII, quote, backslash."""
    items = ["\x7f", "a", "é", '"q', "b\\", "\x1f", "\u2028", "ok"]
    frame = pd.DataFrame(
        {
            "user_id": np.zeros(len(items), dtype=np.int64),
            "rank": np.arange(len(items)),
            "item_id": pd.Series(items, dtype=object),
            "score": np.full(len(items), 0.5),
        }
    )
    assert encode_partition(frame).values.to_pylist() == [expected(frame)["0"]]
