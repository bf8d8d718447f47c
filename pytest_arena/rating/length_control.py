"""AlpacaEval 2's length-controlled win rate of a model against a baseline, with its bootstrap interval.

The method (``alpaca_eval``'s ``metrics/glm_winrate.py``, ``get_length_controlled_winrate``; Dubois et
al. 2024, "Length-Controlled AlpacaEval"): a logistic regression, without intercept, of the model's
preference in each battle against the baseline (1 a win, 0.5 a tie, 0 a loss; ``weight`` multiplies a
row's log-likelihood) on

    logit p = theta + phi * tanh((len_baseline - len_model) / sd) + psi * d_question,

``sd`` the standard deviation of that length difference over the battles (``n - 1``, pandas'
``std``). The length-controlled win rate is the mean over questions of ``expit(theta + psi * d)``, the
preference predicted at zero length difference (alpaca_eval averages over its annotations, one per
question: the same thing). ``alpaca_eval`` measures length in characters; any unit gives the same fit
up to how a tokenizer compresses text, since the difference is divided by its own spread.

**The difficulty term.** ``d_question`` is a per-question logit offset shared by every model. alpaca_eval
ships it precomputed for its 805 instructions (``instruction_difficulty.csv``, fitted jointly over the
leaderboard's models); its maintainer's advice for other question sets is to drop the term unless
judgments of many models on those questions are at hand to estimate it (tatsu-lab/alpaca_eval#316; its
``length_controlled_minimal`` GLM is that formula). ``difficulty="auto"`` estimates it the way the
package's ``notebooks/instruction_difficulty.ipynb`` does, when at least :data:`MIN_DIFFICULTY_MODELS`
models were judged against the same baseline (:func:`question_difficulty`), and otherwise drops the term
and says so in ``note``; ``difficulty=None`` drops it; a mapping question_id -> value supplies it.

**Two estimators.** alpaca_eval fits the GLM with an L1 penalty whose strength it picks by 5-fold
cross-validation (liblinear, ``fit_LogisticRegressionCV``). On a small question set that search often
picks a strong penalty and shrinks the fit towards "no effect" -- down to exactly 50% when it zeroes
every coefficient (80 questions in ``bench/length_control_reference.py``: a model with a raw 55% gets an
LC of 50.000), and the shrunken number's bootstrap interval then says nothing about the data. The
default ``fit="mle"`` is therefore the maximum likelihood, with only the weakest penalty that search can
pick (``C = 10^4``, as an L2 term :data:`LC_REG`, which keeps a perfect record finite); its interval
carries the small set's uncertainty instead. ``fit="alpaca_eval"`` reproduces the package's estimator
(its grid, folds and score; :func:`_alpaca_eval_c`) for comparing with published AlpacaEval figures;
its bootstrap refits at the C chosen on the full data. Its default GLM also regularises towards recorded
annotations of AlpacaEval's baseline made verbose and concise (``df_gamed.csv``, which exist only for
its 805 instructions); the reference comparison runs its ``length_controlled_minimal`` and
``length_controlled_noreg`` GLMs, which do not.

The interval: ``rounds`` bootstrap rounds from the generators of every other bootstrap here
(``SeedSequence(seed).spawn``), resampling questions (``by="question"``, the default: a question's
battles stay together) or battles, each round refitting the whole procedure (the length spread included)
with the difficulty held fixed, as alpaca_eval holds its precomputed one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import expit

from ._logistic import fit_logistic
from .battles import _check_bootstrap, _questions, _round_generators, validate_battles
from .bootstrap import confidence_intervals

# As an L2 term: sum of losses + LC_REG / 2 * |beta|^2, i.e. sklearn's C = 1 / LC_REG = 10^4, the largest C
# in alpaca_eval's cross-validated search (LogisticRegressionCV's default grid, 1e-4 .. 1e4).
LC_REG = 1e-4
# fit="alpaca_eval": LogisticRegressionCV's default grid of C and alpaca_eval's n_splits.
ALPACA_EVAL_CS = np.logspace(-4, 4, 10)
ALPACA_EVAL_FOLDS = 5
FITS = ("mle", "alpaca_eval")
# Our threshold, not alpaca_eval's (its difficulty came from some 30-40 models): fewer models than this
# leave each question's offset to a handful of verdicts, and the term is dropped.
MIN_DIFFICULTY_MODELS = 5
# The prior SD of a question's offset in the joint fit: 1 logit.
DIFFICULTY_REG = 1.0


@dataclass(frozen=True)
class LengthControlled:
    """The length-controlled win rate of ``model`` against ``baseline`` (percent) with its interval, the
    raw win rate with its own (same rounds), the fitted coefficients (``model`` = theta, ``length`` = phi,
    ``difficulty`` = psi, logits; psi is 0 when the term is dropped), the length spread ``sd`` used, and
    whether the difficulty term was used (``note`` says why not), the L1 ``C`` of ``fit="alpaca_eval"``
    (None for the default maximum likelihood). ``samples`` holds each bootstrap round's
    ``lc`` and ``raw`` (percent), for paired comparisons."""

    model: str
    baseline: str
    win_rate: float
    ci_lower: float
    ci_upper: float
    raw_win_rate: float
    raw_ci_lower: float
    raw_ci_upper: float
    coefficients: pd.Series
    length_sd: float
    difficulty_used: bool
    note: str
    l1_c: float | None
    battles: int
    questions: int
    samples: pd.DataFrame


def _oriented(battles: pd.DataFrame, model: str, baseline: str) -> pd.DataFrame:
    """The battles between ``model`` and ``baseline``, from the model's side: score, length difference."""
    table = validate_battles(battles)
    for column in ("question_id", "length_a", "length_b"):
        if column not in table.columns:
            raise ValueError(f"the length-controlled win rate needs a {column} column")
    first = (table["model_a"] == model) & (table["model_b"] == baseline)
    second = (table["model_a"] == baseline) & (table["model_b"] == model)
    rows = table[first | second]
    if rows["question_id"].isna().any():
        raise ValueError("question_id is missing in some rows")
    lengths = {side: pd.to_numeric(rows[f"length_{side}"], errors="coerce").to_numpy(dtype=float) for side in "ab"}
    if not all(np.all(np.isfinite(v) & (v >= 0)) for v in lengths.values()):
        raise ValueError("length_a and length_b must be finite numbers >= 0")
    is_first = first[first | second].to_numpy()
    score_a = rows["winner"].map({"model_a": 1.0, "tie": 0.5, "model_b": 0.0}).to_numpy(dtype=float)
    return pd.DataFrame({
        "question_id": rows["question_id"].to_numpy(),
        "score": np.where(is_first, score_a, 1.0 - score_a),
        # alpaca_eval's len_1 - len_2: output_1 is the baseline's
        "delta": np.where(is_first, lengths["b"] - lengths["a"], lengths["a"] - lengths["b"]),
        "weight": rows["weight"].to_numpy(dtype=float),
    })


def _stack(counts: list, width: int) -> np.ndarray:
    return np.stack(counts).astype(float) if counts else np.zeros((0, width))


def _sd(delta: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted (frequency) standard deviation with n - 1, per row of ``weights``."""
    total = weights.sum(axis=1)
    mean = np.divide(weights @ delta, total, out=np.zeros_like(total), where=total > 0)
    ss = np.einsum("rn,rn->r", weights, (delta[None, :] - mean[:, None]) ** 2)
    return np.sqrt(np.divide(ss, total - 1, out=np.zeros_like(ss), where=total > 1))


def _length_term(delta: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """tanh(delta / sd) per round; 0 where the lengths do not vary (the term then carries nothing)."""
    safe = np.where(sd > 0, sd, 1.0)
    return np.where(sd[:, None] > 0, np.tanh(delta[None, :] / safe[:, None]), 0.0)


def _designs(rows: pd.DataFrame, d: np.ndarray, weights: np.ndarray):
    """The design of each round (rounds x battles x [model, length, difficulty]) and its length sd."""
    delta = rows["delta"].to_numpy(dtype=float)
    sd = _sd(delta, weights)
    x = _length_term(delta, sd)
    return np.stack([np.ones_like(x), x, np.broadcast_to(d, x.shape)], axis=2), sd


def _fit_rounds(rows: pd.DataFrame, d: np.ndarray, weights: np.ndarray, reg: float, c_l1: float | None = None):
    """theta, phi, psi per round (rounds x 3), and the length sd per round; L1 at ``c_l1`` when given."""
    design, sd = _designs(rows, d, weights)
    score = rows["score"].to_numpy(dtype=float)
    if c_l1 is None:
        return fit_logistic(design, score, weights, reg * np.eye(3)), sd
    return np.array([_l1_fit(design[r], score, weights[r], c_l1) for r in range(len(weights))]).reshape(-1, 3), sd


# --------------------------------------------------------------------------------------------------
# fit="alpaca_eval": the package's estimator, to reproduce its figure


def _bce(score, eta):
    return score * np.logaddexp(0.0, -eta) + (1.0 - score) * np.logaddexp(0.0, eta)


def _l1_fit(x: np.ndarray, score: np.ndarray, weight: np.ndarray, c: float) -> np.ndarray:
    """argmin ``|beta|_1 + c * sum w * BCE`` -- liblinear's L1 logistic objective without intercept.

    Solved as a smooth problem in ``beta = u - v``, ``u, v >= 0`` (L-BFGS-B); the objective is convex,
    so any accurate solver lands where liblinear does, up to liblinear's own tolerance.
    """
    from scipy.optimize import minimize

    p = x.shape[1]

    def objective(uv):
        beta = uv[:p] - uv[p:]
        eta = x @ beta
        grad_beta = c * (x.T @ (weight * (expit(eta) - score)))
        value = c * float(weight @ _bce(score, eta)) + uv.sum()
        return value, np.r_[grad_beta + 1.0, -grad_beta + 1.0]

    result = minimize(objective, np.zeros(2 * p), jac=True, method="L-BFGS-B", bounds=[(0.0, None)] * (2 * p),
                      options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 10_000})
    return result.x[:p] - result.x[p:]


def _alpaca_eval_c(x: np.ndarray, score: np.ndarray, weight: np.ndarray) -> float:
    """The C that alpaca_eval's ``fit_LogisticRegressionCV`` picks.

    Its grid (LogisticRegressionCV's default ``Cs=10``: ``logspace(-4, 4, 10)``), its folds (``GroupKFold(5)``
    over battles, which without shuffling deals the battles out from the last: battle i goes to fold
    ``(n - 1 - i) % 5``), its score (the mean soft-label log loss of a fold's battles, predictions clipped
    at 1e-15), summed over folds; the first best C wins.
    """
    n = len(score)
    if n < ALPACA_EVAL_FOLDS:
        raise ValueError(f"fit='alpaca_eval' needs at least {ALPACA_EVAL_FOLDS} battles for its cross-validation")
    fold = (n - 1 - np.arange(n)) % ALPACA_EVAL_FOLDS
    totals = []
    for c in ALPACA_EVAL_CS:
        total = 0.0
        for f in range(ALPACA_EVAL_FOLDS):
            test = fold == f
            beta = _l1_fit(x[~test], score[~test], weight[~test], c)
            q = np.clip(expit(x[test] @ beta), 1e-15, 1 - 1e-15)
            loss = -(score[test] * np.log(q) + (1 - score[test]) * np.log(1 - q))
            total -= float(weight[test] @ loss) / weight[test].sum()
        totals.append(total)
    return float(ALPACA_EVAL_CS[int(np.argmax(totals))])


def question_difficulty(
    battles: pd.DataFrame, baseline: str, min_models: int = MIN_DIFFICULTY_MODELS, reg: float = DIFFICULTY_REG
) -> pd.Series | None:
    """Each question's offset, fitted jointly over every model judged against ``baseline``, or None.

    As alpaca_eval's ``notebooks/instruction_difficulty.ipynb``: one logistic regression over all those
    battles with a term per model, a length term per model (tanh of that model's standardised length
    difference) and one offset per question shared by every model; the offsets are the difficulty
    (higher: the baseline loses more there). The notebook picks an L1 penalty by cross-validation; here
    the offsets get a Gaussian prior of SD ``1 / sqrt(reg)`` logits. None when fewer than ``min_models``
    models met the baseline. Mean 0; indexed by question_id.
    """
    table = validate_battles(battles)
    others = sorted((set(table["model_a"]) | set(table["model_b"])) - {baseline})
    oriented = {m: _oriented(table, m, baseline) for m in others}
    oriented = {m: rows for m, rows in oriented.items() if len(rows)}
    if len(oriented) < max(1, min_models):
        return None
    questions = pd.Index(pd.unique(np.concatenate([r["question_id"].to_numpy() for r in oriented.values()])))
    k, q = len(oriented), len(questions)
    blocks, scores, weights = [], [], []
    for j, rows in enumerate(oriented.values()):
        delta = rows["delta"].to_numpy(dtype=float)
        w = rows["weight"].to_numpy(dtype=float)
        x = _length_term(delta, _sd(delta, w[None, :]))[0]
        block = np.zeros((len(rows), 2 * k + q))
        block[:, j] = 1.0
        block[:, k + j] = x
        block[np.arange(len(rows)), 2 * k + questions.get_indexer(rows["question_id"])] = 1.0
        blocks.append(block)
        scores.append(rows["score"].to_numpy(dtype=float))
        weights.append(w)
    penalty = np.diag(np.r_[np.full(2 * k, LC_REG), np.full(q, reg)])
    beta = fit_logistic(np.concatenate(blocks), np.concatenate(scores), np.concatenate(weights)[None, :], penalty)
    offsets = beta[0, 2 * k:]
    return pd.Series(offsets - offsets.mean(), index=questions, name="difficulty")


def _difficulty_values(difficulty, battles, rows, model, baseline, min_models) -> tuple[np.ndarray, bool, str]:
    if isinstance(difficulty, str):
        if difficulty != "auto":
            raise ValueError(f"difficulty must be 'auto', None or a mapping question_id -> value, got {difficulty!r}")
        difficulty = question_difficulty(battles, baseline, min_models=min_models)
        if difficulty is None:
            return np.zeros(len(rows)), False, (
                f"difficulty term dropped: fewer than {min_models} models were judged against {baseline}, "
                "too few to estimate a per-question difficulty (alpaca_eval's advice for question sets "
                "without one)")
        source = "estimated from the models judged against the baseline"
    elif difficulty is None:
        return np.zeros(len(rows)), False, "difficulty term dropped (difficulty=None)"
    else:
        source = "given"
    if not isinstance(difficulty, (Mapping, pd.Series)):
        raise ValueError("difficulty must be 'auto', None or a mapping question_id -> value")
    values = pd.Series(difficulty, dtype=float) if isinstance(difficulty, Mapping) else difficulty.astype(float)
    found = values.reindex(pd.Index(rows["question_id"])).to_numpy(dtype=float)
    if not np.all(np.isfinite(found)):
        missing = rows["question_id"].to_numpy()[~np.isfinite(found)][0]
        raise ValueError(f"difficulty has no finite value for question {missing!r}")
    return found, True, f"difficulty term used ({source})"


def length_controlled_win_rate(
    battles: pd.DataFrame,
    model: str,
    baseline: str,
    difficulty="auto",
    rounds: int = 1000,
    seed: int = 0,
    by: str = "question",
    level: float = 0.95,
    reg: float = LC_REG,
    min_models: int = MIN_DIFFICULTY_MODELS,
    fit: str = "mle",
) -> LengthControlled:
    """AlpacaEval 2's length-controlled win rate of ``model`` against ``baseline`` (see the module docstring).

    ``battles`` needs ``question_id``, ``length_a`` and ``length_b`` (the two answers' lengths, in any
    one unit); only the battles between the two models are used, in either order.
    """
    _check_bootstrap(rounds, by)
    if not reg >= 0:
        raise ValueError(f"reg must be >= 0, got {reg!r}")
    if fit not in FITS:
        raise ValueError(f"fit must be one of {', '.join(FITS)}, got {fit!r}")
    rows = _oriented(battles, model, baseline)
    if not len(rows) or not rows["weight"].sum() > 0:
        raise ValueError(f"no battles between {model!r} and {baseline!r}")
    d, used, note = _difficulty_values(difficulty, battles, rows, model, baseline, min_models)
    questions = _questions(rows)
    first_row = questions.order[questions.starts]  # d is per question: read it off one row of each
    q_difficulty = d[first_row]
    w = rows["weight"].to_numpy(dtype=float)
    score = rows["score"].to_numpy(dtype=float)

    c_l1 = None
    if fit == "alpaca_eval":
        design, _ = _designs(rows, d, w[None, :])
        c_l1 = _alpaca_eval_c(design[0], score, w)
    beta, sd = _fit_rounds(rows, d, w[None, :], reg, c_l1)
    lc = 100.0 * expit(beta[0, 0] + beta[0, 2] * q_difficulty).mean()
    raw = 100.0 * (w @ score) / w.sum()

    generators = _round_generators(seed, rounds)
    if by == "question":
        picks = _stack([np.bincount(g.integers(0, questions.count, size=questions.count), minlength=questions.count)
                        for g in generators], questions.count)
        row_weights = picks[:, questions.codes] * w[None, :]
        question_weights = picks.astype(float)
    else:
        n = len(rows)
        draws = _stack([np.bincount(g.integers(0, n, size=n), minlength=n) for g in generators], n)
        row_weights = draws * w[None, :]
        question_weights = np.ones((rounds, questions.count))
    boot, _ = _fit_rounds(rows, d, row_weights, reg, c_l1)
    predicted = expit(boot[:, :1] + boot[:, 2:3] * q_difficulty[None, :])
    total = row_weights.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        boot_lc = 100.0 * (predicted * question_weights).sum(axis=1) / question_weights.sum(axis=1)
        boot_raw = 100.0 * (row_weights @ score) / total
    boot_lc[total <= 0] = np.nan
    samples = pd.DataFrame({"lc": boot_lc, "raw": boot_raw})
    samples.index.name = "round"
    bounds = confidence_intervals(samples, level=level)
    return LengthControlled(
        model=model, baseline=baseline,
        win_rate=float(lc),
        ci_lower=float(min(bounds.loc["lc", "ci_lower"], lc)) if rounds else float(lc),
        ci_upper=float(max(bounds.loc["lc", "ci_upper"], lc)) if rounds else float(lc),
        raw_win_rate=float(raw),
        raw_ci_lower=float(min(bounds.loc["raw", "ci_lower"], raw)) if rounds else float(raw),
        raw_ci_upper=float(max(bounds.loc["raw", "ci_upper"], raw)) if rounds else float(raw),
        coefficients=pd.Series(beta[0], index=["model", "length", "difficulty"], name="coefficient"),
        length_sd=float(sd[0]), difficulty_used=used, note=note, l1_c=c_l1,
        battles=len(rows), questions=questions.count, samples=samples,
    )
