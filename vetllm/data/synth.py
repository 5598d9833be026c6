"""Deterministic synthetic clinical notes in the two styles the app must handle.

Template style copies the *form* of the source data ("Clinical Note: Buffalo. Clinical
presentation includes respiratory distress, cervical swelling, and high fever. Physical
examination reveals these clinical signs."); its notes repeat, as the source's do. Free-text
style is what vets type: age, breed, vitals in F or C, abbreviations, British spellings,
synonyms and findings outside the checklist. Diseases, species and signs are drawn from the
published shares in DOMAIN.md sections 3-4 (see `synth_vocab`); no source record is copied.
A small share of notes carries a plausible but wrong label, as real data does.

Everything is driven by one `random.Random(seed)`: the same arguments give the same records.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from vetllm import resources
from vetllm.catalogue import load_catalogue
from vetllm.data.prompts import ALPACA
from vetllm.data.records import Record, note_key
from vetllm.data.split import split_by_note
from vetllm.data.synth_cases import (
    LABEL_NOISE_SHARE,
    check_arguments,
    disease_sequence,
    make_record,
    recorded_disease,
    sample_case,
)
from vetllm.data.synth_render import (  # noqa: F401 (re-exported: the renderers live there)
    ClinicalCase,
    join_and,
    needs_female,
    render_free_text,
    render_template,
    weighted_choice,
)
from vetllm.data.synth_vocab import EXTRA_SIGNS, PROFILES
from vetllm.errors import VetLLMError

# The packaged examples/ folder (vetllm.resources); tests point it elsewhere.
EXAMPLES_DIR = resources.EXAMPLES_DIR

# Diseases and styles of the app's example notes (examples/notes.json): one per disease.
EXAMPLE_NOTE_PLAN = (
    ("ppr", "free"),
    ("fmd", "free"),
    ("hs", "template"),
    ("bq", "free"),
    ("mastitis", "free"),
    ("ccpp", "template"),
    ("anthrax", "free"),
    ("babesiosis", "free"),
    ("rabies", "free"),
    ("fascioliasis", "free"),
    ("theileriosis", "free"),
    ("foot-rot", "template"),
)


def generate_records(n: int = 1600, seed: int = 0, free_text_share: float = 0.35) -> list[Record]:
    """`n` synthetic notes with the source's class imbalance, deterministic for a given seed.

    Args:
        n: number of records (the source set has 1,602).
        seed: seed of the one random generator used.
        free_text_share: share of notes written in free-text style (the rest: template style).

    Returns:
        Records with one catalogue label each, `species` lower-case, `disease` a label variant as
        the source writes it, and `extra={"symptoms": [checklist names]}`.
    """
    check_arguments(n=n, seed=seed, free_text_share=free_text_share)
    rng = random.Random(seed)
    catalogue = load_catalogue()
    records = []
    for disease_key in disease_sequence(n, rng):
        case = sample_case(disease_key, rng)
        style_is_free = rng.random() < free_text_share
        note = render_free_text(case, rng) if style_is_free else render_template(case, rng)
        noise = LABEL_NOISE_SHARE["free" if style_is_free else "template"]
        recorded_key = recorded_disease(disease_key, case.species, noise, rng)
        records.append(make_record(note, case, recorded_key, catalogue, rng))
    return records


def split_records(
    records: list[Record], val_fraction: float = 0.15, seed: int = 0
) -> tuple[list[Record], list[Record]]:
    """Train and validation records, grouped by note text so no validation note is in train."""
    split = split_by_note(records, val_fraction=val_fraction, test_fraction=0.0, seed=seed)
    return list(split.train), list(split.val)


def records_to_source(records: list[Record]) -> list[dict]:
    """Records in the source format of DOMAIN.md section 2 (Alpaca instruction and response)."""
    return [r.to_source_dict(ALPACA.instruction, ALPACA.format_response(r.labels)) for r in records]


def example_notes(seed: int = 0, exclude: set[str] | None = None) -> list[dict]:
    """A dozen notes for the app, one per disease in `EXAMPLE_NOTE_PLAN`, none in `exclude`.

    `exclude` holds `note_key`s (of the generated data set) so an example is never a data note.
    """
    rng = random.Random(f"examples-{seed}")
    catalogue = load_catalogue()
    excluded = exclude or set()
    notes = []
    for disease_key, style in EXAMPLE_NOTE_PLAN:
        render = render_free_text if style == "free" else render_template
        for _attempt in range(500):
            case = sample_case(disease_key, rng)
            note = render(case, rng)
            if note_key(note) not in excluded and _shows_the_disease(note, case, style):
                break
        disease = next(d for d in catalogue.diseases if d.key == disease_key)
        style_name = "free text" if style == "free" else "source template"
        notes.append(
            {
                "title": f"{disease.name}: {case.species}, {style_name}",
                "note": note,
                "expected_label": disease.label,
            }
        )
    return notes


def _shows_the_disease(note: str, case: ClinicalCase, style: str) -> bool:
    """A good demo: free text with a finding outside the checklist, or 3+ of the disease's signs."""
    if style != "free":
        profile_signs = {name for name, _ in PROFILES[case.disease_key].signs}
        enough = min(3, len(profile_signs))
        return len(case.signs) >= enough and set(case.signs) <= profile_signs
    lowered = note.lower()
    return any(extra.lower() in lowered for extra in EXTRA_SIGNS.get(case.disease_key, ()))


STYLES = ("mixed", "source-like", "free")  # `vetllm data synth --style`; see generate_styled


def generate_styled(style: str = "mixed", n: int = 1600, seed: int = 0) -> list[Record]:
    """Records of one style: "mixed" (the bundled examples: 65% template, 35% free text),
    "source-like" (the real source's shape: few template notes, many copies, ~10% conflicts;
    see `synth_source`) or "free" (free text only, nearly every note unique)."""
    if style == "source-like":
        from vetllm.data.synth_source import generate_source_like

        return generate_source_like(n=n, seed=seed)
    if style == "free":
        return generate_records(n=n, seed=seed, free_text_share=1.0)
    return generate_records(n=n, seed=seed)


def write_synthetic_dataset(
    out_dir: str | Path,
    n: int = 1600,
    seed: int = 0,
    val_fraction: float = 0.15,
    *,
    style: str = "mixed",
    test_fraction: float = 0.0,
) -> dict:
    """Generate `n` notes, split them by note text and write train.json, val.json, notes.json
    (and test.json when `test_fraction` > 0).

    Returns a summary: the paths written and the record counts.
    """
    _check_dataset_arguments(val_fraction, test_fraction, style)
    records = generate_styled(style, n=n, seed=seed)
    split = split_by_note(
        records, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed
    )
    out = Path(out_dir)
    parts = {"train": split.train, "val": split.val}
    if test_fraction:
        parts["test"] = split.test
    payloads = {part: records_to_source(list(rows)) for part, rows in parts.items()}
    payloads["notes"] = example_notes(seed=seed, exclude={note_key(r.note) for r in records})
    paths = {name: out / f"{name}.json" for name in payloads}
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, payload in payloads.items():
            # One record per line: a JSON list that still diffs line by line.
            lines = (json.dumps(item, ensure_ascii=False) for item in payload)
            paths[name].write_text("[\n" + ",\n".join(lines) + "\n]\n", encoding="utf-8")
    except OSError as error:
        raise VetLLMError(
            f"synthetic data: cannot write to folder {out.name!r} ({error.strerror}); "
            "choose a folder you can write to"
        ) from None
    counts = {f"n_{part}": len(rows) for part, rows in parts.items()}
    return {
        "style": style,
        "n_records": len(records),
        **counts,
        "n_example_notes": len(payloads["notes"]),
        "seed": seed,
        "files": {name: str(path) for name, path in paths.items()},
    }


def _check_dataset_arguments(val_fraction: object, test_fraction: object, style: object) -> None:
    problems = []
    if not isinstance(val_fraction, (int, float)) or not 0.0 < val_fraction < 1.0:
        problems.append(f"val_fraction must be a number between 0 and 1, got {val_fraction!r}")
    if not isinstance(test_fraction, (int, float)) or not 0.0 <= test_fraction < 1.0:
        problems.append(f"test_fraction must be a number from 0 to below 1, got {test_fraction!r}")
    elif isinstance(val_fraction, (int, float)) and val_fraction + test_fraction >= 1.0:
        problems.append(
            f"val_fraction + test_fraction must stay below 1, got {val_fraction + test_fraction}"
        )
    if style not in STYLES:
        problems.append(f"style must be one of {', '.join(STYLES)}, got {style!r}")
    if problems:
        raise VetLLMError("synthetic data: " + "; ".join(problems))


def bundled_examples() -> tuple[Path, Path]:
    """Paths of the packaged examples/train.json and examples/val.json."""
    return resources.bundled_examples(EXAMPLES_DIR)
