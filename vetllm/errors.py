"""The one exception type the core raises, and the row-level problem record.

Messages name the field, the value received and what to do, so the CLI and the UI can show
them as they are (no traceback, no server path).
"""

from __future__ import annotations

from dataclasses import dataclass


class VetLLMError(Exception):
    """A problem the user can fix; the message says what and how."""


@dataclass(frozen=True)
class Problem:
    """One problem found in a data file: where it is and why it is a problem."""

    source: str  # file name as the user knows it (never a server path)
    line: int | None  # 1-based line (JSONL/CSV row incl. header) or record index (JSON list)
    field: str | None
    message: str

    def __str__(self) -> str:
        where = self.source
        if self.line is not None:
            where += f", line {self.line}"
        if self.field:
            where += f", field '{self.field}'"
        return f"{where}: {self.message}"


class DataError(VetLLMError):
    """A data file that cannot be used; carries every problem found, not only the first."""

    def __init__(self, message: str, problems: list[Problem] | None = None):
        self.problems = list(problems or [])
        if self.problems:
            shown = "\n".join(f"  - {p}" for p in self.problems[:50])
            more = len(self.problems) - 50
            tail = f"\n  ... and {more} more" if more > 0 else ""
            message = f"{message}\n{shown}{tail}"
        super().__init__(message)
