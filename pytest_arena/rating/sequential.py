"""Stopping when decided: a group-sequential test per gate, whose error rates hold under early stopping.

The run judges its questions in rounds, in a seeded random order (:func:`round_schedule`; all of a
question's battles in the same round), and after each round asks every gate whether it is decided.
Testing the fixed-sample interval again after every round would raise the false alarms well above
the nominal rate (Armitage, McPherson & Rowe 1969: five looks at a 5% test give about 14%); this module
spends the error rate over the looks instead.

**The method** (Jennison & Turnbull 2000, *Group Sequential Methods with Applications to Clinical
Trials*, Chapman & Hall, ch. 7 and 19):

- *Early decisions for the significant outcome* (a ``max_drop``/``beats`` gate fails, a ``min_*`` gate
  passes): error-spending boundaries (Lan & DeMets 1983, "Discrete sequential boundaries for clinical
  trials", *Biometrika* 70, 659-663). ``t`` is the share of the plan's questions judged so far; the
  looks need not be planned ahead, only not chosen from the data. The chance of ever crossing, when
  the truth sits exactly on the threshold, is at most ``alpha`` = 2.5%: the one-sided tail of the 95%
  interval the fixed gates use. The default spending function is Hwang, Shih & DeCani's (1990,
  "Group sequential designs using a family of type I error probability spending functions",
  *Statistics in Medicine* 9, 1439-1445) with ``gamma = -6``, a conservative, O'Brien-Fleming-like
  shape: it spends 0.02% of the 2.5% by a quarter of the questions and 0.12% by half, so with rounds
  of an eighth of the questions the last look's boundary is 2.00 instead of the fixed
  test's 1.96. ``gamma=None`` gives the O'Brien-Fleming-type function
  ``2 - 2 Phi(z_{1 - alpha/2} / sqrt(t))`` (O'Brien & Fleming 1979, *Biometrics* 35, 549-556), which
  waits longer (4.3 standard errors at a quarter) and ends higher (2.07).
- *Early decisions for the default outcome* (the gate passes, or a ``min_*`` gate fails, because the
  significant outcome has become unlikely): a *non-binding* futility boundary from beta spending
  (J&T section 7.2.2), ``beta(t) = futility * t ** rho``, computed under the design alternative: the
  effect that the full run detects with probability ``design_power``. Non-binding: the first boundary
  is computed as if the second did not exist, so stopping early for the default outcome can only
  lower the false alarms; what it costs is power: at most ``futility`` at the design alternative, and
  1.7 points at worst (for an effect the full run catches 70% of the time) for the defaults with
  rounds of an eighth of the questions, by the same integration.
- *The statistic*: at each look the gate's estimate on the questions judged so far and its
  question-clustered sandwich standard error (:mod:`.influence`, :mod:`.paired`), their ratio taken
  as normal (``small_sample=True`` reads it through Student's t with questions - 1 degrees of freedom
  instead, J&T section 11.4; on the study's runs, ``bench/ratings_study.py`` cells "no effect" and
  "strong effect", that cost up to 4 points of power and changed no false-alarm rate, so it is off:
  the early boundaries are far enough out that an uncertain standard error hardly moves the error
  rate). The questions being judged in a random order, information grows in proportion to the
  questions judged. Measured on the study's runs (80 questions, rounds of 10): false alarms 0-4.5%,
  41-54% of the judge calls saved on a gate at no change and 48-67% on a clear drop.

The first crossing decides and is final. At the last look (``final=True``: nothing is left to judge)
the remaining error rate is spent and the gate is decided either way. Looks with fewer than
``min_questions`` questions are not tested: the sandwich standard error needs some questions to be
trusted.

Pure functions over plain data: :func:`decide` takes the :class:`~.paired.Look` of every round so far.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr, ndtri, stdtr, stdtrit

from .paired import Look

KINDS = ("regression", "threshold")
STATES = ("passed", "failed", "undecided")
_FAR = 40.0  # a boundary no statistic reaches: "no decision possible at this look"
_LOW = -10.0  # where the continuation region is cut below (its mass beyond is < 1e-20)
_SQRT_2PI = math.sqrt(2.0 * math.pi)
# (scipy.special, not scipy.stats or scipy.optimize: the rating package is imported with every arena run,
# and those two would add about half a second to it.)


def _sf(x):
    """The standard normal's upper tail."""
    return ndtr(-np.asarray(x, dtype=float))


def _isf(p):
    """The standard normal's upper-tail quantile."""
    return -ndtri(p)


def _pdf(x):
    return np.exp(-0.5 * np.square(x)) / _SQRT_2PI


@dataclass(frozen=True)
class SequentialDesign:
    """The error rates of a gate's sequential test (the defaults are what ``bench/ratings_study.py`` measured)."""

    alpha: float = 0.025  # false alarms, at most: the one-sided tail of a 95% interval
    futility: float = 0.05  # power the early default decisions may cost, at the design alternative
    design_power: float = 0.9  # the design alternative: the effect the full run detects this often
    rho: float = 1.5  # beta(t) = futility * t ** rho: how soon the futility budget is spent
    min_questions: int = 20  # looks before this many questions are not tested
    gamma: float | None = -6.0  # Hwang-Shih-DeCani's spending with this gamma; None: O'Brien-Fleming-type
    small_sample: bool = False  # read the statistic through Student's t (questions - 1 degrees of freedom)

    def __post_init__(self):
        for name in ("alpha", "design_power"):
            if not 0 < getattr(self, name) < 1:
                raise ValueError(f"{name} must be between 0 and 1, got {getattr(self, name)!r}")
        if not 0 <= self.futility < 1:
            raise ValueError(f"futility must be >= 0 and < 1, got {self.futility!r}")
        if not self.rho > 0:
            raise ValueError(f"rho must be > 0, got {self.rho!r}")
        if self.min_questions < 2:
            raise ValueError(f"min_questions must be >= 2, got {self.min_questions!r}")


@dataclass(frozen=True)
class Decision:
    """A gate's state after the looks so far."""

    state: str  # passed / failed / undecided
    questions: int  # questions judged at the deciding look (the latest look while undecided)
    total: int  # the plan's questions
    z: float | None = None  # the statistic at that look (normal scale; large = evidence against the default)
    efficacy: float | None = None  # its boundaries at that look
    futility: float | None = None
    interval: tuple[float, float] | None = None  # the repeated 95% confidence interval at that look
    reason: str = ""

    @property
    def decided(self) -> bool:
        return self.state != "undecided"


# --------------------------------------------------------------------------------------------------
# The rounds


def round_schedule(question_ids: Sequence, round_size: int, seed: int = 0) -> list[list]:
    """The questions in a seeded random order, cut into rounds of ``round_size`` (the last may be
    shorter). The random order makes every round a fair sample of the questions, which is what lets
    information grow in proportion to the questions judged."""
    if isinstance(round_size, bool) or not isinstance(round_size, (int, np.integer)) or round_size < 1:
        raise ValueError(f"round_size must be an integer >= 1, got {round_size!r}")
    ids = list(dict.fromkeys(question_ids))
    order = np.random.default_rng(seed).permutation(len(ids))
    shuffled = [ids[i] for i in order]
    return [shuffled[i:i + round_size] for i in range(0, len(shuffled), round_size)]


# --------------------------------------------------------------------------------------------------
# The boundaries


def spending(t: float, alpha: float, gamma: float | None = None) -> float:
    """The error rate spent by information fraction ``t``: O'Brien-Fleming-type (``gamma`` None) or
    Hwang-Shih-DeCani's ``alpha (1 - exp(-gamma t)) / (1 - exp(-gamma))``."""
    if gamma is None:
        return obrien_fleming_spending(t, alpha)
    t = min(max(t, 0.0), 1.0)
    if gamma == 0:
        return alpha * t
    return alpha * (1.0 - math.exp(-gamma * t)) / (1.0 - math.exp(-gamma))


def obrien_fleming_spending(t: float, alpha: float) -> float:
    """Lan-DeMets' O'Brien-Fleming-type spending: the error rate spent by information fraction ``t``."""
    if t <= 0:
        return 0.0
    return min(alpha, 2.0 * float(_sf(_isf(alpha / 2.0) / math.sqrt(min(t, 1.0)))))


def boundaries(fractions: Sequence[float], final: bool = False,
               design: SequentialDesign = SequentialDesign()) -> tuple[np.ndarray, np.ndarray]:
    """The boundaries (normal scale) at looks made at information ``fractions`` (increasing, in (0, 1]):
    ``efficacy[k]`` (at or above: the significant outcome) and ``futility[k]`` (at or below: the
    default outcome). At the last look of a ``final`` sequence they meet."""
    key = tuple(round(float(t), 12) for t in fractions)
    if any(not 0 < t <= 1 for t in key) or any(b <= a for a, b in zip(key, key[1:])):
        raise ValueError(f"fractions must increase within (0, 1], got {list(fractions)!r}")
    efficacy, futility = _boundaries(key, bool(final), design.alpha, design.futility, design.design_power, design.rho,
                                     design.gamma)
    return np.array(efficacy), np.array(futility)


@functools.lru_cache(maxsize=512)
def _boundaries(times: tuple, final: bool, alpha: float, futility: float, design_power: float, rho: float,
                gamma: float | None):
    """Recursive numerical integration of the score process ``S(t) = Z(t) sqrt(t)``, a Brownian motion
    with drift (Armitage, McPherson & Rowe 1969; J&T ch. 19): the density of S on the continuation
    region is carried from look to look on a grid (trapezoid rule), and each boundary is the root
    that makes the first-crossing probability at its look equal to the spending function's increment."""
    if not times:
        return (), ()
    drift = float(_isf(alpha) + _isf(1.0 - design_power))  # the design alternative, on the Z(1) scale
    steps = np.diff((0.0,) + times)
    h = min(0.02, math.sqrt(float(steps.min())) / 8.0)  # grid step on the score scale: 1e-4 accuracy
    efficacy, lower = [], []
    null = alt = None  # (grid, trapezoid weights, density) under no effect / the design alternative
    spent_a = spent_b = 0.0
    for k, (t, dt) in enumerate(zip(times, steps)):
        last = final and k == len(times) - 1
        goal_a = alpha if last else spending(t, alpha, gamma)
        a = _root(lambda z: _beyond(null, z, t, dt, 0.0, upper=True) - (goal_a - spent_a), rising=False)
        spent_a = goal_a
        if last:
            b = a
        else:
            goal_b = futility * min(t, 1.0) ** rho
            b = _root(lambda z: _beyond(alt, z, t, dt, drift, upper=False) - (goal_b - spent_b), rising=True)
            b = min(b, a)
            spent_b = goal_b
        efficacy.append(a)
        lower.append(b)
        null = _carry(null, _LOW, a, t, dt, 0.0, h)
        alt = _carry(alt, max(b, _LOW), a, t, dt, drift, h)
    return tuple(efficacy), tuple(lower)


def _beyond(density, z: float, t: float, dt: float, drift: float, upper: bool) -> float:
    """P(still going before this look, and Z(t) >= z (``upper``) or <= z here)."""
    s = z * math.sqrt(t)
    if density is None:  # the first look
        x, w, f = np.zeros(1), np.ones(1), np.ones(1)
    else:
        x, w, f = density
    step = (s - x - drift * dt) / math.sqrt(dt)
    tail = _sf(step) if upper else ndtr(step)
    return float(np.sum(w * f * tail))


def _carry(density, low: float, high: float, t: float, dt: float, drift: float, h: float):
    """The density of S(t) on the continuation region (low, high) (Z scale), on a grid."""
    lo, hi = low * math.sqrt(t), high * math.sqrt(t)
    if not hi > lo:
        return np.zeros(1), np.zeros(1), np.zeros(1)
    n = max(int(math.ceil((hi - lo) / h)), 2)
    grid = np.linspace(lo, hi, n + 1)
    weights = np.full(n + 1, (hi - lo) / n)
    weights[[0, -1]] /= 2
    if density is None:
        values = _pdf((grid - drift * t) / math.sqrt(t)) / math.sqrt(t)
    else:
        x, w, f = density
        kernel = _pdf((grid[None, :] - x[:, None] - drift * dt) / math.sqrt(dt)) / math.sqrt(dt)
        values = (w * f) @ kernel
    return grid, weights, values


def _root(excess, rising: bool) -> float:
    """The z where ``excess(z)`` (monotone) crosses 0; ``_FAR`` past the side no look can reach."""
    lo, hi = -_FAR, _FAR
    f_lo, f_hi = excess(lo), excess(hi)
    if rising:  # futility: the mass below z grows with z
        if f_lo >= 0:
            return -_FAR
        if f_hi <= 0:
            return _FAR
    else:  # efficacy: the mass above z falls with z
        if f_hi >= 0:
            return _FAR
        if f_lo <= 0:
            return -_FAR
    for _ in range(100):  # bisection: the function is monotone and cheap; 1e-9 is plenty
        mid = (lo + hi) / 2
        if (excess(mid) > 0) == rising:
            hi = mid
        else:
            lo = mid
        if hi - lo < 1e-9:
            break
    return (lo + hi) / 2


# --------------------------------------------------------------------------------------------------
# The decision


def decide(looks: Sequence[Look], total_questions: int, threshold: float, kind: str = "regression",
           final: bool = False, design: SequentialDesign = SequentialDesign()) -> Decision:
    """A gate's state after ``looks`` (one per round, in order; see :mod:`.paired` for building them).

    ``kind="regression"`` (beats, max_drop): the gate fails when the estimate is significantly below
    ``threshold`` (``-margin``, ``-max_drop``) and passes otherwise. ``kind="threshold"`` (min_rating,
    min_win_rate, min_score): it passes when the estimate is significantly above ``threshold`` and fails
    otherwise. ``total_questions``: the plan's questions (information fraction = questions / total).
    ``final``: the last look has all there will be (the plan is judged); it decides either way.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if total_questions < 1:
        raise ValueError(f"total_questions must be >= 1, got {total_questions!r}")
    start = min(design.min_questions, total_questions)  # (a plan smaller than that is tested once, whole)
    tested = _tested(looks, start, total_questions)
    if not tested:
        latest = looks[-1].questions if looks else 0
        return Decision("undecided", latest, total_questions,
                        reason=f"{latest} of {total_questions} questions judged; testing starts at {start}")
    fractions = [min(look.questions / total_questions, 1.0) for look in tested]
    is_final = final or fractions[-1] >= 1.0
    efficacy, futility = boundaries(fractions, final=is_final, design=design)
    proven, default = ("failed", "passed") if kind == "regression" else ("passed", "failed")
    for k, look in enumerate(tested):
        z = _statistic(look, threshold, kind, design.small_sample)
        interval = _repeated_interval(look, efficacy[k], design.small_sample)
        at = dict(questions=look.questions, total=total_questions, z=z, efficacy=float(efficacy[k]),
                  futility=float(futility[k]), interval=interval)
        if z >= efficacy[k]:
            return Decision(proven, **at, reason=_reason(proven, kind, look, total_questions, threshold, interval))
        if z <= futility[k] or (is_final and k == len(tested) - 1):
            return Decision(default, **at, reason=_reason(default, kind, look, total_questions, threshold, interval))
    last = tested[-1]
    z = _statistic(last, threshold, kind, design.small_sample)
    return Decision("undecided", last.questions, total_questions, z=z,
                    efficacy=float(efficacy[-1]), futility=float(futility[-1]),
                    interval=_repeated_interval(last, efficacy[-1], design.small_sample),
                    reason=f"undecided after {last.questions} of {total_questions} questions")


def _tested(looks: Sequence[Look], min_questions: int, total: int) -> list[Look]:
    """The looks that are tested: enough questions, each with more questions than the one before."""
    kept: list[Look] = []
    for look in looks:
        if look.questions < min_questions or look.questions > total:
            if look.questions > total:
                raise ValueError(f"a look has {look.questions} questions, more than the plan's {total}")
            continue
        if kept and look.questions <= kept[-1].questions:
            continue  # a round that added no question adds no information
        kept.append(look)
    return kept


def _statistic(look: Look, threshold: float, kind: str, small_sample: bool = True) -> float:
    """The evidence against the default outcome, on the normal scale (t-corrected)."""
    gap = (threshold - look.estimate) if kind == "regression" else (look.estimate - threshold)
    se = look.se
    if not se == se:  # NaN: no standard error at this look, so no decision from it
        return float("nan")
    if se <= 0:
        return math.copysign(math.inf, gap) if gap else 0.0
    raw = gap / se
    if not small_sample:
        return raw
    df = max(look.questions - 1, 1)
    # The t tail probability, read back as a normal quantile (each side from its own tail, for precision).
    return float(_isf(stdtr(df, -raw))) if raw >= 0 else float(-_isf(stdtr(df, raw)))


def _repeated_interval(look: Look, efficacy: float, small_sample: bool = True) -> tuple[float, float] | None:
    """The repeated confidence interval (J&T ch. 9): estimate -/+ the boundary, on the t scale."""
    if not look.se == look.se or not math.isfinite(efficacy) or efficacy >= _FAR:
        return None
    multiplier = -stdtrit(max(look.questions - 1, 1), _sf(efficacy)) if small_sample else efficacy
    half = float(multiplier) * look.se
    return look.estimate - half, look.estimate + half


def _reason(state: str, kind: str, look: Look, total: int, threshold: float, interval) -> str:
    where = f"decided after {look.questions} of {total} questions"
    span = f" (repeated 95% CI {interval[0]:+.1f} .. {interval[1]:+.1f})" if interval else ""
    side = "below" if kind == "regression" else "above"
    significant = (state == "failed") == (kind == "regression")
    verdict = f"significantly {side}" if significant else f"not significantly {side}"
    return f"{where}: {look.estimate:+.1f}{span}, {verdict} {threshold:+g}"
