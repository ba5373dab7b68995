"""The package's public surface: every exported name resolves, and import stays cheap."""

import subprocess
import sys

import fireside


def test_every_public_name_resolves() -> None:
    for name in fireside.__all__:
        assert getattr(fireside, name) is not None, name


def test_unknown_attribute_is_an_attribute_error() -> None:
    try:
        fireside.no_such_thing  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_offline_flag_round_trips(monkeypatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    before = fireside.offline
    try:
        fireside.offline = True
        assert fireside.offline is True
    finally:
        fireside.offline = before


def test_import_loads_no_heavy_module() -> None:
    # `import fireside` must not pull in the native module, numpy or the hub client.
    code = "import sys, fireside; print(sorted(m for m in ('fireside._core', 'numpy', 'huggingface_hub', 'jinja2') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
