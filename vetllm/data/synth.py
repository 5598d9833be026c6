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
from dataclasses import dataclass
from pathlib import Path

from vetllm import resources
from vetllm.catalogue import Catalogue, load_catalogue
from vetllm.data.prompts import ALPACA
from vetllm.data.records import Record, note_key
from vetllm.data.split import split_by_note
from vetllm.data.synth_vocab import (
    ANIMAL_WORDS,
    BREEDS,
    CONTEXT_PHRASES,
    EXTRA_SIGNS,
    FEMALE_SIGNS,
    NONSPECIFIC_SIGNS,
    NORMAL_TEMP_F,
    PROFILES,
    SIGNS,
    TEMPLATES,
    YOUNG_WORDS,
)
from vetllm.errors import VetLLMError

# The packaged examples/ folder (vetllm.resources); tests point it elsewhere.
EXAMPLES_DIR = resources.EXAMPLES_DIR

# Share of notes given a confusable label. Template notes repeat, so their noise creates the
# conflicting duplicates that cap accuracy (source ceiling 94.6%); free-text notes are unique.
LABEL_NOISE_SHARE = {"template": 0.02, "free": 0.005}
NONSPECIFIC_SHARE = 0.10  # share of notes with one extra non-specific sign
MIN_SIGNS, MAX_SIGNS = 2, 5
MAX_RECORDS = 200_000  # ~75 MB of JSON; more is a typo, not a data set

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


@dataclass(frozen=True)
class ClinicalCase:
    """What a note is generated from: the true disease, the animal and its checklist signs."""

    disease_key: str
    species: str
    signs: tuple[str, ...]


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
    _check_arguments(n=n, seed=seed, free_text_share=free_text_share)
    rng = random.Random(seed)
    catalogue = load_catalogue()
    records = []
    for disease_key in _disease_sequence(n, rng):
        case = _sample_case(disease_key, rng)
        style_is_free = rng.random() < free_text_share
        note = render_free_text(case, rng) if style_is_free else render_template(case, rng)
        noise = LABEL_NOISE_SHARE["free" if style_is_free else "template"]
        recorded_key = _recorded_disease(disease_key, case.species, noise, rng)
        records.append(_make_record(note, case, recorded_key, catalogue, rng))
    return records


def _check_arguments(*, n: object, seed: object, free_text_share: object) -> None:
    problems = []
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_RECORDS:
        problems.append(f"n must be a whole number of records from 1 to {MAX_RECORDS}, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        problems.append(f"seed must be a whole number, got {seed!r}")
    if not isinstance(free_text_share, (int, float)) or not 0.0 <= free_text_share <= 1.0:
        problems.append(f"free_text_share must be a number from 0 to 1, got {free_text_share!r}")
    if problems:
        raise VetLLMError("synthetic data: " + "; ".join(problems))


def _disease_sequence(n: int, rng: random.Random) -> list[str]:
    """Disease keys in the source proportions (largest-remainder rounding), shuffled."""
    total = sum(p.weight for p in PROFILES.values())
    exact = {key: n * p.weight / total for key, p in PROFILES.items()}
    counts = {key: int(value) for key, value in exact.items()}
    by_remainder = sorted(exact, key=lambda key: (counts[key] - exact[key], key))
    for key in by_remainder[: n - sum(counts.values())]:
        counts[key] += 1
    sequence = [key for key in PROFILES for _ in range(counts[key])]
    rng.shuffle(sequence)
    return sequence


def _weighted_choice(options: tuple[tuple[str, float], ...], rng: random.Random) -> str:
    names = [name for name, _ in options]
    return rng.choices(names, weights=[share for _, share in options])[0]


def _sample_case(disease_key: str, rng: random.Random) -> ClinicalCase:
    """Species from the disease's mix; 2-5 signs, each drawn with its published share."""
    profile = PROFILES[disease_key]
    species = _weighted_choice(profile.species, rng)
    chosen = [name for name, share in profile.signs if rng.random() < share]
    wanted_min = min(MIN_SIGNS, len(profile.signs))
    while len(chosen) < wanted_min:
        remaining = tuple((s, w) for s, w in profile.signs if s not in chosen)
        chosen.append(_weighted_choice(remaining, rng))
    if len(chosen) > MAX_SIGNS:
        chosen = rng.sample(chosen, MAX_SIGNS)
    if rng.random() < NONSPECIFIC_SHARE:
        extra = [s for s in NONSPECIFIC_SIGNS if s not in chosen]
        chosen.append(rng.choice(extra))
    # Checklist order, as the source lists them; non-specific signs go last.
    order = {name: index for index, (name, _) in enumerate(profile.signs)}
    chosen.sort(key=lambda name: order.get(name, len(order)))
    return ClinicalCase(disease_key, species, tuple(chosen))


def _recorded_disease(true_key: str, species: str, noise: float, rng: random.Random) -> str:
    """The disease the recorder wrote: usually the true one, rarely a confusable one."""
    confusable = [
        key
        for key in PROFILES[true_key].confusable
        if species in {name for name, _ in PROFILES[key].species}
    ]
    if confusable and rng.random() < noise:
        return rng.choice(confusable)
    return true_key


def _make_record(
    note: str, case: ClinicalCase, recorded_key: str, catalogue: Catalogue, rng: random.Random
) -> Record:
    disease = next(d for d in catalogue.diseases if d.key == recorded_key)
    variant = _weighted_choice(PROFILES[recorded_key].variants, rng)
    return Record(
        note=note,
        labels=(disease.label,),
        species=case.species,
        disease=variant,
        extra={"symptoms": list(case.signs)},
    )


def needs_female(case: ClinicalCase) -> bool:
    """Whether the case's signs (milk, udder, abortion) say the animal is female."""
    return any(sign in FEMALE_SIGNS for sign in case.signs)


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
            case = _sample_case(disease_key, rng)
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


def write_synthetic_dataset(
    out_dir: str | Path, n: int = 1600, seed: int = 0, val_fraction: float = 0.15
) -> dict:
    """Generate `n` notes, split them by note text and write train.json, val.json, notes.json.

    Returns a summary: the paths written and the record counts.
    """
    if not isinstance(val_fraction, (int, float)) or not 0.0 < val_fraction < 1.0:
        raise VetLLMError(
            f"synthetic data: val_fraction must be a number between 0 and 1, got {val_fraction!r}"
        )
    records = generate_records(n=n, seed=seed)
    train, val = split_records(records, val_fraction=val_fraction, seed=seed)
    out = Path(out_dir)
    paths = {"train": out / "train.json", "val": out / "val.json", "notes": out / "notes.json"}
    generated_keys = {note_key(r.note) for r in records}
    payloads = {
        "train": records_to_source(train),
        "val": records_to_source(val),
        "notes": example_notes(seed=seed, exclude=generated_keys),
    }
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
    return {
        "n_records": len(records),
        "n_train": len(train),
        "n_val": len(val),
        "n_example_notes": len(payloads["notes"]),
        "seed": seed,
        "files": {name: str(path) for name, path in paths.items()},
    }


def bundled_examples() -> tuple[Path, Path]:
    """Paths of the packaged examples/train.json and examples/val.json."""
    return resources.bundled_examples(EXAMPLES_DIR)


# --- rendering: a case becomes note text -------------------------------------------------------


def join_and(items: list[str]) -> str:
    """'a', 'a and b', 'a, b, and c' (the source template's serial comma)."""
    if len(items) <= 2:
        return " and ".join(items)
    return ", ".join(items[:-1]) + ", and " + items[-1]


def render_template(case: ClinicalCase, rng: random.Random) -> str:
    """The source's template style: species, then the checklist phrases in checklist order."""
    template = _weighted_choice(TEMPLATES, rng)
    phrases = [SIGNS[sign][0] for sign in case.signs]
    return template.format(species=case.species.capitalize(), signs=join_and(phrases))


def render_free_text(case: ClinicalCase, rng: random.Random) -> str:
    """A note as a vet types it: animal, age, breed, vitals, synonyms, extra findings."""
    temperature = _temperature_text(case, rng)
    phrases = _free_sign_phrases(case, rng, temperature_shown=temperature is not None)
    vitals = [temperature] if temperature else []
    vitals += _other_vitals(case, rng)
    subject = _subject(case, rng)
    duration = rng.choice(
        ("", "", "since 2 days", "x3d", "for 4 days", "2 days back", "since 1 wk")
    )
    context = rng.choice(CONTEXT_PHRASES) if rng.random() < 0.3 else ""
    style = rng.randrange(5)
    if style == 0:
        parts = [subject, *vitals, *phrases, duration, context]
        note = ", ".join(p for p in parts if p)
    elif style == 1:
        note = f"{subject} presented with {join_and(phrases)} {duration}".strip() + "."
        note += f" O/E {', '.join(vitals)}." if vitals else ""
        note += f" {context.capitalize()}." if context else ""
    elif style == 2:
        history = ", ".join(p for p in (subject, context or "sick", duration) if p)
        note = f"Hx: {history}. O/E: {'; '.join(vitals + phrases)}."
    elif style == 3:
        note = f"Owner reports {subject} with {join_and(phrases)} {duration}".strip() + "."
        note += f" {', '.join(vitals)}." if vitals else ""
    else:
        first = f"{phrases[0]} {duration}".strip()
        note = f"{subject} c/o {first}" + "".join(f" + {p}" for p in phrases[1:])
        note += f"; {', '.join(vitals)}" if vitals else ""
    note = note[0].upper() + note[1:]
    return note.lower() if rng.random() < 0.15 else note


def _free_sign_phrases(case: ClinicalCase, rng: random.Random, temperature_shown: bool) -> list:
    phrases = []
    for sign in case.signs:
        # A vet who wrote "T 105.8F" often does not also write "fever".
        if sign in ("Fever", "Very High Fever") and temperature_shown and rng.random() < 0.6:
            continue
        phrases.append(rng.choice(SIGNS[sign][1]))
    extras = EXTRA_SIGNS.get(case.disease_key, ())
    wanted = rng.choices((0, 1, 2), weights=(0.25, 0.5, 0.25))[0]
    phrases += rng.sample(extras, min(wanted, len(extras)))
    if not phrases:
        phrases.append(rng.choice(SIGNS[case.signs[0]][1]))
    rng.shuffle(phrases)
    return phrases


def _temperature_text(case: ClinicalCase, rng: random.Random) -> str | None:
    """Rectal temperature consistent with the fever signs, in F or C, or None (not written)."""
    high = "Very High Fever" in case.signs
    fever = high or "Fever" in case.signs
    if rng.random() >= (0.75 if fever else 0.35):
        return None
    rise_f = rng.uniform(4.0, 5.2) if high else rng.uniform(2.2, 4.0) if fever else 0.0
    temp_f = NORMAL_TEMP_F[case.species] + rise_f + rng.uniform(-0.6, 0.7)
    if rng.random() < 0.55:
        form = rng.choice(("T {:.1f}F", "temp {:.1f}°F", "Temp: {:.1f} F", "T={:.1f}F"))
        return form.format(temp_f)
    form = rng.choice(("temp {:.1f}C", "T {:.1f}°C", "temp. {:.1f} C", "T={:.1f}C"))
    return form.format((temp_f - 32.0) * 5.0 / 9.0)


def _other_vitals(case: ClinicalCase, rng: random.Random) -> list[str]:
    """Respiratory and heart rate (per minute); raised when the signs say breathing is hard."""
    vitals = []
    breathless = {"Rapid breathing", "Difficulty In Breathing", "Breathing While Mouth Open"}
    if breathless & set(case.signs) and rng.random() < 0.6:
        vitals.append(f"RR {rng.randint(48, 90)}/min")
    elif rng.random() < 0.15:
        vitals.append(f"RR {rng.randint(18, 36)}")
    if rng.random() < 0.1:
        vitals.append(f"HR {rng.randint(70, 110)}")
    return vitals


def _subject(case: ClinicalCase, rng: random.Random) -> str:
    """'2 yr Beetal goat', 'Nili-Ravi buffalo, 6 yrs', 'ewe (Kajli), 3y' ..."""
    female_words, other_words = ANIMAL_WORDS[case.species]
    words = female_words if needs_female(case) else female_words + other_words
    # Black quarter strikes well-fed young cattle, 6-24 months old.
    young_bq = case.disease_key == "bq" and not needs_female(case) and rng.random() < 0.6
    if young_bq:
        words = YOUNG_WORDS[case.species]
    animal = rng.choice(words)
    if young_bq or animal in ("calf", "kid", "lamb", "buffalo calf"):
        age = rng.choice(("{} mo", "{} months", "{}m old")).format(rng.randint(4, 20))
    else:
        years = rng.randint(2, 10) if case.species in ("cow", "buffalo") else rng.randint(1, 5)
        plural = "s" if years > 1 else ""
        forms = ("{} yr", "{} yr" + plural, "{}y", "{} yo", "{} year" + plural + " old")
        age = rng.choice(forms).format(years)
    breed = rng.choice(BREEDS[case.species]) if rng.random() < 0.6 else ""
    form = rng.randrange(3)
    if form == 0:
        return " ".join(p for p in (age, breed, animal) if p)
    if form == 1:
        return f"{breed + ' ' if breed else ''}{animal}, {age}"
    return f"{animal} ({breed}), {age}" if breed else f"{animal}, {age}"
