"""Errors the core library raises. The pytest plugin turns them into ``pytest.UsageError``."""


class ArenaConfigError(ValueError):
    """Bad input found before any work starts: a config key, a question file, a model folder.

    The message is one line that names the file, the key (or line) and what was expected.
    """

    def __init__(self, file, where: str, problem: str):
        self.file = str(file)
        self.where = where
        self.problem = problem
        location = f"{self.file}: {where}" if where else self.file
        super().__init__(f"{location}: {problem}")


class UnsupportedSetting(ValueError):
    """A ``generation_config`` setting that a generation backend cannot honour (config.py names the key)."""

    def __init__(self, key: str, problem: str):
        self.key = key
        self.problem = problem
        super().__init__(f"generation_config.{key}: {problem}")
