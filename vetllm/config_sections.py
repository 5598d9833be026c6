"""The sectioned layout of config files: which YAML section holds each TrainConfig field.

Code reads a config flat (`cfg.learning_rate`); its files group the fields under sections
(`optimisation:` holds `learning_rate`). Each field names its section once, in the class
(`vetllm.config`); this module only moves values between the two shapes, given that
field -> section mapping (None: the top of the file, outside any section). `nest` writes the
sections; `flatten` reads a sectioned file, or a flat one (run folders written before sections
existed), and reports every unknown or misplaced key at once; `field_named` reads a `--set` key,
bare (`learning_rate`) or with its section (`optimisation.learning_rate`). Pure Python.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping

SectionOf = Mapping[str, str | None]  # field name -> its section (None: top of the file)


def nest(values: Mapping[str, object], section_of: SectionOf) -> dict:
    """Flat field values -> the file layout: top-level fields, then one mapping per section."""
    out: dict = {}
    for key, value in values.items():
        section = section_of[key]
        if section is None:
            out[key] = value
        else:
            out.setdefault(section, {})[key] = value
    return out


def where(section: str | None) -> str:
    """How a message names a field's place in the file."""
    return f"in section {section}" if section else "at the top of the file (no section)"


def flatten(raw: Mapping, section_of: SectionOf) -> tuple[dict, list[str]]:
    """A file's mapping -> (flat field values, every layout problem).

    A file is sectioned when any top-level key is a section holding a mapping (`data` is both a
    section and a field: `data: bundled` is the field). In a sectioned file every field must sit
    in its own section; in a flat file every field sits at the top. Misplaced values are still
    returned, so their own value problems are reported in the same message.
    """
    sections = {s for s in section_of.values() if s is not None}
    nested = {
        key
        for key, value in raw.items()
        if key in sections and (isinstance(value, Mapping) or key not in section_of)
    }
    values: dict = {}
    problems: list[str] = []
    unknown: list[str] = []
    for section, key, value in _entries(raw, nested, problems):
        label = f"{section}.{key}" if section else key
        if key not in section_of:
            unknown.append(label)
            continue
        home = section_of[key]
        if section != home and (section is not None or nested):
            problems.append(f"{label}: {key} belongs {where(home)}; move it there")
        if key in values:
            problems.append(f"{label}: {key} is given twice; keep one")
        values.setdefault(key, value)
    if unknown:
        problems.insert(0, _unknown_problem(sorted(unknown), section_of))
    return values, problems


def _entries(raw: Mapping, nested: set, problems: list[str]) -> list[tuple]:
    """(section or None, key, value) for every key of the file, sections opened."""
    entries = []
    for key, value in raw.items():
        if key not in nested:
            entries.append((None, str(key), value))
        elif isinstance(value, Mapping):
            entries += [(key, str(sub), sub_value) for sub, sub_value in value.items()]
        elif value is not None:  # an empty section (`lora:` alone) is fine
            problems.append(f"{key}: got {value!r}; expected a section (field: value lines)")
    return entries


def _unknown_problem(unknown: list[str], section_of: SectionOf) -> str:
    """Names the unknown keys and, for near misses, the field meant and its section."""
    hints = []
    for label in unknown:
        close = difflib.get_close_matches(label.rpartition(".")[2], list(section_of), n=1)
        if close:
            section = section_of[close[0]]
            hints.append(f"{section}.{close[0]}" if section else close[0])
    text = f"unknown field(s) {', '.join(unknown)}"
    if hints:
        text += f"; did you mean {', '.join(hints)}?"
    return text + "; `vetllm config show` prints every field in its section"


def field_named(key: str, section_of: SectionOf) -> str:
    """The field a `--set` key names: `learning_rate` or `optimisation.learning_rate`.

    Raises KeyError for an unknown field and ValueError (naming the field's section) for a
    field given under another section.
    """
    section, _, name = key.rpartition(".")
    if name not in section_of:
        raise KeyError(name)
    home = section_of[name]
    if section and section != home:
        raise ValueError(f"{name} belongs {where(home)}")
    return name
