"""SNOMED CT identifier (SCTID) checks: digits, length, partition identifier, Verhoeff check digit.

An SCTID is 6-18 digits with no leading zero. Its last digit is a Verhoeff check digit and the
two digits before it are the partition identifier (00/10 for concepts, 01/11 descriptions,
02/12 relationships). Codes that fail are reported as invalid, never silently "corrected".
"""

from __future__ import annotations

from dataclasses import dataclass

# Verhoeff tables: multiplication in the dihedral group D5, position permutation, inverse.
_MULTIPLY = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 2, 3, 4, 0, 6, 7, 8, 9, 5),
    (2, 3, 4, 0, 1, 7, 8, 9, 5, 6),
    (3, 4, 0, 1, 2, 8, 9, 5, 6, 7),
    (4, 0, 1, 2, 3, 9, 5, 6, 7, 8),
    (5, 9, 8, 7, 6, 0, 4, 3, 2, 1),
    (6, 5, 9, 8, 7, 1, 0, 4, 3, 2),
    (7, 6, 5, 9, 8, 2, 1, 0, 4, 3),
    (8, 7, 6, 5, 9, 3, 2, 1, 0, 4),
    (9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
)
_PERMUTE = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 5, 7, 6, 2, 8, 3, 0, 9, 4),
    (5, 8, 0, 3, 7, 9, 6, 1, 4, 2),
    (8, 9, 1, 6, 0, 4, 3, 5, 2, 7),
    (9, 4, 5, 3, 1, 2, 6, 8, 7, 0),
    (4, 2, 8, 6, 5, 7, 3, 9, 0, 1),
    (2, 7, 9, 3, 8, 0, 6, 4, 1, 5),
    (7, 0, 4, 6, 9, 1, 3, 2, 5, 8),
)
_INVERSE = (0, 4, 3, 2, 1, 5, 6, 7, 8, 9)

PARTITIONS = {
    "00": "concept",
    "01": "description",
    "02": "relationship",
    "10": "concept",
    "11": "description",
    "12": "relationship",
}


def verhoeff_is_valid(digits: str) -> bool:
    """True if the digit string (check digit last) passes the Verhoeff check."""
    check = 0
    for position, char in enumerate(reversed(digits)):
        check = _MULTIPLY[check][_PERMUTE[position % 8][int(char)]]
    return check == 0


def verhoeff_check_digit(digits: str) -> str:
    """The Verhoeff check digit to append to a digit string."""
    check = 0
    for position, char in enumerate(reversed(digits)):
        check = _MULTIPLY[check][_PERMUTE[(position + 1) % 8][int(char)]]
    return str(_INVERSE[check])


@dataclass(frozen=True)
class SctidCheck:
    """The verdict on one identifier; `reason` says why it fails (empty when valid)."""

    code: str
    valid: bool
    reason: str
    kind: str | None  # "concept", "description", "relationship" or None when unknown

    def to_dict(self) -> dict:
        return {"code": self.code, "valid": self.valid, "reason": self.reason, "kind": self.kind}


def check_sctid(code: str, concept: bool = True) -> SctidCheck:
    """Check one identifier. With `concept`, the partition must be a concept's (00 or 10)."""
    text = str(code).strip()
    if not text.isdigit() or not text.isascii():
        return SctidCheck(text, False, "not a string of digits", None)
    if not 6 <= len(text) <= 18:
        return SctidCheck(text, False, f"has {len(text)} digits; SCTIDs have 6 to 18", None)
    if text[0] == "0":
        return SctidCheck(text, False, "starts with 0; SCTIDs never do", None)
    kind = PARTITIONS.get(text[-3:-1])
    if kind is None:
        return SctidCheck(text, False, f"partition identifier {text[-3:-1]} is not defined", None)
    if concept and kind != "concept":
        return SctidCheck(text, False, f"partition {text[-3:-1]} is a {kind}, not a concept", kind)
    if not verhoeff_is_valid(text):
        # No "corrected" digit is offered: a different check digit makes a different identifier.
        return SctidCheck(text, False, "Verhoeff check digit fails: not a real SCTID", kind)
    return SctidCheck(text, True, "", kind)
