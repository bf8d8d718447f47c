"""The battle browser at 20,000 battles: how big the page is, how long it takes to build, and how long a
headless Chromium takes to open it, filter it and open one battle.

The arena is synthetic but goes through the product's own code: real ``Question``, ``Battle``,
``Judgment`` and ``CallResult`` objects are gathered by ``battle_browser.collect.PageData``, the rating
table by ``rating_table.battle_table`` over the same verdicts, and the page written by ``battle_browser.page``.
Texts are seeded random words: answers of 200-2,500 characters (mean ~1,350), judge replies of
300-900 characters, each battle judged in both orders (swap_position), as a GPT-4-judged MT-bench-like
run would give.

    python bench/battle_browser.py                      # 20,000 battles (2,000 questions x 5 models)
    python bench/battle_browser.py --questions 200      # 2,000 battles
    python bench/battle_browser.py --keep page.html     # keep the page to open by hand

Chromium: Debian's ``/usr/bin/chromium`` driven by Playwright for Python (``pip install playwright``;
no ``playwright install``). Without them the script prints the page's size and build time only.
"""

from __future__ import annotations

import argparse
import itertools
import random
import re
import tempfile
import time
from pathlib import Path

import _common  # puts the repository on sys.path; machine()

from pytest_arena.config import RatingSpec
from pytest_arena.battle_browser.collect import PageData
from pytest_arena.battle_browser.from_run import table_data
from pytest_arena.battle_browser.page import render
from pytest_arena.judging.parsers import ParsedVerdict
from pytest_arena.judging.judgment import Call, CallResult, Judgment
from pytest_arena.judging.templates import PromptTemplate
from pytest_arena.matches import plan_pairwise
from pytest_arena.questions import Question
from pytest_arena.rating_table import battle_table, battles_frame

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
PROSE = ("the model answer should explain each step clearly with a short example and a careful check of "
         "edge cases before it concludes because readers want both the result and the reasoning")
WORDS = PROSE.split()
TEMPLATE = PromptTemplate("pair-v1", "pairwise", "You are a judge.", "{question} {answer_a} {answer_b}", "[[A]]",
                          ("general",))


def text(rng: random.Random, low: int, high: int) -> str:
    size, words = rng.randint(low, high), []
    while sum(len(w) + 1 for w in words) < size:
        words.append(rng.choice(WORDS))
        if rng.random() < 0.08:
            words[-1] += ".\n"
    return " ".join(words)


def synthetic_arena(questions: int, models: int, seed: int):
    """Questions, the battles of every pair of models on each, their answers and judgments."""
    rng = random.Random(seed)
    names = [f"model-{chr(ord('a') + i)}" for i in range(models)]
    qs = [Question(i, (f"Question {i}: " + text(rng, 80, 400),), category=["writing", "math", "coding"][i % 3])
          for i in range(1, questions + 1)]
    answers = {(name, q.question_id): (text(rng, 200, 2500),) for name in names for q in qs}
    strength = {name: i for i, name in enumerate(names)}
    judgments = []
    for battle in plan_pairwise(qs, names):
        results = []
        for swapped in (False, True):
            first, second = (battle.model_b, battle.model_a) if swapped else (battle.model_a, battle.model_b)
            favoured = "A" if strength[first] + rng.gauss(0, 2) > strength[second] else "B"
            verdict = ParsedVerdict(winner=rng.choice([favoured, favoured, favoured, "tie"]))
            call = Call(TEMPLATE, "", f"key-{battle.id}-{swapped}", swapped)
            reply = text(rng, 300, 900) + f" [[{'C' if verdict.winner == 'tie' else verdict.winner}]]"
            results.append(CallResult(call, reply, verdict, cached=rng.random() < 0.5))
        winners = [r.winner for r in results]
        combined = winners[0] if winners[0] == winners[1] else "tie"
        judgments.append(Judgment(battle, tuple(results), winner=combined, games=((combined, 1.0),)))
    return names, answers, judgments


def build(questions: int, models: int, seed: int, rounds: int) -> tuple[str, int, float]:
    names, answers, judgments = synthetic_arena(questions, models, seed)
    started = time.perf_counter()
    page = PageData(names)
    for judgment in judgments:
        match = judgment.match
        label = match.id.split("-")[0]
        page.add(match, label, [answers[(m, match.question.question_id)] for m in match.models], judgment)
    table = battle_table(battles_frame(judgments), names, RatingSpec(bootstrap_rounds=rounds, seed=seed))
    data = dict(page.to_dict(), title="bench: battle browser", mode="pairwise", run={"kind": "whole", "note": ""},
                ratings=table_data(table), sets=[], plot=None, gates=[], flips=[])
    html = render(data)
    return html, len(judgments), time.perf_counter() - started


def measure_in_chromium(path: Path, last_id: str) -> dict | None:
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        print("playwright is not installed: no browser figures (pip install playwright)")
        return None
    if not Path(CHROMIUM).is_file():
        print(f"{CHROMIUM} is missing: no browser figures (apt-get install chromium)")
        return None
    figures = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for attempt in range(3):  # the first load also warms the browser's caches; keep the best
            page = browser.new_page()
            started = time.perf_counter()
            page.goto(path.resolve().as_uri())
            page.wait_for_selector("body[data-ready='1']", timeout=120_000)
            opened = time.perf_counter() - started
            figures["open_s"] = min(figures.get("open_s", opened), opened)
            if attempt < 2:
                page.close()
        figures["heap_mib"] = page.evaluate("performance.memory.usedJSHeapSize") / 2**20
        started = time.perf_counter()
        page.fill("#f-search", "zebra-not-there")
        expect(page.locator("#count")).to_have_text(re.compile("^0 of"), timeout=120_000)
        figures["first_search_s"] = time.perf_counter() - started  # (less the 200 ms the input waits)
        page.fill("#f-search", "")
        started = time.perf_counter()
        page.select_option("#f-model", label="model-a")
        expect(page.locator("#count")).not_to_have_text(re.compile("^0 of"), timeout=120_000)
        figures["model_filter_s"] = time.perf_counter() - started
        started = time.perf_counter()
        page.evaluate(f"location.hash = '#{last_id}'")
        page.wait_for_selector(f"details[data-id='{last_id}'][open] .body")
        figures["fragment_open_s"] = time.perf_counter() - started
        browser.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=2000)
    parser.add_argument("--models", type=int, default=5)
    parser.add_argument("--seed", type=int, default=20261129)
    parser.add_argument("--rounds", type=int, default=100, help="bootstrap rounds of the rating table")
    parser.add_argument("--keep", type=Path, help="write the page here and keep it")
    args = parser.parse_args()
    print(_common.machine())
    html, battles, seconds = build(args.questions, args.models, args.seed, args.rounds)
    folder = tempfile.TemporaryDirectory()
    path = args.keep or Path(folder.name) / "rating.html"
    path.write_text(html, encoding="utf-8")
    size = path.stat().st_size
    print(f"{battles} battles ({args.questions} questions x {len(list(itertools.combinations(range(args.models), 2)))} "
          f"pairs, both orders judged): page {size / 2**20:.1f} MiB, built in {seconds:.1f} s")
    last = f"q{args.questions:0{max(3, len(str(args.questions)))}d}-model-a--vs--model-b"
    figures = measure_in_chromium(path, last)
    if figures:
        print(f"chromium: opened and first page rendered in {figures['open_s']:.2f} s (best of 3); "
              f"JS heap {figures['heap_mib']:.0f} MiB")
        print(f"chromium: first text search over every battle {figures['first_search_s']:.2f} s "
              f"(200 ms of it the input's debounce); model filter {figures['model_filter_s']:.2f} s; "
              f"a battle opened from its fragment {figures['fragment_open_s']:.2f} s")
    folder.cleanup()


if __name__ == "__main__":
    main()
