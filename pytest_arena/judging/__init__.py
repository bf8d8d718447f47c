"""Judging: prompt templates, judge backends, completion parsers and the concurrent judgment runner."""
