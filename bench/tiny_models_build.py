"""How long the tests' tiny models take to build (tests/support/tiny_models.py).

    python bench/tiny_models_build.py

Timed here, not asserted in a test: a wall-clock bound flakes on a loaded machine. The first build
pays for the imports and the tokenizer training; the figure is the best of the builds after it.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from _common import machine  # bench/ is on sys.path when a script runs; it puts tests/ there too
from support.tiny_models import ARCHITECTURES, build_tiny_model


def main() -> None:
    print(f"tiny model build time; machine: {machine()}")
    with tempfile.TemporaryDirectory() as folder:
        build_tiny_model(Path(folder) / "warm-up")
        for arch in ARCHITECTURES:
            times = []
            for seed in range(1, 6):
                started = time.perf_counter()
                build_tiny_model(Path(folder) / f"{arch}-{seed}", seed=seed, arch=arch)
                times.append(time.perf_counter() - started)
            print(f"  {arch:<6} best {min(times) * 1000:7.1f} ms, worst {max(times) * 1000:7.1f} ms (5 builds)")


if __name__ == "__main__":
    main()
