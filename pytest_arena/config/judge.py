"""``reviews_gen``: the judge (an OpenAI-compatible API or a local checkpoint), how it is asked, and the
files the reviews read and write."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import kind_of
from ..file_names import path_length_problem
from .audit import AUDIT_KEYS, read_audit
from .panel_keys import read_reviewers
from .generation import GenerationSettings
from .models import checkpoint_path, read_precision
from .section import (DEVICE, MAX_CONCURRENCY, MAX_JUDGE_TOKENS, MAX_RETRIES, MAX_TIMEOUT_S, NUMBER, SEED, Section,
                      check_model_context, read_base_urls, str_or_none)
from .specs import (ARENA_HARD_STRONG_WEIGHT, DEFAULT_JUDGE_MAX_TOKENS, DEFAULT_TEMPLATES, JUDGE_TURNS,
                    LOCAL_JUDGE_REFS, LOCAL_VERDICTS, MODES, OPENAI_JUDGE_REFS, PARSERS, POSITION_BIAS, SWAP_RULES,
                    JudgeSpec, ModelSpec, ReviewSpec)


def read_review(section: Section, resolve, existing_file, results: Path, models) -> ReviewSpec:  # noqa: C901
    section.check_keys(
        ("enable", "reviewer", "prompt_file", "target_answers", "baseline_file", "reference_file",
         "review_file", "cache_file", "judge_turns", "max_calls", "max_cost", "panel") + AUDIT_KEYS
    )
    judge, panel, panel_rule = read_reviewers(section, lambda reviewer: _read_judge(reviewer, resolve))
    targets = section.get("target_answers", list, expected="a list of answer files")
    review_file = section.get("review_file", str, expected="a file path")
    cache_file = section.get("cache_file", str, expected="a file path")
    if cache_file and review_file and resolve(cache_file) != resolve(review_file):
        # One file is both the record and the cache, so a rerun can never disagree with what it reads.
        section.fail("cache_file", "expected the same path as review_file (the review file is the cache)")
    review_file = review_file or cache_file
    if review_file and resolve(review_file).is_dir():
        section.fail("review_file", f"expected a file, got a folder: {resolve(review_file)}")
    return ReviewSpec(
        enable=section.get("enable", bool, True, expected="true or false"),
        judge=judge,
        prompt_file=existing_file(section, "prompt_file", required=False) or DEFAULT_TEMPLATES,
        review_file=resolve(review_file) if review_file else results / "reviews" / "reviews.jsonl",
        target_answers=_target_answers(section, targets, resolve, models),
        baseline_file=existing_file(section, "baseline_file", required=False),
        reference_file=existing_file(section, "reference_file", required=False),
        judge_turns=section.choice("judge_turns", JUDGE_TURNS, "whole"),
        **_read_budget(section, panel or (judge,)),
        **read_audit(section, existing_file),
        panel=panel,
        panel_rule=panel_rule,
    )


def _read_judge(reviewer: Section, resolve) -> JudgeSpec:
    """One judge: ``reviews_gen.reviewer``, or one judge of a panel (``reviews_gen.reviewer[i]``)."""
    reviewer.check_keys(("ref", "args"))
    ref = reviewer.get("ref", str, "pytest_arena.judging.openai_judge:OpenAIJudge", expected="module:Class")
    if ref not in OPENAI_JUDGE_REFS | LOCAL_JUDGE_REFS:
        reviewer.fail("ref", "unknown judge; expected 'evalscope.evaluator.reviewer.auto_reviewer:AutoReviewerGpt4' "
                             "or 'openai' (an OpenAI-compatible judge) or 'local' (a transformers judge)")
    args = reviewer.section("args")
    common = ("model", "mode", "position_bias_mitigation", "fn_completion_parser", "max_tokens", "temperature",
              "random_seed", "max_concurrency", "swap_rule", "strong_verdict_weight", "reask_unparseable")
    if ref in LOCAL_JUDGE_REFS:
        args.check_keys(common + LOCAL_JUDGE_KEYS + ("prompt_cost_per_1m", "completion_cost_per_1m") + BATCH_KEYS)
    else:
        args.check_keys(common + ("base_url", "api_key_env", "max_retries", "timeout", "prompt_cost_per_1m",
                                  "completion_cost_per_1m") + BATCH_KEYS)
    positive_int = dict(expected="a positive integer", check=lambda v: v > 0)
    cost = dict(expected="a number >= 0 (cost per million tokens)", check=lambda v: v >= 0)
    # FastChat asks its API judges for up to 2048 tokens (arena-hard 4096): long explanations end in the
    # verdict. A local judge keeps 1024, generated on the machine that runs the arena.
    default_max_tokens = DEFAULT_JUDGE_MAX_TOKENS if ref in OPENAI_JUDGE_REFS else 1024
    max_tokens = args.get("max_tokens", int, default_max_tokens, **positive_int, at_most=MAX_JUDGE_TOKENS)
    parser = args.choice("fn_completion_parser", PARSERS, "lmsys_parser")
    # OpenAI's range; a local judge sampled hotter than 2 writes noise.
    temperature = float(args.get("temperature", NUMBER, 0.0, expected="a number >= 0", check=lambda v: v >= 0,
                                 at_most=2))
    base_urls = read_base_urls(args, "a URL such as https://api.openai.com/v1")
    judge = JudgeSpec(
        ref=ref,
        model=args.get("model", str, "gpt-4" if ref in OPENAI_JUDGE_REFS else "local-judge", expected="a judge model name"),
        mode=args.choice("mode", MODES, "pairwise"),
        position_bias_mitigation=args.choice("position_bias_mitigation", POSITION_BIAS, None),
        fn_completion_parser=parser,
        max_tokens=max_tokens,
        temperature=temperature,
        random_seed=args.get("random_seed", int, 123, **SEED),
        base_url=base_urls[0] if base_urls else None,
        base_urls=base_urls,
        api_key_env=args.get("api_key_env", str, "OPENAI_API_KEY", expected="an environment variable name"),
        max_concurrency=args.get("max_concurrency", int, 8, **positive_int, at_most=MAX_CONCURRENCY),
        max_retries=args.get("max_retries", int, 5, expected="an integer >= 0", check=lambda v: v >= 0,
                             at_most=MAX_RETRIES),
        timeout=float(args.get("timeout", NUMBER, 120.0, expected="seconds > 0", check=lambda v: v > 0,
                               at_most=MAX_TIMEOUT_S)),
        swap_rule=args.choice("swap_rule", SWAP_RULES, "consistent"),
        # arena-hard counts its strong verdicts ([[A>>B]]) as three games; its parser brings its weight.
        strong_verdict_weight=float(args.get("strong_verdict_weight", NUMBER,
                                             ARENA_HARD_STRONG_WEIGHT if parser == "arena_hard_parser" else 1.0,
                                             expected="a number >= 1", check=lambda v: v >= 1)),
        reask_unparseable=args.get("reask_unparseable", bool, False, expected="true or false"),
        prompt_cost_per_1m=args.get("prompt_cost_per_1m", NUMBER, **cost),
        completion_cost_per_1m=args.get("completion_cost_per_1m", NUMBER, **cost),
        checkpoint=_local_judge_checkpoint(args, resolve, max_tokens, temperature) if ref in LOCAL_JUDGE_REFS else None,
        verdict=args.choice("verdict", LOCAL_VERDICTS, "text_or_probability"),
        **_read_batch(args, ref),
    )
    if judge.verdict == "likelihood" and judge.mode == "single":
        args.fail("verdict", "likelihood compares two answers, so it needs mode pairwise or pairwise_baseline; "
                             "for mode single use verdict text, probability or text_or_probability")
    return judge


def _read_budget(section: Section, judges: tuple[JudgeSpec, ...]) -> dict:
    """``max_calls`` and ``max_cost`` (budget.py holds them); a cost bound needs the judge's prices (every
    judge's, in a panel)."""
    max_calls = section.get("max_calls", int, expected="a whole number of judge calls >= 0", check=lambda v: v >= 0)
    max_cost = section.get("max_cost", NUMBER, expected="a number >= 0 (in the currency of the judge's prices)",
                           check=lambda v: v >= 0)
    for i, judge in enumerate(judges):
        if max_cost is not None and (judge.prompt_cost_per_1m is None or judge.completion_cost_per_1m is None):
            at = "reviewer" if len(judges) == 1 else f"reviewer[{i}]"
            section.fail("max_cost", f"needs the judge's prices to estimate a cost: set reviews_gen.{at}.args."
                                     "prompt_cost_per_1m and completion_cost_per_1m (per million tokens)")
    return {"max_calls": max_calls, "max_cost": None if max_cost is None else float(max_cost)}


BATCH_KEYS = ("batch", "batch_fallback", "batch_timeout", "batch_poll_s", "batch_prompt_cost_per_1m",
              "batch_completion_cost_per_1m")


def _read_batch(args: Section, ref: str) -> dict:
    """``batch`` and its settings (batch_judging.py). Only an API judge can batch: a local judge has no
    provider to send a batch to (``batch_refusal``)."""
    batch = args.get("batch", bool, False, expected="true or false")
    if batch and ref in LOCAL_JUDGE_REFS:
        args.fail("batch", batch_refusal(ref, args.data.get("verdict")))
    cost = dict(expected="a number >= 0 (cost per million tokens)", check=lambda v: v >= 0)
    timeout = args.get("batch_timeout", NUMBER, expected="seconds >= 0 (how long a blocking run waits for its batch)",
                       check=lambda v: v >= 0, at_most=BATCH_WINDOW_S)
    prompt_cost = args.get("batch_prompt_cost_per_1m", NUMBER, **cost)
    completion_cost = args.get("batch_completion_cost_per_1m", NUMBER, **cost)
    return dict(
        batch="blocking" if batch else None,
        batch_fallback=args.get("batch_fallback", bool, True, expected="true or false"),
        batch_timeout=None if timeout is None else float(timeout),
        batch_poll_s=float(args.get("batch_poll_s", NUMBER, 30.0, expected="seconds > 0 between polls",
                                    check=lambda v: v > 0, at_most=3600)),
        batch_prompt_cost_per_1m=None if prompt_cost is None else float(prompt_cost),
        batch_completion_cost_per_1m=None if completion_cost is None else float(completion_cost),
    )


BATCH_WINDOW_S = 24 * 3600  # the Batch API's completion window


def batch_refusal(ref: str, verdict) -> str:
    """Why a judge cannot judge in batches (reviewer.args.batch, --arena-batch)."""
    what = "a likelihood verdict (answer probabilities, computed here)" if verdict == "likelihood" else \
        f"a local judge ({ref!r}) runs on this machine"
    return (f"{what}: there is no provider batch to send its calls to; batch needs an OpenAI-compatible judge "
            "(reviewer.ref openai) with a text verdict")


LOCAL_JUDGE_KEYS = ("model_id_or_path", "revision", "precision", "device", "gguf_file", "trust_remote_code",
                    "batch_size", "verdict")


def _local_judge_checkpoint(args: Section, resolve, max_tokens: int, temperature: float) -> ModelSpec:
    """The local judge's checkpoint, read like a candidate's; it answers greedily unless sampled."""
    raw = args.get("model_id_or_path", str, expected="a local folder or a hub model id")
    if raw is None:
        args.fail("model_id_or_path", "missing; the local judge needs a checkpoint (a local folder or a hub model id)")
    precision = read_precision(args)
    path = checkpoint_path(args, raw, resolve)
    if Path(path).is_dir():
        check_model_context(args, path, None, key="max_tokens")
    return ModelSpec(
        name=args.get("model", str, "local-judge", expected="a judge model name"),
        path=path,
        output_file=Path(os.devnull),
        revision=str_or_none(args.get("revision", (str, int, float), expected="a revision")),
        precision=precision,
        generation_config=dict(GenerationSettings.for_judge(max_tokens, temperature).given),
        batch_size=args.get("batch_size", int, 8, expected="a positive integer", check=lambda v: v > 0),
        device=args.get("device", str, expected="a device such as cuda, cuda:1, cpu or auto", check=DEVICE.match),
        gguf_file=args.get("gguf_file", str, expected="a GGUF file name"),
        trust_remote_code=args.get("trust_remote_code", bool, False, expected="true or false"),
    )


def _target_answers(section: Section, targets, resolve, models) -> tuple[Path, ...] | None:
    if targets is None:
        return None
    paths = []
    own = {m.output_file: m for m in models.values()}
    for i, item in enumerate(targets):
        if not isinstance(item, str):
            section.fail(f"target_answers[{i}]", f"expected a file path, got {kind_of(item)}")
        if path_length_problem(item):
            section.fail(f"target_answers[{i}]", path_length_problem(item))
        path = resolve(item)
        if path not in own and not path.is_file():
            section.fail(f"target_answers[{i}]", f"not the output_file of a model in answers_gen and not found: {path}")
        paths.append(path)
    return tuple(paths)
