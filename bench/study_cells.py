"""The cells of the paired and sequential gate studies (``ratings_study.py --only paired --only sequential``).

A *cell* is one way the world can be: how a baseline run and a candidate run on the same questions come
about. Every study runs every registered cell (``--cells NAME`` picks some), with the same cases in each:
the candidate's ``sft`` at the baseline's strength ("no change"), or ``GAPS`` lower (its population
Bradley-Terry gap to ``base`` 100 or 200 points below the baseline's). Models ``base`` (latent 1000),
``ref`` (1100) and ``sft`` (1000 in the baseline run), every pair judged once per question, ties
half-win (``_simulation.simulate``).

Adding a cell (e.g. issue 24's "verbose fine-tune": a candidate whose longer answers the judge favours)
touches only this file: write a function ``simulate(rng, questions, gaps, tie) -> (baseline, [candidate
for each gap])`` returning battles tables as ``_simulation.frame`` builds them (names ``GATE_NAMES``,
a ``question_id`` naming the same question in both runs), a function ``true_change(gap)`` giving the
population change of ``sft``'s own rating (mean-anchored, points) that the candidate of that gap has,
and call ``register(Cell(name, about, simulate, true_change))`` below the built-in ones. The studies
report false alarms for gap 0 and detection for the others; what "should" happen in a new cell is for
its author to say in bench/README.md.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from _simulation import answer_lengths, frame, latent_for_gap, population_ratings, round_robin_design, simulate

GATE_NAMES = np.array(["base", "ref", "sft"], dtype=object)
BASE, REF, SFT = 0, 1, 2
STILL = np.array([1000.0, 1100.0, 1000.0])  # latent ratings of the baseline run
GAPS = (0.0, -100.0, -200.0)  # the candidate's sft - base population gap, from the baseline's 0


@dataclass(frozen=True)
class Cell:
    name: str
    about: str  # one line, for the tables' legend
    simulate: Callable  # (rng, questions, gaps, tie) -> (baseline battles, [candidate battles per gap])
    true_change: Callable  # gap -> population change of sft's mean-anchored rating, points


CELLS: dict[str, Cell] = {}


def register(cell: Cell) -> Cell:
    if cell.name in CELLS:
        raise ValueError(f"a cell named {cell.name!r} is registered already")
    CELLS[cell.name] = cell
    return cell


# --------------------------------------------------------------------------------------------------
# The built-in cells: a per-(question, model) effect of SD tau, and how much of it the candidate keeps


@functools.lru_cache(maxsize=None)
def candidate_latent(gap: float, tau: float) -> tuple[float, ...]:
    """Latent ratings whose population sft - base gap is ``gap`` (``STILL`` for 0)."""
    latent = STILL.copy()
    if gap:
        latent[SFT] = latent_for_gap(STILL, SFT, BASE, gap, tau)
    return tuple(latent)


def _change(gap: float, tau: float) -> float:
    before = population_ratings(STILL, tau)[SFT]
    return float(population_ratings(np.array(candidate_latent(gap, tau)), tau)[SFT] - before)


def question_effect_cell(name: str, about: str, tau: float, carry: float, redraw_all: bool = False) -> Cell:
    """Effects ``u ~ N(0, tau^2)`` per (question, model), drawn once per repetition: the baseline run
    has them; in the candidate run ``base`` and ``ref`` keep theirs and ``sft``'s correlate ``carry``
    with its baseline ones (1: the same; 0: new), its SD staying ``tau`` so that its population rating
    depends on its latent rating only. ``redraw_all``: every model's effects are new in the candidate run
    (as if it were on other questions: the earlier study's model, in which nothing can be paired)."""

    def simulate_cell(rng, questions, gaps, tie):
        design = round_robin_design(len(GATE_NAMES), questions)
        effects = rng.normal(0.0, tau, size=(questions, len(GATE_NAMES))) if tau > 0 else np.zeros((questions, 3))
        baseline = frame(GATE_NAMES, *simulate(rng, STILL, design, questions, tau, tie, effects=effects))
        candidates = []
        for gap in gaps:
            if redraw_all:
                moved = rng.normal(0.0, tau, size=effects.shape) if tau > 0 else effects
            else:
                moved = effects.copy()
                if carry < 1 and tau > 0:
                    fresh = rng.normal(0.0, tau, size=questions)
                    moved[:, SFT] = carry * effects[:, SFT] + math.sqrt(1.0 - carry ** 2) * fresh
            latent = np.array(candidate_latent(gap, tau))
            candidates.append(frame(GATE_NAMES, *simulate(rng, latent, design, questions, tau, tie, effects=moved)))
        return baseline, candidates

    return Cell(name, about, simulate_cell, functools.partial(_change, tau=tau))


register(question_effect_cell(
    "no effect", "tau 0: no per-question effect", tau=0.0, carry=1.0))
register(question_effect_cell(
    "strong effect", "tau 0.7: strong per-question effects, the candidate keeps them (same questions, same "
    "models)", tau=0.7, carry=1.0))
register(question_effect_cell(
    "new profile", "tau 0.7: the candidate's per-question effects only half kept (correlation 0.5 with the "
    "baseline's): a different model, as good on average", tau=0.7, carry=0.5))
register(question_effect_cell(
    "redrawn", "tau 0.7: every model's effects new in the candidate run (the earlier study's model: as if on "
    "other questions; nothing to pair)", tau=0.7, carry=0.0, redraw_all=True))


# --------------------------------------------------------------------------------------------------
# Issue 24: the verbose fine-tune. A judge that favours the longer answer (LENGTH_BIAS logits per unit of
# (L_a - L_b) / (L_a + L_b): at the fine-tune's ratio VERBOSE its answers gain about +150 BT points), and a
# candidate whose answers are VERBOSE times longer than in the baseline run; its quality moves by the
# case's gap as in the other cells (gap 0: the only change is length). Its tables carry length_a/length_b.

LENGTH_BIAS = 3.0
VERBOSE = 1.8


def verbose_cell(name: str, about: str, tau: float, length_bias: float = LENGTH_BIAS) -> Cell:
    def simulate_cell(rng, questions, gaps, tie):
        design = round_robin_design(len(GATE_NAMES), questions)
        effects = rng.normal(0.0, tau, size=(questions, len(GATE_NAMES))) if tau > 0 else np.zeros((questions, 3))
        lengths = answer_lengths(rng, questions, len(GATE_NAMES))
        baseline = frame(GATE_NAMES, *simulate(rng, STILL, design, questions, tau, tie, effects=effects,
                                               lengths=lengths, length_bias=length_bias), lengths=lengths)
        padded = lengths.copy()
        padded[:, SFT] = np.round(padded[:, SFT] * VERBOSE)
        candidates = []
        for gap in gaps:
            latent = np.array(candidate_latent(gap, tau))
            candidates.append(frame(GATE_NAMES, *simulate(rng, latent, design, questions, tau, tie, effects=effects,
                                                          lengths=padded, length_bias=length_bias), lengths=padded))
        return baseline, candidates

    return Cell(name, about, simulate_cell, functools.partial(_change, tau=tau))


register(verbose_cell(
    "verbose fine-tune", f"tau 0.7, a length-biased judge ({LENGTH_BIAS:g} logits per unit length ratio); the "
    f"candidate's answers {VERBOSE:g}x longer, its quality moved by the case's gap", tau=0.7))
register(verbose_cell(
    "verbose, blind judge", f"tau 0.7, the verbose fine-tune's {VERBOSE:g}x longer answers before a length-blind "
    "judge: what asking a confounded pass for evidence costs where the raw rating was sound", tau=0.7,
    length_bias=0.0))
