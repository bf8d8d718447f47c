"""cfg_arena.yaml -> ArenaConfig: EvalScope's three shipped configs load as they are, and every mistake
is one ``ArenaConfigError`` line that names the file, the key and what was expected."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pytest_arena.config import DEFAULT_TEMPLATES, load_config
from pytest_arena.errors import ArenaConfigError


def _compat_dir() -> Path | None:
    # CI copies shared/ beside the clone (../shared from the repo root); locally it lives in /work/shared.
    for candidate in (
        Path(__file__).resolve().parents[2] / "shared" / "compat" / "evalscope",
        Path("/work/shared/compat/evalscope"),
    ):
        if candidate.is_dir():
            return candidate
    return None


COMPAT = _compat_dir()
needs_compat = pytest.mark.skipif(COMPAT is None, reason="EvalScope compat files (../shared/compat/evalscope) not present")

GEN = {"do_sample": True, "max_new_tokens": 256, "top_k": 20, "top_p": 0.75}


def evalscope_project(tmp_path: Path, config_name: str) -> Path:
    """Copy one of EvalScope's configs into tmp_path and create the input files it names."""
    folder = tmp_path / "project"
    folder.mkdir()
    config = folder / config_name
    shutil.copy(COMPAT / config_name, config)
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    reviews = data["reviews_gen"]

    def place(relative: str, source: Path | None = None, text: str | None = None):
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if source is not None:
            shutil.copy(source, target)
        else:
            target.write_text(text, encoding="utf-8")

    place(data["question_file"], COMPAT / "question.jsonl")
    place(reviews["prompt_file"], COMPAT / "prompt_templates.jsonl")
    if reviews.get("baseline_file"):
        record = {"question_id": 1, "text": "q", "category": "generic", "model_id": "text_davinci_003", "answer": "a"}
        place(reviews["baseline_file"], text=json.dumps(record) + "\n")
    return config


# --------------------------------------------------------------------------------------------------
# EvalScope's own configs


@needs_compat
def test_cfg_arena_loads(tmp_path, monkeypatch):
    config_file = evalscope_project(tmp_path, "cfg_arena.yaml")
    monkeypatch.chdir(tmp_path)  # not the config's folder: paths must not depend on the cwd
    folder = config_file.parent.resolve()
    data = folder / "registry" / "data"
    config = load_config(config_file)

    assert config.path == config_file.resolve()
    assert config.question_file == data / "question.jsonl"
    assert list(config.models) == ["chatglm3-6b", "Baichuan2-7B-Base", "Qwen-7B"]

    glm, baichuan, qwen = config.models.values()
    assert glm.name == "chatglm3-6b"
    assert glm.path == "ZhipuAI/chatglm3-6b"  # a hub id is accepted as it is
    assert qwen.path == "qwen/Qwen-7B"
    assert glm.revision == "v1.0.2" and qwen.revision == "v1.1.8"
    assert {m.precision for m in config.models.values()} == {"float16"}
    assert (glm.enable, baichuan.enable, qwen.enable) == (True, False, True)
    # chatglm3 is a chat template type; default-generation means a plain prompt for base models.
    assert (glm.use_chat_template, baichuan.use_chat_template, qwen.use_chat_template) == (True, False, False)
    assert glm.generation_config == {**GEN, "temperature": 0.333}
    assert qwen.generation_config == {**GEN, "temperature": 0.3}
    assert glm.output_file == data / "arena" / "answers" / "answer_chatglm3-6b.jsonl"
    assert baichuan.output_file == data / "arena" / "answers" / "answer_Baichuan2-7B-Base.jsonl"

    review = config.review
    assert review.enable is True
    judge = review.judge
    assert judge.is_openai  # EvalScope's AutoReviewerGpt4 maps to our OpenAI-compatible judge
    assert judge.mode == "pairwise"
    assert judge.position_bias_mitigation is None  # written as NULL in the file
    assert judge.fn_completion_parser == "lmsys_parser"
    assert judge.max_tokens == 1024
    assert judge.temperature == 0.2
    assert judge.model == "gpt-4"
    assert review.prompt_file == data / "prompt_template" / "prompt_templates.jsonl"
    assert review.review_file == data / "arena" / "reviews" / "review_gpt4.jsonl"
    assert review.target_answers is None
    assert review.baseline_file is None and review.reference_file is None

    assert config.rating.enable is True
    assert config.rating.metrics == ("elo",)
    assert config.rating.report_file == data / "arena" / "reports" / "elo_rating_origin.csv"
    assert config.gates == ()


@needs_compat
def test_cfg_pairwise_baseline_loads(tmp_path):
    config_file = evalscope_project(tmp_path, "cfg_pairwise_baseline.yaml")
    data = config_file.parent.resolve() / "registry" / "data"
    config = load_config(config_file)

    judge = config.review.judge
    assert judge.mode == "pairwise_baseline"
    assert judge.position_bias_mitigation == "swap_position"
    assert judge.temperature == 0.0 and judge.model == "gpt-4"
    answers = data / "arena" / "answers"
    assert config.review.target_answers == (answers / "answer_chatglm3-6b.jsonl", answers / "answer_Baichuan2-7B-Base.jsonl")
    assert config.review.target_answers[0] == config.models["chatglm3-6b"].output_file
    assert config.review.baseline_file == answers / "answer_text_davinci_003.jsonl"
    assert config.review.reference_file is None  # `reference_file:` with no value
    assert config.review.prompt_file == data / "prompt_template" / "lmsys_v2.jsonl"
    # review_file and cache_file name the same file: it is both the record and the cache.
    assert config.review.review_file == data / "arena" / "reviews" / "review_gpt4_pair_baseline.jsonl"
    assert config.rating.metrics == ("pairwise",)
    assert config.rating.baseline_model == "text_davinci_003"
    assert config.rating.report_file == data / "arena" / "reports" / "rating_pairwise_baseline.csv"


@needs_compat
def test_cfg_single_loads(tmp_path):
    config_file = evalscope_project(tmp_path, "cfg_single.yaml")
    data = config_file.parent.resolve() / "registry" / "data"
    config = load_config(config_file)

    assert config.review.judge.mode == "single"
    assert config.review.judge.position_bias_mitigation is None  # key absent
    assert config.review.judge.fn_completion_parser == "lmsys_parser"
    assert config.review.review_file == data / "arena" / "reviews" / "review_gpt4_single.jsonl"
    assert config.rating.metrics == ("score",)
    assert config.models["chatglm3-6b"].generation_config["temperature"] == 0.3


@needs_compat
@pytest.mark.parametrize("config_name", ["cfg_arena.yaml", "cfg_pairwise_baseline.yaml", "cfg_single.yaml"])
def test_evalscope_config_without_its_files_names_the_missing_one(tmp_path, config_name):
    config_file = tmp_path / config_name
    shutil.copy(COMPAT / config_name, config_file)
    with pytest.raises(ArenaConfigError) as info:
        load_config(config_file)
    message = str(info.value)
    assert "\n" not in message
    assert str(config_file.resolve()) in message
    assert "question_file" in message and "question.jsonl" in message and "not found" in message


def test_loading_a_config_imports_no_heavy_library(tmp_path):
    """Config errors come before any model: reading the config must not even import torch."""
    write_config(tmp_path, base_config())
    script = (
        "import sys; from pytest_arena.config import load_config; "
        f"load_config({str(tmp_path / 'cfg.yaml')!r}); "
        "heavy = [m for m in ('torch', 'transformers', 'openai', 'pandas') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


# --------------------------------------------------------------------------------------------------
# A small config of our own, and mistakes made in it


def base_config() -> dict:
    return {
        "question_file": "questions.jsonl",
        "answers_gen": {
            "m1": {"model_id_or_path": "org/m1", "precision": "torch.float16",
                   "generation_config": {"do_sample": False, "max_new_tokens": 8}},
            "m2": {"model_id_or_path": "org/m2", "precision": "torch.bfloat16"},
        },
        "reviews_gen": {
            "enable": True,
            "reviewer": {"ref": "evalscope.evaluator.reviewer.auto_reviewer:AutoReviewerGpt4",
                         "args": {"mode": "pairwise", "position_bias_mitigation": None,
                                  "fn_completion_parser": "lmsys_parser", "temperature": 0}},
        },
        "rating_gen": {"enable": True, "metrics": ["elo"]},
    }


def write_config(folder: Path, config: dict | None = None, *, raw: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    questions = folder / "questions.jsonl"
    if not questions.exists():
        questions.write_text('{"question_id": 1, "text": "Hi?", "category": "generic"}\n', encoding="utf-8")
    path = folder / "cfg.yaml"
    path.write_text(raw if raw is not None else yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def test_defaults_of_a_minimal_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config(write_config(tmp_path / "project", base_config()))
    m1, m2 = config.models.values()
    assert (m1.precision, m2.precision) == ("float16", "bfloat16")
    assert m1.enable and m1.use_chat_template and m1.revision is None and m1.batch_size == 8
    assert m2.generation_config == {}
    assert config.review.prompt_file == DEFAULT_TEMPLATES  # our own templates when none is named
    assert config.review.judge.model == "gpt-4" and config.review.judge.random_seed == 123
    assert config.review.judge.max_concurrency > 0
    # Outputs the config does not name go under <cwd>/results.
    results = tmp_path / "results"
    assert m1.output_file == results / "answers" / "answer_m1.jsonl"
    assert config.review.review_file.parent == results / "reviews"
    assert config.rating.report_file.parent == results / "reports"


def test_results_dir_argument_moves_default_outputs(tmp_path):
    config = load_config(write_config(tmp_path / "project", base_config()), results_dir=tmp_path / "out")
    out = (tmp_path / "out").resolve()
    assert config.models["m2"].output_file == out / "answers" / "answer_m2.jsonl"
    assert config.review.review_file.is_relative_to(out)
    assert config.rating.report_file.is_relative_to(out)


def test_default_answer_file_names_are_safe_for_odd_model_names(tmp_path):
    data = base_config()
    data["answers_gen"]["org/odd name"] = data["answers_gen"].pop("m2")
    config = load_config(write_config(tmp_path, data), results_dir=tmp_path / "out")
    output = config.models["org/odd name"].output_file
    assert output.parent == (tmp_path / "out" / "answers").resolve()  # the slash made no sub-folder
    assert " " not in output.name


@pytest.mark.parametrize("precision, dtype", [
    ("torch.float16", "float16"), ("torch.bfloat16", "bfloat16"), ("torch.float32", "float32"), ("auto", "auto"),
    ("bf16", "bfloat16"),
])
def test_precision_is_parsed(tmp_path, precision, dtype):
    data = base_config()
    data["answers_gen"]["m1"]["precision"] = precision
    assert load_config(write_config(tmp_path, data)).models["m1"].precision == dtype


def test_relative_paths_resolve_against_the_config_folder_not_the_cwd(tmp_path, monkeypatch):
    project = tmp_path / "deep" / "project"
    model = project / "models" / "tiny"
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}", encoding="utf-8")
    (model / "model.safetensors").write_bytes(b"")
    (model / "tokenizer.json").write_text("{}", encoding="utf-8")
    (project / "data").mkdir()
    (project / "data" / "q.jsonl").write_text('{"question_id": 1, "text": "x"}\n', encoding="utf-8")
    (project / "templates.jsonl").write_text(DEFAULT_TEMPLATES.read_text(encoding="utf-8"), encoding="utf-8")
    data = base_config()
    data["question_file"] = "data/q.jsonl"
    data["answers_gen"]["m1"]["model_id_or_path"] = "./models/tiny"
    data["answers_gen"]["m1"]["output_file"] = "out/a1.jsonl"
    data["reviews_gen"]["prompt_file"] = "templates.jsonl"
    data["reviews_gen"]["review_file"] = "../reviews.jsonl"
    data["rating_gen"]["report_file"] = "reports/r.csv"
    config_file = write_config(project, data)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    config = load_config(Path("..") / "deep" / "project" / "cfg.yaml")  # a relative config path too
    root = project.resolve()
    assert config.path == config_file.resolve()
    assert config.question_file == root / "data" / "q.jsonl"
    assert config.models["m1"].path == str(root / "models" / "tiny")
    assert Path(config.models["m1"].path).is_absolute()
    assert config.models["m1"].output_file == root / "out" / "a1.jsonl"
    assert config.review.prompt_file == root / "templates.jsonl"
    assert config.review.review_file == root.parent / "reviews.jsonl"
    assert config.rating.report_file == root / "reports" / "r.csv"


def test_cache_file_alone_names_the_review_file(tmp_path):
    data = base_config()
    data["reviews_gen"]["cache_file"] = "reviews/cache.jsonl"
    config = load_config(write_config(tmp_path, data))
    assert config.review.review_file == (tmp_path / "reviews" / "cache.jsonl").resolve()


def test_gates_are_read(tmp_path):
    data = base_config()
    data["gates"] = [{"model": "m1", "min_elo": 1000}, {"model": "m1", "beats": "m2", "margin": 5}]
    gates = load_config(write_config(tmp_path, data)).gates
    assert [(g.kind, g.model, g.min_elo, g.beats, g.margin) for g in gates] == [
        ("elo", "m1", 1000.0, None, 0.0), ("beats", "m1", None, "m2", 5.0)]


def _set(path: str, value):
    """A mutation of base_config(): set the dotted key ``path`` to ``value``."""
    def mutate(data: dict):
        *parents, last = path.split(".")
        node = data
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return mutate


def _delete(path: str):
    def mutate(data: dict):
        *parents, last = path.split(".")
        node = data
        for key in parents:
            node = node[key]
        del node[last]
    return mutate


def _rename(old: str, new: str):
    def mutate(data: dict):
        data[new] = data.pop(old)
    return mutate


# (id, mutation, dotted key in the message, texts the message must also contain)
MISTAKES = [
    ("unknown-top-level-key", _rename("answers_gen", "answer_gen"), "answer_gen",
     ["unknown key", "did you mean 'answers_gen'"]),
    ("misspelt-nested-key", _set("reviews_gen.reviewer.args.temprature", 0.1), "reviews_gen.reviewer.args.temprature",
     ["did you mean 'temperature'"]),
    ("misspelt-model-key", _set("answers_gen.m1.precison", "auto"), "answers_gen.m1.precison",
     ["did you mean 'precision'"]),
    ("max-new-tokens-not-a-number", _set("answers_gen.m1.generation_config.max_new_tokens", "abc"),
     "answers_gen.m1.generation_config.max_new_tokens", ["positive integer", "'abc'"]),
    ("max-new-tokens-negative", _set("answers_gen.m1.generation_config.max_new_tokens", -1),
     "answers_gen.m1.generation_config.max_new_tokens", ["positive integer"]),
    ("do-sample-a-string", _set("answers_gen.m1.generation_config.do_sample", "no"),
     "answers_gen.m1.generation_config.do_sample", ["true or false"]),
    ("enable-yes-string", _set("answers_gen.m1.enable", "yes"), "answers_gen.m1.enable", ["true or false", "'yes'"]),
    ("enable-of-reviews", _set("reviews_gen.enable", "yes"), "reviews_gen.enable", ["true or false"]),
    ("bool-where-a-number-belongs", _set("reviews_gen.reviewer.args.max_tokens", True),
     "reviews_gen.reviewer.args.max_tokens", ["positive integer"]),
    ("max-concurrency-zero", _set("reviews_gen.reviewer.args.max_concurrency", 0),
     "reviews_gen.reviewer.args.max_concurrency", ["positive integer"]),
    ("bad-mode", _set("reviews_gen.reviewer.args.mode", "pairwize"), "reviews_gen.reviewer.args.mode",
     ["pairwise, pairwise_baseline, single", "'pairwize'", "did you mean 'pairwise'"]),
    ("bad-position-bias", _set("reviews_gen.reviewer.args.position_bias_mitigation", "swap"),
     "reviews_gen.reviewer.args.position_bias_mitigation", ["swap_position", "randomize_order", "'swap'"]),
    ("bad-parser", _set("reviews_gen.reviewer.args.fn_completion_parser", "foo"),
     "reviews_gen.reviewer.args.fn_completion_parser", ["lmsys_parser", "ranking_parser", "'foo'"]),
    ("bad-metric", _set("rating_gen.metrics", ["elos"]), "rating_gen.metrics[0]",
     ["elo, bt, pairwise, score", "did you mean 'elo'"]),
    ("unknown-judge-ref", _set("reviews_gen.reviewer.ref", "my.module:Judge"), "reviews_gen.reviewer.ref",
     ["unknown judge", "AutoReviewerGpt4"]),
    ("precision-float17", _set("answers_gen.m1.precision", "torch.float17"), "answers_gen.m1.precision",
     ["torch.float16", "torch.bfloat16", "torch.float32", "auto", "torch.float17"]),
    ("precision-code", _set("answers_gen.m1.precision", "__import__('os').system('x')"), "answers_gen.m1.precision",
     ["torch.float16", "__import__"]),
    ("precision-not-a-string", _set("answers_gen.m1.precision", 16), "answers_gen.m1.precision", ["dtype"]),
    ("missing-question-file", _delete("question_file"), "question_file", ["missing", "file path"]),
    ("question-file-not-found", _set("question_file", "nope.jsonl"), "question_file", ["file not found", "nope.jsonl"]),
    ("question-file-not-a-string", _set("question_file", ["a.jsonl"]), "question_file", ["file path"]),
    ("prompt-file-not-found", _set("reviews_gen.prompt_file", "templates/none.jsonl"), "reviews_gen.prompt_file",
     ["file not found", "none.jsonl"]),
    ("model-folder-not-found", _set("answers_gen.m1.model_id_or_path", "./models/nothere"),
     "answers_gen.m1.model_id_or_path", ["model folder not found", "nothere"]),
    ("model-absolute-folder-not-found", _set("answers_gen.m1.model_id_or_path", "/no/such/checkpoint/folder"),
     "answers_gen.m1.model_id_or_path", ["model folder not found"]),
    ("missing-model-path", _delete("answers_gen.m1.model_id_or_path"), "answers_gen.m1.model_id_or_path",
     ["missing"]),
    ("no-models", _set("answers_gen", {}), "answers_gen", ["at least one"]),
    ("models-not-a-mapping", _set("answers_gen", ["m1", "m2"]), "answers_gen", ["mapping", "list"]),
    ("target-answer-not-found", _set("reviews_gen.target_answers", ["answers/other.jsonl"]),
     "reviews_gen.target_answers[0]", ["not found", "other.jsonl"]),
    ("cache-file-differs", _set("reviews_gen", {"review_file": "r.jsonl", "cache_file": "c.jsonl"}),
     "reviews_gen.cache_file", ["same path as review_file"]),
    ("baseline-model-unknown", _set("rating_gen.baseline_model", "m9"), "rating_gen.baseline_model", ["m1, m2", "'m9'"]),
    ("gate-on-unknown-model", _set("gates", [{"model": "m9", "min_elo": 1000}]), "gates[0].model",
     ["m1, m2", "'m9'"]),
    ("gate-beats-unknown-model", _set("gates", [{"model": "m1", "beats": "m9"}]), "gates[0].beats", ["'m9'"]),
    ("gate-with-two-thresholds", _set("gates", [{"model": "m1", "min_elo": 1000, "beats": "m2"}]), "gates[0]",
     ["exactly one threshold", "min_elo", "beats"]),
    ("gate-without-threshold", _set("gates", [{"model": "m1"}]), "gates[0]", ["exactly one threshold"]),
    ("gate-misspelt-key", _set("gates", [{"model": "m1", "min_elos": 1000}]), "gates[0].min_elos",
     ["did you mean 'min_elo'"]),
    ("gates-not-a-list", _set("gates", {"model": "m1"}), "gates", ["list"]),
]


@pytest.mark.parametrize("mutate, key, expected", [m[1:] for m in MISTAKES], ids=[m[0] for m in MISTAKES])
def test_config_mistake_is_one_line_naming_file_key_and_expectation(tmp_path, mutate, key, expected):
    data = copy.deepcopy(base_config())
    mutate(data)
    config_file = write_config(tmp_path, data)
    with pytest.raises(ArenaConfigError) as info:
        load_config(config_file)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{config_file.resolve()}: {key}: "), message
    assert info.value.where == key
    for text in expected:
        assert text in message, message


def test_folder_without_config_json_is_not_a_checkpoint(tmp_path):
    (tmp_path / "models" / "empty").mkdir(parents=True)
    data = base_config()
    data["answers_gen"]["m2"]["model_id_or_path"] = "models/empty"
    config_file = write_config(tmp_path, data)
    with pytest.raises(ArenaConfigError) as info:
        load_config(config_file)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{config_file.resolve()}: answers_gen.m2.model_id_or_path: ")
    assert "config.json" in message and str((tmp_path / "models" / "empty").resolve()) in message


def test_disabled_model_needs_no_model_path(tmp_path):
    data = base_config()
    data["answers_gen"]["m2"] = {"enable": False, "output_file": "answers/m2.jsonl"}
    config = load_config(write_config(tmp_path, data))
    assert config.models["m2"].enable is False
    assert config.models["m2"].output_file == (tmp_path / "answers" / "m2.jsonl").resolve()


def test_yaml_syntax_error_names_a_line(tmp_path):
    raw = "question_file: questions.jsonl\nanswers_gen:\n  m1: {model_id_or_path: org/m1\n  m2: x\n"
    config_file = write_config(tmp_path, raw=raw)
    with pytest.raises(ArenaConfigError) as info:
        load_config(config_file)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{config_file.resolve()}: line ")
    assert info.value.where.startswith("line ") and int(info.value.where.split()[1]) >= 3
    assert "invalid YAML" in message


@pytest.mark.parametrize("raw, kind", [("- a\n- b\n", "a list"), ("just a string\n", "a string")])
def test_top_level_must_be_a_mapping(tmp_path, raw, kind):
    config_file = write_config(tmp_path, raw=raw)
    with pytest.raises(ArenaConfigError) as info:
        load_config(config_file)
    message = str(info.value)
    assert "\n" not in message
    assert message == f"{config_file.resolve()}: expected a mapping, got {kind}"


def test_empty_config_asks_for_the_question_file(tmp_path):
    config_file = write_config(tmp_path, raw="# nothing here\n")
    with pytest.raises(ArenaConfigError, match=r"question_file: missing"):
        load_config(config_file)


def test_config_file_not_found(tmp_path):
    with pytest.raises(ArenaConfigError) as info:
        load_config(tmp_path / "nope.yaml")
    assert str(tmp_path / "nope.yaml") in str(info.value) and "not found" in str(info.value)


def test_precision_is_never_evaluated(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr("builtins.eval", lambda *a, **k: calls.append(a))
    data = base_config()
    data["answers_gen"]["m1"]["precision"] = "__import__('pathlib').Path('pwned').touch() or 'torch.float16'"
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ArenaConfigError):
        load_config(write_config(tmp_path, data))
    assert not calls
    assert not (tmp_path / "pwned").exists()
