"""Each reader and the chunker on real files: structure and locations kept."""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import pytest
from fireside.docs.chunking import check_chunking, chunk_sections
from fireside.docs.readers import Unreadable, format_of, parse

from tests.docs.conftest import real_file


def _parse(path: Path):  # type: ignore[no-untyped-def]
    fmt = format_of(path.name)
    assert fmt is not None
    return parse(fmt, path.read_bytes())


def test_markdown_sections_follow_headings_and_keep_line_numbers() -> None:
    path = real_file("pyyaml-README.md")
    parsed = _parse(path)
    assert parsed.title == "PyYAML"
    assert "Installation" in [s.heading for s in parsed.sections]
    lines = path.read_text().split("\n")
    for chunk in chunk_sections(parsed.sections, 512, 64):
        first, last = chunk.location.line_start, chunk.location.line_end
        assert first is not None and last is not None
        assert chunk.text.split("\n")[0].strip() in lines[first - 1]
        assert chunk.text.split("\n")[-1].strip() in lines[last - 1]


def test_rst_titles_are_headings() -> None:
    parsed = _parse(real_file("jansson-README.rst"))
    assert parsed.title == "Jansson README"
    assert "Compilation and Installation" in [s.heading for s in parsed.sections]


def test_html_keeps_visible_text_and_headings() -> None:
    parsed = _parse(real_file("mime-references.html"))
    assert parsed.title == "References"
    text = "\n".join(s.text for s in parsed.sections)
    assert "<" not in text and "XDG Base Directory Specification" in text


def test_pdf_keeps_page_numbers() -> None:
    parsed = _parse(real_file("shared-mime-info-spec.pdf"))
    pages = [s.page for s in parsed.sections]
    assert pages == sorted(pages) and pages[0] == 1 and pages[-1] == 17
    page4 = next(s for s in parsed.sections if s.page == 4)
    assert "glob elements have a pattern attribute" in page4.text


def test_csv_rows_name_their_columns_and_lines() -> None:
    parsed = _parse(real_file("ubuntu.csv"))
    (section,) = parsed.sections
    row = next(r for r in section.text.split("\n") if "Jammy" in r)
    assert row.startswith("version: 22.04 LTS; codename: Jammy Jellyfish; series: jammy")
    assert section.lines is not None
    assert section.lines[section.text.split("\n").index(row)] == 37


def test_docx_from_real_text_keeps_headings() -> None:
    import docx

    document = docx.Document()
    parsed_md = _parse(real_file("pyyaml-README.md"))
    for part in parsed_md.sections:
        if part.heading:
            document.add_heading(part.heading, level=1)
        document.add_paragraph(part.text)
    buffer = io.BytesIO()
    document.save(buffer)
    parsed = parse("docx", buffer.getvalue())
    assert parsed.title == "PyYAML"
    assert [s.heading for s in parsed.sections] == [s.heading for s in parsed_md.sections]


def test_code_and_text_are_chunked_within_the_size() -> None:
    path = Path(__file__).resolve().parents[2] / "vendor/llama.cpp/convert_hf_to_gguf.py"
    if not path.is_file():
        pytest.fail(f"{path} is missing from the llama.cpp tree")
    data = path.read_bytes()[:40_000]
    parsed = parse("code", data)
    chunks = chunk_sections(parsed.sections, 300, 40)
    assert all(len(c.text) <= 300 for c in chunks)
    starts = [c.location.line_start or 0 for c in chunks]
    assert starts == sorted(starts) and starts[0] == 1
    text = data.decode()
    assert all(c.text in text for c in chunks)
    # neighbours overlap: each chunk's start is inside the previous chunk's span
    spans = []
    at = 0
    for c in chunks:
        at = text.index(c.text, max(at - 400, 0))
        spans.append((at, at + len(c.text)))
    assert sum(1 for a, b in itertools.pairwise(spans) if b[0] < a[1]) >= len(chunks) // 2


def test_unreadable_inputs_raise_unreadable_with_a_reason() -> None:
    with pytest.raises(Unreadable, match="binary"):
        parse("text", Path("/bin/true").read_bytes())
    with pytest.raises(Unreadable):
        parse("pdf", b"%PDF-1.4\n" + b"\x00" * 100)
    with pytest.raises(Unreadable, match="docx"):
        parse("docx", b"PK\x03\x04 not really")
    with pytest.raises(ValueError, match="chunk_overlap"):
        check_chunking(100, 60)
