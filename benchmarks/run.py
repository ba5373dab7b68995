#!/usr/bin/env python3
"""Run fireside's benchmark against llama.cpp's own tools (see benchmarks/README.md).

    python benchmarks/build_reference.py     # once: llama-bench & co. into build/reference
    python benchmarks/run.py                 # full run: medians of 5 runs, both sides
    python benchmarks/run.py --quick         # seconds-long smoke run

Same options as ``fireside bench`` (``--help``).
"""

import sys

from fireside.bench.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
