"""Row rules of the source format: turn one raw row into a `Record`, or say what is wrong with it.

A row is a JSON object or a CSV line keyed by its header. `record_from_row()` finds the note,
the labels (from `snomed_codes`, else from the `disease` name via the catalogue) and the species,
whatever the case of the field names; it keeps every other field as `Record.extra`. It never
raises for bad input: it returns every problem of the row, each naming its field, the value
received and what to do, plus flags for silent fixes (invisible characters removed, a disease
name that disagrees with the codes) that `summarise_flags()` turns into notices for the user.
`check_header()` applies the same field names to a CSV header. Reading files, and the limits
on them, live in `vetllm.data.loading`.
"""

from __future__ import annotations

import json
import re
from collections import Counter

from vetllm.catalogue import Catalogue, Disease
from vetllm.data.records import Record
from vetllm.errors import DataError, Problem

NOTE_FIELDS = ("input", "note", "clinical_note", "text")
CODE_FIELDS = ("snomed_codes", "snomed_code", "codes", "labels")
DISEASE_FIELDS = ("disease", "diagnosis")
SPECIES_FIELDS = ("animal", "species")
_REGENERATED = ("instruction", "output")  # rebuilt from the template when written
# Two limits on a note's length, because they guard different things:
# - MAX_DATA_NOTE_CHARS: a note inside a data file (training, validation or evaluation data),
#   reported as a row problem. Source notes are ~150-300 characters; 20k is a pasted document.
#   Evaluation sends every note a data file may hold through the model, so the predictor's own
#   check (engine/predict.validate_notes) allows this much too.
# - MAX_PREDICT_NOTE_CHARS: one note someone asks the model to code: the app's box, the API and
#   MCP `predict`, `vetllm predict` and batch coding (app and CLI). A caller of a shared app may
#   be anonymous, so this bounds the model time one note can take; 5k is still over 15 long
#   source notes, and the app tells users the number.
MAX_DATA_NOTE_CHARS = 20_000
MAX_PREDICT_NOTE_CHARS = 5_000
# Fields per row / CSV columns: the source format has about 10. A 100k-column header was a CPU
# bomb (issue 11, item 1); 200 leaves room for every real export.
MAX_COLUMNS = 200
# Integers longer than this are kept as text markers: Python refuses to convert more than 4,300
# digits (ValueError), and no SNOMED-CT identifier has more than 18.
MAX_INT_DIGITS = 30
SHOWN_CHARS = 60  # at most this much of a user's value is quoted back in a message
_SURROGATES = re.compile("[\ud800-\udfff]")
# Zero-width and bidirectional controls hide text and reorder it on screen ("Trojan source");
# ZWJ/ZWNJ (U+200C/D) are kept because Urdu and Persian spelling needs them.
_INVISIBLE = re.compile(
    "[\u00ad\u061c\u200b\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]"
)
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_CODE_SEPARATORS = re.compile(r"[,;|\s]+")
_NAME_SEPARATORS = re.compile(r"\s*(?:[,;/+&]|\band\b)\s*", re.I)
_FLAG_TEXT = {
    "invisible": "removed zero-width or bidirectional control characters from {n} note(s)",
    "control": "replaced control characters with spaces in {n} note(s)",
    "mismatch": "{n} record(s) name a disease that differs from their snomed_codes; the codes "
    "were used",
}


class LongNumber(str):
    """A JSON integer too long to be a code (see MAX_INT_DIGITS), kept as its digits."""


class JsonObject(dict):
    """A JSON object that remembers the keys it held more than once (the last value wins)."""

    repeated: tuple[str, ...] = ()


def _object_pairs(pairs: list[tuple[str, object]]) -> dict:
    counts = Counter(key for key, _ in pairs)
    obj = JsonObject(pairs)
    if len(counts) != len(pairs):
        obj.repeated = tuple(key for key, n in counts.items() if n > 1)
    return obj


def _parse_int(text: str) -> int | LongNumber:
    digits = len(text.lstrip("-"))
    return LongNumber(text) if digits > MAX_INT_DIGITS else int(text)


def json_decoder() -> json.JSONDecoder:
    """The JSON decoder of data files: NaN/Infinity, repeated keys and huge integers marked."""
    return json.JSONDecoder(
        parse_constant=NonFinite, parse_int=_parse_int, object_pairs_hook=_object_pairs
    )


def shorten(text: str, limit: int = SHOWN_CHARS) -> str:
    """`text` for a message: whole when short, else its start and its length."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[: limit // 2]!r}... ({len(text):,} characters)"


class NonFinite(float):
    """A NaN/Infinity read from JSON, kept distinguishable so the message can name it."""

    def __new__(cls, name: str):
        value = super().__new__(cls, name.replace("-Infinity", "-inf").replace("Infinity", "inf"))
        value.name = name
        return value


def kind_of(value: object) -> str:
    """A JSON value's type in words, for messages ("an object", "a number (3)")."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, LongNumber):
        return f"a number of {len(value.lstrip('-')):,} digits"
    if isinstance(value, str):
        return "a string"
    return f"a number ({value})"


def summarise_flags(flags: dict[str, int]) -> list[str]:
    """Notices for the silent fixes counted over a file (flag name -> number of rows)."""
    return [_FLAG_TEXT[key].format(n=count) for key, count in flags.items()]


def check_header(header: list[str], name: str) -> None:
    """Raise DataError unless a CSV header has a note column, a label column, no repeats and
    no aliases; linear in the header's length, and at most MAX_COLUMNS columns."""
    if len(header) > MAX_COLUMNS:
        raise DataError(
            f"{name}: the header has {len(header):,} columns; the limit is {MAX_COLUMNS:,}. "
            "Keep the note, label and species columns and drop the rest"
        )
    lowered = [h.lower() for h in header]
    missing = []
    if not set(lowered) & set(NOTE_FIELDS):
        missing.append("a note column ('input')")
    if not set(lowered) & set(CODE_FIELDS + DISEASE_FIELDS):
        missing.append("a label column ('snomed_codes' or 'disease')")
    counts = Counter(lowered)  # one pass: list.count per column was quadratic
    duplicated = sorted(h for h, n in counts.items() if n > 1 and h)
    if duplicated:
        missing.append(f"unique column names (repeated: {', '.join(duplicated)})")
    aliases = _aliases(set(lowered))
    if aliases:
        missing.append(f"one column per field ({'; '.join(aliases)})")
    if missing:
        shown = ", ".join(repr(h) for h in header[:12])
        raise DataError(f"{name}: the header needs {' and '.join(missing)}; found {shown}")


def _aliases(names: set[str]) -> list[str]:
    """'input' and 'note' both given: one field under two of its accepted names."""
    found = []
    for group in (NOTE_FIELDS, CODE_FIELDS, DISEASE_FIELDS, SPECIES_FIELDS):
        present = [name for name in group if name in names]
        if len(present) > 1:
            found.append(" and ".join(repr(n) for n in present) + " name the same field")
    return found


class _Row:
    """One raw row under check: field lookup ignoring case and spaces, and its problems so far."""

    def __init__(self, row: dict, line: int, source: str):
        self.row, self.line, self.source = row, line, source
        self.keys = {str(key).strip().lower(): key for key in row}  # lowered name -> own key
        self.problems: list[Problem] = []
        self.flags: set[str] = set()

    def check_keys(self) -> bool:
        """Report too many, repeated, aliased or non-text keys; False if the row is unusable."""
        if len(self.row) > MAX_COLUMNS:
            self.problem(None, f"has {len(self.row):,} fields; the limit is {MAX_COLUMNS:,}")
            return False
        for key in getattr(self.row, "repeated", ()):
            self.problem(str(key), f"the field {key!r} twice; keep one (the last was used)")
        if len(self.keys) != len(self.row):  # 'input' and 'Input': same name, two keys
            owners: dict[str, list[str]] = {}
            for key in self.row:
                owners.setdefault(str(key).strip().lower(), []).append(str(key))
            for keys in owners.values():
                if len(keys) > 1:
                    shown = " and ".join(repr(k) for k in keys)
                    self.problem(keys[0], f"{shown} are the same field; keep one")
        for message in _aliases(set(self.keys)):
            self.problem(None, message + "; keep one")
        for key in self.row:
            if _SURROGATES.search(str(key)):
                self.problem(None, "a field name holds a lone UTF-16 surrogate; not text")
        return not self.problems

    def first(self, names: tuple[str, ...]) -> str | None:
        """The lowered name of the first of `names` the row has, or None."""
        return next((name for name in names if name in self.keys), None)

    def value(self, name: str | None) -> object:
        return self.row[self.keys[name]] if name is not None else None

    def problem(self, field_name: str | None, message: str) -> None:
        self.problems.append(Problem(self.source, self.line, field_name, message))


def record_from_row(
    row: dict, line: int, source: str, catalogue: Catalogue
) -> tuple[Record | None, list[Problem], set[str]]:
    """One raw row (a JSON object or CSV cells by header) to a Record, or its problems.

    Returns (record or None, problems, flags); the record is None exactly when there are problems.
    """
    checked = _Row(row, line, source)
    if not checked.check_keys():
        return None, checked.problems, checked.flags
    note = _note(checked)
    labels, disease_name = _labels(checked, catalogue)
    species = _species(checked)
    extra = _extra_fields(checked)
    if checked.problems:
        return None, checked.problems, checked.flags
    return Record(note, labels, species, disease_name, line, extra), [], checked.flags


def _note(row: _Row) -> str | None:
    name = row.first(NOTE_FIELDS)
    value = row.value(name)
    if value is None:
        row.problem(name or "input", "missing note text; every record needs an 'input' field")
        return None
    note, message = _clean_note(value, row.flags)
    if message:
        row.problem(row.keys[name], message)
    return note


def normalise_note_text(text: str) -> str:
    """A note as it is trained and served: invisible characters removed, controls made spaces."""
    return _CONTROL.sub(" ", _INVISIBLE.sub("", text)).strip()


def _clean_note(value: object, flags: set[str]) -> tuple[str | None, str | None]:
    if not isinstance(value, str) or isinstance(value, LongNumber):
        return None, f"the note must be text, got {_describe(value)}"
    surrogate = _SURROGATES.search(value)
    if surrogate:
        return None, (
            f"character {surrogate.start() + 1:,} is a lone UTF-16 surrogate "
            f"(U+{ord(surrogate.group()):04X}), which is not text; fix the export's encoding"
        )
    position = value.find("\x00")
    if position >= 0:
        return None, (
            f"contains a NUL character (\\x00) at position {position}; remove it "
            "(binary data or a broken export?)"
        )
    text = _INVISIBLE.sub("", value)
    if text != value:
        flags.add("invisible")
    cleaned = _CONTROL.sub(" ", text)
    if cleaned != text:
        flags.add("control")
    cleaned = cleaned.strip()
    if not cleaned:
        return None, "the note is empty or only whitespace"
    if len(cleaned) > MAX_DATA_NOTE_CHARS:
        return None, (
            f"the note is {len(cleaned):,} characters long; the limit is {MAX_DATA_NOTE_CHARS:,} "
            "per note: shorten it or split it into separate records"
        )
    return cleaned, None


def _describe(value: object) -> str:
    if isinstance(value, NonFinite):
        return f"{value.name} (not valid JSON)"
    return kind_of(value)


def _labels(row: _Row, catalogue: Catalogue) -> tuple[tuple[str, ...], str | None]:
    """Labels from snomed_codes (authoritative) or else from the disease name."""
    code_name, disease_name_field = row.first(CODE_FIELDS), row.first(DISEASE_FIELDS)
    codes = _code_labels(row, code_name, catalogue) if code_name else []
    disease_name = _disease_name(row, disease_name_field)
    named = _diseases_named(disease_name, catalogue) if disease_name else None
    if codes is None:  # the codes had problems, already reported
        return (), disease_name
    if codes:
        if named and not {d.label for d in named} & set(codes):
            row.flags.add("mismatch")
        return tuple(dict.fromkeys(codes)), disease_name
    if named:
        return tuple(dict.fromkeys(d.label for d in named)), disease_name
    if disease_name:
        row.problem(
            row.keys[disease_name_field],
            f"disease {disease_name!r} is not in the catalogue and there are no snomed_codes; "
            "add it as a variant in a catalogue file (load_catalogue(extra_path), CLI "
            "--catalogue FILE) or give its code",
        )
    else:
        state = "is empty or null" if code_name else "is missing"
        row.problem(
            row.keys[code_name] if code_name else "snomed_codes",
            f"missing label: snomed_codes {state} and there is no 'disease' name; give "
            "'snomed_codes' (a list of codes) or a 'disease' name",
        )
    return (), disease_name


def _disease_name(row: _Row, name: str | None) -> str | None:
    value = row.value(name)
    if value is not None and (not isinstance(value, str) or isinstance(value, LongNumber)):
        row.problem(row.keys[name], f"must be a disease name (text), got {_describe(value)}")
        return None
    if value and _SURROGATES.search(value):
        row.problem(row.keys[name], "holds a lone UTF-16 surrogate, which is not text")
        return None
    return (value.strip() or None) if value else None


def _diseases_named(name: str, catalogue: Catalogue) -> list[Disease] | None:
    """The disease a name means, or the diseases of a list of names ("PPR and FMD")."""
    disease = catalogue.lookup_name(name)
    if disease is not None:
        return [disease]
    parts = [p for p in _NAME_SEPARATORS.split(name) if p]
    found = [catalogue.lookup_name(p) for p in parts]
    return found if len(parts) > 1 and all(found) else None


def _code_labels(row: _Row, name: str, catalogue: Catalogue) -> list[str] | None:
    """Catalogue labels from a codes value; None when it has problems (each reported)."""
    field_name = row.keys[name]
    items, type_problems = _code_items(row.value(name))
    for message in type_problems:
        row.problem(field_name, message)
    labels, unknown = [], False
    for code in items:
        disease = catalogue.by_label(code)
        if disease is None:
            row.problem(field_name, _unknown_code_message(code, catalogue))
            unknown = True
        else:
            labels.append(disease.label)
    return None if type_problems or unknown else labels


def _code_items(value: object) -> tuple[list[str], list[str]]:
    """The code strings in a codes value (list, separated text or JSON list text), and problems."""
    if value is None:
        return [], []
    if isinstance(value, str):
        text = value.strip()
        if not text.startswith("["):
            return [c for c in _CODE_SEPARATORS.split(text) if c], []
        try:  # CSV cells may hold a JSON list string
            value = json_decoder().decode(text)
        except (json.JSONDecodeError, RecursionError):
            return [], [f"{shorten(text)} starts like a JSON list but is not valid JSON"]
    was_list = isinstance(value, list)
    items, problems = [], []
    for index, item in enumerate(value if was_list else [value], start=1):
        if isinstance(item, str) and not isinstance(item, LongNumber):
            items.extend(c for c in _CODE_SEPARATORS.split(item) if c)
        elif isinstance(item, int) and not isinstance(item, bool):
            items.append(str(item))  # an integer code loses nothing
        else:
            where = f"item {index}" if was_list else "the value"
            problems.append(f'{where} is {_describe(item)}; codes are text, e.g. ["198462004"]')
    return items, problems


def _unknown_code_message(code: str, catalogue: Catalogue) -> str:
    if len(code) > SHOWN_CHARS:
        return f"code {shorten(code)} is far longer than any code; give the catalogue's code"
    named = catalogue.lookup_name(code)
    if named is not None:
        return (
            f"{code!r} is a disease name, not a code; put names in 'disease' or use its label "
            f"{named.label!r}"
        )
    return (
        f"code {code!r} is not in the disease catalogue; if it is right, add it to a catalogue "
        "file shaped like catalogue.json and load it (load_catalogue(extra_path), CLI "
        "--catalogue FILE)"
    )


def _species(row: _Row) -> str | None:
    name = row.first(SPECIES_FIELDS)
    value = row.value(name)
    if value is None:
        return None
    if not isinstance(value, str) or isinstance(value, LongNumber):
        row.problem(row.keys[name], f"the species must be text, got {_describe(value)}")
        return None
    if _SURROGATES.search(value):
        row.problem(row.keys[name], "holds a lone UTF-16 surrogate, which is not text")
        return None
    return value.strip().lower() or None


def _extra_fields(row: _Row) -> dict:
    """Every field the rules above do not read, kept as given (JSON text in CSV cells parsed)."""
    used = {row.first(names) for names in (NOTE_FIELDS, CODE_FIELDS, DISEASE_FIELDS)}
    used |= {row.first(SPECIES_FIELDS), *_REGENERATED}
    extra = {}
    for name, key in row.keys.items():
        if name in used:
            continue
        value = _extra_value(row.row[key])
        if value in (None, ""):
            continue
        extra[key] = value
        if _contains_non_finite(value):
            row.problem(key, "holds NaN or Infinity, which JSON does not allow; use null")
        if _contains_surrogate(value):
            row.problem(key, "holds a lone UTF-16 surrogate, which is not text; fix the encoding")
    return extra


def _extra_value(value: object) -> object:
    if isinstance(value, str) and value.strip().startswith(("[", "{")):
        try:  # CSV cells hold lists (e.g. 'symptoms') and objects as JSON strings
            return json_decoder().decode(value)
        except (ValueError, RecursionError):
            return value
    return value


def _contains_surrogate(value: object) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str) and _SURROGATES.search(item):
            return True
        if isinstance(item, dict):
            stack.extend(item.values())
            stack.extend(item.keys())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _contains_non_finite(value: object) -> bool:
    if isinstance(value, str):
        return False  # the common case: no walk needed
    stack = [value]  # iterative: values may be nested close to the JSON depth limit
    while stack:
        item = stack.pop()
        if isinstance(item, NonFinite):
            return True
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False
