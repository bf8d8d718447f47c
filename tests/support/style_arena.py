"""A small arena for the judge-bias tests (issue 24), answered from files so that no model loads.

Three candidates on 16 questions: ``base``; ``ft``, the baseline's answers plus padding (its only change
is length); ``ref``, whose answers are short on odd questions and long on even ones, and whose content
("the point is clear" or "vague") follows a pattern of its own, so that a judge's taste for length and
for content can be told apart. ``bench/style_off_reference.py`` runs this same arena with the code of
before issue 24 to make ``tests/data/style_off_report.csv``.
"""

from __future__ import annotations

import json
from pathlib import Path

QUESTIONS = 16
MODELS = ("base", "ft", "ref")


def answer_texts(questions: int = QUESTIONS) -> dict[tuple[str, int], str]:
    texts = {}
    for q in range(1, questions + 1):
        base = f"Answer {q}: the point is clear. " + " ".join(["point"] * (4 + q % 5))
        texts["base", q] = base
        texts["ft", q] = base + " " + " ".join(["indeed"] * (8 + (3 * q) % 9))
        marker = "clear" if q % 4 in (1, 2) else "vague"
        texts["ref", q] = f"Reply {q}: the point is {marker}. " + " ".join(["note"] * (2 if q % 2 else 30))
    return texts


def write_style_arena(root: Path, base_url: str, questions: int = QUESTIONS, **rating) -> dict:
    """Questions, answer files and the config (returned as a dict; the caller writes it)."""
    root = Path(root)
    with open(root / "questions.jsonl", "w", encoding="utf-8") as handle:
        for q in range(1, questions + 1):
            handle.write(json.dumps({"question_id": q, "text": f"Explain point {q}.", "category": "generic"}) + "\n")
    (root / "answers").mkdir(exist_ok=True)
    texts = answer_texts(questions)
    models = {}
    for name in MODELS:
        path = root / "answers" / f"answer_{name}.jsonl"
        with open(path, "w", encoding="utf-8") as handle:
            for q in range(1, questions + 1):
                handle.write(json.dumps({"question_id": q, "model_id": name, "answer": texts[name, q]}) + "\n")
        models[name] = {"enable": False, "output_file": f"answers/answer_{name}.jsonl"}
    return {
        "question_file": "questions.jsonl",
        "answers_gen": models,
        "reviews_gen": {
            "enable": True,
            "reviewer": {"ref": "openai", "args": {"model": "gpt-4", "max_tokens": 64, "temperature": 0.0,
                                                   "mode": "pairwise", "base_url": base_url, "max_retries": 1,
                                                   "timeout": 10}},
            "review_file": "reviews/reviews.jsonl",
        },
        "rating_gen": {"enable": True, "metrics": ["bt"], "report_file": "reports/rating.csv",
                       "bootstrap_rounds": 200, **rating},
    }
