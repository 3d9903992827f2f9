"""Stage 2 business rules from the workflow file (``filter:``), resolved once per night into
small arrays (excluded item ids, available item ids, blocked pairs, item categories) that are
broadcast to the workers and applied to each partition with vectorised membership tests.

Every rule reports how many candidate rows it removed, so the run manifest can say why lists
look the way they do. The same rules guard the popular-items fallback that tops up short lists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.candidates.filters import pairs_isin
from pipeline.candidates.sorting import lexsort, rank_within
from pipeline.config import FilterSpec, ItemCondition
from pipeline.errors import ConfigError, DataError
from pipeline.io import ITEM, USER

RULE_SEEN = "seen"
RULE_UNAVAILABLE = "unavailable"
RULE_BLOCKLIST = "blocklist"
RULE_CATEGORY_CAP = "max_per_category"
NO_CATEGORY = -1


@dataclass(frozen=True)
class FilterRules:
    """The night's business rules in applied form.

    ``excluded``: rule name -> sorted item ids it removes; ``available``: the only item ids
    allowed (None: no availability table); ``blocklist``: (user_id, item_id) pairs removed;
    ``category``: item id -> integer category code and ``max_per_category`` its cap.
    """

    excluded: dict[str, np.ndarray] = field(default_factory=dict)
    available: np.ndarray | None = None
    blocklist: pd.DataFrame | None = None
    category: pd.Series | None = None
    max_per_category: int | None = None

    def masks(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """Per rule, which rows of ``frame`` (user_id, item_id) it removes (may overlap)."""
        items = frame[ITEM].to_numpy()
        out = {name: np.isin(items, ids) for name, ids in self.excluded.items()}
        if self.available is not None:
            out[RULE_UNAVAILABLE] = ~np.isin(items, self.available)
        if self.blocklist is not None:
            out[RULE_BLOCKLIST] = pairs_isin(frame[USER].to_numpy(), items, self.blocklist)
        return out

    def allowed_items(self, frame: pd.DataFrame) -> np.ndarray:
        """Rows no item rule (attributes, availability) removes, ignoring the block list."""
        blocklist_free = FilterRules(excluded=self.excluded, available=self.available)
        return blocklist_free.allowed(frame)

    def apply(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
        """Drop the rows any item or pair rule removes; each rule counts the rows it removed
        among those the earlier rules left (so the counts add up to the rows dropped)."""
        keep = np.ones(len(frame), dtype=bool)
        counts: dict[str, int] = {}
        for name, removes in self.masks(frame).items():
            counts[name] = int((keep & removes).sum())
            keep &= ~removes
        return frame.loc[keep].reset_index(drop=True), counts

    def allowed(self, frame: pd.DataFrame) -> np.ndarray:
        """Rows no item or pair rule removes (the fallback pool's guard)."""
        keep = np.ones(len(frame), dtype=bool)
        for removes in self.masks(frame).values():
            keep &= ~removes
        return keep

    def category_codes(self, items: np.ndarray) -> np.ndarray:
        """Integer category per item (``NO_CATEGORY`` for unknown items or missing values)."""
        if self.category is None:
            return np.full(len(items), NO_CATEGORY, dtype=np.int64)
        codes = self.category.reindex(items).to_numpy(dtype=np.float64, na_value=np.nan)
        return np.nan_to_num(codes, nan=NO_CATEGORY).astype(np.int64)

    def within_cap(self, ordered: pd.DataFrame) -> np.ndarray:
        """For rows ordered best first within each user: keep at most ``max_per_category``
        per (user, category); items without a category are never capped."""
        if self.max_per_category is None or len(ordered) == 0:
            return np.ones(len(ordered), dtype=bool)
        return within_cap(ordered[USER].to_numpy(), self.category_codes(ordered[ITEM].to_numpy()),
                          self.max_per_category)


def fallback_items(popular: pd.DataFrame, rules: FilterRules | None, k: int) -> pd.DataFrame:
    """The ``k`` most popular items the item rules allow, for users the lists do not know
    (per-user block lists cannot apply to an unknown user)."""
    if rules is None:
        return popular.head(k)
    items = popular[ITEM].to_numpy()
    probe = pd.DataFrame({USER: np.full(len(items), -1), ITEM: items})
    keep = rules.allowed_items(probe)
    if rules.max_per_category is not None:
        keep[keep] = rules.within_cap(probe[keep])
    return popular[keep].head(k)


def within_cap(users: np.ndarray, codes: np.ndarray, m: int) -> np.ndarray:
    """True where the row is among the first ``m`` of its (user, code) group in row order;
    rows with ``NO_CATEGORY`` are always kept. One stable sort by (user, code) instead of a
    two-column groupby (per user's run when users are grouped, see ``sorting.lexsort``)."""
    if len(users) == 0:
        return np.ones(0, dtype=bool)
    user_codes, _ = pd.factorize(users)
    key = user_codes.astype(np.int64) * (int(codes.max()) + 2) + (codes + 1)
    order = lexsort((codes, user_codes))  # the stable argsort of key
    position = np.empty(len(key), dtype=np.int64)
    position[order] = rank_within(key[order])
    return (position <= m) | (codes == NO_CATEGORY)


def require_column(table: pd.DataFrame, column: str, where: str, source: str) -> None:
    """ConfigError naming the key, the column and the columns the item table has."""
    if column not in table.columns:
        raise ConfigError(
            f"{where}: column '{column}' is not in the item table {source}; its columns "
            f"are: {', '.join(map(str, table.columns)) or '(none)'}; fix the column name or "
            "add it to data.items")


def condition_mask(table: pd.DataFrame, cond: ItemCondition, where: str,
                   source: str) -> np.ndarray:
    """Rows of the item table meeting ``cond``; an unknown column or a numeric test on text is
    a ConfigError naming the key, the column and the columns there are."""
    require_column(table, cond.column, where, source)
    values = table[cond.column]
    if cond.equals is not None:
        return (values == cond.equals).fillna(False).to_numpy(dtype=bool)
    if cond.in_ is not None:
        return values.isin(cond.in_).to_numpy(dtype=bool)
    if not pd.api.types.is_numeric_dtype(values):
        raise ConfigError(f"{where}: lt/gt need a numeric column, but '{cond.column}' in "
                          f"{source} holds {values.dtype}; use equals or in")
    if cond.lt is not None:
        return (values < cond.lt).fillna(False).to_numpy(dtype=bool)
    return (values > cond.gt).fillna(False).to_numpy(dtype=bool)


def resolve_rules(spec: FilterSpec, items: pd.DataFrame | None, items_source: str,
                  date: str | None) -> FilterRules | None:
    """Turn the ``filter`` section into ``FilterRules``: ``items`` is the item attribute table
    (column ``item_id`` plus attributes), ``date`` the run date the availability table is read
    for (``YYYY-MM-DD``). None when the section sets no business rule."""
    if not (spec.exclude_items_where or spec.max_per_category or spec.availability
            or spec.blocklist):
        return None
    needs_items = bool(spec.exclude_items_where) or spec.max_per_category is not None
    if needs_items and items is None:
        raise ConfigError("filter.exclude_items_where / filter.max_per_category read item "
                          "attributes, but the workflow has no data.items table; add "
                          "'data.items: {path: ..., key: ...}'")
    excluded: dict[str, np.ndarray] = {}
    for i, cond in enumerate(spec.exclude_items_where):
        where = f"filter.exclude_items_where[{i}]"
        hit = condition_mask(items, cond, where, items_source)
        name = f"exclude_items_where[{i}]:{cond.column}"
        excluded[name] = np.sort(items.loc[hit, ITEM].to_numpy())
    category = None
    cap = spec.max_per_category
    if cap is not None:
        require_column(items, cap.column, "filter.max_per_category", items_source)
        category = category_series(items, cap.column)
    available = None
    if spec.availability is not None:
        if date is None:
            raise ConfigError("filter.availability needs the run date")
        available = read_availability(spec.availability, date)
    blocklist = read_blocklist(spec.blocklist) if spec.blocklist is not None else None
    return FilterRules(excluded=excluded, available=available, blocklist=blocklist,
                       category=category, max_per_category=cap.m if cap else None)


def category_series(items: pd.DataFrame, column: str) -> pd.Series:
    """item id -> integer code of ``column`` (missing values: ``NO_CATEGORY``)."""
    codes, _ = pd.factorize(items[column], use_na_sentinel=True)
    return pd.Series(np.where(codes < 0, NO_CATEGORY, codes).astype(np.int64),
                     index=items[ITEM].to_numpy())


def _read_columns(path: Path, what: str, columns: list[str]) -> pd.DataFrame:
    if not path.exists():
        raise DataError(f"{what}: {path} does not exist; write the Parquet file or remove the "
                        "key from the workflow")
    frame = pd.read_parquet(path)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{what}: {path} lacks column(s) {', '.join(missing)}; it has "
                        f"{', '.join(map(str, frame.columns))}")
    return frame[columns]


def read_blocklist(path: Path) -> pd.DataFrame:
    """(user_id, item_id) pairs never to recommend, de-duplicated."""
    pairs = _read_columns(path, "filter.blocklist", [USER, ITEM])
    return pairs.drop_duplicates().reset_index(drop=True)


def read_availability(path: Path, date: str) -> np.ndarray:
    """Item ids available on ``date``; no rows for that date stops the run (a stale table
    would otherwise silently empty every list)."""
    table = _read_columns(path, "filter.availability", [ITEM, "date"])
    day = pd.Timestamp(date).normalize()
    dates = pd.to_datetime(table["date"]).dt.normalize()
    on_day = table.loc[(dates == day).to_numpy(), ITEM].to_numpy()
    if len(on_day) == 0:
        span = (f"it covers {dates.min().date()} to {dates.max().date()}" if len(dates)
                else "it is empty")
        raise DataError(f"filter.availability: {path} has no rows for the run date {date} "
                        f"({span}); write that day's availability or remove the key")
    return np.unique(on_day)
