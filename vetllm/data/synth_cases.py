"""Clinical cases for the synthetic notes: diseases in the source proportions, their signs, and
the record a case becomes (the recorded disease may be a confusable one: label noise).

Shared by the generators in synth.py, synth_source.py and synth_mix.py; no note text here (that
is synth_render.py).
"""

from __future__ import annotations

import random

from vetllm.catalogue import Catalogue
from vetllm.data.records import Record
from vetllm.data.synth_render import ClinicalCase, weighted_choice
from vetllm.data.synth_vocab import NONSPECIFIC_SIGNS, PROFILES
from vetllm.errors import VetLLMError

# Share of notes given a confusable label. Template notes repeat, so their noise creates the
# conflicting duplicates that cap accuracy (source ceiling 94.6%); free-text notes are unique.
LABEL_NOISE_SHARE = {"template": 0.02, "free": 0.005}
NONSPECIFIC_SHARE = 0.10  # share of notes with one extra non-specific sign
MIN_SIGNS, MAX_SIGNS = 2, 5
MAX_RECORDS = 200_000  # ~75 MB of JSON; more is a typo, not a data set


def check_arguments(*, n: object, seed: object, free_text_share: object) -> None:
    problems = []
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_RECORDS:
        problems.append(f"n must be a whole number of records from 1 to {MAX_RECORDS}, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        problems.append(f"seed must be a whole number, got {seed!r}")
    if not isinstance(free_text_share, (int, float)) or not 0.0 <= free_text_share <= 1.0:
        problems.append(f"free_text_share must be a number from 0 to 1, got {free_text_share!r}")
    if problems:
        raise VetLLMError("synthetic data: " + "; ".join(problems))


def disease_sequence(n: int, rng: random.Random) -> list[str]:
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


def sample_case(disease_key: str, rng: random.Random) -> ClinicalCase:
    """Species from the disease's mix; 2-5 signs, each drawn with its published share."""
    profile = PROFILES[disease_key]
    species = weighted_choice(profile.species, rng)
    chosen = [name for name, share in profile.signs if rng.random() < share]
    wanted_min = min(MIN_SIGNS, len(profile.signs))
    while len(chosen) < wanted_min:
        remaining = tuple((s, w) for s, w in profile.signs if s not in chosen)
        chosen.append(weighted_choice(remaining, rng))
    if len(chosen) > MAX_SIGNS:
        chosen = rng.sample(chosen, MAX_SIGNS)
    if rng.random() < NONSPECIFIC_SHARE:
        extra = [s for s in NONSPECIFIC_SIGNS if s not in chosen]
        chosen.append(rng.choice(extra))
    # Checklist order, as the source lists them; non-specific signs go last.
    order = {name: index for index, (name, _) in enumerate(profile.signs)}
    chosen.sort(key=lambda name: order.get(name, len(order)))
    return ClinicalCase(disease_key, species, tuple(chosen))


def recorded_disease(true_key: str, species: str, noise: float, rng: random.Random) -> str:
    """The disease the recorder wrote: usually the true one, rarely a confusable one."""
    confusable = [
        key
        for key in PROFILES[true_key].confusable
        if species in {name for name, _ in PROFILES[key].species}
    ]
    if confusable and rng.random() < noise:
        return rng.choice(confusable)
    return true_key


def make_record(
    note: str, case: ClinicalCase, recorded_key: str, catalogue: Catalogue, rng: random.Random
) -> Record:
    disease = next(d for d in catalogue.diseases if d.key == recorded_key)
    variant = weighted_choice(PROFILES[recorded_key].variants, rng)
    return Record(
        note=note,
        labels=(disease.label,),
        species=case.species,
        disease=variant,
        extra={"symptoms": list(case.signs)},
    )
