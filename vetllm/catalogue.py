"""The disease catalogue: canonical names, the codes the data uses, label variants, species.

Every disease has one *label*, the string a model is trained to emit and the metrics score: its
code when it has one, otherwise `local:<key>` (the source mapping has no code for foot rot and a
few others; inventing a numeric code would look like a real SCTID, so we do not). Codes that fail
the SCTID check stay as the data uses them and are flagged wherever they appear.

`check_code` answers "is this a valid code, and which disease is it?" for `vetllm codes check`
and the app's `check_codes` tool alike.

Users can extend the catalogue with a JSON file of the same shape as `catalogue.json`: a disease
with a known `key` adds variants (and may set a code), a new key adds a disease.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path

from vetllm.errors import VetLLMError
from vetllm.sctid import SctidCheck, check_sctid

LOCAL_PREFIX = "local:"


def normalise_name(text: str) -> str:
    """Lower-case and drop everything but letters and digits: 'P.P.R' and 'ppr' become 'ppr'."""
    return re.sub(r"[^0-9a-z]", "", str(text).casefold())


@dataclass(frozen=True)
class Disease:
    key: str
    name: str
    code: str | None
    variants: tuple[str, ...]
    species: tuple[str, ...]
    suggested_code: str | None = None

    @property
    def label(self) -> str:
        """What the model emits for this disease: the code, or `local:<key>` without one."""
        return self.code if self.code else LOCAL_PREFIX + self.key

    @property
    def sctid(self) -> SctidCheck | None:
        """The SCTID verdict on the code, or None for a disease without a code."""
        return check_sctid(self.code) if self.code else None

    def to_dict(self) -> dict:
        check = self.sctid
        return {
            "key": self.key,
            "name": self.name,
            "label": self.label,
            "code": self.code,
            "valid_sctid": check.valid if check else None,
            "sctid_problem": check.reason if check else "no SNOMED code in the source mapping",
            "suggested_code": self.suggested_code,
            "species": list(self.species),
        }


@dataclass(frozen=True)
class Mention:
    """A disease name found in free text, with its character span."""

    disease: Disease
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Catalogue:
    diseases: tuple[Disease, ...]
    version: str
    _by_label: dict = field(init=False, repr=False, compare=False)
    _by_name: dict = field(init=False, repr=False, compare=False)
    _mention_pattern: re.Pattern = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_label, by_name = {}, {}
        for disease in self.diseases:
            by_label[disease.label] = disease
            for name in (disease.name, disease.key, *disease.variants):
                by_name.setdefault(normalise_name(name), disease)
        object.__setattr__(self, "_by_label", by_label)
        object.__setattr__(self, "_by_name", by_name)
        object.__setattr__(self, "_mention_pattern", _mention_regex(self.diseases))

    @property
    def labels(self) -> list[str]:
        return [d.label for d in self.diseases]

    def by_label(self, label: str) -> Disease | None:
        """The disease whose label (code or `local:key`) is exactly `label`."""
        return self._by_label.get(str(label).strip())

    def lookup_name(self, name: str) -> Disease | None:
        """Map a disease name, abbreviation, local name or known misspelling to its disease."""
        return self._by_name.get(normalise_name(name))

    def find_mentions(self, text: str) -> list[Mention]:
        """Disease names in free text, on word boundaries ('appropriate' is not PPR)."""
        found = []
        for match in self._mention_pattern.finditer(text):
            disease = self.lookup_name(match.group(0))
            if disease is not None:
                found.append(Mention(disease, match.start(), match.end(), match.group(0)))
        return found


def check_code(text: str, catalogue: Catalogue) -> dict:
    """The SCTID verdict on one code, with the catalogue disease when the code or name is known.

    One answer for `vetllm codes check` and the app's `check_codes` tool: `code`, `valid`,
    `kind` and `reason` (check_sctid), plus `disease` and `catalogue_label` (and
    `suggested_code`) for a catalogue disease, or `suggested_for` when the code is the one the
    catalogue suggests for a disease. A disease name or label is accepted as the text too.
    """
    text = str(text).strip()
    disease = catalogue.by_label(text)
    suggested_for = next((d for d in catalogue.diseases if d.suggested_code == text), None)
    if disease is None and not text.isdigit() and not text.startswith(LOCAL_PREFIX):
        disease = catalogue.lookup_name(text)
    if text.startswith(LOCAL_PREFIX):
        verdict = {"code": text, "valid": False, "kind": None}
        verdict["reason"] = "a local label: this disease has no SNOMED code in the catalogue"
    else:
        verdict = check_sctid(text).to_dict()
    if disease is not None:
        verdict["disease"] = disease.name
        verdict["catalogue_label"] = disease.label
        if disease.suggested_code:
            verdict["suggested_code"] = disease.suggested_code
    elif suggested_for is not None:
        verdict["disease"] = suggested_for.name
        verdict["suggested_for"] = suggested_for.label
    return verdict


def _mention_regex(diseases: tuple[Disease, ...]) -> re.Pattern:
    """One alternation of all names, longest first, tolerant of dots and spaces in abbreviations."""
    names = {n for d in diseases for n in (d.name, *d.variants) if normalise_name(n)}
    pieces = []
    for name in sorted(names, key=len, reverse=True):
        letters = [re.escape(c) for c in name if c.isalnum() or c in " -"]
        # "P.P.R", "P P R", "PPR" all match the variant "PPR"; "foot-and-mouth" matches "foot and mouth".
        joined = r"[.\s-]?".join(c for c in letters if c not in (r"\ ", r"\-", " ", "-"))
        pieces.append(joined + r"\.?")
    return re.compile(r"(?<![0-9A-Za-z])(?:" + "|".join(pieces) + r")(?![0-9A-Za-z])", re.I)


def _parse_diseases(raw: object, source: str) -> list[Disease]:
    if not isinstance(raw, dict) or not isinstance(raw.get("diseases"), list):
        raise VetLLMError(f"{source}: expected an object with a 'diseases' list")
    diseases, problems = [], []
    for index, item in enumerate(raw["diseases"], start=1):
        if not isinstance(item, dict) or not item.get("key") or not item.get("name"):
            problems.append(f"disease {index}: needs at least 'key' and 'name'")
            continue
        code = item.get("code")
        if code is not None and not str(code).strip().isdigit():
            problems.append(f"disease {index} ({item['key']}): code {code!r} is not all digits")
            continue
        diseases.append(
            Disease(
                key=str(item["key"]),
                name=str(item["name"]),
                code=str(code).strip() if code is not None else None,
                variants=tuple(str(v) for v in item.get("variants", [])),
                species=tuple(str(s).lower() for s in item.get("species", [])),
                suggested_code=item.get("suggested_code"),
            )
        )
    if problems:
        raise VetLLMError(f"{source}: " + "; ".join(problems))
    return diseases


def _merge(base: list[Disease], extra: list[Disease]) -> list[Disease]:
    merged = {d.key: d for d in base}
    for disease in extra:
        known = merged.get(disease.key)
        if known is None:
            merged[disease.key] = disease
            continue
        merged[disease.key] = Disease(
            key=known.key,
            name=known.name,
            code=disease.code or known.code,
            variants=tuple(dict.fromkeys(known.variants + disease.variants)),
            species=tuple(dict.fromkeys(known.species + disease.species)),
            suggested_code=disease.suggested_code or known.suggested_code,
        )
    return list(merged.values())


def load_catalogue(extra_path: str | None = None) -> Catalogue:
    """The bundled catalogue, optionally extended by a user's JSON file of the same shape."""
    return _load_catalogue(extra_path or None)  # one cache entry for (), (None) and ("")


@cache
def _load_catalogue(extra_path: str | None) -> Catalogue:
    bundled = json.loads(resources.files("vetllm").joinpath("catalogue.json").read_text("utf-8"))
    diseases = _parse_diseases(bundled, "catalogue.json")
    version = bundled["version"]
    if extra_path:
        path = Path(extra_path)
        try:
            text = path.read_text("utf-8")
            extra = json.loads(text)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise VetLLMError(
                f"catalogue file {path.name}: cannot read it as JSON ({error})"
            ) from None
        diseases = _merge(diseases, _parse_diseases(extra, path.name))
        version += "+" + hashlib.sha256(text.encode()).hexdigest()[:8]
    return Catalogue(tuple(diseases), version)
