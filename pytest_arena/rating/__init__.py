"""Ratings for an arena: small pure functions over a table of battles.

A *battles* table is a pandas DataFrame with one row per judged game:

``model_a``, ``model_b``
    the two models (str, different from each other);
``winner``
    ``"model_a"``, ``"model_b"`` or ``"tie"`` -- nothing else;
``question_id``
    any hashable; only needed to resample by question;
``weight``
    optional float >= 0, default 1.0: how many games the row counts for (an arena-hard strong verdict
    may count 2; a swap_position ``independent`` rule gives two rows of weight 1).

Judge errors and unparseable verdicts are not battles. Callers drop them (and report them) before
anything here runs; :func:`validate_battles` refuses any other ``winner`` so that they cannot be counted
by accident.

Every function takes the table and returns a new Series or DataFrame; nothing is cached and nothing
random happens without a seed. Bootstrap round ``r`` draws only from its own generator, spawned from
``numpy.random.SeedSequence(seed)``, so a run of 100 rounds equals the first 100 rounds of a run of
1000, and the fast paths (:func:`bootstrap_elo`, :func:`bootstrap_bradley_terry` with
``by="question"``) draw exactly the resamples that the reference :func:`bootstrap` draws.

Ratings use the logistic (Elo) scale: ``P(a beats b) = 1 / (1 + base ** ((R_b - R_a) / scale))``, a tie
counting as half a win for each side.

The package holds one module per concept, each of small pure functions over arrays and frames:
:mod:`.battles` (checks, encoding, de-duplication), :mod:`.elo`, :mod:`.bradley_terry`,
:mod:`.bootstrap` (the reference bootstrap and interval summaries), :mod:`.records` and :mod:`.scores`.
Everything is importable from here, as ``from pytest_arena.rating import bradley_terry``.
"""

from .battles import RESAMPLING, WINNERS, battle_counts, validate_battles
from .bootstrap import bootstrap, confidence_intervals, difference_samples, rating_intervals
from .bradley_terry import PRIOR_REG, bootstrap_bradley_terry, bradley_terry, prior_sd
from .elo import bootstrap_elo, online_elo
from .records import pairwise_rates, record_counts, win_rate_matrix
from .scores import mean_score_samples, mean_scores

__all__ = [
    "PRIOR_REG", "RESAMPLING", "WINNERS", "battle_counts", "bootstrap", "bootstrap_bradley_terry", "bootstrap_elo",
    "bradley_terry", "confidence_intervals", "difference_samples", "mean_score_samples", "mean_scores",
    "online_elo", "pairwise_rates", "prior_sd", "rating_intervals", "record_counts", "validate_battles",
    "win_rate_matrix",
]
