"""Baselines trained beside every ranker and evaluated the same way (per-user top-k lists on the
temporal holdout). On temporal splits these one-liners are hard to beat; a ranker that does not
beat them has not learnt anything worth serving."""

from pipeline.evaluate.baselines.common import ItemScorer, score_lists
from pipeline.evaluate.baselines.ease import fit_ease, tune_ease
from pipeline.evaluate.baselines.itemknn import fit_itemknn
from pipeline.evaluate.baselines.logistic import LogisticModel, fit_logistic
from pipeline.evaluate.baselines.popularity import popularity_scorer
from pipeline.evaluate.baselines.repeat import repeat_lists

__all__ = [
    "ItemScorer", "LogisticModel", "fit_ease", "fit_itemknn", "fit_logistic",
    "popularity_scorer", "repeat_lists", "score_lists", "tune_ease",
]
