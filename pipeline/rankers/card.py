"""The ranker card: ``ranker.json`` beside every saved model, saying which kind of ranker
trained it and on which features. Both kinds of ranker write it and the scorers read it, so a
model folder explains itself without importing either trainer."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pipeline.errors import DataError

CARD_FILE = "ranker.json"
XGBOOST, NEURAL, LOGISTIC = "xgboost", "neural", "logistic"


def ranker_card(model_dir: str | Path) -> dict[str, Any]:
    """The ranker card of ``model_dir``; a missing card means no finished train stage."""
    path = Path(model_dir) / CARD_FILE
    if not path.is_file():
        raise DataError(f"no ranker at {model_dir} ({CARD_FILE} is missing): run the train "
                        "stage first")
    return json.loads(path.read_text())


def write_ranker_card(out: Path, info: dict[str, Any]) -> None:
    """Write a ranker card (``info`` holds at least ``kind`` and ``features``) last and
    atomically: its presence marks a finished model, its mtime a new one."""
    tmp = out / (CARD_FILE + ".tmp")
    tmp.write_text(json.dumps({"format_version": 1, **info}, indent=2) + "\n")
    os.replace(tmp, out / CARD_FILE)
