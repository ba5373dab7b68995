"""Native fixtures for the API tests that check what the Python layer hands llama.cpp."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest


@pytest.fixture(scope="module")
def core() -> ModuleType:
    return pytest.importorskip("fireside._core", reason="the native module is not built")


@pytest.fixture(scope="module")
def model(core: ModuleType, model_path: Path) -> Iterator[Any]:
    """The test model, loaded natively (``fireside._core.Model``) once per module."""
    m = core.Model(model_path)
    yield m
    m.close()
