"""Writing features: which columns are dictionary encoded."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from pipeline.features.output import DICTIONARY_PAGE_BYTES, dictionary_columns, to_parquet


def test_only_categoricals_whose_codes_fit_a_dictionary_page(tmp_path) -> None:
    fits = DICTIONARY_PAGE_BYTES // 8
    schema = {
        "small": {"tags": ["categorical"], "cardinality": 40},
        "edge": {"tags": ["categorical"], "cardinality": fits},
        "large": {"tags": ["categorical"], "cardinality": fits + 1},
        "unknown": {"tags": ["categorical"]},
        "x": {"tags": ["continuous"]},
    }
    assert dictionary_columns(schema) == ["small", "edge", "unknown"]

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"small": rng.integers(0, 40, 5000), "large": np.arange(5000),
                          "x": rng.random(5000)})
    assert to_parquet(frame, tmp_path, schema) == 5000
    meta = pq.ParquetFile(tmp_path / "part_0000.parquet").metadata.row_group(0)
    encodings = {meta.column(i).path_in_schema: meta.column(i).encodings
                 for i in range(meta.num_columns)}
    assert any("DICTIONARY" in e for e in encodings["small"])
    assert not any("DICTIONARY" in e for e in encodings["large"] + encodings["x"])
