"""Every check of a run, in one place, before anything loads: a wrong input is an ``ArenaConfigError``
at configure time (pytest prints one ``ERROR: file: key: problem`` line), not a failure an hour later.

- ``check_plan`` (configure): enough participants, the baseline among them, one item ID per match;
- ``preflight`` (configure): paths and their roles, the judge's templates for every question, gates
  that can be judged, the baseline report, the files the run reads, each generating model's settings;
- ``check_credentials`` (once collection found arena items): the judge's API key.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from .cached_count import checked_once
from .config import GATE_KINDS, ArenaConfig
from .errors import ArenaConfigError, excerpt
from .evalscope.reviews import refuse_evalscope_reviews
from .generation.answer_formats import read_answer_records
from .generation.answers import ModelAnswers
from .judging.templates import TurnsNotCovered, choose_template
from .judging.turns import judged_turns, up_to_turn
from .plan import ArenaPlan
from .matches import ambiguous_names, ambiguous_questions, describe, shared_ids
from .record_files import read_jsonl


def check_plan(plan: ArenaPlan) -> None:
    """The plan has what its mode needs, and names every match apart."""
    config = plan.config
    needed = 1 if plan.mode == "single" else 2
    if len(plan.participants) < needed:
        # A judge-only arena (no answers_gen) takes its models from reviews_gen.target_answers.
        key = "answers_gen" if config.models or config.review.target_answers is None else "reviews_gen.target_answers"
        raise ArenaConfigError(config.path, key,
                               f"a {plan.mode} arena needs at least {needed} models, got {list(plan.participants) or 'none'}")
    if plan.baseline is not None and plan.baseline not in plan.participants:
        raise ArenaConfigError(config.path, "rating_gen.baseline_model",
                               f"the baseline {plan.baseline!r} has no answers (enable it or give its output_file)")
    _check_gate_models(plan)
    clash = ambiguous_names(list(plan.participants))
    if clash:
        raise ArenaConfigError(config.path, "answers_gen",
                               f"models {clash[0]!r} and {clash[1]!r} would share item IDs; rename one")
    same_label = ambiguous_questions(plan.questions)
    if same_label:
        raise ArenaConfigError(config.question_file or "--arena-questions", "question_id",
                               f"ids {same_label[0]!r} and {same_label[1]!r} would share item IDs; make them distinct")
    # One item ID, one match: otherwise one verdict is counted for two matches.
    clash = shared_ids(plan.matches)
    if clash:
        raise ArenaConfigError(plan.question_file(clash[0].question), "question_id",
                               f"{describe(clash[0])} and {describe(clash[1])} would share the item ID "
                               f"{clash[0].id!r}; rename a model or change a question id")


def _check_gate_models(plan: ArenaPlan) -> None:
    """A gate naming a model outside answers_gen (allowed when target_answers files name their models)
    must name one that takes part."""
    config = plan.config
    for i, gate in enumerate(config.gates):
        for key, name in (("model", gate.model), ("beats", gate.beats)):
            if name is not None and name not in config.models and name not in plan.participants:
                raise ArenaConfigError(config.path, f"gates[{i}].{key}",
                                       f"expected one of the models that take part ({', '.join(plan.participants)}), "
                                       f"got {excerpt(name)}")


def check_credentials(config: ArenaConfig) -> None:
    """The judge's API key: asked for only by a run that has arena items to run (the plugin calls
    it once collection is done), so ``--help`` or a run of the user's own tests never needs it."""
    review = config.review
    for i, judge in enumerate(review.panel or (review.judge,)):  # (a panel: each of its API judges)
        if review.enable and judge.is_openai:
            from .judging.openai_judge import missing_credentials

            problem = missing_credentials(judge)
            if problem:
                raise ArenaConfigError(config.path, f"reviews_gen.reviewer[{i}]" if review.panel else
                                       "reviews_gen.reviewer", problem)


def preflight(plan: ArenaPlan, baseline_report: Path | None, update_baseline: bool, log: Callable[[str], None]):
    """Checks that need a library or a second look, but no model: every one before any load (but
    the judge's key: ``check_credentials``). Returns the baseline report's table (None without one)."""
    config = plan.config
    review = config.review
    _check_paths(plan, baseline_report, update_baseline)
    if review.enable:
        _check_templates(plan)
    previous = _check_gates(plan, baseline_report, update_baseline, log)
    # The files the run will read: a corrupt line is an error now, not after the first model loaded.
    # (keep: the answers cache and the judge take these records instead of parsing the files again)
    for answers in plan.participants.values():
        read_answer_records(answers.output_file, keep=True)
        if not answers.generates:  # another tool's file with no answer to these questions: refused now
            answers.load_cached(plan.questions)
    if review.enable:  # (EvalScope's reviews in it are rating input: never appended to, never a cache)
        # Not again on the very bytes these checks passed before (cached_count.checked_once says how).
        checked_once(review.review_file,
                     lambda: refuse_evalscope_reviews(config, read_jsonl(review.review_file, keep=True)))
    for answers in plan.participants.values():
        # Only a model that will generate needs its settings checked: when every answer is cached
        # (their keys hold those very settings) the check would import transformers (seconds) for nothing.
        # (may_generate reads no checkpoint whose digests are unknown: -k may not need that model.)
        if answers.may_generate(plan.questions):
            check_generator(config, answers)
    return previous


def _check_paths(plan: ArenaPlan, baseline_report: Path | None, update_baseline: bool) -> None:
    """No two roles on one file, every output writable, every file we append to ours (paths.py)."""
    from .paths import first_problem, run_roles

    problem = first_problem(run_roles(
        plan.config, question_files=plan.question_files, baseline_report=baseline_report,
        update_baseline=update_baseline, baseline=plan.baseline,
        writers=[a.name for a in plan.participants.values() if a.generates]))
    if problem is not None:
        raise problem


def _check_templates(plan: ArenaPlan) -> None:
    """Every question has a template of the judge's kind that covers its turns."""
    prompt_file = plan.config.review.prompt_file
    kind = "single" if plan.mode == "single" else "pairwise"
    for question in plan.questions:
        try:
            for turn in judged_turns(question, plan.config.review.judge_turns):  # each: a template per turn
                choose_template(plan.templates, kind, up_to_turn(question, turn))
        except TurnsNotCovered as exc:  # the question is beyond the templates, not the other way round
            raise ArenaConfigError(plan.question_file(question), f"question_id {question.question_id!r}",
                                   f"{exc} in {prompt_file}") from None
        except LookupError as exc:
            raise ArenaConfigError(prompt_file, "", f"{exc} (question {question.question_id!r})") from None


def check_generator(config: ArenaConfig, answers: ModelAnswers) -> None:
    """What a candidate needs beyond its config: the API key it names, vLLM installed, or
    transformers' reading of its generation settings."""
    spec, path, where = answers.spec, config.path, f"answers_gen.{answers.name}"
    if spec.api is not None:
        env = spec.api.api_key_env
        if env is not None and not os.environ.get(env):
            raise ArenaConfigError(path, f"{where}.api.api_key_env",
                                   f"the environment variable {env} is not set (it holds the server's API key; "
                                   "leave api_key_env out for a server without auth)")
        return
    if spec.backend == "vllm":
        from .generation.vllm_backend import INSTALL_HINT, vllm_installed

        if not vllm_installed():
            raise ArenaConfigError(path, f"{where}.backend", f"vllm is not installed: {INSTALL_HINT}")
        from .generation.vllm_backend import check_before_load

        try:  # engine arguments and sampling ranges: vLLM itself checks them only once the engine loads
            check_before_load(spec)
        except ValueError as exc:
            raise ArenaConfigError(path, where, str(exc)) from None
        return
    from .generation.transformers_backend import check_device, generation_config_for

    try:
        generation_config_for(spec)
        check_device(spec)
    except ValueError as exc:
        raise ArenaConfigError(path, where, str(exc)) from None


def _check_gates(plan: ArenaPlan, baseline_report: Path | None, update_baseline: bool, log: Callable[[str], None]):
    """Gates that could never be judged are config errors, not failures found an hour later.
    Returns the baseline report's table, read when a gate or the table needs it."""
    path, mode = plan.config.path, plan.mode
    for i, gate in enumerate(plan.gates):
        where = f"gates[{i}]"
        if mode == "single" and gate.kind != "score":
            raise ArenaConfigError(path, where, f"{GATE_KINDS[gate.kind]} needs a pairwise mode; single mode only has min_score")
        if mode != "single" and gate.kind == "score":
            raise ArenaConfigError(path, where, "min_score needs single mode (reviews_gen.reviewer.args.mode: single)")
        if gate.kind == "winrate" and mode != "pairwise_baseline":
            raise ArenaConfigError(path, where, "min_win_rate needs pairwise_baseline mode")
    if any(g.kind == "drop" for g in plan.gates) or baseline_report is not None:
        return read_previous_report(path, baseline_report, update_baseline, log)
    return None


def read_previous_report(config_path, baseline_report: Path | None, update_baseline: bool, log: Callable[[str], None]):
    """The previous run's table (--arena-baseline); None when this run is the one to write it."""
    from .rating_table import read_previous

    if baseline_report is None:
        raise ArenaConfigError(config_path, "gates", "a max_drop gate needs the previous report: pass --arena-baseline PATH")
    if not baseline_report.is_file():
        if update_baseline:
            log(f"baseline report {baseline_report} does not exist yet: this run writes it; max_drop gates fail until then")
            return None
        raise ArenaConfigError(baseline_report, "", "baseline report not found (run once with "
                               "--arena-baseline-update to write it)")
    try:
        return read_previous(baseline_report)
    except ValueError as exc:
        raise ArenaConfigError(baseline_report, "", str(exc)) from None
