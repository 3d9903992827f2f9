"""``ranker.model``: xgboost, dlrm or dcn; settings of the other kind of ranker are refused
rather than silently ignored."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.config import parse_workflow
from pipeline.errors import ConfigError
from pipeline.runner import workflow_fingerprint

MINIMAL = {
    "name": "shop",
    "data": {"interactions": {"path": "logs",
                              "columns": {"user": "u", "item": "i", "timestamp": "t"}}},
}


def with_ranker(**ranker: Any) -> dict[str, Any]:
    return {**MINIMAL, "ranker": ranker}


def test_neural_models_load_with_their_settings() -> None:
    spec = parse_workflow(with_ranker(model="dlrm", neural={"embedding_dim": 8, "epochs": 3,
                                                            "top_mlp": [16, 8]}))
    assert spec.ranker.is_neural and spec.ranker.neural_settings.embedding_dim == 8
    assert spec.ranker.neural_settings.top_mlp == (16, 8)
    dcn = parse_workflow(with_ranker(model="dcn")).ranker
    assert dcn.neural is None and dcn.neural_settings.epochs == 2  # defaults
    assert not parse_workflow(MINIMAL).ranker.is_neural


def test_unknown_model_names_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"'ranker.model'.*'xgboost', 'dlrm' or 'dcn'.*"
                                          r"got 'lightgbm'"):
        parse_workflow(with_ranker(model="lightgbm"))


@pytest.mark.parametrize("ranker, message", [
    ({"model": "dcn", "objective": "rank:ndcg"},
     "ranker.objective rank:ndcg is an XGBoost objective; the neural ranker dcn"),
    ({"model": "dlrm", "num_boost_round": 50, "params": {"eta": 0.1}},
     "ranker.num_boost_round, ranker.params apply to ranker.model xgboost only"),
    ({"model": "dcn", "tuning": {"n_trials": 5}}, "ranker.tuning apply to ranker.model xgboost"),
    ({"neural": {"epochs": 1}}, "ranker.neural applies to ranker.model dlrm or dcn, not "
                                "xgboost"),
])
def test_settings_of_the_other_kind_of_ranker_are_refused(ranker: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_workflow(with_ranker(**ranker))


def test_bad_neural_settings_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'ranker.neural.embeding_dim'.*"
                                          r"did you mean 'embedding_dim'"):
        parse_workflow(with_ranker(model="dcn", neural={"embeding_dim": 8}))
    with pytest.raises(ConfigError, match=r"'ranker.neural.epochs'.*greater than or equal to 1"):
        parse_workflow(with_ranker(model="dcn", neural={"epochs": 0}))
    with pytest.raises(ConfigError, match=r"'ranker.neural.deep_mlp.1'"):
        parse_workflow(with_ranker(model="dcn", neural={"deep_mlp": [32, 0]}))


def test_neural_settings_are_part_of_the_fingerprint() -> None:
    """A changed ``ranker.neural`` re-runs the date, as any other result-changing key does."""
    dcn = parse_workflow(with_ranker(model="dcn", neural={"epochs": 2}))
    assert workflow_fingerprint(dcn) != workflow_fingerprint(parse_workflow(MINIMAL))
    assert workflow_fingerprint(dcn) != workflow_fingerprint(
        parse_workflow(with_ranker(model="dcn", neural={"epochs": 3})))
