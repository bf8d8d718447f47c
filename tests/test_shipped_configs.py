"""The configs shipped in configs/ load and plan as documented."""

from pathlib import Path

from pytest_arena.config import load_config
from pytest_arena.plan import plan_pairwise
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
