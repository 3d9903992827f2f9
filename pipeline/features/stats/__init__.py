"""The mergeable statistics that ops fit, and the key machinery under them.

Each statistic is computed per partition, merged associatively (in a tree, or by key range)
and saved as Parquet: ``vocab`` (Categorify), ``moments`` and ``extremes`` (Normalize,
FillMissing, NormalizeMinMax), ``quantiles`` (FillMedian), ``group_moments`` (JoinGroupby,
CategorifyCombo), ``te_stats`` and ``te_table`` (TargetEncoding). Under them: ``keys``
(canonical key values), ``group_keys`` (one uint64 per row of a column group), ``key_index``
(finding keys), ``runs`` (runs of equal sorted values), ``hashing`` and ``folds``.
"""
