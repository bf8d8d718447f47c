"""pytest-arena: an LLM arena (candidates, a judge, ratings, gates) run as a pytest suite.

Importing this package must stay cheap: pytest imports the plugin on every run, so nothing heavy
(torch, transformers, openai, pandas, numpy) is imported here or in ``plugin``.
"""

__version__ = "0.1.0"
