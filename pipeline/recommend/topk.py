"""Stage 4, keep the best k per user, and top short lists up from the popularity ranking so
every user gets a full list when the catalogue allows."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from pipeline.candidates.filters import pairs_isin
from pipeline.candidates.sorting import lexsort, rank_within
from pipeline.io import ITEM, USER

LIST_COLUMNS = [USER, "rank", ITEM, "score", "source"]
SOURCE_FALLBACK = "fallback"

RowMask = Callable[[pd.DataFrame], np.ndarray]


def top_k(scored: pd.DataFrame, k: int, key: str = "score") -> pd.DataFrame:
    """Best ``k`` rows per user by ``key`` (ties by item id), with 1-based ``rank``."""
    order = best_first(scored, key)
    users = scored[USER].to_numpy()[order]
    rank = rank_within(users)
    best = scored.iloc[order[rank <= k]].assign(rank=rank[rank <= k])
    return _listed(best)


def first_k(ordered: pd.DataFrame, k: int) -> pd.DataFrame:
    """The first ``k`` rows per user of rows already sorted best first, with ``rank``."""
    rank = rank_within(ordered[USER].to_numpy())
    best = ordered.loc[rank <= k].assign(rank=rank[rank <= k])
    return _listed(best)


def _listed(best: pd.DataFrame) -> pd.DataFrame:
    """The list columns, ``source`` as plain strings (candidates carry it as a categorical)."""
    out = best[LIST_COLUMNS].reset_index(drop=True)
    source = out["source"].array
    if isinstance(source, pd.Categorical):  # a take of the few names, not a cast of every row
        names = pd.array(np.asarray(source.categories, dtype=object), dtype="str")
        out["source"] = names.take(source.codes, allow_fill=True)
    else:
        out["source"] = out["source"].astype("str")
    return out


def best_first(frame: pd.DataFrame, key: str = "score") -> np.ndarray:
    """Row order by user, then ``key`` descending, then item id (stable argsort passes rather
    than ``sort_values`` on three columns)."""
    value = frame[key].to_numpy(dtype=np.float64)
    users, items = frame[USER].to_numpy(), frame[ITEM].to_numpy()
    if _sorted_by_user_then_item(users, items):  # as retrieval emits them: skip the item pass
        return lexsort((-value, users))
    return lexsort((items, -value, users))


def _sorted_by_user_then_item(users: np.ndarray, items: np.ndarray) -> bool:
    if len(users) < 2 or users.dtype.kind not in "iu" or items.dtype.kind not in "iu":
        return False
    same = users[1:] == users[:-1]
    return bool((users[1:] >= users[:-1]).all() and (items[1:][same] > items[:-1][same]).all())




def fill_short_lists(
    lists: pd.DataFrame, users: np.ndarray, popular: pd.DataFrame, seen: pd.DataFrame, k: int,
    *, allowed: RowMask | None = None, capped: RowMask | None = None,
) -> pd.DataFrame:
    """Append popular, unseen, not-yet-listed items to users with fewer than ``k`` rows.

    ``allowed(frame)`` and ``capped(frame)`` let the night's filter rules guard the fallback:
    the first drops (user, item) rows a rule removes, the second gets each user's list followed
    by the candidate fillers, best first, and keeps rows within the category cap. Only short
    lists are touched; the popular items are tried in a head first (most users need few) and
    in full only for users still short after it.
    """
    head = min(len(popular), 4 * k + int(seen.groupby(USER).size().max() if len(seen) else 0))
    for size in dict.fromkeys((head, len(popular))):
        lists = _fill_from(lists, users, popular.head(size), seen, k, allowed, capped)
    return lists


def _fill_from(lists: pd.DataFrame, users: np.ndarray, popular: pd.DataFrame,
               seen: pd.DataFrame, k: int, allowed: RowMask | None,
               capped: RowMask | None) -> pd.DataFrame:
    have = lists.groupby(USER).size().reindex(users, fill_value=0)
    short = have[have < k]
    if short.empty or popular.empty:
        return lists
    short_users = short.index.to_numpy()
    pool = pd.DataFrame(
        {
            USER: np.repeat(short_users, len(popular)),
            ITEM: np.tile(popular[ITEM].to_numpy(), len(short_users)),
        }
    )
    mine = lists[USER].isin(short_users).to_numpy()
    taken = pd.concat([seen[[USER, ITEM]], lists.loc[mine, [USER, ITEM]]])
    pool = pool[~pairs_isin(pool[USER].to_numpy(), pool[ITEM].to_numpy(), taken)]
    if allowed is not None:
        pool = pool[allowed(pool)]
    if capped is not None:
        pool = _within_cap(lists.loc[mine, [USER, ITEM]], pool, capped)
    order = pool.groupby(USER, sort=False).cumcount().to_numpy()
    start = short.reindex(pool[USER].to_numpy()).to_numpy()
    needed = order < k - start
    pool, start, order = pool[needed], start[needed], order[needed]
    extra = pd.DataFrame(
        {
            USER: pool[USER].to_numpy(),
            "rank": start + order + 1,
            ITEM: pool[ITEM].to_numpy(),
            "score": np.zeros(len(pool), dtype=np.float32),
            "source": pd.array([SOURCE_FALLBACK] * len(pool), dtype="str"),
        }
    )
    combined = pd.concat([lists, extra], ignore_index=True)
    return combined.sort_values([USER, "rank"], kind="stable").reset_index(drop=True)


def _within_cap(listed: pd.DataFrame, pool: pd.DataFrame, capped: RowMask) -> pd.DataFrame:
    """Pool rows that keep each user within the category cap, counting the listed items."""
    both = pd.concat([listed.assign(_pool=False), pool[[USER, ITEM]].assign(_pool=True)],
                     ignore_index=True)
    both["_row"] = np.r_[np.full(len(listed), -1), np.arange(len(pool))]
    both = both.sort_values(USER, kind="stable")  # a user's list first, then its fillers
    keep = capped(both) & both["_pool"].to_numpy()
    rows = np.sort(both["_row"].to_numpy()[keep])
    return pool.iloc[rows]
