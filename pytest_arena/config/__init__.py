"""cfg_arena.yaml -> one typed, validated ``ArenaConfig``.

EvalScope's arena schema is accepted as is; this project's extensions are optional keys beside it.
Every problem is an ``ArenaConfigError`` naming the file, the key path and what was expected, raised
while reading the file: nothing has been loaded or generated yet. Nothing here is ``eval``ed and YAML
is read with ``safe_load``.

The rooms: ``specs`` (the dataclasses and the names each key may take), ``yaml_file`` (the YAML and
its guards), ``section`` (a mapping with its key path, and the checks sections share), then one reader
a section: ``models`` (answers_gen), ``judge`` (reviews_gen), ``rating_gates`` (rating_gen, gates).
``load_config`` below ties them together; every name other modules use is importable from here.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ArenaConfigError
from .judge import LOCAL_JUDGE_KEYS, read_review
from .models import (API_KEYS, API_MODEL_KEYS, MODEL_KEYS, PACKAGE_PREFIX, checkpoint_problem, override_models,
                     read_models)
from .rating_gates import names_read_from_files, read_gates, read_rating
from .section import (MAX_BOOTSTRAP_ROUNDS, MAX_CONCURRENCY, MAX_ELO_K, MAX_JUDGE_TOKENS, MAX_RETRIES, MAX_TIMEOUT_S,
                      Section)
from .specs import (BACKENDS, DEFAULT_TEMPLATES, GATE_ALIASES, GATE_KINDS, JUDGE_TURNS, LOCAL_JUDGE_REFS,
                    LOCAL_VERDICTS, METRICS, MODES, OPENAI_JUDGE_REFS, PARSERS, PLAIN_TEMPLATE_TYPES, POSITION_BIAS,
                    PRECISIONS, RESULTS_DIR, STYLE_CONTROLS, SWAP_RULES, JUDGE_AGREEMENT, ApiEndpoint, ArenaConfig, GateSpec, JudgeGateSpec, JudgeSpec, ModelSpec, RatingSpec, ReviewSpec)
from .yaml_file import MAX_CONFIG_DEPTH, MAX_CONFIG_VALUES, read_yaml

# What other modules import from here (the rooms above are this package's own business).
__all__ = [
    "API_KEYS", "API_MODEL_KEYS", "BACKENDS", "DEFAULT_TEMPLATES", "GATE_ALIASES", "GATE_KINDS", "JUDGE_TURNS",
    "LOCAL_JUDGE_KEYS",
    "LOCAL_JUDGE_REFS", "LOCAL_VERDICTS", "MAX_BOOTSTRAP_ROUNDS", "MAX_CONCURRENCY", "MAX_CONFIG_DEPTH",
    "MAX_CONFIG_VALUES", "MAX_ELO_K", "MAX_JUDGE_TOKENS", "MAX_RETRIES", "MAX_TIMEOUT_S", "METRICS", "MODEL_KEYS",
    "MODES", "OPENAI_JUDGE_REFS", "PACKAGE_PREFIX", "PARSERS", "PLAIN_TEMPLATE_TYPES", "POSITION_BIAS", "PRECISIONS",
    "RESULTS_DIR", "STYLE_CONTROLS", "SWAP_RULES", "JUDGE_AGREEMENT", "ApiEndpoint", "ArenaConfig", "GateSpec", "JudgeGateSpec", "JudgeSpec", "ModelSpec", "RatingSpec",
    "ReviewSpec", "checkpoint_problem", "load_config", "names_read_from_files",
]


def load_config(path: str | os.PathLike, *, results_dir: str | os.PathLike | None = None,
                model_paths: dict[str, str] | None = None, questions_given: bool = False) -> ArenaConfig:
    """Read and validate a cfg_arena.yaml. Relative paths resolve against the config's folder;
    outputs the config does not name go under ``results_dir`` (default ``./results``).

    ``model_paths`` (``--arena-model NAME=PATH``) replaces a candidate's checkpoint, or adds a
    candidate with the first configured model's settings; ``questions_given`` (``--arena-questions``)
    makes ``question_file`` optional.
    """
    file = Path(path).expanduser().resolve()
    if not file.is_file():
        raise ArenaConfigError(file, "", "config file not found")
    data = read_yaml(file)
    root = Section(file, "", data)
    root.check_keys(("question_file", "answers_gen", "reviews_gen", "rating_gen", "gates"))
    if model_paths:
        override_models(root, model_paths)
    base = file.parent
    results = Path(results_dir).resolve() if results_dir else Path.cwd() / RESULTS_DIR
    if results.exists() and not results.is_dir():
        raise ArenaConfigError(results, "--arena-results", "expected a folder (where outputs the config does not "
                               "name are written), got a file")

    def resolve(value: str) -> Path:
        return (base / Path(value).expanduser()).resolve()

    def existing_file(section: Section, key: str, required: bool) -> Path | None:
        value = section.get(key, str, expected="a file path")
        if value is None:
            if required:
                section.fail(key, "missing; expected a file path")
            return None
        resolved = resolve(value)
        if resolved.is_dir():
            section.fail(key, f"expected a file, got a folder: {resolved}")
        if not resolved.is_file():
            section.fail(key, f"file not found: {resolved}")
        return resolved

    question_file = existing_file(root, "question_file", required=not questions_given)
    judge_only = bool(root.section("reviews_gen").data.get("target_answers"))
    models = read_models(root.section("answers_gen"), resolve, results, judge_only)
    review = read_review(root.section("reviews_gen"), resolve, existing_file, results, models)
    rating = read_rating(root.section("rating_gen"), resolve, results, models, review)
    gates = read_gates(file, root.data.get("gates"), models, rating.baseline_model,
                       names_open=names_read_from_files(review, models))
    return ArenaConfig(file, question_file, models, review, rating, gates)
