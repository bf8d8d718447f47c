"""An arena project on disk for end-to-end runs: questions, a cfg_arena.yaml, and how to run it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from .judge_server import JudgeServer

FAKE_KEY = "sk-arena-test-0123456789abcdef"
# Our default templates mark the answers this way (EvalScope's differ; the server takes either).
OWN_MARKERS = dict(
    a_start="[Answer of assistant A]", a_end="[End of answer A]",
    b_start="[Answer of assistant B]", b_end="[End of answer B]",
)


def write_questions(path: Path, count: int) -> Path:
    topics = ["time management", "stress", "Python", "quantum computing", "protein", "critical thinking",
              "education", "consumer behaviour", "conflict", "plastic bottles"]
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(1, count + 1):
            category = ["generic", "knowledge", "writing"][i % 3]
            record = {"question_id": i, "text": f"Tell me about {topics[i % len(topics)]}, part {i}.", "category": category}
            handle.write(json.dumps(record) + "\n")
    return path


class ArenaProject:
    """A folder with a question file and a cfg_arena.yaml pointing at tiny models and the loopback judge."""

    # Different answer lengths give prefer_longer a fixed order: tiny-a > tiny-b > tiny-c.
    LENGTHS = {"tiny-a": 24, "tiny-b": 12, "tiny-c": 3}

    def __init__(self, pytester: pytest.Pytester, models: dict[str, Path], server: JudgeServer):
        self.pytester = pytester
        self.root = pytester.path
        self.models = models
        self.server = server

    def config(self, *, questions: int = 4, models=("tiny-a", "tiny-b", "tiny-c"), gates=None,
               max_concurrency: int = 8, **overrides) -> dict:
        write_questions(self.root / "questions.jsonl", questions)
        config = {
            "question_file": "questions.jsonl",
            "answers_gen": {
                name: {
                    "model_id_or_path": str(self.models[name]),
                    "precision": "torch.float32",
                    "enable": True,
                    "generation_config": {"do_sample": True, "max_new_tokens": self.LENGTHS[name],
                                          "min_new_tokens": self.LENGTHS[name], "top_k": 20, "temperature": 0.8},
                    "batch_size": 4,
                    "output_file": f"answers/answer_{name}.jsonl",
                }
                for name in models
            },
            "reviews_gen": {
                "enable": True,
                "reviewer": {
                    "ref": "evalscope.evaluator.reviewer.auto_reviewer:AutoReviewerGpt4",
                    "args": {"model": "gpt-4", "max_tokens": 256, "temperature": 0.2, "mode": "pairwise",
                             "position_bias_mitigation": None, "fn_completion_parser": "lmsys_parser",
                             "base_url": self.server.base_url, "max_concurrency": max_concurrency,
                             "max_retries": 2, "timeout": 10},
                },
                "review_file": "reviews/review_gpt4.jsonl",
            },
            # Raw ratings (style_control none): these tests were written for them; the style-controlled
            # ones (the default) have their own tests (test_judge_biases_e2e.py).
            "rating_gen": {"enable": True, "metrics": ["elo"], "report_file": "reports/elo_rating.csv",
                           "bootstrap_rounds": 200, "style_control": "none"},
        }
        if gates:
            config["gates"] = gates
        for dotted, value in overrides.items():
            *parents, last = dotted.split("__")
            node = config
            for part in parents:
                node = node.setdefault(part, {})
            node[last] = value
        return config

    def write(self, config: dict, name: str = "cfg_arena.yaml") -> Path:
        path = self.root / name
        path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        return path

    def run(self, *args: str, config: Path | None = None):
        config = config or self.root / "cfg_arena.yaml"
        return self.pytester.runpytest("--arena-config", str(config), *args)

    def read_jsonl(self, relative: str) -> list[dict]:
        path = self.root / relative
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def fixed_answers_config(project, questions: int, models: dict[str, int], **judge_args) -> dict:
    """An arena whose candidates answer from files (enable: false): deterministic, and no model loads.
    ``models`` maps a name to the word count of its answers, so prefer_longer gives a fixed order."""
    config = project.config(questions=questions, models=("tiny-a",))
    config["answers_gen"] = {}
    for name, words in models.items():
        path = project.root / "answers" / f"answer_{name}.jsonl"
        path.parent.mkdir(exist_ok=True)
        with open(path, "w") as handle:
            for i in range(1, questions + 1):
                handle.write(json.dumps({"question_id": i, "model_id": name,
                                         "answer": " ".join([f"w{i}"] * words)}) + "\n")
        config["answers_gen"][name] = {"enable": False, "output_file": str(path)}
    config["reviews_gen"]["reviewer"]["args"].update(judge_args)
    return config


def body(output: str) -> str:
    """An inner run's output without pytest's short test summary, which repeats each failure's message (in
    full on CI): what the arena itself printed, to count lines in."""
    return re.split(r"^=+ short test summary info =+$", output, maxsplit=1, flags=re.M)[0]
