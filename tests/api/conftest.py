"""Models shared by the API tests: the Python-level model most modules use (a module that
needs other settings defines its own ``model``), and the native one for the tests that
check what the Python layer hands llama.cpp."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from fireside import Model


@pytest.fixture(scope="module")
def model(model_path: Path) -> Iterator[Model]:
    """The test model with a 512-token context and one thread, once per module."""
    with Model(model_path, n_ctx=512, n_threads=1) as m:
        yield m


@pytest.fixture(scope="module")
def core() -> ModuleType:
    return pytest.importorskip("fireside._core", reason="the native module is not built")


@pytest.fixture(scope="module")
def native_model(core: ModuleType, model_path: Path) -> Iterator[Any]:
    """The test model loaded natively (``fireside._core.Model``), once per module."""
    m = core.Model(model_path)
    yield m
    m.close()
