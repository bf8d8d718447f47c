"""How many questions do I need? Detectable drops and question counts, from the baseline run's verdicts.

**Analytic, not simulated**: a normal approximation from the per-question variance of the gate's
estimate, read off the stored baseline run (its battles, :func:`~.paired.battles_from_verdicts`) through
the question-clustered sandwich (:mod:`.influence`). The variance of the estimate falls as one over the
number of questions, so at ``n`` questions its standard error is ``se_now * sqrt(n_now / n)``. A gate
that fails when the upper end of its 95% interval lies below ``-allowed`` catches a true drop ``D`` with
probability ``Phi((D - allowed) / se - z_{1 - alpha})``; so with ``power`` (80%) it catches drops from
``allowed + (z_{1 - alpha} + z_{power}) * se`` on, and a named drop needs
``n_now * ((z_{1 - alpha} + z_{power}) * se_now / (D - allowed)) ** 2`` questions.

- ``beats`` (two models of one run): the standard error of ``R(model) - R(other)`` in the baseline run,
  with its questions resampled, is the one the next run's gate will have, if the next run looks alike.
  The drop is counted from the baseline run's difference.
- ``max_drop`` (this run against the stored one): the change's standard error depends on how much of
  each question's effect carries over from the baseline run to the candidate, which one run cannot
  tell. Two figures bound it. *Carried over* (the candidate keeps the baseline's per-question strengths
  and weaknesses; only the judge's noise differs): ``sqrt(2)`` times the battle-level sandwich standard
  error, an upper bound for that case. *Not carried over* (the candidate's per-question profile is new,
  as good on other questions): ``sqrt(2)`` times the question-level one, which is also what the unpaired
  test needs. A small fine-tune sits near the first, a new model near the second.

The figures are for the full run; stopping when decided (:mod:`.sequential`) loses at most a few points
of that power (``bench/ratings_study.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd
from scipy.special import ndtri

from .bradley_terry import PRIOR_REG
from .influence import clustered_se, rating_influence

ASSUMPTIONS = ("same run", "carried over", "not carried over")


@dataclass(frozen=True)
class DropPower:
    """What one gate can detect, under one assumption about the next run."""

    gate: str  # "beats" or "max_drop"
    model: str
    other: str | None  # beats: the other model
    allowed: float  # the gate's margin (beats) or max_drop
    assumption: str  # one of ASSUMPTIONS
    questions: int  # the question count the figures are for
    se: float  # the standard error of the gate's estimate at that count (rating points)
    detectable: float  # the smallest drop caught with `power` at `questions` (rating points)
    drop: float | None = None  # the drop the user named
    needed: int | None = None  # questions needed to catch `drop` with `power` (None: no drop named, or never)
    power: float = 0.8

    def line(self) -> str:
        what = f"beats {self.other} (margin {self.allowed:g})" if self.gate == "beats" else f"max_drop {self.allowed:g}"
        text = (f"{self.model} {what}, {self.assumption}: at {self.questions} questions a drop of "
                f"{self.detectable:.1f} points is caught {self.power:.0%} of the time (standard error {self.se:.1f})")
        if self.drop is not None:
            text += (f"; a drop of {self.drop:g} needs {self.needed} questions" if self.needed is not None
                     else f"; a drop of {self.drop:g} is never caught (it is within the allowed {self.allowed:g})")
        return text


def detectable_drop(se: float, allowed: float, power: float = 0.8, alpha: float = 0.025) -> float:
    """The true drop that a gate allowing ``allowed`` catches with probability ``power``."""
    _check(power, alpha)
    return allowed + _z(alpha, power) * se


def questions_needed(se: float, questions: int, drop: float, allowed: float, power: float = 0.8,
                     alpha: float = 0.025) -> int | None:
    """Questions needed to catch a true ``drop`` with ``power``, from the standard error ``se`` at
    ``questions`` (None when ``drop`` does not exceed ``allowed``: no count suffices)."""
    _check(power, alpha)
    if not drop > allowed:
        return None
    z = _z(alpha, power)
    return max(2, math.ceil(questions * (z * se / (drop - allowed)) ** 2))


def beats_power(battles: pd.DataFrame, model: str, other: str, margin: float = 0.0, drop: float | None = None,
                questions: int | None = None, power: float = 0.8, alpha: float = 0.025,
                anchor: str | None = None, reg: float = PRIOR_REG) -> list[DropPower]:
    """A ``beats`` gate, from a run holding both models (the baseline run): the drop of
    ``R(model) - R(other)`` below the baseline's difference that the gate catches, and the questions a
    named ``drop`` needs."""
    fit = rating_influence(battles, anchor=anchor, reg=reg)
    now = fit.clusters
    se_now = clustered_se(fit.contrast({model: 1.0, other: -1.0}))
    difference = float(fit.ratings[model] - fit.ratings[other])
    # The gate allows -margin; counted from the baseline's difference, it allows difference + margin.
    return [_figures("beats", model, other, margin, difference + margin, "same run", se_now, now, questions,
                     drop, power, alpha)]


def max_drop_power(baseline: pd.DataFrame, model: str, max_drop: float, drop: float | None = None,
                   questions: int | None = None, power: float = 0.8, alpha: float = 0.025,
                   anchor: str | None = None, reg: float = PRIOR_REG) -> list[DropPower]:
    """A ``max_drop`` gate, from the baseline run's battles: the smallest drop of ``model``'s rating
    caught, and the questions a named ``drop`` needs, under both assumptions (module docstring)."""
    by_question = rating_influence(baseline, by="question", anchor=anchor, reg=reg)
    by_battle = rating_influence(baseline, by="battle", anchor=anchor, reg=reg)
    if model not in by_question.ratings.index:
        raise ValueError(f"the baseline run has no battles of {model!r}")
    now = by_question.clusters
    # The battle-level SE counts the judge's noise of every battle (per question: as many battles as
    # there are, so it scales with the questions just as the question-level one).
    carried = math.sqrt(2.0) * clustered_se(by_battle.values[model])
    fresh = math.sqrt(2.0) * clustered_se(by_question.values[model])
    return [_figures("max_drop", model, None, max_drop, max_drop, assumption, se, now, questions, drop, power, alpha)
            for assumption, se in (("carried over", carried), ("not carried over", fresh))]


def _figures(gate, model, other, allowed, allowed_drop, assumption, se_now, now, questions, drop, power, alpha):
    count = now if questions is None else int(questions)
    if count < 2:
        raise ValueError(f"questions must be >= 2, got {questions!r}")
    se = se_now * math.sqrt(now / count)
    needed = None if drop is None else questions_needed(se_now, now, drop, allowed_drop, power, alpha)
    detectable = detectable_drop(se, allowed_drop, power, alpha)
    return DropPower(gate, model, other, allowed, assumption, count, se, detectable, drop, needed, power)


def _z(alpha: float, power: float) -> float:
    """z_{1 - alpha} + z_{power} (scipy.special: scipy.stats would slow every arena run's import)."""
    return float(ndtri(1.0 - alpha) + ndtri(power))


def _check(power: float, alpha: float) -> None:
    if not 0 < power < 1:
        raise ValueError(f"power must be between 0 and 1, got {power!r}")
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha must be between 0 and 0.5, got {alpha!r}")
