"""The rating table in the reports of other pytest plugins: pytest-html's summary.

(allure-pytest needs no hook: it shows each item's parameter by its ``repr``, which for a battle,
a scoring and a gate is its item ID; see ``matches.Battle.__repr__``.)
"""

from __future__ import annotations

import html

import pytest


class HtmlSummary:
    """Adds the arena's rating table to pytest-html's summary; registered only when pytest-html writes one."""

    def __init__(self, session):
        self._arena = session

    def pytest_html_results_summary(self, prefix: list, summary: list, postfix: list, session) -> None:
        if not self._arena.prepared:  # nothing ran (no arena item selected)
            return
        table = self._arena.ratings()
        if table is None:
            prefix.append("<p>arena: no judged battles, no ratings</p>")
            return
        from .rating_table import perfect_record_note, table_rows

        prefix.append(rating_table_html(*table_rows(table, self._arena.previous), perfect_record_note(table)))


def rating_table_html(header: list[str], rows: list[list[str]], note: str | None) -> str:
    def row(cells, tag):
        return "<tr>" + "".join(f"<{tag}>{html.escape(cell)}</{tag}>" for cell in cells) + "</tr>"

    body = "".join(row(cells, "td") for cells in rows)
    caption = f"<p>{html.escape(note)}</p>" if note else ""
    return (f'<h2>arena</h2><table id="arena-ratings"><thead>{row(header, "th")}</thead>'
            f"<tbody>{body}</tbody></table>{caption}")


def register(config: pytest.Config, session) -> None:
    if config.getoption("htmlpath", None) and config.pluginmanager.hasplugin("html") \
            and not hasattr(config, "workerinput"):
        config.pluginmanager.register(HtmlSummary(session), "arena-html")
