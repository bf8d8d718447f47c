"""Reading the YAML itself: ``safe_load`` semantics, with a key given twice refused and a file that
expands through aliases ("billion laughs") or nests too deep refused before anything walks it."""

from __future__ import annotations

from collections.abc import Hashable
from pathlib import Path

from ..errors import ArenaConfigError, clipped, excerpt, kind_of
from .section import shown_key


def read_yaml(file: Path):
    """The parsed content of ``file`` (an existing file); every problem is an ``ArenaConfigError``."""
    import yaml

    try:
        data = yaml.load(file.read_text(encoding="utf-8"), Loader=unique_key_loader(yaml))
    except UnicodeDecodeError as exc:
        raise ArenaConfigError(file, "", f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ArenaConfigError(file, where, f"invalid YAML: {problem}") from None
    except RecursionError:  # brackets nested thousands deep: the YAML reader recurses once per level
        raise ArenaConfigError(file, "", "invalid YAML: values nested too deeply") from None
    except ValueError as exc:  # an integer of 5,000 digits (Python refuses to read it)
        raise ArenaConfigError(file, "", f"invalid YAML: {clipped(str(exc), 200)}") from None
    check_expansion(file, data)
    return data


def unique_key_loader(yaml):
    """A safe loader that refuses a key given twice in one mapping (plain YAML keeps the last one,
    so a pasted model entry would silently replace another)."""

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if not isinstance(key, Hashable):
                    raise yaml.constructor.ConstructorError(
                        None, None, f"a key that is {kind_of(key)} (expected a name)", key_node.start_mark)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {excerpt(key)}", key_node.start_mark)
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    return UniqueKeyLoader


# A real config holds a few hundred values. YAML aliases let a 1 KB file stand for billions of them
# ("billion laughs"): PyYAML shares each aliased object, so loading stays cheap, but anything that
# walks the value (a repr in an error, a cache key, a request body) would not.
MAX_CONFIG_VALUES = 100_000
MAX_CONFIG_DEPTH = 64


def check_expansion(file: Path, data) -> None:
    """Refuse a config that expands, through aliases, to more values than any real one holds (or into a
    loop, or deeper than any real one nests). Each distinct object is counted once: this walk is cheap."""
    sizes: dict[int, int] = {}  # id -> values it expands to; -1 while its children are being counted

    def size(value, where: str, depth: int) -> int:
        if isinstance(value, str):
            _refuse_unencodable(file, where, value)
        if not isinstance(value, (dict, list)):
            return 1
        known = sizes.get(id(value))
        if known == -1:
            raise ArenaConfigError(file, where, "a YAML alias inside the value it names (a loop); expected a plain value")
        if known is not None:
            return known
        if depth > MAX_CONFIG_DEPTH:
            raise ArenaConfigError(file, where, f"nested deeper than {MAX_CONFIG_DEPTH} levels; expected a plain value")
        sizes[id(value)] = -1
        total = 1
        # List positions do not lengthen the path: the key that holds the list is what the user knows.
        for key in value if isinstance(value, dict) else ():
            if isinstance(key, str):
                _refuse_unencodable(file, f"{where}.{shown_key(key)}".lstrip("."), key)
        items = ((f"{where}.{shown_key(k)}".lstrip("."), v) for k, v in value.items()) if isinstance(value, dict) \
            else ((where, v) for v in value)
        for child_where, child in items:
            total += size(child, child_where, depth + 1)
            if total > MAX_CONFIG_VALUES:
                raise ArenaConfigError(file, where, f"expands to more than {MAX_CONFIG_VALUES} values through YAML "
                                                    "aliases (*name); expected a plain value")
        sizes[id(value)] = total
        return total

    size(data, "", 0)


def _refuse_unencodable(file: Path, where: str, text: str) -> None:
    """A double-quoted YAML string may spell a lone surrogate (``"\\ud800"``): valid YAML, but no file,
    cache key or judge request can carry it, so it is refused here, before anything is paid."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ArenaConfigError(file, where, f"expected text that UTF-8 can encode, got a lone surrogate "
                                            f"U+{ord(text[exc.start]):04X} at character {exc.start + 1}") from None
