"""The battle browser (``<report stem>.html``): written by real runs (tiny models or answer files, the
loopback judge over HTTP), then opened in a real headless Chromium (Debian's ``chromium``, driven by
Playwright): it renders the battles, each filter works, a URL fragment opens a battle, an answer's
markup never runs, and no request leaves the page.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas  # noqa: F401 - loaded once here: pytester's in-process runs would each load their own
import pytest
from playwright.sync_api import expect
from support.arena_project import FAKE_KEY, OWN_MARKERS, fixed_answers_config
from support.judge_server import prefer_longer, prompt_text

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
# Answers of 9, 5 and 2 words: prefer_longer gives every pair a fixed winner.
WORDS = {"long": 9, "mid": 5, "short": 2}
PAGE = "reports/elo_rating.html"
SUBSET_PAGE = "reports/elo_rating.subset.html"
# What an answer may hold that must stay text: each would set window.__pwned or make a request.
INJECTED = ('<script>window.__pwned = "script"</script>'
            '</script><script>window.__pwned = "closed"</script>'
            '<img src="x" onerror="window.__pwned = \'img\'">'
            '<img src="http://127.0.0.1:9/leak.png"> \u2028 & &amp; <!-- -->')


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the module (Debian's package; .ci/run installs it when missing)."""
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium), as .ci/run does")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class OpenPage:
    """A page opened from its file, with every request it tried to make (none may leave the page)."""

    def __init__(self, browser, path: Path, fragment: str = ""):
        self.url = path.resolve().as_uri()
        self.requests: list[str] = []
        self.context = browser.new_context()
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.goto(self.url + fragment)
        self.page.wait_for_selector("body[data-ready='1']")

    def _route(self, route):
        self.requests.append(route.request.url)
        if route.request.url == self.url:
            route.continue_()
        else:
            route.abort()

    def count(self) -> str:
        return self.page.text_content("#count")

    def ids(self) -> list[str]:
        return self.page.eval_on_selector_all("details.battle", "rows => rows.map(r => r.dataset.id)")

    def choose(self, select: str, label: str) -> None:
        self.page.select_option(select, label=label)

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def open_page(browser):
    opened = []

    def open_(path: Path, fragment: str = "") -> OpenPage:
        opened.append(OpenPage(browser, path, fragment))
        return opened[-1]

    yield open_
    for page in opened:
        page.close()


def explaining(good):
    """A judge that gives its reasons before the verdict (the page shows the whole reply)."""
    def reply(body):
        return f"Both answers were read.\nReasoning: the longer one says more.\n{good(body)}"

    return reply


def write_arena(project, questions=3, models=("long", "mid", "short"), **judge_args) -> Path:
    config = fixed_answers_config(project, questions, {m: WORDS[m] for m in models}, **judge_args)
    return project.write(config)


def rewrite_answers(project, model: str, answers: dict[int, str]) -> None:
    path = project.root / "answers" / f"answer_{model}.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    for record in records:
        record["answer"] = answers.get(record["question_id"], record["answer"])
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def run(project, *args):
    return project.run("-p", "no:randomly", *args)


# -- a real run writes the page ---------------------------------------------------------------------


def test_a_run_of_tiny_models_writes_a_page_with_every_battle_its_answers_and_both_judge_replies(arena_project,
                                                                                                open_page):
    arena_project.server.reply = explaining(prefer_longer(**OWN_MARKERS))
    config = arena_project.config(questions=2, models=("tiny-a", "tiny-b"))
    config["reviews_gen"]["reviewer"]["args"]["position_bias_mitigation"] = "swap_position"
    arena_project.write(config)
    result = run(arena_project)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["battle browser: *reports/elo_rating.html"])
    answers = {r["question_id"]: r["answer"] for r in arena_project.read_jsonl("answers/answer_tiny-a.jsonl")}

    opened = open_page(arena_project.root / PAGE)
    assert opened.count().startswith("2 of 2 battles")
    assert opened.ids() == ["q001-tiny-a--vs--tiny-b", "q002-tiny-a--vs--tiny-b"]
    assert "tiny-a" in opened.page.text_content("#rating-tables")
    assert opened.page.get_attribute("#plot img", "src").startswith("data:image/png;base64,")
    opened.page.click("details[data-id='q002-tiny-a--vs--tiny-b'] > summary")
    body = opened.page.locator("details[data-id='q002-tiny-a--vs--tiny-b'] .body")
    body.locator(".reply").nth(1).wait_for()  # the body is drawn on the toggle event, after the click returns
    sides = body.locator(".side .text").all_text_contents()
    assert sides[0] == answers[2]
    assert "Tell me about" in body.locator(".text").first.text_content()
    replies = body.locator(".reply").all_text_contents()
    assert len(replies) == 2 and all("Reasoning: the longer one says more." in r for r in replies)
    assert "shown as A: tiny-a" in replies[0] and "shown as A: tiny-b" in replies[1]
    assert "asked in this run" in replies[0]
    assert opened.page.evaluate("location.hash") == "#q002-tiny-a--vs--tiny-b"
    assert opened.requests == [opened.url] and opened.errors == []

    rerun = run(arena_project)  # from the caches: the page says so
    rerun.assert_outcomes(passed=2)
    assert "cached" in open_page(arena_project.root / PAGE).page.text_content("details.battle > summary")


# -- what the page lets one find ----------------------------------------------------------------------


def test_each_filter_narrows_the_battles(arena_project, open_page):
    good = prefer_longer(**OWN_MARKERS)
    # Question 3's judge always picks the answer shown first: its swapped battles disagree with themselves.
    arena_project.server.reply = lambda body: "[[A]]" if "w3 " in prompt_text(body) else good(body)
    write_arena(arena_project, questions=4, position_bias_mitigation="swap_position")
    rewrite_answers(arena_project, "short", {4: "a needle in the haystack"})
    run(arena_project).assert_outcomes(passed=12)
    opened = open_page(arena_project.root / PAGE)
    assert opened.count().startswith("12 of 12 battles")

    opened.choose("#f-model", "short")
    assert opened.count().startswith("8 of 12") and all("short" in i for i in opened.ids())
    opened.choose("#f-verdict", "the chosen model lost")
    # (question 3 is all ties; short's 24 characters on question 4 beat mid's 14, not long's 26)
    assert sorted(opened.ids()) == ["q001-long--vs--short", "q001-mid--vs--short", "q002-long--vs--short",
                                    "q002-mid--vs--short", "q004-long--vs--short"]
    opened.page.click("#f-reset")
    opened.choose("#f-pair", "long vs mid")
    assert opened.ids() == [f"q00{i}-long--vs--mid" for i in (1, 2, 3, 4)]
    opened.choose("#f-category", "knowledge")  # write_questions: question 1 and 4 are "knowledge"
    assert opened.ids() == ["q001-long--vs--mid", "q004-long--vs--mid"]
    opened.page.click("#f-reset")
    opened.choose("#f-verdict", "tie")
    assert sorted(opened.ids()) == ["q003-long--vs--mid", "q003-long--vs--short", "q003-mid--vs--short"]
    opened.page.click("#f-reset")
    opened.page.check("#f-inconsistent")
    assert sorted(opened.ids()) == ["q003-long--vs--mid", "q003-long--vs--short", "q003-mid--vs--short"]
    opened.page.click("#f-reset")
    opened.page.fill("#f-search", "NEEDLE in the")
    expect(opened.page.locator("#count")).to_have_text(re.compile("^2 of"))
    assert opened.ids() == ["q004-long--vs--short", "q004-mid--vs--short"]


def test_a_fragment_opens_its_battle_whatever_page_it_is_on(arena_project, open_page):
    arena_project.server.reply = prefer_longer(**OWN_MARKERS)
    write_arena(arena_project, questions=20)
    run(arena_project).assert_outcomes(passed=60)
    opened = open_page(arena_project.root / PAGE, "#q019-long--vs--short")
    assert opened.page.text_content(".pager .page") == "page 2 of 2"
    battle = opened.page.locator("details[data-id='q019-long--vs--short']")
    assert battle.get_attribute("open") is not None
    assert battle.locator(".side .text").all_text_contents() == [" ".join(["w19"] * 9), " ".join(["w19"] * 2)]
    assert "verdict: long won" in battle.locator(".body").text_content()
    opened.page.evaluate("location.hash = '#q002-mid--vs--short'")
    opened.page.wait_for_selector("details[data-id='q002-mid--vs--short'][open]")
    assert opened.page.text_content(".pager .page") == "page 1 of 2"


# -- nothing in an answer runs, nothing leaves the page, no secret is written --------------------------


def test_markup_in_an_answer_is_shown_as_text_and_never_runs_and_no_request_leaves_the_page(
        arena_project, open_page, monkeypatch):
    arena_project.server.reply = prefer_longer(**OWN_MARKERS)
    write_arena(arena_project, questions=2, models=("long", "mid"))
    long_answer = "\n".join(f"line {n} of a long answer" for n in range(200))
    rewrite_answers(arena_project, "long", {1: INJECTED + " " + FAKE_KEY, 2: long_answer})
    run(arena_project).assert_outcomes(passed=2)
    html = (arena_project.root / PAGE).read_text(encoding="utf-8")
    assert FAKE_KEY not in html  # scrubbed as the review records are ($OPENAI_API_KEY's value)
    assert "<script>window.__pwned" not in html and "<img" not in html

    opened = open_page(arena_project.root / PAGE, "#q001-long--vs--mid")
    shown = opened.page.locator("details[data-id='q001-long--vs--mid'] .side .text").first.text_content()
    assert shown == INJECTED + " ***"
    assert opened.page.evaluate("window.__pwned") is None
    assert opened.page.locator("details.battle img").count() == 0
    assert opened.requests == [opened.url] and opened.errors == []

    opened.page.click("details[data-id='q002-long--vs--mid'] > summary")
    folded = opened.page.locator("details[data-id='q002-long--vs--mid'] .side").first
    assert len(folded.locator(".text").text_content()) < len(long_answer)
    folded.locator("button.fold").click()
    assert folded.locator(".text").text_content() == long_answer


# -- which runs write which page -----------------------------------------------------------------------


def test_a_subset_run_writes_its_own_page_and_a_partial_run_leaves_the_whole_runs_page(arena_project, open_page):
    root = arena_project.root
    arena_project.server.reply = prefer_longer(**OWN_MARKERS)
    write_arena(arena_project)
    run(arena_project).assert_outcomes(passed=9)
    whole = (root / PAGE).read_bytes()

    subset = run(arena_project, "-k", "long and mid")
    subset.assert_outcomes(passed=3, deselected=6)
    subset.stdout.fnmatch_lines(["battle browser: *reports/elo_rating.subset.html"])
    assert (root / PAGE).read_bytes() == whole
    opened = open_page(root / SUBSET_PAGE)
    assert opened.ids() == [f"q00{i}-long--vs--mid" for i in (1, 2, 3)]
    assert "subset run" in opened.page.text_content("#run-note")

    shutil.rmtree(root / "reviews")  # judged afresh, by a judge that cannot answer question 1: -x stops
    (root / SUBSET_PAGE).unlink()
    arena_project.server.reply = lambda body: "I will not say." if "w1 " in prompt_text(body) else "[[A]]"
    stopped = run(arena_project, "-x")
    assert stopped.ret == pytest.ExitCode.TESTS_FAILED
    stopped.stdout.fnmatch_lines(["battle browser: *reports/elo_rating.subset.html"])
    assert (root / PAGE).read_bytes() == whole
    partial = open_page(root / SUBSET_PAGE)
    assert "partial run" in partial.page.text_content("#run-note")
    partial.choose("#f-verdict", "failed")
    assert partial.ids() == ["q001-long--vs--mid", "q001-long--vs--short", "q001-mid--vs--short"]
    partial.page.click("details[data-id='q001-long--vs--mid'] > summary")
    assert "unparseable verdict" in partial.page.text_content("details[data-id='q001-long--vs--mid'] .error-text")


def test_the_page_may_not_be_written_over_an_input(arena_project):
    arena_project.server.reply = prefer_longer(**OWN_MARKERS)
    config = fixed_answers_config(arena_project, 2, {"long": 9, "mid": 5})
    (arena_project.root / "reports").mkdir()
    shutil.copy(arena_project.root / "questions.jsonl", arena_project.root / "reports/elo_rating.html")
    config["question_file"] = "reports/elo_rating.html"
    arena_project.write(config)
    result = run(arena_project)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: *rating_gen.report_file: *elo_rating.html is also question_file*"])
    assert arena_project.server.request_count == 0


def page_data(path: Path) -> dict:
    """The JSON the page embeds (its escapes are JSON's own: json reads them back)."""
    html = path.read_text(encoding="utf-8")
    start = html.index('<script type="application/json" id="arena-data">') + len(
        '<script type="application/json" id="arena-data">')
    return json.loads(html[start:html.index("</script>", start)])


def test_under_xdist_the_controllers_page_holds_every_battle_with_the_judges_replies(arena_project):
    arena_project.server.reply = explaining(prefer_longer(**OWN_MARKERS))
    write_arena(arena_project, questions=2, position_bias_mitigation="swap_position")
    result = arena_project.pytester.runpytest_subprocess(
        "--arena-config", str(arena_project.root / "cfg_arena.yaml"), "-p", "no:randomly", "-n", "2")
    result.assert_outcomes(passed=6)
    data = page_data(arena_project.root / PAGE)
    assert [b["id"] for b in data["battles"]] == [
        f"q00{q}-{a}--vs--{b}" for q in (1, 2) for a, b in (("long", "mid"), ("long", "short"), ("mid", "short"))]
    for battle in data["battles"]:
        assert battle["verdict"] == "A" and battle["consistent"] is True
        question = data["questions"][battle["q"]]["id"]
        for model, turns in zip(battle["m"], battle["answers"]):
            words = WORDS[data["models"][model]]
            assert [data["strings"][t] for t in turns] == [" ".join([f"w{question}"] * words)]
        assert [r["swapped"] for r in battle["replies"]] == [False, True]
        assert all("Reasoning: the longer one says more." in data["strings"][r["text"]] for r in battle["replies"])


def test_single_mode_page_holds_each_score_and_the_reference_the_judge_saw(arena_project):
    arena_project.server.reply = lambda body: "Correct and clear.\nRating: [[7]]"
    write_arena(arena_project, questions=2, models=("long", "mid"), mode="single")
    (arena_project.root / "questions.jsonl").write_text(
        json.dumps({"question_id": 1, "text": "What is 6 x 7?", "category": "math", "reference": "42"}) + "\n"
        + json.dumps({"question_id": 2, "text": "Say hello.", "category": "generic"}) + "\n")
    run(arena_project).assert_outcomes(passed=4)
    data = page_data(arena_project.root / PAGE)
    by_id = {b["id"]: b for b in data["battles"]}
    assert sorted(by_id) == ["q001-long", "q001-mid", "q002-long", "q002-mid"]
    assert {(b["verdict"], b["score"]) for b in by_id.values()} == {("score", 7.0)}
    math, hello = by_id["q001-long"], by_id["q002-long"]
    assert math["template"] == "single-ref-v1" and math["reference"] is True
    assert [data["strings"][t] for t in data["questions"][math["q"]]["reference"]] == ["42"]
    assert hello["template"] == "single-v1" and hello["reference"] is False
    assert [r["verdict"] for r in math["replies"]] == ["score"] and math["replies"][0]["score"] == 7.0


def test_turns_judged_one_by_one_show_each_turns_replies(arena_project):
    arena_project.server.reply = lambda body: "The first answer is better.\n[[A]]"
    config = fixed_answers_config(arena_project, 1, {"long": 3, "mid": 1}, position_bias_mitigation="swap_position")
    config["reviews_gen"]["judge_turns"] = "each"
    arena_project.write(config)
    (arena_project.root / "questions.jsonl").write_text(
        json.dumps({"question_id": 1, "turns": ["Name a fruit.", "And a vegetable?"], "category": "generic"}) + "\n")
    for model, words in (("long", "apple pear plum"), ("mid", "fig")):
        (arena_project.root / f"answers/answer_{model}.jsonl").write_text(json.dumps(
            {"question_id": 1, "model_id": model, "answer_turns": [words, words.upper()]}) + "\n")
    run(arena_project).assert_outcomes(passed=1)
    (battle,) = page_data(arena_project.root / PAGE)["battles"]
    assert [(r["turn"], r["swapped"], r["verdict"]) for r in battle["replies"]] == [
        (1, False, "A"), (1, True, "B"), (2, False, "A"), (2, True, "B")]
    assert battle["consistent"] is False  # each turn's two orders disagree
    assert battle["template"] == "pair-v1, pair-v1-multi-turn"


def test_a_failed_beats_gate_shows_the_battles_behind_it(arena_project, open_page):
    arena_project.server.reply = explaining(prefer_longer(**OWN_MARKERS))
    config = fixed_answers_config(arena_project, 2, {"long": 9, "mid": 5})
    config["gates"] = [{"model": "mid", "beats": "long", "margin": 0}]
    arena_project.write(config)
    run(arena_project).assert_outcomes(passed=2, failed=1)
    opened = open_page(arena_project.root / PAGE)
    assert "failed" in opened.page.text_content("#gate-table")
    flips = opened.page.locator("#flip-tables")
    assert flips.locator("h3").text_content() == "gate beats-mid--vs--long: 2 battles"
    assert flips.locator("td a").all_text_contents() == ["q001-long--vs--mid", "q002-long--vs--mid"]
    assert "Both answers were read." in flips.text_content()  # the first line of the judge's reason
    flips.locator("td a").nth(1).click()
    opened.page.wait_for_selector("details[data-id='q002-long--vs--mid'][open]")
