"""Numbers, generation settings and YAML that would crash a run after it started, refused while the
config is read: every number finite and in its range, every sampling setting typed and ranged for
every backend, ``max_new_tokens`` within the checkpoint's context, error lines bounded however large
the value (a YAML alias bomb), and ``stop_strings`` honoured by the transformers backend."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas  # noqa: F401 - kept imported across in-process pytester runs (a re-import makes a second DataFrame class)
import pytest
import yaml

from pytest_arena.config import MAX_CONFIG_VALUES, load_config
from pytest_arena.errors import ArenaConfigError, UnsupportedSetting, excerpt
from pytest_arena.config.generation import (
    RULES,
    check_context,
    check_generation_settings,
    context_length,
)

# --------------------------------------------------------------------------------------------------
# A config on disk (hub ids: nothing is loaded, no folder is needed)


def base_config() -> dict:
    return {
        "question_file": "questions.jsonl",
        "answers_gen": {
            "m1": {"model_id_or_path": "org/m1", "generation_config": {"do_sample": False, "max_new_tokens": 8}},
            "m2": {"model_id_or_path": "org/m2"},
        },
        "reviews_gen": {"reviewer": {"ref": "openai", "args": {"mode": "pairwise"}}},
        "rating_gen": {"metrics": ["elo"]},
    }


def write(folder: Path, config: dict | None = None, *, raw: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "questions.jsonl").write_text('{"question_id": 1, "text": "Hi?"}\n', encoding="utf-8")
    path = folder / "cfg.yaml"
    path.write_text(raw if raw is not None else yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def refusal(path: Path) -> ArenaConfigError:
    with pytest.raises(ArenaConfigError) as caught:
        load_config(path)
    assert "\n" not in str(caught.value)
    return caught.value


def with_value(dotted: str, value) -> dict:
    config = base_config()
    *parents, last = dotted.split(".")
    node = config
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return config


# --------------------------------------------------------------------------------------------------
# Every number the config reads is finite


# (dotted key, a valid value there): each is refused as .nan, .inf and -.inf.
NUMBER_KEYS = [
    ("rating_gen.elo_k", 16),
    ("rating_gen.seed", 7),
    ("rating_gen.bootstrap_rounds", 10),
    ("reviews_gen.reviewer.args.temperature", 0.5),
    ("reviews_gen.reviewer.args.max_tokens", 64),
    ("reviews_gen.reviewer.args.timeout", 30),
    ("reviews_gen.reviewer.args.max_concurrency", 4),
    ("reviews_gen.reviewer.args.max_retries", 2),
    ("reviews_gen.reviewer.args.random_seed", 5),
    ("reviews_gen.reviewer.args.strong_verdict_weight", 2),
    ("reviews_gen.reviewer.args.prompt_cost_per_1m", 2.5),
    ("reviews_gen.reviewer.args.completion_cost_per_1m", 10),
    ("answers_gen.m1.batch_size", 4),
    ("answers_gen.m1.generation_config.temperature", 0.7),
    ("answers_gen.m1.generation_config.top_p", 0.9),
    ("answers_gen.m1.generation_config.typical_p", 0.9),
    ("answers_gen.m1.generation_config.repetition_penalty", 1.1),
    ("answers_gen.m1.generation_config.length_penalty", 1.0),
]


@pytest.mark.parametrize("dotted, valid", NUMBER_KEYS, ids=[k for k, _ in NUMBER_KEYS])
def test_every_number_is_finite(tmp_path, dotted, valid):
    load_config(write(tmp_path / "ok", with_value(dotted, valid)))  # the key takes a number at all
    for bad, shown in ((math.nan, ".nan"), (math.inf, ".inf"), (-math.inf, "-.inf")):
        error = refusal(write(tmp_path / shown, with_value(dotted, bad)))
        assert error.where == dotted
        assert error.problem.endswith(f"got {shown}") or error.problem.endswith(f"got float {shown}"), error.problem


@pytest.mark.parametrize("gate", [
    {"model": "m1", "min_elo": math.nan},
    {"model": "m1", "max_drop": math.nan},
    {"model": "m1", "min_win_rate": math.nan},
    {"model": "m1", "min_score": -math.inf},
    {"model": "m1", "beats": "m2", "margin": math.inf},
    {"model": "m1", "min_elo": 10**400},  # an int too large for a float: float() would overflow
], ids=["min_elo-nan", "max_drop-nan", "min_win_rate-nan", "min_score-minus-inf", "margin-inf", "min_elo-huge-int"])
def test_gate_thresholds_are_finite(tmp_path, gate):
    config = base_config()
    if "min_score" in gate:
        config["reviews_gen"]["reviewer"]["args"]["mode"] = "single"
    config["gates"] = [gate]
    error = refusal(write(tmp_path, config))
    key = next(k for k in gate if k not in ("model", "beats"))
    assert error.where == f"gates[0].{key}" and "finite" in error.problem


@pytest.mark.parametrize("entry, where", [
    ({"model_id_or_path": "org/m1", "generation_config": {"exponential_decay_length_penalty": [10, math.nan]}},
     "answers_gen.m1.generation_config.exponential_decay_length_penalty[1]"),
    ({"model_id_or_path": "org/m1", "backend": "vllm", "vllm_args": {"gpu_memory_utilization": math.inf}},
     "answers_gen.m1.vllm_args.gpu_memory_utilization"),
    ({"api": {"base_url": "http://127.0.0.1:9/v1", "model": "served", "extra_body": {"guided": {"w": -math.inf}}}},
     "answers_gen.m1.api.extra_body.guided.w"),
], ids=["generation-setting-without-a-rule", "vllm-args", "api-extra-body"])
def test_values_passed_on_as_given_are_finite(tmp_path, entry, where):
    config = base_config()
    config["answers_gen"]["m1"] = entry
    error = refusal(write(tmp_path, config))
    assert error.where == where and "expected a finite number" in error.problem, error


@pytest.mark.parametrize("dotted, value, says", [
    ("rating_gen.seed", -1, "expected an integer from 0 to 4294967295, got -1"),
    ("rating_gen.seed", 2**32, "expected an integer from 0 to 4294967295"),
    ("rating_gen.seed", 1.5, "expected an integer from 0 to 4294967295, got float 1.5"),
    ("reviews_gen.reviewer.args.random_seed", -3, "from 0 to 4294967295"),
    ("rating_gen.elo_k", 10**6, "expected at most 1000"),
    ("rating_gen.bootstrap_rounds", 10**9, "expected at most 100000"),
    ("reviews_gen.reviewer.args.max_concurrency", 10**6, "expected at most 1024"),
    ("reviews_gen.reviewer.args.max_retries", 10**4, "expected at most 100"),
    ("reviews_gen.reviewer.args.timeout", 10**7, "expected at most 86400"),
    ("reviews_gen.reviewer.args.max_tokens", 10**12, "expected at most 1000000"),
    ("reviews_gen.reviewer.args.temperature", 3, "expected at most 2"),
])
def test_numbers_out_of_their_range_are_refused(tmp_path, dotted, value, says):
    error = refusal(write(tmp_path, with_value(dotted, value)))
    assert error.where == dotted and says in error.problem, error


def test_the_seed_range_is_what_numpy_and_torch_take():
    import numpy as np
    import torch

    np.random.default_rng(2**32 - 1)
    torch.manual_seed(2**32 - 1 + 10)  # the generation seed grows by one per turn
    with pytest.raises(ValueError):
        np.random.default_rng(-1)


# --------------------------------------------------------------------------------------------------
# Generation settings: types, ranges and fit, for every backend


# The sampling settings the brief of issue 13 names: each has a rule.
NAMED = ("temperature", "top_p", "top_k", "typical_p", "min_p", "epsilon_cutoff", "eta_cutoff", "repetition_penalty",
         "length_penalty", "no_repeat_ngram_size", "max_new_tokens", "min_new_tokens", "num_beams")


def test_every_named_sampling_setting_has_a_rule():
    assert set(NAMED) <= set(RULES)


def test_every_rule_names_a_setting_some_backend_takes():
    from transformers import GenerationConfig

    from pytest_arena.config.generation import API_SETTINGS

    known = set(GenerationConfig().to_dict()) | set(API_SETTINGS)
    assert set(RULES) <= known, sorted(set(RULES) - known)


@pytest.mark.parametrize("key", sorted(k for k, rule in RULES.items() if float in rule.types))
def test_every_real_valued_setting_refuses_nan_inf_and_words(key):
    for bad in (math.nan, math.inf, "high", [0.5], True):
        with pytest.raises(UnsupportedSetting) as caught:
            check_generation_settings({key: bad})
        assert caught.value.key == key


@pytest.mark.parametrize("settings, key, says", [
    ({"typical_p": "high"}, "typical_p", "expected a number in (0, 1], got a string 'high'"),
    ({"typical_p": 0}, "typical_p", "(0, 1]"),
    ({"epsilon_cutoff": 1}, "epsilon_cutoff", "[0, 1)"),
    ({"eta_cutoff": -0.1}, "eta_cutoff", "[0, 1)"),
    ({"min_p": 1.5}, "min_p", "[0, 1]"),
    ({"top_k": 2.5}, "top_k", "a non-negative integer, got float 2.5"),
    ({"top_k": -1}, "top_k", "non-negative"),
    ({"no_repeat_ngram_size": -1}, "no_repeat_ngram_size", "an integer >= 0"),
    ({"num_beams": 0}, "num_beams", "positive integer"),
    ({"num_return_sequences": 3}, "num_return_sequences", "expected 1"),
    ({"max_new_tokens": 0}, "max_new_tokens", "a positive integer, got 0"),
    ({"max_new_tokens": 8.0}, "max_new_tokens", "a positive integer"),
    ({"repetition_penalty": 0}, "repetition_penalty", "a positive number"),
    ({"temperature": -1}, "temperature", "non-negative"),
    ({"do_sample": True, "temperature": 0}, "temperature", "positive number when do_sample is true"),
    ({"do_sample": "yes"}, "do_sample", "true or false"),
    ({"min_new_tokens": 9, "max_new_tokens": 8}, "min_new_tokens", "at most max_new_tokens (8), got 9"),
    ({"min_new_tokens": 300}, "min_new_tokens", "at most max_new_tokens (256, the default), got 300"),
    ({"min_length": 20, "max_length": 10}, "min_length", "at most max_length (10)"),
    ({"stop_strings": ""}, "stop_strings", "non-empty string"),
    ({"stop_strings": ["ok", 3]}, "stop_strings", "a list of them"),
    ({"stop_strings": []}, "stop_strings", "non-empty"),
    ({"eos_token_id": [2, "x"]}, "eos_token_id", "token id"),
    ({"return_dict_in_generate": True}, "return_dict_in_generate", "expected false"),
    ({"presence_penalty": 3}, "presence_penalty", "[-2, 2]"),
    ({"seed": -1}, "seed", "from 0 to"),
])
def test_generation_setting_mistakes(settings, key, says):
    with pytest.raises(UnsupportedSetting) as caught:
        check_generation_settings(settings)
    assert caught.value.key == key and says in caught.value.problem, caught.value.problem


@pytest.mark.parametrize("settings", [
    {},
    {"do_sample": True, "temperature": 0.7, "top_p": 1, "top_k": 0, "typical_p": 1.0, "min_p": 0,
     "epsilon_cutoff": 0, "eta_cutoff": 3e-4, "repetition_penalty": 1.05, "length_penalty": -0.5,
     "no_repeat_ngram_size": 3, "num_beams": 1, "num_return_sequences": 1},
    {"max_new_tokens": 16, "min_new_tokens": 16, "stop_strings": ["\n\n", "User:"], "eos_token_id": [1, 2]},
    {"temperature": None, "top_p": None},  # null is "not set"
    {"some_future_setting": "left to each backend's own check"},
])
def test_valid_generation_settings_pass(settings):
    check_generation_settings(settings)


@pytest.mark.parametrize("backend", ["transformers", "vllm", "api"])
def test_typical_p_as_a_word_is_refused_for_every_backend(tmp_path, backend):
    config = base_config()
    entry = config["answers_gen"]["m1"]
    if backend == "api":
        config["answers_gen"]["m1"] = entry = {"api": {"base_url": "http://127.0.0.1:9/v1", "model": "served"}}
        entry["generation_config"] = {"top_p": "high"}  # typical_p is not an API setting; top_p is
        key = "top_p"
    else:
        entry["backend"] = backend
        entry["generation_config"] = {"typical_p": "high"}
        key = "typical_p"
    error = refusal(write(tmp_path, config))
    assert error.where == f"answers_gen.m1.generation_config.{key}"
    assert "got a string 'high'" in error.problem


# --------------------------------------------------------------------------------------------------
# The checkpoint's context, read from its config.json


def checkpoint_config(folder: Path, config: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return folder


@pytest.mark.parametrize("config, expected", [
    ({"max_position_embeddings": 4096}, (4096, "max_position_embeddings")),
    ({"n_positions": 1024, "n_ctx": 1024}, (1024, "n_positions")),  # gpt2
    ({"max_seq_len": 2048}, (2048, "max_seq_len")),  # mpt
    ({"seq_length": 8192}, (8192, "seq_length")),  # chatglm
    ({"text_config": {"max_position_embeddings": 131072}}, (131072, "max_position_embeddings")),  # multimodal
    # YaRN stretches 32k positions four-fold (Qwen2.5's long-context setting)
    ({"max_position_embeddings": 32768,
      "rope_scaling": {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}},
     (131072, "max_position_embeddings")),
    # Llama 3.1 states the stretched length itself
    ({"max_position_embeddings": 131072,
      "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "original_max_position_embeddings": 8192}},
     (131072, "max_position_embeddings")),
    ({"vocab_size": 100}, None),
    ({"max_position_embeddings": "long"}, None),
])
def test_context_length_from_config_json(tmp_path, config, expected):
    assert context_length(checkpoint_config(tmp_path, config)) == expected


def test_context_length_of_an_unreadable_config_is_unknown(tmp_path):
    (tmp_path / "config.json").write_text("{not json", encoding="utf-8")
    assert context_length(tmp_path) is None
    assert context_length(tmp_path / "missing") is None


def test_context_check(tmp_path):
    folder = checkpoint_config(tmp_path, {"max_position_embeddings": 512})
    assert check_context({"max_new_tokens": 256}, folder) is None
    assert check_context({}, folder) is None  # the default is left to the backend
    problem = check_context({"max_new_tokens": 512}, folder)
    assert "context of 512 tokens" in problem and "max_position_embeddings" in problem and "got 512" in problem
    # vLLM told to use a shorter context: that is the limit
    problem = check_context({"max_new_tokens": 300}, folder, limit=256)
    assert "context of 256 tokens" in problem and "vllm_args.max_model_len" in problem


def test_max_new_tokens_beyond_the_context_is_refused_before_loading(tmp_path, tiny_models):
    config = base_config()
    config["answers_gen"]["m1"] = {"model_id_or_path": str(tiny_models["tiny-a"]),
                                   "generation_config": {"max_new_tokens": 4096}}
    error = refusal(write(tmp_path, config))
    assert error.where == "answers_gen.m1.generation_config.max_new_tokens"
    assert "context of 512 tokens" in error.problem and "got 4096" in error.problem
    # within the context it loads
    config["answers_gen"]["m1"]["generation_config"]["max_new_tokens"] = 64
    assert load_config(write(tmp_path, config)).models["m1"].generation_config["max_new_tokens"] == 64


def test_local_judge_max_tokens_beyond_its_context_is_refused(tmp_path, tiny_models):
    config = base_config()
    config["reviews_gen"]["reviewer"] = {"ref": "local", "args": {"model_id_or_path": str(tiny_models["tiny-c"]),
                                                                  "max_tokens": 600}}
    error = refusal(write(tmp_path, config))
    assert error.where == "reviews_gen.reviewer.args.max_tokens" and "context of 512 tokens" in error.problem


# --------------------------------------------------------------------------------------------------
# Bounded error lines, whatever the value; YAML that expands without end


def alias_bomb(depth: int, width: int = 9) -> str:
    """A YAML flow list whose last item stands for width**(depth+1) strings, in a few hundred bytes."""
    levels = [f"&l0 [{', '.join(['lol'] * width)}]"]
    levels += [f"&l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, depth)]
    return "[" + ", ".join(levels) + "]"


def test_alias_bomb_depth_9_is_one_short_error(tmp_path):
    config = yaml.safe_dump(base_config(), sort_keys=False).replace("question_file: questions.jsonl\n", "")
    raw = f"question_file: {alias_bomb(9)}\n{config}"
    assert len(raw) < 2000  # the whole attack is a small file
    error = refusal(write(tmp_path, raw=raw))
    assert error.where == "question_file"
    assert f"more than {MAX_CONFIG_VALUES} values" in error.problem
    assert len(str(error)) < 500


def test_a_large_value_below_the_alias_limit_is_shown_as_an_excerpt(tmp_path):
    # 9**5 = 59,049 strings: under the expansion limit, so the key's own check refuses it, showing a
    # short excerpt instead of the whole value (its repr would be about half a megabyte).
    config = yaml.safe_dump(base_config(), sort_keys=False).replace("question_file: questions.jsonl\n", "")
    error = refusal(write(tmp_path, raw=f"question_file: {alias_bomb(4)}\n{config}"))
    assert error.where == "question_file" and "expected a file path, got a list [[" in error.problem
    assert len(str(error)) < 500


@pytest.mark.parametrize("dotted", ["answers_gen.m1.precision", "reviews_gen.reviewer.args.mode",
                                    "rating_gen.baseline_model", "answers_gen.m1.generation_config.top_k"])
def test_a_megabyte_string_is_shown_as_its_start(tmp_path, dotted):
    error = refusal(write(tmp_path, with_value(dotted, "x" * 1_000_000)))
    assert error.where == dotted and "(1000000 characters)" in error.problem
    assert len(str(error)) < 500


def test_a_list_that_holds_itself_is_refused(tmp_path):
    config = yaml.safe_dump(base_config(), sort_keys=False)
    error = refusal(write(tmp_path, raw=config + "gates: &loop [*loop]\n"))
    assert error.where == "gates" and "loop" in error.problem


def test_excerpt_is_bounded():
    nested = ["lol"] * 9
    for _ in range(30):  # 9**31 items if written out
        nested = [nested] * 9
    assert len(excerpt(nested)) < 200
    looped: list = []
    looped.append(looped)
    assert excerpt(looped).startswith("[[")
    assert excerpt("x" * 10**6).endswith("(1000000 characters)") and len(excerpt("x" * 10**6)) < 120
    assert (excerpt(math.nan), excerpt(math.inf), excerpt(-math.inf)) == (".nan", ".inf", "-.inf")
    assert excerpt("many") == "'many'" and excerpt(0.5) == "0.5"


# --------------------------------------------------------------------------------------------------
# stop_strings: a transformers setting that works


def test_stop_strings_end_the_answer(tiny_models):
    from pytest_arena.config import ModelSpec
    from pytest_arena.generation.transformers_backend import TransformersGenerator

    def generate(generation_config: dict):
        spec = ModelSpec(name="tiny", path=str(tiny_models["tiny-a"]), output_file=Path("unused.jsonl"),
                         generation_config=generation_config, batch_size=2, precision="float32", device="cpu")
        generator = TransformersGenerator(spec)
        try:
            return generator.generate([[{"role": "user", "content": "What is the capital of France?"}],
                                       [{"role": "user", "content": "Hi"}]], seed=0)
        finally:
            generator.close()

    greedy = {"do_sample": False, "max_new_tokens": 24}
    full = generate(greedy)
    # A stop string taken from the middle of the first greedy answer: greedy decoding writes the same
    # text up to it, then stops there; the answer is the text before it, as vLLM and chat APIs give it.
    text = full[0].text
    assert len(text) > 12, text
    stop = text[len(text) // 2:len(text) // 2 + 4]
    stopped = generate({**greedy, "stop_strings": [stop]})
    assert stopped[0].text == text[:text.find(stop)].strip()
    assert stop not in stopped[0].text
    assert stopped[0].completion_tokens < full[0].completion_tokens
    for before, after in zip(full, stopped):  # the other answer stops at the string too, or is unchanged
        assert after.text == (before.text[:before.text.find(stop)].strip() if stop in before.text else before.text)


def test_stop_strings_pass_config_validation_and_transformers(tmp_path, tiny_models):
    from pytest_arena.generation.transformers_backend import generation_config_for

    config = base_config()
    config["answers_gen"]["m1"] = {"model_id_or_path": str(tiny_models["tiny-a"]),
                                   "generation_config": {"max_new_tokens": 8, "stop_strings": "\n\n"}}
    spec = load_config(write(tmp_path, config)).models["m1"]
    assert generation_config_for(spec).stop_strings == "\n\n"


def test_stop_strings_in_an_arena_run(arena_project):
    """The whole run, as a user sets it: the config is accepted, the model loads, and each answer that
    reaches the stop string ends before it (it crashed after loading the model before)."""
    config = arena_project.config(questions=3, models=("tiny-a", "tiny-b"))
    for entry in config["answers_gen"].values():
        entry["generation_config"] = {"do_sample": False, "max_new_tokens": 24}
    arena_project.write(config)
    first = arena_project.run()
    assert first.ret == 0, first.stdout.str()
    greedy = {r["question_id"]: r["answer"] for r in arena_project.read_jsonl("answers/answer_tiny-a.jsonl")}
    text = greedy[1]
    stop = text[len(text) // 2:len(text) // 2 + 4]
    assert len(text) > 12 and stop.strip(), text

    config["answers_gen"]["tiny-a"]["generation_config"]["stop_strings"] = [stop]
    arena_project.write(config)
    second = arena_project.run()
    assert second.ret == 0, second.stdout.str()
    stopped = {r["question_id"]: r["answer"] for r in arena_project.read_jsonl("answers/answer_tiny-a.jsonl")}
    assert stopped[1] == text[:text.find(stop)].strip()
    for qid, answer in greedy.items():
        assert stopped[qid] == (answer[:answer.find(stop)].strip() if stop in answer else answer)


def test_aliases_that_share_a_setting_still_load(tmp_path):
    raw = """question_file: questions.jsonl
answers_gen:
  m1: {model_id_or_path: org/m1, generation_config: &greedy {do_sample: false, max_new_tokens: 8, stop_strings: [END]}}
  m2: {model_id_or_path: org/m2, generation_config: *greedy}
"""
    models = load_config(write(tmp_path, raw=raw)).models
    assert models["m1"].generation_config == models["m2"].generation_config == {
        "do_sample": False, "max_new_tokens": 8, "stop_strings": ["END"]}


def test_an_error_line_is_bounded_even_for_text_no_one_cut():
    error = ArenaConfigError("cfg.yaml", "k" * 5000, "p" * 100_000)
    assert len(str(error)) < 7000
    assert error.problem.startswith("p" * 100) and "characters left out" in error.problem
    assert ArenaConfigError("cfg.yaml", "rating_gen.seed", "expected an integer").where == "rating_gen.seed"
