"""The judge audit's figures (issue 26): agreement as FastChat's ``compute_agreement.py`` defines it (checked
against FastChat's own code by ``bench/agreement_reference.py``), Cohen's kappa, position consistency, the
longer-answer shares and their intervals. Every expected value is FastChat's output or worked out by hand
in the comments; none comes from the code under test."""

import math
from pathlib import Path

import pandas as pd
import pytest
from scipy.stats import norm

from pytest_arena.audit_labels import Label, read_labels, select_annotators
from pytest_arena.rating import agreement as ag

DATA = Path(__file__).parent / "data"
HUMAN, GPT4 = DATA / "audit_human_judgments.json", DATA / "audit_gpt4_pair_judgments.json"

Z = norm.ppf(0.975)


def label(q, winner, a="x", b="y", turn=None, annotator=""):
    return Label(q, a, b, winner, turn, annotator, f"line {q}")


def verdicts(rows, **columns):
    """rows: (question_id, winner) or (question_id, winner, model_a, model_b); extra columns as lists."""
    frame = pd.DataFrame([(r[0], r[2] if len(r) > 2 else "x", r[3] if len(r) > 3 else "y", r[1]) for r in rows],
                         columns=["question_id", "model_a", "model_b", "winner"])
    for name, values in columns.items():
        frame[name] = values
    return frame


def audit(frame, labels, **kw):
    return ag.judge_audit(frame, labels, rounds=200, **kw)


# The labels of the hand-made cases: six questions, the pair (x, y); q4 is listed the other way round
# (y, x) and "model_b" there means x won. In the pair's (x, y) order: x, y, tie, x, tie, y.
LABELS = [label(1, "model_a"), label(2, "model_b"), label(3, "tie"), label(4, "model_b", "y", "x"),
          label(5, "tie (bothbad)"), label(6, "model_b")]
TRUTH = [(1, "model_a"), (2, "model_b"), (3, "tie"), (4, "model_a"), (5, "tie"), (6, "model_b")]


# --------------------------------------------------------------------------------------------------
# FastChat's own figures


def test_agreement_equals_fastchats_compute_agreement():
    # FastChat's counts from bench/agreement_reference.py: fschat 0.2.36,
    # fastchat/llm_judge/compute_agreement.py get_mt_bench_agreement, judges gpt4-pair vs human,
    # on tests/data/audit_human_judgments.json + audit_gpt4_pair_judgments.json
    fastchat = {"1": {"with": (16, 27), "without": (13, 17)}, "2": {"with": (16, 25), "without": (14, 18)}}
    experts = select_annotators(read_labels(HUMAN), "expert")
    judge = ag.verdicts_from_labels(read_labels(GPT4), judge="gpt4-pair")
    table = ag.audit_table(judge, experts, by="turn", rounds=100).set_index("group")
    for turn, figures in fastchat.items():
        assert (table.loc[turn, "agreement_hits"], table.loc[turn, "agreement_total"]) == figures["with"]
        without = (table.loc[turn, "agreement_no_ties_hits"], table.loc[turn, "agreement_no_ties_total"])
        assert without == figures["without"]
    # pooled over the turns: FastChat's two turns summed
    assert (table.loc["all", "agreement_hits"], table.loc["all", "agreement_total"]) == (32, 52)
    assert (table.loc["all", "agreement_no_ties_hits"], table.loc["all", "agreement_no_ties_total"]) == (27, 35)
    assert table.loc["all", "agreement"] == pytest.approx(32 / 52)


def test_annotator_agreement_equals_fastchats_human_human():
    # bench/agreement_reference.py: FastChat's get_mt_bench_agreement(data[turn], "human", "human", ban)
    fastchat = {1: ((10, 15), (10, 14)), 2: ((8, 14), (7, 9))}
    experts = select_annotators(read_labels(HUMAN), "expert")
    for turn, (with_ties, without_ties) in fastchat.items():
        mine = [x for x in experts if x.turn == turn]
        assert (ag.label_agreement(mine).hits, ag.label_agreement(mine).total) == with_ties
        assert (ag.label_agreement(mine, ties=False).hits, ag.label_agreement(mine, ties=False).total) == without_ties


# --------------------------------------------------------------------------------------------------
# Judges of known quality


def test_a_judge_that_is_always_right():
    result = audit(verdicts(TRUTH), LABELS)
    assert (result.agreement.hits, result.agreement.total) == (6, 6)
    assert (result.agreement_no_ties.hits, result.agreement_no_ties.total) == (4, 4)
    assert result.kappa.estimate == 1.0 and result.kappa_no_ties.estimate == 1.0
    # Wilson at a share of 1: the lower end is n / (n + z^2); clustering cannot be measured there
    assert result.agreement.ci_lower == pytest.approx(6 / (6 + Z * Z))
    assert result.agreement.ci_upper == 1.0
    assert (result.questions, result.verdicts, result.labels) == (6, 6, 6)


def test_a_judge_that_always_picks_position_a_under_swap():
    # each order names the answer shown first: order 1 model_a, order 2 model_b; combined, a tie
    frame = verdicts([(q, "tie") for q in range(1, 7)], winner_1=["model_a"] * 6, winner_2=["model_b"] * 6)
    result = audit(frame, LABELS)
    assert (result.agreement.hits, result.agreement.total) == (2, 6)  # the two tied labels
    assert result.agreement_no_ties.total == 0 and math.isnan(result.agreement_no_ties.estimate)
    # the judge always says tie: p_o = 2/6, p_e = 1 * 2/6, kappa 0
    assert result.kappa.estimate == pytest.approx(0.0)
    assert (result.position_consistency.hits, result.position_consistency.total) == (0, 6)
    assert (result.first_position.hits, result.first_position.total) == (12, 12)


def test_a_judge_that_always_picks_position_a_without_swap():
    # one call each; on q2 the call showed y first (randomize_order), so the judge said model_b there
    frame = verdicts([(1, "model_a"), (2, "model_b"), (3, "model_a"), (4, "model_a"), (5, "model_a"),
                      (6, "model_a")], swapped=[False, True, False, False, False, False])
    result = audit(frame, LABELS)
    assert (result.first_position.hits, result.first_position.total) == (6, 6)
    assert result.position_consistency.total == 0
    # in each label's order: (judge, label) = (a,a) (b,b) (a,t) (b,b) (a,t) (a,b)  [q4 read as (y, x)]
    assert (result.agreement.hits, result.agreement.total) == (3, 6)
    assert (result.agreement_no_ties.hits, result.agreement_no_ties.total) == (3, 4)
    # judge a4 b2 t0, labels a1 b3 t2: p_e = (4*1 + 2*3) / 36 = 10/36, kappa = (1/2 - 10/36) / (26/36) = 8/26
    assert result.kappa.estimate == pytest.approx(8 / 26)


# q: (length of x's answer, of y's, the label in the (x, y) order); the judge names the longer answer
LENGTHS = {1: (100, 50, "model_a"), 2: (40, 90, "model_a"), 3: (70, 70, "tie"), 4: (120, 30, "tie"),
           5: (20, 200, "model_b"), 6: (300, 100, "model_b"), 7: (60, 61, "model_a"), 8: (10, 5, "model_a")}


def longer_judge():
    said = [(q, "tie" if a == b else "model_a" if a > b else "model_b") for q, (a, b, _) in LENGTHS.items()]
    return verdicts(said, length_a=[v[0] for v in LENGTHS.values()], length_b=[v[1] for v in LENGTHS.values()])


def test_a_judge_that_prefers_the_longer_answer():
    result = audit(longer_judge(), [label(q, v[2]) for q, v in LENGTHS.items()])
    # the judge's 7 decisive verdicts (q3 is a tie) all went to the longer answer
    assert (result.longer_judge.hits, result.longer_judge.total) == (7, 7)
    # decisive labels between unequal answers: q1 q2 q5 q6 q7 q8; the longer won on q1 q5 q8
    assert (result.longer_labels.hits, result.longer_labels.total) == (3, 6)
    # (judge, label): q1 a/a, q2 b/a, q3 t/t, q4 a/t, q5 b/b, q6 a/b, q7 b/a, q8 a/a
    assert (result.agreement.hits, result.agreement.total) == (4, 8)
    assert (result.agreement_no_ties.hits, result.agreement_no_ties.total) == (3, 6)
    # judge a4 b3 t1, labels a4 b2 t2: p_e = (16 + 6 + 2) / 64 = 0.375, kappa = 0.125 / 0.625
    assert result.kappa.estimate == pytest.approx(0.2)
    # without ties, judge a3 b3, labels a4 b2: p_e = (12 + 6) / 36 = 0.5 = p_o, kappa 0
    assert result.kappa_no_ties.estimate == pytest.approx(0.0)


def test_kappa_reads_each_label_in_its_own_order():
    # q6 listed (y, x): its label "model_a" (y won) and the judge's x read as "model_b" there.
    labels = [label(q, v[2]) for q, v in LENGTHS.items() if q != 6] + [label(6, "model_a", "y", "x")]
    result = audit(longer_judge(), labels)
    assert (result.agreement.hits, result.agreement.total) == (4, 8)  # agreement does not depend on the order
    assert (result.longer_labels.hits, result.longer_labels.total) == (3, 6)
    # judge a3 b4 t1, labels a5 b1 t2: p_e = (15 + 4 + 2) / 64, kappa = (32 - 21) / (64 - 21)
    assert result.kappa.estimate == pytest.approx(11 / 43)


def test_every_label_of_a_pair_is_compared_with_its_one_verdict():
    labels = [label(1, "model_a", annotator="e0"), label(1, "model_a", annotator="e1"),
              label(1, "tie (bothbad)", annotator="e2"), label(2, "model_a", "y", "x")]
    result = audit(verdicts([(1, "model_a"), (2, "model_b")]), labels)
    assert (result.verdicts, result.labels, result.questions) == (2, 4, 2)
    assert (result.agreement.hits, result.agreement.total) == (3, 4)
    assert (result.agreement_no_ties.hits, result.agreement_no_ties.total) == (3, 3)


def test_a_label_meets_only_the_verdict_of_its_turn():
    labels = [label(1, "model_a"), label(1, "model_a", turn=1), label(2, "model_b", turn=2)]
    frame = verdicts([(1, "model_a"), (2, "model_b")], turn=[1, 2])
    rows = ag.compare(frame, labels)
    assert [(r.question_id, r.turn) for r in rows.itertuples()] == [(1, 1), (2, 2)]
    missed = ag.unmatched_labels(frame, labels)
    assert list(zip(missed["question_id"], missed["turn"])) == [(1, None)]


def test_annotators_agreement_counts_every_two_labels_of_a_pair():
    # pair 1: a, a, tie -> (a,a) agree, (a,tie) twice not; pair 2: x won, written both ways round -> agree
    labels = [label(1, "model_a"), label(1, "model_a"), label(1, "tie"), label(2, "model_a"),
              label(2, "model_b", "y", "x")]
    assert (ag.label_agreement(labels).hits, ag.label_agreement(labels).total) == (2, 4)
    assert (ag.label_agreement(labels, ties=False).hits, ag.label_agreement(labels, ties=False).total) == (2, 2)


# --------------------------------------------------------------------------------------------------
# Panels


def test_pairwise_kappa_between_judges():
    one = verdicts([(1, "model_a"), (2, "model_a"), (3, "model_b"), (4, "model_b"), (5, "tie"), (6, "model_a")])
    # judge two lists q4 the other way round: its "model_a" there is y, i.e. model_b in one's order
    two = verdicts([(1, "model_a"), (2, "model_b"), (3, "model_b"), (4, "model_a", "y", "x"), (5, "tie"), (6, "tie")])
    frame = pd.concat([one.assign(judge="one"), two.assign(judge="two")], ignore_index=True)
    [row] = ag.pairwise_kappa(frame, rounds=200).to_dict("records")
    # agree on q1 q3 q4 q5: 4/6; one a3 b2 t1, two a1 b3 t2: p_e = 11/36, kappa = (24 - 11) / (36 - 11)
    assert (row["judge_1"], row["judge_2"], row["matches"]) == ("one", "two", 6)
    assert row["agreement"] == pytest.approx(4 / 6)
    assert row["kappa"] == pytest.approx(13 / 25)
    assert row["kappa_ci_lower"] <= row["kappa"] <= row["kappa_ci_upper"]
    [row] = ag.pairwise_kappa(frame, ties=False, rounds=200).to_dict("records")
    # q1-q4: agree on 3 of 4; one a2 b2, two a1 b3: p_e = 8/16, kappa = (0.75 - 0.5) / 0.5
    assert (row["matches"], row["agreement"], row["kappa"]) == (4, 0.75, pytest.approx(0.5))


def test_audit_table_has_a_row_per_judge_and_group():
    frame = pd.concat([verdicts(TRUTH).assign(judge="right"),
                       verdicts([(q, "model_a") for q in range(1, 7)]).assign(judge="first")], ignore_index=True)
    frame["category"] = ["math", "math", "code", "code", "code", "math"] * 2
    table = ag.audit_table(frame, LABELS, by="category", rounds=100)
    assert list(zip(table["judge"], table["group"])) == [("first", "all"), ("first", "code"), ("first", "math"),
                                                          ("right", "all"), ("right", "code"), ("right", "math")]
    right = table[table["judge"] == "right"].set_index("group")
    assert list(right["agreement_total"]) == [6, 3, 3]
    assert list(right["agreement"]) == [1.0, 1.0, 1.0]
    first = table[table["judge"] == "first"].set_index("group")
    # (judge, label) in label order: q1 a/a, q2 a/b, q3 a/t, q4 b/b, q5 a/t, q6 a/b; code = q3 q4 q5
    assert list(first["agreement_hits"]) == [2, 1, 1]
    for column in ("agreement", "kappa", "first_position", "longer_judge", "longer_labels"):
        assert {column, f"{column}_ci_lower", f"{column}_ci_upper"} <= set(table.columns)


def test_audit_table_by_turn_names_the_whole_conversation():
    labels = [label(1, "model_a", turn=1), label(1, "model_b", turn=2), label(2, "tie")]
    frame = verdicts([(1, "model_a"), (1, "model_a"), (2, "tie")], turn=[1, 2, None])
    table = ag.audit_table(frame, labels, by="turn", rounds=100)
    assert list(table["group"]) == ["all", "1", "2", ag.WHOLE]
    assert list(table["agreement_hits"]) == [2, 1, 0, 1]


# --------------------------------------------------------------------------------------------------
# Intervals


def test_wilson_interval_by_hand():
    # share 0.3 on 10: centre (0.3 + z^2/20) / (1 + z^2/10), half z / (1 + z^2/10) * sqrt(0.021 + z^2/400)
    z2 = Z * Z
    centre, half = (0.3 + z2 / 20) / (1 + z2 / 10), Z / (1 + z2 / 10) * math.sqrt(0.3 * 0.7 / 10 + z2 / 400)
    assert ag.wilson_interval(0.3, 10) == pytest.approx((centre - half, centre + half))
    assert ag.wilson_interval(1.0, 5)[0] == pytest.approx(0.5655, abs=1e-4)  # 5 of 5 is not proof
    assert all(math.isnan(x) for x in ag.wilson_interval(0.5, 0))


def test_design_effect_of_clustered_labels():
    # two questions, four labels each, all alike within a question: p = 1/2, y = (4, 0), m = (4, 4):
    # variance 2/1 * ((4-2)^2 + (0-2)^2) / 8^2 = 0.25 against 0.25 / 8: design effect 8, one label's worth
    hits, clusters = [1, 1, 1, 1, 0, 0, 0, 0], ["q1"] * 4 + ["q2"] * 4
    assert ag.design_effect(hits, clusters) == pytest.approx(8.0)
    rate = ag.clustered_rate(hits, clusters)
    assert (rate.hits, rate.total, rate.estimate) == (4, 8, 0.5)
    assert (rate.ci_lower, rate.ci_upper) == pytest.approx(ag.wilson_interval(0.5, 1.0))
    # one label a question: 4/3 * 4 * 0.25 / 16 = 1/12 against 1/16: the small-sample factor 4/3
    assert ag.design_effect([1, 0, 1, 0], ["a", "b", "c", "d"]) == pytest.approx(4 / 3)
    # labels that vary inside questions and not between them: never below 1 (clustering only widens)
    assert ag.design_effect([1, 0, 1, 0], ["a", "a", "b", "b"]) == 1.0
    assert ag.design_effect([1, 1, 1], ["a", "a", "b"]) == 1.0  # a share of 1 shows no clustering


def test_kappa_interval_is_seeded_and_holds_the_estimate():
    frame, labels = longer_judge(), [label(q, v[2]) for q, v in LENGTHS.items()]
    rows = ag.compare(frame, labels)
    first, again = ag.kappa(rows, rounds=300, seed=3), ag.kappa(rows, rounds=300, seed=3)
    assert first == again
    assert first.ci_lower <= first.estimate <= first.ci_upper and first.ci_lower < first.ci_upper
    assert first.total == 8


def test_cohen_kappa_of_two_raters():
    # p_o = 4/6, p_e = (3*1 + 2*3 + 1*2) / 36 = 11/36 (as in the panel test above)
    assert ag.cohen_kappa(list("aabbta"), list("abbbtt"), categories="abt") == pytest.approx(13 / 25)
    assert math.isnan(ag.cohen_kappa(["t", "t"], ["t", "t"], categories="abt"))  # p_e = 1: undefined


# --------------------------------------------------------------------------------------------------
# Inputs


def test_verdicts_from_review_records():
    records = [
        {"model_a": "x", "model_b": "y", "win": "tie", "win_1": "model_a", "win_2": "model_b", "question_id": 1,
         "category": "math", "judge": "gpt-4o"},
        {"model_a": "x", "model_b": "y", "win": "error", "question_id": 2, "error": "timeout"},
        {"model_a": "x", "model_b": "y", "win": "model_b", "swapped": True, "question_id": 3, "turn": 2},
        {"model": "x", "score": 7, "question_id": 4},
    ]
    frame = ag.verdicts_from_reviews(records, lengths={(1, "x", None): 10, (1, "y", None): 20})
    assert list(frame["question_id"]) == [1, 3]
    assert list(frame["winner"]) == ["tie", "model_b"]
    assert list(frame["judge"]) == ["gpt-4o", "judge"]
    assert (frame.loc[0, "winner_1"], frame.loc[0, "winner_2"]) == ("model_a", "model_b")
    assert frame.loc[1, "winner_1"] is None
    assert list(frame["swapped"]) == [False, True]
    assert (frame.loc[0, "length_a"], frame.loc[0, "length_b"]) == (10, 20) and math.isnan(frame.loc[1, "length_a"])
    assert ag.position_consistency(frame).total == 1 and ag.position_consistency(frame).hits == 0


def test_bad_verdict_tables_are_refused():
    with pytest.raises(ValueError, match="two verdicts of judge 'judge' on question 1"):
        ag.verdicts_table(verdicts([(1, "model_a"), (1, "tie", "y", "x")]))
    with pytest.raises(ValueError, match="winner: expected model_a, model_b or a tie, got 'error'"):
        ag.verdicts_table(verdicts([(1, "error")]))
    with pytest.raises(ValueError, match="lack the column"):
        ag.verdicts_table(pd.DataFrame({"question_id": [1]}))
    with pytest.raises(ValueError, match="several judges"):
        ag.judge_audit(pd.concat([verdicts(TRUTH).assign(judge="a"), verdicts(TRUTH).assign(judge="b")]), LABELS)
    with pytest.raises(ValueError, match="by category"):
        ag.audit_table(verdicts(TRUTH), LABELS, by="category")
