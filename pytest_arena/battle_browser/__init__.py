"""The battle browser: one self-contained HTML page beside the rating CSV (``<report stem>.html``).

It shows the rating table (with its intervals and notes), the plot, the gates, the flips when a gate
failed, and every battle: the question, both answers side by side, the reference answer when the
judge saw one, the judge's reply or replies, the verdict, the template, cached or not, and the error
of a failed battle; with filters and a URL fragment per battle (``#q007-A--vs--B``, its item ID).

``collect`` gathers the data (each text once, scrubbed of secrets), ``from_run`` reads it from a
finished run, ``page`` writes the HTML (``page.html``, ``page.css``, ``page.js`` inline).
"""

from __future__ import annotations

from pathlib import Path


def write_page(outputs, report: Path, table, *, plot: Path | None = None, partial: str | None = None) -> Path:
    """Write the battle browser of a run (its ``run_outputs.RunOutputs``) beside ``report``; return its path."""
    from ..file_names import page_file
    from ..record_files import write_atomic
    from .from_run import run_data
    from .page import render

    path = page_file(report)
    write_atomic(path, render(run_data(outputs, table, plot=plot, partial=partial)))
    return path
