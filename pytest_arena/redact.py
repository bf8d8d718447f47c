"""Keep secrets out of every text the arena writes: API keys and what a URL may carry (``user:password``,
a query string).

Secrets reach our text in one way only: a server (or a proxy in front of it) that echoes the request,
its ``Authorization`` header included, into an error body or a reply, which then becomes an error
message, a review or an answer. So ``pytest_arena.openai_chat`` scrubs at the point where a server's
text becomes ours (``ChatCallError`` and the reply's content), with the secrets every client it built
was given (``remember_key``, ``remember_url``), plus ``OPENAI_API_KEY``'s value, read at each scrub.
Nothing downstream (terminal, JUnit XML, review and answer records, step summary) sees the raw text.

``base_url`` values with ``user:password@`` or a query are refused by config validation
(``url_secret_problem``); scrubbing them as well costs nothing and covers ``OPENAI_BASE_URL``.
"""

from __future__ import annotations

import base64
import json
import os
import re
import threading
from urllib.parse import quote, urlsplit, urlunsplit

MASK = "***"
# The key the openai client reads by default: scrubbed whether or not a client of ours was given it.
DEFAULT_KEY_ENV = "OPENAI_API_KEY"

# Replaced whole under the lock, read without it: scrub runs on every reply, from many threads.
_secrets: frozenset[str] = frozenset()
_lock = threading.Lock()
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def remember_key(value: str | None) -> None:
    """Scrub ``value`` (an API key) from every later error text."""
    global _secrets
    if value:
        with _lock:
            _secrets = _secrets | _encodings(value)


def remember_url(url: str | None) -> None:
    """Scrub the ``user:password`` and the query (and fragment) of ``url`` from every later error text."""
    if not url:
        return
    parts = urlsplit(url.strip())
    values = [parts.query, parts.fragment]
    userinfo = _userinfo(url.strip())
    if userinfo:
        # The password alone, the whole userinfo and the Basic credentials an HTTP client builds from it.
        values += [userinfo, userinfo.partition(":")[2], base64.b64encode(userinfo.encode()).decode()]
    for value in values:
        remember_key(value)


def scrub(text: str) -> str:
    """``text`` with every remembered secret (and ``$OPENAI_API_KEY``) replaced by ``***``."""
    secrets = _secrets
    default_key = os.environ.get(DEFAULT_KEY_ENV)
    if default_key:
        secrets = secrets | _encodings(default_key)
    # Longest first: a secret that contains another is masked whole, not left in pieces.
    for secret in sorted(secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def url_secret_problem(url: str) -> str | None:
    """Why ``url`` cannot be a ``base_url`` (it carries a secret), or None. The answer never quotes the URL."""
    text = url.strip()
    if _userinfo(text) is not None:
        return ("holds user:password@ (or user@); the openai client would send it as Basic auth instead of the "
                "API key. Remove it from the URL and put the key in the environment variable named by api_key_env")
    if "?" in text or "#" in text:
        return ("holds a query string (?...) or a fragment (#...); the client appends /chat/completions after it, "
                "so the request would go to a wrong path. Remove it; put a key in the environment variable named "
                "by api_key_env")
    return None


def public_url(url: str) -> str:
    """The URL without user:password and query: what may be written to answer records and logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


def _userinfo(url: str) -> str | None:
    """The part before ``@`` in the URL's authority (also for a URL written without its scheme)."""
    rest = _SCHEME.sub("", url, count=1)
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    return authority.rpartition("@")[0] if "@" in authority else None


def _encodings(secret: str) -> set[str]:
    """The forms a secret takes in an echo: as is, JSON-escaped (also with ``\\/``), percent-encoded."""
    escaped = json.dumps(secret)[1:-1]
    return {secret, escaped, escaped.replace("/", "\\/"), quote(secret, safe="")} - {""}
