"""``timeout`` as the deadline of a whole HTTP attempt, not the longest pause between two bytes.

The openai client hands ``timeout`` to its HTTP library (httpx, or httpx2 from openai 3 on), whose
timeouts bound each connect, each write and each read of the socket: a server (or a proxy) that drips
one byte a second never trips a 5 s timeout, and the call never ends. Neither library has a total
timeout (encode/httpx#1450, pydantic/httpx2#557), so this module adds one underneath them:

- a ``request`` event hook (public httpx API) starts the attempt's clock in the calling thread, with the
  request's own timeout (the openai client sets it on every request, retries included);
- the connection pool's network backend is wrapped so that every connect, read and write of that
  thread waits at most what is left until the deadline, and past it raises the library's own timeout
  error. The response (headers and body) is read in the same thread, so one wrapper covers both;
  the library closes the connection on that error, as on any timeout, and the openai client retries
  it like any other timeout.

The backend sits in the pool's ``_network_backend`` (the one private attribute used here: httpx has no
parameter for it). Should a future release rename it, calls keep the per-read timeouts and
tests/test_secrets.py::test_a_dripping_judge_is_cut_at_the_deadline fails.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

_attempt = threading.local()


def deadline_http_client(**kwargs: Any) -> Any:
    """``openai.DefaultHttpxClient(**kwargs)`` (the openai client's own defaults: limits, redirects,
    environment proxies) whose every attempt ends by its timeout."""
    import openai

    client = openai.DefaultHttpxClient(event_hooks={"request": [_start_attempt]}, **kwargs)
    transports = [getattr(client, "_transport", None), *getattr(client, "_mounts", {}).values()]
    for transport in transports:  # the default one and those of proxies from the environment
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if backend is not None and not isinstance(backend, _DeadlineBackend):
            pool._network_backend = _DeadlineBackend(backend)
    return client


def _start_attempt(request: Any) -> None:
    """Called by httpx before each request is sent (each retry and redirect is a new request)."""
    timeouts = [t for t in (request.extensions.get("timeout") or {}).values() if t is not None]
    _attempt.deadline = time.monotonic() + max(timeouts) if timeouts else None


class _DeadlineBackend:
    """A network backend (httpcore's or httpcore2's) whose streams stop at the attempt's deadline."""

    def __init__(self, backend: Any):
        self._backend = backend
        # The library the backend comes from raises (and the HTTP client maps) its own timeout errors.
        self._errors = sys.modules[type(backend).__module__.split(".")[0]]

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Any = None) -> Any:
        timeout = _left(timeout, self._errors.ConnectTimeout)
        stream = self._backend.connect_tcp(host, port, timeout=timeout, local_address=local_address,
                                           socket_options=socket_options)
        return _DeadlineStream(stream, self._errors)

    def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options: Any = None) -> Any:
        timeout = _left(timeout, self._errors.ConnectTimeout)
        stream = self._backend.connect_unix_socket(path, timeout=timeout, socket_options=socket_options)
        return _DeadlineStream(stream, self._errors)

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


class _DeadlineStream:
    def __init__(self, stream: Any, errors: Any):
        self._stream = stream
        self._errors = errors

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _left(timeout, self._errors.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _left(timeout, self._errors.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None) -> Any:
        timeout = _left(timeout, self._errors.ConnectTimeout)
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, timeout), self._errors)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


def _left(timeout: float | None, error: type[Exception]) -> float | None:
    """The wait allowed for one socket operation: ``timeout``, cut to what is left of the attempt."""
    deadline = getattr(_attempt, "deadline", None)
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise error("the call's deadline (timeout) passed")
    return left if timeout is None else min(timeout, left)
