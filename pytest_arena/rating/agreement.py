"""Is the judge any good? Its verdicts on labelled pairs against the labels (issue 26).

**Inputs.** ``verdicts``: a DataFrame, one row per verdict of a judge on a labelled pair:

``question_id``, ``model_a``, ``model_b``, ``winner``
    the match as judged and the judge's verdict in its terms: ``model_a``, ``model_b`` or ``tie`` (under
    swap_position the two orders combined, a disagreement being a tie: the review record's ``win``;
    every winner starting with "tie" is a tie);
``turn`` (optional)
    the turn judged (an int), or None for the whole conversation (a review record without ``turn``);
``judge`` (optional, default ``"judge"``)
    which judge; one verdict per judge, pair and turn (a pair listed either way round is the same pair);
``category`` (optional)
    the question's category, for :func:`audit_table` ``by="category"``;
``winner_1``, ``winner_2`` (optional)
    under swap_position, each order's verdict in the match's terms (the record's ``win_1``/``win_2``):
    order 1 showed model_a's answer first, order 2 model_b's; None or NaN without swap;
``swapped`` (optional)
    without swap, True where the one call showed model_b's answer first (randomize_order);
``length_a``, ``length_b`` (optional)
    the lengths of the two answers the verdict is about, in any one unit, for the longer-answer shares.

``labels``: :class:`~pytest_arena.audit_labels.Label` objects (``audit_labels.read_labels``) or
:func:`labels_table`'s frame. A label is matched with the judge's verdict on the same question, pair
and turn (``turn`` None matches None only).

**Agreement, as FastChat's** ``fastchat/llm_judge/compute_agreement.py`` (``get_mt_bench_agreement``,
judges ``gpt4-pair`` and ``human``) **defines it**: the judge's verdict is compared with every label of
its pair, each comparison counting once (a pair with three labels counts three times); two verdicts
agree when they name the same winner or are both ties of any kind (``tie (bothbad)`` equals ``tie``,
``equalvote``). *With ties* every comparison counts; *without ties* a comparison counts only when
neither side is a tie (``ban=["tie"]``: a tie of the judge drops its pair, a tied label drops itself).
FastChat reports each turn on its own; the pooled figure here is their sum.

**Cohen's kappa** over the same comparisons: ``(p_o - p_e) / (1 - p_e)``, ``p_o`` the agreement,
``p_e = sum_k p_judge(k) * p_labels(k)`` from each side's own shares of the categories (model_a,
model_b, tie; without ties model_a, model_b). The categories are read in each *label's* order of the
two models (the order its annotator was shown), so kappa does not depend on model names. NaN when
``p_e`` is 1 (both sides always say the same one thing).

**Judge-side figures**, over the verdicts that met a label (each verdict once): *position consistency*,
the share of swapped verdicts whose two orders agree; *first position*, the share of decisive
single-order verdicts that went to the answer shown first (order 1: model_a; order 2: model_b; no swap:
model_a, or model_b where ``swapped``), 0.5 for an unbiased judge; *longer answer*, the share of decisive
verdicts, between answers of different length, that went to the longer one. The same share in the
labels (each label once) is beside it: a judge whose share exceeds the labels' prefers length more
than the annotators did.

**Intervals (95%).** Comparisons are not independent: the labels of one question share its answers,
its difficulty and, for several annotators, the judge's one verdict. Proportions get the **Wilson score
interval at the effective sample size** ``n / deff``, with ``deff`` the design effect of clustering by
question (Kish; the variance of a ratio estimator over question clusters, by linearisation, against
the binomial variance), never below 1 so clustering only widens. A percentile bootstrap over questions
respects the clustering as well, but collapses to a point at 0% or 100% (five agreeing labels would
give [1, 1] and pass any gate on the lower end), while Wilson's interval keeps its width there
(5 of 5: 0.57 .. 1); it is also deterministic. Kappa is not a proportion: its interval is the seeded
percentile bootstrap over questions (each round draws as many questions as there are, with
replacement, and refits kappa on all their comparisons), widened to reach the estimate.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from .battles import _round_generators
from .shares import Rate, clustered_rate, design_effect, wilson_interval  # noqa: F401 (re-exported)

SIDES = ("model_a", "model_b")
OUTCOMES = ("model_a", "model_b", "tie")
WHOLE = "whole"  # the turn group of verdicts about the whole conversation (turn None)
_FLIP = {"model_a": "model_b", "model_b": "model_a", "tie": "tie"}


@dataclass(frozen=True)
class Kappa:
    """Cohen's kappa over ``total`` comparisons, with its bootstrap interval (NaN where undefined)."""

    total: int
    estimate: float
    ci_lower: float
    ci_upper: float


@dataclass(frozen=True)
class JudgeAudit:
    """One judge's figures on one group of labelled pairs (all of them, a category, a turn)."""

    judge: str
    group: str  # "all", a category, or a turn ("1", "2", WHOLE)
    questions: int
    verdicts: int  # the judge's verdicts that met a label
    labels: int  # comparisons: labels that met a verdict
    agreement: Rate  # with ties (FastChat's "with tie")
    agreement_no_ties: Rate  # FastChat's "without tie"
    kappa: Kappa
    kappa_no_ties: Kappa
    position_consistency: Rate
    first_position: Rate
    longer_judge: Rate
    longer_labels: Rate

    def row(self) -> dict:
        """The figures as one flat row (a CSV line): ``agreement``, ``agreement_ci_lower``, ... and the
        counts (``agreement_hits``, ``agreement_total``)."""
        row: dict = {"judge": self.judge, "group": self.group, "questions": self.questions,
                     "verdicts": self.verdicts, "labels": self.labels}
        for name, value in asdict(self).items():
            if not isinstance(value, dict):
                continue
            row[name] = value["estimate"]
            row[f"{name}_ci_lower"], row[f"{name}_ci_upper"] = value["ci_lower"], value["ci_upper"]
            if "hits" in value:
                row[f"{name}_hits"] = value["hits"]
            row[f"{name}_total"] = value["total"]
        return row


# --------------------------------------------------------------------------------------------------
# Tables in, comparisons out


def labels_table(labels) -> pd.DataFrame:
    """Labels as a frame: ``question_id, model_a, model_b, turn, label`` (model_a, model_b or tie),
    ``label_winner`` (as written), ``annotator``. A frame passes through (checked)."""
    if isinstance(labels, pd.DataFrame):
        frame = labels.copy()
        if "label" not in frame.columns:
            frame["label"] = [_outcome(w, "label winner") for w in frame["label_winner"]]
    else:
        frame = pd.DataFrame([{"question_id": x.question_id, "model_a": x.model_a, "model_b": x.model_b,
                               "turn": x.turn, "label": x.outcome, "label_winner": x.winner,
                               "annotator": x.annotator} for x in labels],
                             columns=["question_id", "model_a", "model_b", "turn", "label", "label_winner",
                                      "annotator"])
    frame["turn"] = _objects([_turn(t) for t in frame["turn"]], frame.index)
    return frame


def verdicts_table(verdicts: pd.DataFrame) -> pd.DataFrame:
    """``verdicts`` checked and completed: every optional column present, winners as model_a, model_b or
    tie, ``turn`` an int or None. Raises ValueError for a missing column, an unknown winner or two
    verdicts of one judge on the same pair and turn (FastChat asserts one judge verdict a pair too)."""
    missing = [c for c in ("question_id", "model_a", "model_b", "winner") if c not in verdicts.columns]
    if missing:
        raise ValueError(f"verdicts lack the column(s) {', '.join(missing)}")
    frame = verdicts.reset_index(drop=True).copy()
    defaults = {"judge": "judge", "turn": None, "category": None, "winner_1": None, "winner_2": None,
                "swapped": False, "length_a": np.nan, "length_b": np.nan}
    for column, value in defaults.items():
        if column not in frame.columns:
            frame[column] = value
    frame["turn"] = _objects([_turn(t) for t in frame["turn"]])
    frame["winner"] = [_outcome(w, "winner") for w in frame["winner"]]
    for column in ("winner_1", "winner_2"):
        frame[column] = _objects([None if _missing(w) else _outcome(w, column) for w in frame[column]])
    frame["judge"] = frame["judge"].astype(str)
    frame["swapped"] = [False if _missing(x) else bool(x) for x in frame["swapped"]]
    keys = [(j, *_pair_key(q, a, b, t)) for j, q, a, b, t in
            zip(frame["judge"], frame["question_id"], frame["model_a"], frame["model_b"], frame["turn"])]
    if len(set(keys)) != len(keys):
        seen: set = set()
        twice = next(k for k in keys if k in seen or seen.add(k))
        raise ValueError(f"two verdicts of judge {twice[0]!r} on question {twice[2]!r}, {twice[3]} vs {twice[4]}, "
                         f"turn {twice[1]}: expected one verdict per judge, pair and turn")
    frame["_key"] = [k[1:] for k in keys]
    return frame


def verdicts_from_labels(labels, judge: str = "judge") -> pd.DataFrame:
    """Trusted verdicts read as labels (FastChat's ``gpt4_pair_judgments.json``) as a verdicts table."""
    table = labels_table(labels)
    return pd.DataFrame({"judge": judge, "question_id": table["question_id"], "model_a": table["model_a"],
                         "model_b": table["model_b"], "turn": table["turn"], "winner": table["label"]})


def verdicts_from_reviews(records: Iterable[Mapping], judge: str | None = None,
                          lengths: Mapping[tuple, float] | None = None) -> pd.DataFrame:
    """A verdicts table from pairwise review records (``model_a``, ``model_b``, ``win``, ``win_1``/
    ``win_2``, ``turn``, ``category``, ``swapped``, ``judge``). Records without a verdict (``error``, a
    ``win`` of "error") are not verdicts and are left out. ``judge`` overrides the records' judge name;
    ``lengths`` maps ``(question_id, model, turn)`` to the length of that model's answer."""
    rows = []
    for record in records:
        if record.get("error") or record.get("win") not in OUTCOMES:
            continue
        turn = record.get("turn")
        row = {"judge": judge or str(record.get("judge", "judge")), "question_id": record["question_id"],
               "model_a": record["model_a"], "model_b": record["model_b"], "turn": turn,
               "winner": record["win"], "category": record.get("category"),
               "winner_1": record.get("win_1") if record.get("win_1") in OUTCOMES else None,
               "winner_2": record.get("win_2") if record.get("win_2") in OUTCOMES else None,
               "swapped": bool(record.get("swapped", False))}
        if lengths is not None:
            for side in SIDES:
                row[f"length_{side[-1]}"] = lengths.get((record["question_id"], record[side], turn), np.nan)
        rows.append(row)
    columns = ["judge", "question_id", "model_a", "model_b", "turn", "winner", "category", "winner_1", "winner_2",
               "swapped"] + (["length_a", "length_b"] if lengths is not None else [])
    frame = pd.DataFrame(rows, columns=columns)
    for column in ("turn", "winner_1", "winner_2"):  # None stays None (pandas would make it NaN)
        frame[column] = _objects([row[column] for row in rows])
    return frame


def compare(verdicts: pd.DataFrame, labels) -> pd.DataFrame:
    """One row per (judge, label) whose pair and turn the judge gave a verdict on, in the label's order
    of the two models: ``judge, question_id, turn, category, model_a, model_b, annotator, label,
    label_winner, verdict`` (the judge's, in the label's order), ``longer`` (the label-order side with the
    longer answer; None for equal or unknown lengths) and ``verdict_id`` (the row of
    :func:`verdicts_table` it came from). Labels no verdict met are not rows (:func:`unmatched_labels`)."""
    table = verdicts_table(verdicts)
    labels = labels_table(labels)
    by_key: dict[tuple, list[int]] = {}
    for row, key in enumerate(table["_key"]):
        by_key.setdefault(key, []).append(row)
    rows = []
    for label in labels.itertuples(index=False):
        for row in by_key.get(_pair_key(label.question_id, label.model_a, label.model_b, label.turn), ()):
            verdict = table.iloc[row]
            flip = verdict["model_a"] != label.model_a
            longer = _longer(verdict["length_a"], verdict["length_b"])
            rows.append({"judge": verdict["judge"], "question_id": label.question_id, "turn": label.turn,
                         "category": verdict["category"], "model_a": label.model_a, "model_b": label.model_b,
                         "annotator": label.annotator, "label": label.label, "label_winner": label.label_winner,
                         "verdict": _FLIP[verdict["winner"]] if flip else verdict["winner"],
                         "longer": _FLIP[longer] if flip and longer else longer, "verdict_id": row})
    columns = ["judge", "question_id", "turn", "category", "model_a", "model_b", "annotator", "label",
               "label_winner", "verdict", "longer", "verdict_id"]
    frame = pd.DataFrame(rows, columns=columns)
    frame["turn"] = _objects([_turn(t) for t in frame["turn"]])
    frame["longer"] = _objects([None if _missing(x) else x for x in frame["longer"]])
    return frame


def unmatched_labels(verdicts: pd.DataFrame, labels, judge: str | None = None) -> pd.DataFrame:
    """The labels that no verdict (of ``judge``, or of any judge) met: a judge error, a pair or turn the
    arena did not judge. The caller reports them; they count nowhere."""
    table = verdicts_table(verdicts)
    if judge is not None:
        table = table[table["judge"] == judge]
    judged = set(table["_key"])
    labels = labels_table(labels)
    keep = [_pair_key(q, a, b, t) not in judged
            for q, a, b, t in zip(labels["question_id"], labels["model_a"], labels["model_b"], labels["turn"])]
    return labels[keep].reset_index(drop=True)


# --------------------------------------------------------------------------------------------------
# The figures


def agreement_rate(comparisons: pd.DataFrame, ties: bool = True, level: float = 0.95) -> Rate:
    """FastChat's agreement with (``ties=True``) or without ties, over :func:`compare`'s rows."""
    kept = comparisons if ties else comparisons[(comparisons["label"] != "tie") & (comparisons["verdict"] != "tie")]
    return clustered_rate(kept["label"].to_numpy() == kept["verdict"].to_numpy(), kept["question_id"], level)


def cohen_kappa(first: Sequence[str], second: Sequence[str], categories: Sequence[str] = OUTCOMES) -> float:
    """Cohen's kappa of two raters' categories over the same items; NaN when ``p_e`` is 1 or no items."""
    return float(_kappa(_confusion(first, second, categories)))


def kappa(comparisons: pd.DataFrame, ties: bool = True, level: float = 0.95, rounds: int = 1000,
          seed: int = 0) -> Kappa:
    """Cohen's kappa between the judge and the labels over :func:`compare`'s rows, with its interval."""
    kept = comparisons if ties else comparisons[(comparisons["label"] != "tie") & (comparisons["verdict"] != "tie")]
    categories = OUTCOMES if ties else SIDES
    return bootstrap_kappa(kept["verdict"].to_numpy(), kept["label"].to_numpy(), kept["question_id"], categories,
                           level, rounds, seed)


def bootstrap_kappa(first, second, clusters, categories: Sequence[str] = OUTCOMES, level: float = 0.95,
                    rounds: int = 1000, seed: int = 0) -> Kappa:
    """Kappa of ``first`` against ``second`` with the percentile interval of a bootstrap over ``clusters``
    (each round draws as many clusters as there are, with replacement, from its own generator)."""
    codes, _ = pd.factorize(pd.Series(list(clusters), dtype=object), sort=False)
    k = len(categories)
    index = {c: i for i, c in enumerate(categories)}
    per_cluster = np.zeros((codes.max() + 1 if len(codes) else 0, k, k))
    for cluster, x, y in zip(codes, first, second):
        per_cluster[cluster, index[x], index[y]] += 1
    estimate = float(_kappa(per_cluster.sum(axis=0)))
    if not len(codes):
        return Kappa(0, math.nan, math.nan, math.nan)
    clusters_n = per_cluster.shape[0]
    weights = np.stack([np.bincount(rng.integers(0, clusters_n, clusters_n), minlength=clusters_n)
                        for rng in _round_generators(seed, rounds)])
    samples = _kappa((weights @ per_cluster.reshape(clusters_n, k * k)).reshape(rounds, k, k))
    finite = samples[np.isfinite(samples)]
    if not finite.size or math.isnan(estimate):
        return Kappa(len(codes), estimate, math.nan, math.nan)
    lo, hi = np.quantile(finite, [(1 - level) / 2, (1 + level) / 2])
    return Kappa(len(codes), estimate, float(min(lo, estimate)), float(max(hi, estimate)))


def position_consistency(verdicts: pd.DataFrame, level: float = 0.95) -> Rate:
    """The share of swapped verdicts (both orders given) whose two orders named the same winner."""
    table = verdicts_table(verdicts)
    swapped = table[table["winner_1"].notna() & table["winner_2"].notna()]
    return clustered_rate(swapped["winner_1"].to_numpy() == swapped["winner_2"].to_numpy(), swapped["question_id"],
                          level)


def first_position(verdicts: pd.DataFrame, level: float = 0.95) -> Rate:
    """The share of decisive single-order verdicts that went to the answer shown first."""
    table = verdicts_table(verdicts)
    hits, clusters = [], []
    for row in table.itertuples(index=False):
        if row.winner_1 is not None and row.winner_2 is not None:
            orders = ((row.winner_1, "model_a"), (row.winner_2, "model_b"))
        else:
            orders = ((row.winner, "model_b" if row.swapped else "model_a"),)
        for said, first in orders:
            if said != "tie":
                hits.append(said == first)
                clusters.append(row.question_id)
    return clustered_rate(np.array(hits, dtype=bool), clusters, level)


def longer_share(winners, longer, clusters, level: float = 0.95) -> Rate:
    """The share of decisive ``winners`` that are the ``longer`` side, where one side is longer."""
    winners, longer = np.asarray(winners, dtype=object), np.asarray(longer, dtype=object)
    keep = (winners != "tie") & np.array([x in SIDES for x in longer], dtype=bool)
    return clustered_rate(winners[keep] == longer[keep], np.asarray(list(clusters), dtype=object)[keep], level)


def label_agreement(labels, ties: bool = True, level: float = 0.95) -> Rate:
    """How often the annotators agree with each other: FastChat's ``human``-``human`` agreement (every
    two labels of the same pair and turn, compared in one order of the models; without ties a pair of
    labels counts only when neither is a tie)."""
    table = labels_table(labels)
    by_key: dict[tuple, list[str]] = {}
    for q, a, b, t, said in zip(table["question_id"], table["model_a"], table["model_b"], table["turn"],
                                table["label"]):
        by_key.setdefault(_pair_key(q, a, b, t), []).append(said if a < b else _FLIP[said])
    hits, clusters = [], []
    for key, said in by_key.items():
        for i in range(len(said) - 1):
            for j in range(i + 1, len(said)):
                if ties or "tie" not in (said[i], said[j]):
                    hits.append(said[i] == said[j])
                    clusters.append(key[1])
    return clustered_rate(np.array(hits, dtype=bool), clusters, level)


def judge_audit(verdicts: pd.DataFrame, labels, level: float = 0.95, rounds: int = 1000, seed: int = 0,
                judge: str | None = None, group: str = "all") -> JudgeAudit:
    """Every figure of one judge (``judge``; None: the table must hold one) on the labelled pairs."""
    table = verdicts_table(verdicts)
    judges = sorted(set(table["judge"])) if judge is None else [judge]
    if len(judges) != 1:
        raise ValueError(f"verdicts of several judges ({', '.join(judges)}): name the judge")
    table = table[table["judge"] == judges[0]].reset_index(drop=True)
    return _audit(table, compare(table, labels), judges[0], group, level, rounds, seed)


def audit_table(verdicts: pd.DataFrame, labels, by: str | None = None, level: float = 0.95, rounds: int = 1000,
                seed: int = 0) -> pd.DataFrame:
    """Every judge's figures as rows (:meth:`JudgeAudit.row`): the judge's ``all`` row, then one row per
    category (``by="category"``, from the verdicts) or per turn (``by="turn"``: "1", "2", ..., WHOLE),
    groups in sorted order; judges in sorted order. Groups no label met are left out."""
    if by not in (None, "category", "turn"):
        raise ValueError(f"by must be None, 'category' or 'turn', got {by!r}")
    table = verdicts_table(verdicts)
    comparisons = compare(table, labels)
    if by == "category" and table["category"].isna().any():
        raise ValueError("verdicts without a category cannot be audited by category")
    rows = []
    for judge in sorted(set(table["judge"])):
        mine, theirs = table[table["judge"] == judge], comparisons[comparisons["judge"] == judge]
        rows.append(_audit(mine, theirs, judge, "all", level, rounds, seed).row())
        if by is None:
            continue
        verdict_groups = [_group_name(v, by) for v in mine[by]]
        label_groups = [_group_name(v, by) for v in theirs[by]]
        for name in sorted(set(label_groups), key=_group_order):
            rows.append(_audit(mine[[g == name for g in verdict_groups]], theirs[[g == name for g in label_groups]],
                               judge, name, level, rounds, seed).row())
    return pd.DataFrame(rows)


def pairwise_kappa(verdicts: pd.DataFrame, ties: bool = True, level: float = 0.95, rounds: int = 1000,
                   seed: int = 0) -> pd.DataFrame:
    """How the judges of a panel agree with each other: for every two judges, over the pairs and turns
    both judged, ``matches``, the ``agreement`` (with its interval) and Cohen's ``kappa`` (with its
    bootstrap interval by question), verdicts read in the first judge's order of the models. Without
    ties, only matches where neither judge said tie."""
    table = verdicts_table(verdicts)
    judges = sorted(set(table["judge"]))
    said = {j: {k: (a, w) for k, a, w in zip(part["_key"], part["model_a"], part["winner"])}
            for j, part in table.groupby("judge", sort=True)}
    rows = []
    for i, first in enumerate(judges):
        for second in judges[i + 1:]:
            x, y, clusters = [], [], []
            for key, (model_a, winner) in said[first].items():
                if key not in said[second]:
                    continue
                other_a, other = said[second][key]
                other = other if other_a == model_a else _FLIP[other]
                if ties or "tie" not in (winner, other):
                    x.append(winner), y.append(other), clusters.append(key[1])
            rate = clustered_rate(np.array(x, dtype=object) == np.array(y, dtype=object), clusters, level)
            k = bootstrap_kappa(x, y, clusters, OUTCOMES if ties else SIDES, level, rounds, seed)
            rows.append({"judge_1": first, "judge_2": second, "matches": len(x), "agreement": rate.estimate,
                         "agreement_ci_lower": rate.ci_lower, "agreement_ci_upper": rate.ci_upper,
                         "kappa": k.estimate, "kappa_ci_lower": k.ci_lower, "kappa_ci_upper": k.ci_upper})
    return pd.DataFrame(rows, columns=["judge_1", "judge_2", "matches", "agreement", "agreement_ci_lower",
                                       "agreement_ci_upper", "kappa", "kappa_ci_lower", "kappa_ci_upper"])


# --------------------------------------------------------------------------------------------------
# Helpers


def _audit(table: pd.DataFrame, comparisons: pd.DataFrame, judge: str, group: str, level: float, rounds: int,
           seed: int) -> JudgeAudit:
    met = table.loc[sorted(set(comparisons["verdict_id"]))] if len(comparisons) else table.iloc[:0]
    longer = [_longer(a, b) for a, b in zip(met["length_a"], met["length_b"])]
    return JudgeAudit(
        judge=judge, group=group, questions=comparisons["question_id"].nunique(), verdicts=len(met),
        labels=len(comparisons),
        agreement=agreement_rate(comparisons, True, level),
        agreement_no_ties=agreement_rate(comparisons, False, level),
        kappa=kappa(comparisons, True, level, rounds, seed),
        kappa_no_ties=kappa(comparisons, False, level, rounds, seed),
        position_consistency=position_consistency(met, level), first_position=first_position(met, level),
        longer_judge=longer_share(met["winner"], longer, met["question_id"], level),
        longer_labels=longer_share(comparisons["label"], comparisons["longer"], comparisons["question_id"], level),
    )


def _confusion(first, second, categories) -> np.ndarray:
    index = {c: i for i, c in enumerate(categories)}
    counts = np.zeros((len(categories), len(categories)))
    for x, y in zip(first, second):
        counts[index[x], index[y]] += 1
    return counts


def _kappa(counts: np.ndarray) -> np.ndarray:
    """Kappa of confusion matrices (..., K, K): rows one rater, columns the other."""
    n = counts.sum(axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        observed = np.trace(counts, axis1=-2, axis2=-1) / n
        expected = np.sum(counts.sum(axis=-1) * counts.sum(axis=-2), axis=-1) / n ** 2
        value = (observed - expected) / (1 - expected)
    return np.where((n > 0) & (expected < 1 - 1e-12), value, np.nan)


def _pair_key(question_id, model_a: str, model_b: str, turn) -> tuple:
    """A pair whichever way round it is listed (FastChat orders the two names), for one turn."""
    low, high = (model_a, model_b) if model_a < model_b else (model_b, model_a)
    return (turn, question_id, low, high)


def _outcome(value, what: str) -> str:
    if isinstance(value, str) and value.startswith("tie"):
        return "tie"
    if value in SIDES:
        return value
    raise ValueError(f"{what}: expected model_a, model_b or a tie, got {value!r}")


def _objects(values: list, index=None) -> pd.Series:
    """A column that keeps None as None and ints as ints (pandas would infer NaN and floats)."""
    return pd.Series(values, index=index, dtype=object)


def _missing(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _turn(value) -> int | None:
    if _missing(value):
        return None
    if isinstance(value, (bool, np.bool_)) or float(value) != int(value) or int(value) < 1:
        raise ValueError(f"turn: expected a whole number from 1 or None, got {value!r}")
    return int(value)


def _longer(length_a, length_b) -> str | None:
    if _missing(length_a) or _missing(length_b) or length_a == length_b:
        return None
    return "model_a" if length_a > length_b else "model_b"


def _group_name(value, by: str) -> str:
    if by == "turn":
        return WHOLE if value is None else str(value)
    return str(value)


def _group_order(name: str):
    return (0, int(name), "") if name.isdigit() else (1, 0, name)
