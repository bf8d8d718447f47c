"""When two ``base_url``s name the same server: the one rule every comparison of URLs uses.

Scheme and host are case-insensitive (RFC 3986, 6.2.2.1), a port that is the scheme's default is the
same as none (80 for http, 443 for https; 6.2.3), and ``/v1`` and ``/v1/`` reach the same endpoints
(the openai client adds the slash where it is missing before it joins ``chat/completions`` on), as do an
empty path and ``/``. The path keeps its case: servers may tell ``/V1`` from ``/v1``. A leaf module (the
config reads it, and the replica set), importing nothing of ours.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}


def same_server_form(url: str) -> str:
    """``url`` as it names a server: two URLs name the same one exactly when their forms are equal.
    A port that is not a number from 0 to 65535 is a ValueError (no server could be reached there)."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = parts.hostname or ""  # (lower case already; an IPv6 address without its brackets)
    if ":" in host:
        host = f"[{host}]"
    port = parts.port  # raises ValueError for "host:abc" or "host:99999"
    if port is not None and port != DEFAULT_PORTS.get(scheme):
        host = f"{host}:{port}"
    path = parts.path[:-1] if parts.path.endswith("/") else parts.path  # ("/v1//" is another path: one slash goes)
    query = f"?{parts.query}" if parts.query else ""  # (the fragment never reaches the server)
    return f"{scheme}://{host}{path}{query}"


def same_servers(urls: Sequence[str | None]) -> tuple[int, int] | None:
    """The positions (0-based) of the first two URLs that name the same server, or None. ``None`` entries
    (the client's default URL) are the same as each other only."""
    seen: dict[str | None, int] = {}
    for index, url in enumerate(urls):
        form = None if url is None else same_server_form(url)
        if form in seen:
            return seen[form], index
        seen[form] = index
    return None
