"""Package-generated veterinary text for training: a free-text note mix and a tokenizer corpus.

A model trained only on a user's template notes has never seen how vets write ("runny nose",
"T 105.8F", "diarrhoea") and a tokenizer trained on those notes alone shatters such words into
bytes. Two remedies, both generated here from the synthetic vocabulary (no source record):
- `synthetic_training_notes`: free-text notes for the diseases the user's training data holds
  (only those labels, so the model never learns a label the user did not give), mixed into
  training. Diseases are drawn in proportion to the square root of their training counts: rare
  diseases get relatively more examples than in the user's data (they are not swamped), common
  ones still more than rare ones (the prior is not turned upside down).
- `clinical_vocabulary_texts`: every sign phrase, synonym, finding, breed and disease name, so the
  tiny tokenizer learns whole clinical words even when the training notes lack them.
"""

from __future__ import annotations

import math
import random
from collections import Counter

from vetllm.catalogue import Catalogue, load_catalogue
from vetllm.data.records import Record, note_key
from vetllm.data.synth_vocab import BREEDS, CONTEXT_PHRASES, EXTRA_SIGNS, PROFILES, SIGNS

MIX_SEED_OFFSET = 7_919  # the mix's generator seed is the run seed plus this (not the data's)


def mixable_label_counts(records: list[Record], catalogue: Catalogue) -> Counter:
    """Training records per disease key, over labels the generator can write notes for."""
    counts: Counter = Counter()
    for record in records:
        for label in record.labels:
            disease = catalogue.by_label(label)
            if disease is not None and disease.key in PROFILES:
                counts[disease.key] += 1
    return counts


def synthetic_training_notes(
    records: list[Record], n: int, seed: int = 0, catalogue: Catalogue | None = None
) -> list[Record]:
    """`n` free-text notes for the diseases of `records`, square-root balanced (see above)."""
    from vetllm.data import synth_cases, synth_render

    catalogue = catalogue or load_catalogue()
    counts = mixable_label_counts(records, catalogue)
    if n <= 0 or not counts:
        return []
    rng = random.Random(seed + MIX_SEED_OFFSET)
    keys = sorted(counts)
    weights = [math.sqrt(counts[key]) for key in keys]
    mixed = []
    for disease_key in rng.choices(keys, weights=weights, k=n):
        case = synth_cases.sample_case(disease_key, rng)
        note = synth_render.render_free_text(case, rng)
        mixed.append(synth_cases.make_record(note, case, disease_key, catalogue, rng))
    return mixed


def clinical_vocabulary_texts(catalogue: Catalogue | None = None) -> list[str]:
    """Clinical words the tiny tokenizer should keep whole (one short text per entry)."""
    catalogue = catalogue or load_catalogue()
    texts = [phrase for template, wordings in SIGNS.values() for phrase in (template, *wordings)]
    texts += [finding for findings in EXTRA_SIGNS.values() for finding in findings]
    texts += list(CONTEXT_PHRASES)
    texts += [breed for breeds in BREEDS.values() for breed in breeds]
    for disease in catalogue.diseases:
        texts += [disease.name, *disease.variants]
    texts += ["cow", "buffalo", "sheep", "goat", "calf", "kid", "lamb", "ewe", "doe", "heifer"]
    # A leading space: inside a note a word follows a space, and byte-level BPE keeps that space
    # in the token ("Ġgoat"), so a bare "goat" would teach the wrong token.
    return [f" {text}" for text in texts] + [f" {text.lower()}" for text in texts]


def dedupe_by_note(records: list[Record]) -> list[Record]:
    """Each distinct note once (first spelling), labelled with its most common label set.

    Copies of a note carry no new information, only weight: 47 copies of one template note train
    the model 47 times as hard on it, and a note's minority labels (label noise) are learned as
    well. Ties between label sets go to the smallest set in sort order (as the baselines do).
    """
    groups: dict[str, list[Record]] = {}
    for record in records:
        groups.setdefault(note_key(record.note), []).append(record)
    kept = []
    for copies in groups.values():
        sets = Counter(tuple(sorted(set(r.labels))) for r in copies)
        labels = min(sets, key=lambda item: (-sets[item], item))
        first = next(r for r in copies if tuple(sorted(set(r.labels))) == labels)
        kept.append(first)
    return kept


def build_training_mix(
    records: list[Record],
    *,
    dedupe: bool,
    synthetic_notes: int,
    seed: int,
    catalogue: Catalogue | None = None,
) -> tuple[list[Record], dict]:
    """The records the model trains on, and a summary for the run card (what was changed).

    Validation never goes through here: synthetic notes stay out of it.
    """
    mixed = dedupe_by_note(records) if dedupe else list(records)
    synthetic = synthetic_training_notes(records, synthetic_notes, seed=seed, catalogue=catalogue)
    summary = {
        "user_records": len(records),
        "deduplicated_to": len(mixed) if dedupe else None,
        "synthetic_free_text_notes": len(synthetic),
        "synthetic_diseases": sorted(Counter(r.labels[0] for r in synthetic)),
    }
    if not synthetic and not dedupe:
        return mixed, summary
    # Synthetic notes interleaved (seeded) rather than appended: the Trainer shuffles anyway,
    # but the order must not depend on anything but the seed.
    combined = mixed + synthetic
    random.Random(seed).shuffle(combined)
    return combined, summary
