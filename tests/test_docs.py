"""The README and the docs/ pages: every relative link points at a file that exists, and at one of its
headings when it names an anchor, so moving a section between pages cannot leave a dead link behind; and
every docs page can be reached from the README and from the docs index."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

FENCED_BLOCK = re.compile(r"^(```|~~~)[^\n]*\n.*?^\1[^\n]*$", re.S | re.M)
CODE_SPAN = re.compile(r"`[^`]*`")  # may wrap a line, as prose code spans do
INLINE_LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?([^\s>]+)", re.M)
HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.*?)[ \t#]*$", re.M)
URL_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def prose(markdown: str) -> str:
    """The text outside fenced blocks (a `# comment` in a shell block is no heading)."""
    return FENCED_BLOCK.sub("", markdown)


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: its text lower-cased, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    """Every heading's anchor; a repeated one gets -1, -2, ... as GitHub numbers them."""
    seen: dict[str, int] = {}
    found = set()
    for heading in HEADING.findall(prose(markdown)):
        anchor = github_anchor(heading)
        if anchor in seen:
            seen[anchor] += 1
            anchor = f"{anchor}-{seen[anchor]}"
        else:
            seen[anchor] = 0
        found.add(anchor)
    return found


def relative_links(markdown: str) -> list[str]:
    text = CODE_SPAN.sub("", prose(markdown))
    links = INLINE_LINK.findall(text) + REFERENCE_LINK.findall(text)
    return [link for link in links if not URL_SCHEME.match(link)]


def broken_links(page: Path, root: Path) -> list[str]:
    """One line per relative link of the page whose file, or anchor in that file, does not exist."""
    problems = []
    markdown = page.read_text(encoding="utf-8")
    for link in relative_links(markdown):
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        where = f"{page.relative_to(root)}: {link}"
        if not target.exists():
            problems.append(f"{where}: no such file")
        elif anchor and (target.suffix != ".md" or anchor not in anchors(target.read_text(encoding="utf-8"))):
            problems.append(f"{where}: no heading with anchor #{anchor}")
    return problems


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def linked_pages(page: Path) -> set[Path]:
    return {(page.parent / link.partition("#")[0]).resolve()
            for link in relative_links(page.read_text(encoding="utf-8")) if link.partition("#")[0]}


def test_every_relative_link_of_the_readme_and_the_docs_resolves():
    assert len(pages()) > 2  # the README and the docs pages it links
    assert [problem for page in pages() for problem in broken_links(page, ROOT)] == []


def test_every_docs_page_is_linked_from_the_readme_and_from_the_docs_index():
    index = DOCS / "README.md"
    docs_pages = {page.resolve() for page in DOCS.glob("*.md")} - {index.resolve()}
    assert docs_pages
    assert docs_pages | {index.resolve()} <= linked_pages(ROOT / "README.md")
    assert docs_pages <= linked_pages(index)


def test_the_link_check_finds_a_missing_file_and_a_missing_anchor(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "b.md").write_text("# B\n\n## Coming from FastChat / arena-hard / AlpacaEval\n\n"
                                            "## Notes\n\n## Notes\n\n```sh\n# not a heading\n```\n")
    page = tmp_path / "a.md"
    page.write_text(
        "See [b](docs/b.md#coming-from-fastchat--arena-hard--alpacaeval), [the second notes](docs/b.md#notes-1),\n"
        "[gone](docs/missing.md), [no such part](docs/b.md#not-a-heading), [here](#a), [out](https://x.org/y)\n"
        "and [a code link wrapped\nover a line](docs/b.md).\n\n# A\n\n"
        "```\n[inside a block](nowhere.md)\n```\n\n`[inside a span](nowhere.md)`\n\n[ref]: docs/gone-too.md\n")
    assert broken_links(page, tmp_path) == [
        "a.md: docs/missing.md: no such file",
        "a.md: docs/b.md#not-a-heading: no heading with anchor #not-a-heading",
        "a.md: docs/gone-too.md: no such file",
    ]


def test_anchors_are_the_ones_github_makes():
    # GitHub's own anchors for headings of this project's pages (as its rendered pages link them).
    assert github_anchor("Coming from FastChat / arena-hard / AlpacaEval") == "coming-from-fastchat--arena-hard--alpacaeval"
    assert github_anchor("Several servers of one model (multi-host)") == "several-servers-of-one-model-multi-host"
    assert github_anchor("Reliability: what is guaranteed") == "reliability-what-is-guaranteed"
    assert github_anchor("Where EvalScope was wrong, and we are not") == "where-evalscope-was-wrong-and-we-are-not"
