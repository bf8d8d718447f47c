"""Root conftest of this repository's own test runs.

Kept free of fixtures and ``pytest_plugins``: when the arena suite (``arena_tests/``) is collected from
this checkout, pytest loads this file too, and it must not change an arena run. The repo's fixtures
live in ``tests/conftest.py``; pytester is enabled with ``-p pytester`` in pyproject.toml.
"""

# bench/ holds scripts that print figures; they are never collected as tests.
collect_ignore = ["bench"]
