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
:mod:`.bootstrap` (the reference bootstrap and interval summaries), :mod:`.records` and :mod:`.scores`;
for the regression gates (issue 25) :mod:`.paired` (the paired bootstrap by question and each round's
statistic), :mod:`.influence` (the sandwich standard error), :mod:`.sequential` (stopping when decided)
and :mod:`.power` (detectable drops, questions needed).
Everything is importable from here, as ``from pytest_arena.rating import bradley_terry``.
"""

from .agreement import (JudgeAudit, Kappa, agreement_rate, audit_table, bootstrap_kappa, cohen_kappa, judge_audit,
                        label_agreement, labels_table, pairwise_kappa, position_consistency, unmatched_labels,
                        verdicts_from_labels, verdicts_from_reviews, verdicts_table)
from .battles import RESAMPLING, WINNERS, battle_counts, validate_battles
from .bootstrap import bootstrap, confidence_intervals, difference_samples, rating_intervals
from .bradley_terry import PRIOR_REG, bootstrap_bradley_terry, bradley_terry, prior_sd
from .elo import bootstrap_elo, online_elo
from .influence import Influence, clustered_se, rating_influence
from .length_control import LengthControlled, length_controlled_win_rate, question_difficulty
from .paired import (Look, PairedInterval, battles_from_verdicts, change_look, difference_look, mean_look,
                     paired_change, paired_difference, paired_samples, rating_look)
from .power import DropPower, beats_power, detectable_drop, max_drop_power, questions_needed
from .records import pairwise_rates, record_counts, win_rate_matrix
from .scores import mean_score_samples, mean_scores
from .sequential import Decision, SequentialDesign, boundaries, decide, obrien_fleming_spending, round_schedule
from .shares import Rate, clustered_rate, design_effect, wilson_interval
from .style_control import (CONTROLS, StyleFit, StyleSamples, bootstrap_style_bradley_terry, style_bradley_terry,
                            style_covariates)
from .style_features import STYLE_FEATURES, add_style_columns, answer_style, markdown_counts, style_table

__all__ = [
    "PRIOR_REG", "RESAMPLING", "WINNERS", "battle_counts", "bootstrap", "bootstrap_bradley_terry", "bootstrap_elo",
    "bradley_terry", "confidence_intervals", "difference_samples", "mean_score_samples", "mean_scores",
    "online_elo", "pairwise_rates", "prior_sd", "rating_intervals", "record_counts", "validate_battles",
    "win_rate_matrix",
    # Paired and sequential gates, and power (issue 25): .paired, .influence, .sequential, .power
    "Decision", "DropPower", "Influence", "Look", "PairedInterval", "SequentialDesign", "battles_from_verdicts",
    "beats_power", "boundaries", "change_look", "clustered_se", "decide", "detectable_drop", "difference_look",
    "max_drop_power", "mean_look", "obrien_fleming_spending", "paired_change", "paired_difference",
    "paired_samples", "questions_needed", "rating_influence", "rating_look", "round_schedule",
    # Length and style control (issue 24): .style_features, .style_control, .length_control
    "CONTROLS", "LengthControlled", "STYLE_FEATURES", "StyleFit", "StyleSamples", "add_style_columns", "answer_style",
    "bootstrap_style_bradley_terry", "length_controlled_win_rate", "markdown_counts", "question_difficulty",
    "style_bradley_terry", "style_covariates", "style_table",
    # Judge audits and panels (issue 26): .agreement, .shares
    "JudgeAudit", "Kappa", "Rate", "agreement_rate", "audit_table", "bootstrap_kappa", "clustered_rate", "cohen_kappa",
    "design_effect", "judge_audit", "label_agreement", "labels_table", "pairwise_kappa", "position_consistency",
    "unmatched_labels", "verdicts_from_labels", "verdicts_from_reviews", "verdicts_table", "wilson_interval",
]
