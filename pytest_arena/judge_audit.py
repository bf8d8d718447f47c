"""The judge audit (issue 26): the configured judge's verdicts on labelled pairs, against the labels.

``configure_audit`` reads the labels (``reviews_gen.audit`` or ``--arena-judge-audit``; ``audit_labels``) and
checks them against the arena's questions and models at configure time, before anything is paid for.
At the end of the run ``JudgeAuditRun.verdicts`` gets the judge's verdict on every labelled pair and
turn: an arena battle on the same pair and turn lends its judgment (no call); any other pair is asked
of the same judge (the same backend, identity, templates and budget) through a ``MatchJudge`` whose
review file is ``<review stem>.audit.jsonl``, so its calls are cached exactly as the battles' are (same
cache keys, same records), and under ``swap_position`` it is asked in both orders. A separate file,
because an audit verdict on part of a conversation (turn 1 of two) is no verdict of the arena's battle
and must never be read as one by a rate-only run. The figures are ``rating.agreement``'s; the terminal
table and the CSV are ``audit_report``'s; the ``judge_agreement`` gate is judged here.
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import Future
from pathlib import Path
from typing import Callable

from .audit_labels import Label, check_labels, read_labels, select_annotators
from .audit_report import answer_text, judge_name
from .config import JUDGE_AGREEMENT
from .errors import ArenaConfigError, ArenaDataError
from .file_names import audit_reviews
from .generation.answers import Answer
from .judging.turns import answer_up_to, up_to_turn
from .matches import VS, Battle, question_label, safe_name


def configure_audit(plan, audit_file: str | Path | None, log: Callable[[str], None]) -> "JudgeAuditRun | None":
    """The run's audit, its labels read and checked now (one ``ERROR:`` line for a mistake); None
    without labels. A ``judge_agreement`` gate without labels, or labels in a run that gives no pairwise
    verdicts, are config errors."""
    config = plan.config
    path = Path(audit_file) if audit_file else config.review.audit
    gates = [i for i, gate in enumerate(config.gates) if gate.kind == JUDGE_AGREEMENT]
    where = "--arena-judge-audit" if audit_file else "reviews_gen.audit"
    if path is None:
        if gates:
            raise ArenaConfigError(config.path, f"gates[{gates[0]}].{JUDGE_AGREEMENT}",
                                   "needs labelled pairs to audit the judge on: reviews_gen.audit or "
                                   "--arena-judge-audit LABELS")
        return None
    if not config.review.enable or plan.mode == "single" or plan.rating_only:
        why = ("reviews_gen.enable is false" if not config.review.enable else
               "mode single scores answers alone" if plan.mode == "single" else "a rating-only run asks no judge")
        raise ArenaConfigError(config.path, where, f"a judge audit asks the judge about labelled pairs, but {why}: "
                               "expected a pairwise arena with reviews on")
    labels = read_labels(path)
    if config.review.audit_annotators:
        labels = select_annotators(labels, config.review.audit_annotators)
        if not labels:
            raise ArenaDataError(path, "", "no label by an annotator named "
                                 f"{' or '.join(p + '*' for p in config.review.audit_annotators)} "
                                 "(reviews_gen.audit_annotators)")
    questions = {}
    for question in plan.questions:  # (ids repeat across question sets: the first set's question is audited)
        questions.setdefault(question.question_id, question)
    if plan.is_limited:  # --arena-limit: the labels of the questions it leaves out wait for a whole run
        kept = [label for label in labels if label.question_id in questions]
        if len(kept) < len(labels):
            log(f"judge audit: {len(labels) - len(kept)} labels are about questions this limited run leaves out")
        labels = kept or labels  # (none kept: check_labels names the first label's question)
    conversations = _conversation_answers(labels)
    models = set(plan.participants) | {model for model, _ in conversations.values()}
    check_labels(path, labels, {qid: len(q.turns) for qid, q in questions.items()}, models)
    run = JudgeAuditRun(plan, path, labels, questions, {k: turns for k, (_, turns) in conversations.items()}, log)
    for label in labels:  # a model outside the arena answers only in the labels' conversations: all of it there
        for model in (label.model_a, label.model_b):
            wanted = label.turn or len(questions[label.question_id].turns)
            if model not in plan.participants and len(run.conversations.get((label.question_id, model), ())) < wanted:
                raise ArenaDataError(path, label.where, f"{model!r} takes no part in the arena and the file gives "
                                     f"no answer of it to question {label.question_id!r} up to turn {wanted}")
    log(f"judge audit: {len(labels)} labels from {path}")
    return run


class JudgeAuditRun:
    """The labels, the answers they are about, and the judge's verdicts on them (asked once per run)."""

    def __init__(self, plan, path: Path, labels: list[Label], questions: dict, conversations: dict,
                 log: Callable[[str], None]):
        self.plan = plan
        self.path = path
        self.labels = labels
        self.questions = questions  # question_id -> Question
        self.conversations = conversations  # (question_id, model) -> answer turns from the labels' file
        self.log = log
        self.review_file = audit_reviews(plan.config.review.review_file)
        self.judge = None  # the audit's MatchJudge, built on the first pair no battle answers
        self._done: tuple[int, object] | None = None  # (runner.changes, AuditVerdicts) of the last look

    # -- answers ------------------------------------------------------------------------------------

    def answer(self, question_id, model: str, turn: int | None) -> Answer | None:
        """The model's answer up to ``turn``: its answers file's, else the labels' conversation."""
        question = self.questions[question_id]
        wanted = len(question.turns) if turn is None else turn
        answers = self.plan.participants.get(model)
        found = answers.get(question) if answers is not None else None
        turns = found.turns if found is not None else self.conversations.get((question_id, model))
        if turns is None or len(turns) < wanted:
            return None
        return Answer(model, question_id, answer_up_to(tuple(turns), turn))

    # -- verdicts -----------------------------------------------------------------------------------

    def verdicts(self, runner) -> "AuditVerdicts":
        """The judge's verdict on every labelled pair and turn (asked now where no battle has one)."""
        if self._done is not None and self._done[0] == runner.changes:
            return self._done[1]
        asked: dict[tuple, Future] = {}
        lent = {}
        battles = {(m.question.question_id, frozenset(m.models)): m for m in runner.judged
                   if m.question.key == self.questions[m.question.question_id].key} if self.questions else {}
        pairs: dict[tuple, tuple] = {}  # a pair labelled in both orders is one pair: judged once
        for label in self.labels:
            pairs.setdefault((label.question_id, frozenset((label.model_a, label.model_b)), label.turn), _pair(label))
        for key in pairs.values():
            qid, (model_a, model_b), turn = key
            match = battles.get((qid, frozenset((model_a, model_b))))
            judgment = _battle_verdict(runner.finished(match), self.questions[qid], turn) if match else None
            if judgment is not None:
                lent[key] = judgment
                continue
            battle, answers = self._battle(qid, model_a, model_b, turn)
            if answers is not None:
                asked[key] = self._judge(runner).submit(battle, answers)
        judgments = {key: None for key in pairs.values()}  # None: no verdict (an answer missing in this run)
        judgments.update(lent)
        judgments.update({key: future.result() for key, future in asked.items()})
        result = AuditVerdicts(self, judgments, lent=len(lent), asked=len(asked))
        self._done = (runner.changes, result)
        return result

    def _battle(self, qid, model_a: str, model_b: str, turn: int | None):
        question = up_to_turn(self.questions[qid], turn)
        answers = {m: self.answer(qid, m, turn) for m in (model_a, model_b)}
        width = max(3, len(str(qid)))
        label = question_label(question, width)
        battle = Battle(question, model_a, model_b,
                        f"audit-{label}-t{turn or 'all'}-{safe_name(model_a)}{VS}{safe_name(model_b)}")
        return battle, (None if None in answers.values() else answers)

    def _judge(self, runner):
        """The arena's judge asking into the audit's review file: the same backend, identity and budget."""
        if self.judge is None:
            from .judging.match_judge import MatchJudge

            arena = runner.judge
            if arena is None:  # (a process that judged nothing itself: its own judge, as the runner builds one)
                from .judge_setup import make_match_judge

                arena = make_match_judge(self.plan, runner.role, runner.budget, [], runner.cache_dir, runner.memo,
                                         self.log)
            # The whole (truncated) conversation is one call: turn t of a label is the conversation up to t.
            if getattr(arena, "members", None):  # a panel: each judge asks into its own audit file (panel.py)
                from .file_names import member_reviews
                from .judging.panel import PanelJudge

                members = [(name, MatchJudge(judge.judge, judge.spec, judge.templates,
                                             member_reviews(self.review_file, name), judge.judge_identity, self.log))
                           for name, judge in arena.members]
                self.judge = PanelJudge(members, arena.spec, arena.rule, self.review_file, self.log)
            else:
                self.judge = MatchJudge(arena.judge, arena.spec, arena.templates, self.review_file,
                                        arena.judge_identity, self.log)
            self.judge.call_limit = arena.call_limit
        return self.judge

    def report(self, runner, report_path: Path) -> list[str]:
        """Write ``<report stem>.audit.csv``; the terminal's lines (``audit_report``)."""
        from .audit_report import write_audit

        return write_audit(self.verdicts(runner), report_path)

    def page_tables(self, runner) -> list[dict]:
        """The battle browser's audit section (``audit_report.page_tables``)."""
        from .audit_report import page_tables

        return page_tables(self.verdicts(runner))

    # -- the gate -----------------------------------------------------------------------------------

    def gate_result(self, gate, runner):
        """``judge_agreement``: the agreement's lower 95% bound must reach ``min``."""
        from .gates import GateResult

        figures = self.verdicts(runner).figures()
        judge = judge_name(self.plan.config.review)
        if figures is None:
            return GateResult(False, f"judge {judge}: no verdict met a label of {self.path}, so the gate cannot pass")
        rate = figures.agreement if gate.ties else figures.agreement_no_ties
        if rate.total == 0:
            return GateResult(False, f"judge {judge}: no decisive label met a decisive verdict, so "
                                     "judge_agreement with ties: false cannot pass")
        passed = rate.ci_lower >= gate.min
        what = "agreement with the labels" + ("" if gate.ties else " without ties")
        return GateResult(passed, f"judge {judge}: {what} {rate.estimate:.1%} (95% CI {rate.ci_lower:.1%} .. "
                                  f"{rate.ci_upper:.1%}, {rate.hits} of {rate.total} labels); CI lower bound "
                                  f"{rate.ci_lower:.3f} {'>=' if passed else '<'} min {gate.min:g}",
                          value=rate.estimate, ci=(rate.ci_lower, rate.ci_upper), threshold=gate.min)

    def close(self) -> None:
        if self.judge is not None:
            self.judge.close()


@dataclasses.dataclass
class AuditVerdicts:
    """The judge's judgments on the labelled pairs, keyed by (question_id, (model_a, model_b), turn),
    and the figures over them (``rating.agreement``)."""

    run: JudgeAuditRun
    judgments: dict
    lent: int  # pairs and turns whose verdict an arena battle gave
    asked: int  # pairs and turns asked of the judge for the audit

    def kept(self) -> list[tuple]:
        """``(key, judgment)`` of each pair and turn the judge gave a verdict on: the rows of ``table``."""
        return [(key, judgment) for key, judgment in self.judgments.items() if judgment is not None and judgment.ok]

    def table(self):
        """``rating.agreement``'s verdicts table: one row per pair and turn the judge gave a verdict on (a
        panel: the panel's row, then each of its judges'; ``owners`` gives each row's judgment)."""
        import pandas as pd

        rows = []
        self.owners = []
        for (qid, _, turn), panel_or_one in self.kept():
            for judge, judgment in ((judge_name(self.run.plan.config.review), panel_or_one), *panel_or_one.panel):
                if judgment.ok:
                    rows.append(self._row(judge, qid, turn, judgment))
                    self.owners.append(judgment)
        frame = pd.DataFrame(rows)
        for column in ("turn", "winner_1", "winner_2"):  # None stays None, not NaN
            if column in frame:
                frame[column] = pd.Series([row[column] for row in rows], dtype=object)
        return frame

    def _row(self, judge: str, qid, turn, judgment) -> dict:
        results = judgment.results if not judgment.turns else ()
        lengths = [len(answer_text(self.run.answer(qid, m, turn), turn)) for m in (judgment.match.model_a,
                                                                            judgment.match.model_b)]
        return {"judge": judge, "question_id": qid, "model_a": judgment.match.model_a,
                "model_b": judgment.match.model_b, "turn": turn, "winner": judgment.winner,
                "category": self.run.questions[qid].category,
                "winner_1": results[0].winner if len(results) == 2 else None,
                "winner_2": results[1].winner if len(results) == 2 else None,
                "swapped": bool(results) and len(results) == 1 and results[0].call.swapped,
                "length_a": lengths[0], "length_b": lengths[1]}

    def failed(self) -> int:
        """Labelled pairs the judge gave no verdict on (a failed call, one refused past the budget, an answer
        missing in this run)."""
        return sum(j is None or not j.ok for j in self.judgments.values())

    def figures(self):
        """The ``all`` row's figures (``rating.agreement.JudgeAudit``); None when no verdict met a label."""
        from .rating import judge_audit

        table = self.table()
        if table.empty:
            return None
        rating = self.run.plan.config.rating
        return judge_audit(table, self.run.labels, rounds=rating.bootstrap_rounds, seed=rating.seed,
                           judge=judge_name(self.run.plan.config.review))


def _pair(label: Label) -> tuple:
    """A labelled pair and turn, the models in the order of the first label about it."""
    return (label.question_id, (label.model_a, label.model_b), label.turn)


def _battle_verdict(judgment, question, turn: int | None):
    """The arena battle's judgment of the pair at ``turn`` when it gave one (no call to make): the
    whole-conversation judgment for turn None or the question's last turn, or judged per turn
    (``judge_turns: each``) that turn's."""
    if judgment is None or not judgment.ok:
        return None
    if judgment.turns:
        return judgment if turn is None else next((part for part in judgment.turns if part.turn == turn), None)
    return judgment if turn is None or turn == len(question.turns) else None


def _conversation_answers(labels: list[Label]) -> dict:
    """(question_id, model) -> (model, its answer turns) from the labels' conversations (the longest)."""
    found: dict = {}
    for label in labels:
        for model, turns in ((label.model_a, label.answers_a), (label.model_b, label.answers_b)):
            if turns and len(turns) > len(found.get((label.question_id, model), (None, ()))[1]):
                found[(label.question_id, model)] = (model, tuple(turns))
    return found
