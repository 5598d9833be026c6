"""Record: one clinical note with its gold labels, the unit every other module works on."""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Record:
    """One clinical note.

    `labels` are catalogue labels (a code, or `local:<key>` for a disease without one), in the
    order the source gave them, without duplicates. `line` is where the record came from in its
    file (for messages); `extra` keeps any other source fields unchanged.
    """

    note: str
    labels: tuple[str, ...]
    species: str | None = None
    disease: str | None = None
    line: int | None = None
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    def to_source_dict(self, instruction: str, response: str) -> dict:
        """The record in the source format of DOMAIN.md section 2."""
        out = {
            "instruction": instruction,
            "input": self.note,
            "output": response,
            "snomed_codes": list(self.labels),
        }
        if self.disease:
            out["disease"] = self.disease
        if self.species:
            out["animal"] = self.species.capitalize()
        out.update({k: v for k, v in self.extra.items() if k not in out})
        return out


def note_key(note: str) -> str:
    """The text used to group duplicate notes: case-folded, whitespace collapsed."""
    return re.sub(r"\s+", " ", note).strip().casefold()
