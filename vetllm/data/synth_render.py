"""Rendering for the synthetic notes: a clinical case becomes template or free-text note text.

Template style copies the source's sentences around the checklist phrases in checklist order.
Free-text style writes what vets type: animal, age, breed, vitals consistent with the fever
signs (F or C), synonyms, abbreviations and findings outside the checklist. Every choice comes
from the `random.Random` the caller passes, so the output is deterministic for a seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from vetllm.data.synth_vocab import (
    ANIMAL_WORDS,
    BREEDS,
    CONTEXT_PHRASES,
    EXTRA_SIGNS,
    FEMALE_SIGNS,
    NORMAL_TEMP_F,
    SIGNS,
    TEMPLATES,
    YOUNG_WORDS,
)


@dataclass(frozen=True)
class ClinicalCase:
    """What a note is generated from: the true disease, the animal and its checklist signs."""

    disease_key: str
    species: str
    signs: tuple[str, ...]


def weighted_choice(options: tuple[tuple[str, float], ...], rng: random.Random) -> str:
    """One name of (name, share) options, drawn by share."""
    names = [name for name, _ in options]
    return rng.choices(names, weights=[share for _, share in options])[0]


def needs_female(case: ClinicalCase) -> bool:
    """Whether the case's signs (milk, udder, abortion) say the animal is female."""
    return any(sign in FEMALE_SIGNS for sign in case.signs)


def join_and(items: list[str]) -> str:
    """'a', 'a and b', 'a, b, and c' (the source template's serial comma)."""
    if len(items) <= 2:
        return " and ".join(items)
    return ", ".join(items[:-1]) + ", and " + items[-1]


def render_template(case: ClinicalCase, rng: random.Random) -> str:
    """The source's template style: species, then the checklist phrases in checklist order."""
    template = weighted_choice(TEMPLATES, rng)
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
