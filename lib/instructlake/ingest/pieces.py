"""What an ingest reads: the files the driver checked, and the pieces of them its parse tasks take."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class InputFile:
    path: str
    source: str
    format: str
    label: str  # the name rows and quarantine entries refer to the file by
    size: int
    splittable: bool = False  # plain JSON Lines: may be parsed by byte range
    layout: str = ""  # rawfile.layout ('lines' or 'document') or 'parquet'


@dataclass(frozen=True)
class Piece:
    """A whole file, or the lines of a plain JSON Lines file that begin in [start, end)."""
    file: InputFile
    start: int = 0
    end: int | None = None

    @property
    def size(self) -> int:
        return (self.file.size if self.end is None else self.end) - self.start
