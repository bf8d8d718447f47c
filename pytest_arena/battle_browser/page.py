"""The battle browser as one HTML file: the page's CSS and script inline, its data as JSON.

Nothing in the page is loaded from anywhere: its Content-Security-Policy allows no fetch at all
(``default-src 'none'``), images only as ``data:`` URIs (the plot), and only the page's own style and
script, named by their SHA-256: a ``<script>`` or an ``onerror=`` that reached the markup would not run.
None can reach it: the data sits in a ``<script type="application/json">`` with ``<``, ``>``, ``&`` and
the line separators escaped (no text can close the element), and the script shows every text with
``textContent``, never as markup.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from importlib import resources
from string import Template

# JSON text as it may sit inside a <script> element: none of these can end it or start markup, and
# U+2028/2029 are escaped for parsers that still read them as line ends.
_JSON_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
                               "\u2028": "\\u2028", "\u2029": "\\u2029"})


def embed_json(data) -> str:
    """``data`` as JSON that is safe inside a ``<script type="application/json">`` element."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False).translate(_JSON_ESCAPES)


def render(data: dict) -> str:
    """The whole page for ``data`` (``collect.PageData`` plus the run's tables)."""
    css, script, skeleton = (_asset(name) for name in ("page.css", "page.js", "page.html"))
    policy = ("default-src 'none'; img-src data:; "
              f"style-src '{_sha256(css)}'; script-src '{_sha256(script)}'; "
              "base-uri 'none'; form-action 'none'")
    return Template(skeleton).substitute(
        policy=html.escape(policy), title=html.escape(data.get("title", "pytest-arena")),
        css=css, script=script, data=embed_json(data),
    )


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")
