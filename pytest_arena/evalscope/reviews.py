"""Review files as rating input: this plugin's records and EvalScope's.

EvalScope's reviewer (``AutoReviewerGpt4``) writes one record per battle: ``model_a``, ``model_b``, ``win``
(``model_a``, ``model_b``, ``tie``, or ``unknown`` when its parser found no verdict), ``scores``,
``anony``, ``tstamp``, ``language``, ``question_id``, ``category``, ``question``, ``review_text``; under
swap_position ``win_1``/``win_2`` and ``review_text_1``/``_2`` instead of ``win``; in single mode
``model`` and ``score`` (-1 when its parser found none). Its model names are the answer files'
``model_id``: the ``model_id_or_path`` of each model (a hub id or a path), not the config's names.

Such a record is rating input only. EvalScope's cache key is (model names, question text): it ignores
the answers, the judge and the prompt, so a record of it could stand for a battle it never judged. A
run that judges therefore never reads it as a cache, and never appends its own records beside it
(``refuse_evalscope_reviews``). ``rating_only`` builds the rating-only run: one item per reviewed battle,
its verdict the record's, its models mapped to the config's names (``ReviewNames``).

A record that cannot be read as a verdict of the models it names is refused with its line
(``malformed``): a model name that is not a name (``3``, ``null``, a list), a turn or question id of
the wrong kind, a ``win`` that contradicts its own ``win_1``/``win_2``, a ``shared_call`` that is not the
record's call. Never is one model's verdict rated as another's. This plugin's own records are rated
in the order the judged run rated them (its plan's), its per-turn records of a battle as one battle
(``Judgment.of_turns``): rating the file alone gives the judged run's report.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Callable

from ..errors import ArenaConfigError, ArenaDataError, excerpt
from ..generation.answers import ModelAnswers
from ..judging.review_records import match_key
from ..judging.judgment import Judgment
from ..matches import VS, Battle, Scoring, question_label, safe_name
from ..questions import Question
from ..record_files import read_jsonl, record_lines

TIES = ("tie", "tie (bothbad)")  # EvalScope's compute_elo counts both as a tie
SIDES = ("model_a", "model_b")
EXCERPT = 200


def record_kind(record: dict) -> str | None:
    """``pairwise`` (a battle), ``single`` (a scored answer), or None (not a review)."""
    if "model_a" in record and "model_b" in record:
        return "pairwise"
    if "model" in record and "score" in record:
        return "single"
    return None


def is_evalscope_record(record: dict) -> bool:
    """A review EvalScope wrote: a battle or a score with none of this plugin's cache keys."""
    return record_kind(record) is not None and not any(str(key).startswith("cache_key") for key in record)


def refuse_evalscope_reviews(config, records: list[dict]) -> None:
    """A run that judges appends its records to the review file: refused when EvalScope's are in it,
    so the two are never mixed (and EvalScope's never taken for a cache)."""
    for number, record in enumerate(records, start=1):
        if is_evalscope_record(record):
            raise ArenaConfigError(
                config.path, "reviews_gen.review_file",
                f"{config.review.review_file} holds EvalScope reviews (record {number} has no cache_key): they are "
                "rating input, never a judge cache, and new reviews are not appended beside them; to rate them set "
                "reviews_gen.enable: false and rating_gen.enable: true, or to judge move the file or name another "
                "review_file")


# -------------------------------------------------------------------------------------------------
# Names: EvalScope's model ids -> the config's model names


class ReviewNames:
    """Maps the names a review file uses to the config's: a config name stays; a model's
    ``model_id_or_path`` (hub id, or a path, relative ones from the config's folder) or an API
    candidate's served name becomes that model's name; any other name is kept as written."""

    def __init__(self, config):
        self.config = config
        self._by_alias: dict[str, list[str]] = {}
        for name, spec in config.models.items():
            paths = {spec.path, self._as_path(spec.path)} if spec.path else set()
            for alias in (paths | {spec.api.model if spec.api else ""}) - {"", name}:
                self._by_alias.setdefault(alias, []).append(name)
        self.mapped: dict[str, str] = {}  # record name -> config name, for the log
        self.kept: list[str] = []  # names kept as written
        self._seen: dict[tuple[str, bool], str] = {}

    def __call__(self, written: str, evalscope: bool = False) -> str:
        """The config's name for a record's model name (``evalscope``: the record is EvalScope's)."""
        if (written, evalscope) not in self._seen:  # a name is looked up (and its path resolved) once
            self._seen[written, evalscope] = self._name(written, evalscope)
        return self._seen[written, evalscope]

    def _name(self, written: str, evalscope: bool) -> str:
        if written in self.config.models:
            aliases = (self._by_alias.get(written, []) + self._by_alias.get(self._as_path(written), [])) if evalscope else []
            others = [name for name in aliases if name != written]
            if others:  # EvalScope names models by model_id_or_path: which one is it?
                raise ArenaConfigError(self.config.path, "answers_gen",
                                       f"{written!r} is the name of one model and the model_id_or_path of "
                                       f"{others[0]!r}, so the EvalScope reviews in {self.config.review.review_file} "
                                       "naming it cannot be told apart")
            return written
        names = self._by_alias.get(written) or self._by_alias.get(self._as_path(written)) or []
        if len(names) > 1:
            raise ArenaConfigError(self.config.path, "answers_gen",
                                   f"models {names[0]!r} and {names[1]!r} share model_id_or_path {written!r}, so the "
                                   f"reviews in {self.config.review.review_file} naming it cannot be told apart")
        if names:
            self.mapped[written] = names[0]
            return names[0]
        if written not in self.kept:
            self.kept.append(written)
        return written

    def _as_path(self, written: str) -> str:
        """The name read as a path from the config's folder, as ``model_id_or_path`` is."""
        try:
            return str((self.config.path.parent / Path(written).expanduser()).resolve())
        except (OSError, RuntimeError, ValueError):  # not a path at all
            return written


# -------------------------------------------------------------------------------------------------
# Verdicts


def _side(value) -> str | None:
    if value in SIDES:
        return value
    return "tie" if value in TIES else None


def pairwise_games(record: dict, swap_rule: str) -> tuple[str | None, tuple[tuple[str, float], ...]]:
    """The record's verdict (model_a, model_b, tie; None: unknown) and the games it counts.

    ``win`` when present (EvalScope's rating reads it first); else ``win_1``/``win_2``, combined as
    EvalScope's pairwise table does (a disagreement is a tie), or as two games under swap_rule
    independent. An unknown half makes the battle unknown: it is excluded, never won by model_b."""
    if record.get("error"):
        return None, ()
    halves = None
    if "win_1" in record and "win_2" in record:
        halves = (_side(record["win_1"]), _side(record["win_2"]))
    if "win" in record:
        winner = _side(record["win"])
    elif halves is not None and None not in halves:
        winner = halves[0] if halves[0] == halves[1] else "tie"
    else:
        winner = None
    if winner is None:
        return None, ()
    if swap_rule == "independent" and halves is not None and None not in halves:
        return winner, tuple((half, 1.0) for half in halves)
    return winner, ((winner, 1.0),)


def single_score(record: dict) -> float | None:
    """The record's score; None when there is none (EvalScope writes -1 when its parser found none)."""
    score = record.get("score")
    if record.get("error") or isinstance(score, bool) or not isinstance(score, (int, float)):
        return None
    if not math.isfinite(score) or (score == -1 and is_evalscope_record(record)):
        return None
    return float(score)


def malformed(record: dict, kind: str) -> str | None:
    """Why a review record (``kind``: pairwise or single) cannot be rated as the verdict it says it is,
    or None. A record whose verdict is merely missing (``unknown``) is not malformed: it is not rated."""
    for field in ("model",) if kind == "single" else SIDES:
        name = record.get(field)
        if not isinstance(name, str) or not name.strip():
            return f"{field}: expected the model's name as a string, got {_shown(name)}"
    turn = record.get("turn", 1)
    if type(turn) is not int or turn < 1:
        return f"turn: expected the turn judged, a whole number from 1, got {_shown(turn)}"
    if isinstance(record.get("question_id"), (bool, dict, list)):
        return f"question_id: expected the question's id, an integer or a string, got {_shown(record['question_id'])}"
    if not isinstance(record.get("question_set"), (str, type(None))):
        return f"question_set: expected the name of a question set, got {_shown(record['question_set'])}"
    win, halves = _side(record.get("win")), (_side(record.get("win_1")), _side(record.get("win_2")))
    if kind == "pairwise" and win is not None and None not in halves and not record.get("error"):
        together = halves[0] if halves[0] == halves[1] else "tie"
        if win != together:
            return (f"win: {record['win']!r} disagrees with win_1 {record['win_1']!r} and win_2 {record['win_2']!r} "
                    f"(the two orders together: {together!r}); which verdict counts is unclear")
    for suffix in ("", "_1", "_2"):
        if f"shared_call{suffix}" in record and record[f"shared_call{suffix}"] != record.get(f"cache_key{suffix}"):
            return (f"shared_call{suffix}: names the call {_shown(record[f'shared_call{suffix}'])}, but the record's "
                    f"own cache_key{suffix} is {_shown(record.get(f'cache_key{suffix}'))}")
    return None


def _shown(value) -> str:
    """A value as JSON writes it (``null``, ``true``), shortened."""
    return "null" if value is None else json.dumps(value) if isinstance(value, bool) else excerpt(value)


def _refuse_malformed(file: Path, records: list[dict], kind: str) -> None:
    """The first malformed record of the kind rated, as one error naming its line."""
    for index, record in enumerate(records):
        problem = malformed(record, kind) if record_kind(record) == kind else None
        if problem is not None:
            lines = record_lines(file)
            where = lines[index] if index < len(lines) else f"record {index + 1}"
            raise ArenaDataError(file, where, problem)


def _unknown(match, record: dict, number: int, file: Path) -> Judgment:
    halves = [record.get("win_1"), record.get("win_2")]
    shown = record.get("score") if isinstance(match, Scoring) else record.get("win", halves)
    said = " ".join(str(record.get("review_text") or record.get("review_text_1") or "").split())
    said = said if len(said) <= EXCERPT else said[:EXCERPT] + "..."
    return Judgment(match, (), error=f"review record {number} of {file} has no verdict ({excerpt(shown)}), so it "
                                     f"is not rated (its review_text: {said or 'none'})")


# -------------------------------------------------------------------------------------------------
# The rating-only run


@dataclasses.dataclass
class _Tally:
    """What was left out of the review file, for the log."""

    other_mode: int = 0
    not_anonymous: int = 0
    no_question: int = 0
    self_battle: int = 0
    replaced: int = 0
    other_turns: int = 0


def nothing_to_rate(config, why: str) -> ArenaConfigError:
    return ArenaConfigError(
        config.path, "reviews_gen.review_file",
        f"nothing to rate: {config.review.review_file} {why}, and no model of answers_gen generates answers; "
        "rating_gen.enable: true with reviews_gen.enable: false rates the reviews already in that file (set "
        "reviews_gen.enable: true to judge)")


def rating_only(plan, log: Callable[[str], None]):
    """The plan of a rating-only run, its judgments in ``recorded``: one match per reviewed battle (or scoring),
    in EvalScope's order (by ``tstamp``; file order for this plugin's records), the latest review of a
    battle counting once. None when the file holds no review of the mode but a model generates answers
    (the run is answers only); ``nothing_to_rate`` when nothing would be done at all."""
    config = plan.config
    file = config.review.review_file
    generates = any(answers.generates for answers in plan.participants.values())
    records = read_jsonl(file) if os.path.isfile(file) else []
    kind = "single" if plan.mode == "single" else "pairwise"
    _refuse_malformed(file, records, kind)
    tally = _Tally()
    usable = [r for r in records if record_kind(r) == kind]
    tally.other_mode = sum(record_kind(r) not in (None, kind) for r in records)
    if not usable:
        if generates:
            return None
        if not os.path.isfile(file):
            raise nothing_to_rate(config, "does not exist")
        keys = sorted({str(k) for r in records for k in r})[:12]
        expected = "model and score" if kind == "single" else "model_a, model_b and win (or win_1 and win_2)"
        raise nothing_to_rate(config, f"holds no {kind} review (expected records with {expected}; "
                                      f"keys seen: {', '.join(keys) or 'none'})")
    names = ReviewNames(config)
    judgments = _judgments(plan, _battle_order(usable), names, tally)
    if not any(is_evalscope_record(r) for r in usable):  # ours: rated in the judged run's order
        judgments = _in_plan_order(plan, judgments)
    if not judgments:
        raise nothing_to_rate(config, f"holds no {kind} review that can be rated (see the lines above)")
    _log_reading(log, file, usable, names, tally, len(judgments))
    participants = _participants(config, judgments)
    baseline = plan.baseline if plan.baseline in participants else None
    return dataclasses.replace(plan, participants=participants, matches=[j.match for j in judgments],
                               baseline=baseline, recorded=tuple(judgments))


def _battle_order(records: list[dict]) -> list[tuple[int, dict]]:
    """EvalScope rates its battles sorted by ``tstamp``: so do we when every record has one (a
    stable sort, so equal stamps keep their file order); else the file's order."""
    numbered = list(enumerate(records, start=1))
    stamps = [r.get("tstamp") for r in records]
    if all(isinstance(s, (int, float)) and not isinstance(s, bool) for s in stamps):
        return sorted(numbered, key=lambda pair: pair[1]["tstamp"])
    return numbered


def _judgments(plan, ordered: list[tuple[int, dict]], names: ReviewNames, tally: _Tally) -> list[Judgment]:
    config, file = plan.config, plan.config.review.review_file
    known = {q.key: q for q in plan.questions}
    by_id = {q.question_id: q for q in plan.questions}
    questions = [_question(r, known, by_id) for _, r in ordered]
    width = max([3] + [len(str(q.question_id)) for q in questions if q is not None and isinstance(q.question_id, int)])
    latest: dict[str, tuple[Battle | Scoring, dict[int | None, Judgment]]] = {}  # match id -> its turns' verdicts
    for (number, record), question in zip(ordered, questions):
        if record.get("anony") is False:  # EvalScope rates anonymous battles only
            tally.not_anonymous += 1
            continue
        if question is None:
            tally.no_question += 1
            continue
        label, theirs = question_label(question, width), is_evalscope_record(record)
        if plan.mode == "single":
            model = names(record["model"], theirs)
            match = Scoring(question, model, f"{label}-{safe_name(model)}")
            score = single_score(record)
            judgment = _unknown(match, record, number, file) if score is None else Judgment(match, (), score=score)
        else:
            a, b = names(record["model_a"], theirs), names(record["model_b"], theirs)
            if a == b:
                tally.self_battle += 1
                continue
            match = Battle(question, a, b, f"{label}-{safe_name(a)}{VS}{safe_name(b)}")
            winner, games = pairwise_games(record, config.review.judge.swap_rule)
            judgment = _unknown(match, record, number, file) if winner is None else Judgment(match, (), winner=winner,
                                                                                              games=games)
        turns = latest.pop(match.id, (match, {}))[1]  # the latest review of a battle, in its place
        if turns.pop(record.get("turn"), None) is not None:
            tally.replaced += 1
        turns[record.get("turn")] = dataclasses.replace(judgment, turn=record.get("turn"))
        latest[match.id] = (match, turns)
    return [_of_turns(match, turns, config.review.judge_turns, tally) for match, turns in latest.values()]


def _of_turns(match, turns: dict[int | None, Judgment], judge_turns: str, tally: _Tally) -> Judgment:
    """A match's judgment from its latest record per turn: the turns' verdicts combined as the judged run
    combines them, or its whole-conversation verdict; where the file holds both, the config's judge_turns
    says which."""
    each = [turns[t] for t in sorted(t for t in turns if t is not None)]
    if each and (None not in turns or judge_turns == "each"):
        tally.other_turns += None in turns
        return Judgment.of_turns(match, each)
    tally.other_turns += len(each)
    return turns[None]


def _in_plan_order(plan, judgments: list[Judgment]) -> list[Judgment]:
    """The judgments in the order of the config's plan (the order its judged run rated them: online Elo
    and the bootstrap depend on it); those of matches it lacks after them, as they were."""
    order = {match_key(m): i for i, m in enumerate(plan.matches)}
    return sorted(judgments, key=lambda j: order.get(match_key(j.match), len(order)))


def _question(record: dict, known: dict, by_id: dict) -> Question | None:
    """The arena's question the record reviews; one made from the record when the question file lacks it."""
    qid = record.get("question_id")
    if qid is None or isinstance(qid, (bool, float, dict, list)):
        return None
    question = known.get((record.get("question_set"), qid)) or by_id.get(qid)
    if question is not None:
        return question
    return Question(qid, (str(record.get("question") or ""),), category=str(record.get("category") or "generic"),
                    question_set=record.get("question_set"))


def _participants(config, judgments: list[Judgment]) -> dict[str, ModelAnswers]:
    """The rated models, the config's first (in its order): they answer nothing, so their answers
    come from no file (``os.devnull``) and no model loads."""
    seen = dict.fromkeys(name for j in judgments for name in j.match.models)
    ordered = [n for n in config.models if n in seen] + [n for n in seen if n not in config.models]
    return {name: ModelAnswers(name, Path(os.devnull), None, config.rating.seed, None) for name in ordered}


def _log_reading(log, file: Path, usable: list[dict], names: ReviewNames, tally: _Tally, rated: int) -> None:
    source = "EvalScope" if any(is_evalscope_record(r) for r in usable) else "pytest-arena"
    log(f"rating only: {rated} reviews from {file} ({source} records); no answer is generated and no judge called")
    if names.mapped:
        log("review names mapped to answers_gen: " + ", ".join(f"{k} -> {v}" for k, v in names.mapped.items()))
    if names.kept:
        log("review names not in answers_gen, rated as written: " + ", ".join(names.kept))
    left_out = [(tally.replaced, "older reviews of a battle replaced by its latest"),
                (tally.not_anonymous, "records with anony: false left out (as EvalScope does)"),
                (tally.no_question, "records without a question_id left out"),
                (tally.self_battle, "records with one model on both sides left out"),
                (tally.other_mode, "records of the other mode (single vs pairwise) left out"),
                (tally.other_turns, "records judging a battle otherwise than judge_turns says left out")]
    for count, what in left_out:
        if count:
            log(f"{count} {what}")
