"""CSV: each row as ``column: value`` pairs (the header names the columns), line numbers kept."""

from __future__ import annotations

import csv
import io

from fireside.docs.locations import Parsed, Section
from fireside.docs.readers.base import Unreadable, text_of


def read_csv(data: bytes) -> Parsed:
    """A ``.csv`` file (the delimiter is sniffed; the first row is taken as the header)."""
    text = text_of(data)
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(
            text[:8192], delimiters=",;\t|"
        )
    except csv.Error:
        dialect = csv.excel
    try:  # a field over csv's own limit (128 KiB) is a csv.Error too
        reader = csv.reader(io.StringIO(text), dialect)
        header: list[str] | None = None
        rows: list[str] = []
        numbers: list[int] = []
        start = 1
        for row in reader:
            line, start = start, reader.line_num + 1
            cells = [cell.strip() for cell in row]
            if not any(cells):
                continue
            if header is None:
                header = cells
                continue
            pairs = [
                f"{header[i] if i < len(header) and header[i] else f'column {i + 1}'}: {cell}"
                for i, cell in enumerate(cells)
                if cell
            ]
            rows.append("; ".join(pairs).replace("\n", " "))
            numbers.append(line)
    except csv.Error as e:
        raise Unreadable(f"malformed CSV: {e}") from None
    if not rows and header:
        rows, numbers = ["; ".join(header)], [1]
    sections = [Section(text="\n".join(rows), lines=numbers)] if rows else []
    return Parsed("csv", sections)
