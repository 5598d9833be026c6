"""A synthetic data set with the real source's *shape*: few template notes, many copies, noise.

The real source set (DOMAIN.md section 1) holds 1,602 records but only 444 distinct note texts
(one repeated 47 times), and 45 of those texts (~10%) carry conflicting labels: the best any
model can do is ~94%. The bundled examples are easier (mostly unique notes, 1% conflicts) and hide
the gap between a from-scratch model and bag-of-words, so `generate_source_like` reproduces that
shape for benchmarks: template-style notes only, each disease's share of records as in the
source, distinct notes per disease in the source's ratio, copies per note heavy-tailed (a few notes
20-47 times, most once or twice), and ~10% of repeated notes relabelled in part to a confusable
disease (CCPP for PPR ...). Two diseases can also write the very same note (PPR and CCPP share
their signs), which makes a natural conflict, as in the real data.

Deterministic for a seed, like everything in `vetllm.data.synth`.
"""

from __future__ import annotations

import random
from collections import Counter

from vetllm.catalogue import load_catalogue
from vetllm.data.records import Record, note_key
from vetllm.data.synth_vocab import PROFILES

DISTINCT_SHARE = 444 / 1602  # distinct note texts per record in the source set
CONFLICT_SHARE = 45 / 444  # share of distinct notes with conflicting labels in the source set
MAX_COPIES = 47  # the most-repeated source note
COPIES_TAIL = 1.3  # Pareto shape of the copies-per-note weights (smaller: heavier tail)
_ATTEMPTS_PER_NOTE = 40  # a rare disease with two signs has only a few distinct notes


def generate_source_like(n: int = 1600, seed: int = 0) -> list[Record]:
    """`n` template-style records shaped like the source set (see the module docstring)."""
    from vetllm.data import synth_cases, synth_render

    synth_cases.check_arguments(n=n, seed=seed, free_text_share=0.0)
    rng = random.Random(seed)
    rows_per_disease = Counter(synth_cases.disease_sequence(n, rng))
    notes: dict[
        str, tuple[str, synth_render.ClinicalCase]
    ] = {}  # note_key -> (note, its first case)
    rows: list[tuple[str, str]] = []  # (note_key, disease key) per record
    for disease_key in PROFILES:
        n_rows = rows_per_disease.get(disease_key, 0)
        if not n_rows:
            continue
        own = _distinct_notes(disease_key, max(1, round(n_rows * DISTINCT_SHARE)), rng)
        for key, (note, case) in own.items():
            notes.setdefault(key, (note, case))
        copies = _copies_per_note(n_rows, len(own), rng)
        rows += [
            (key, disease_key) for key, count in zip(own, copies, strict=True) for _ in range(count)
        ]
    rows = _add_label_noise(rows, notes, rng)
    rng.shuffle(rows)
    catalogue = load_catalogue()
    return [
        synth_cases.make_record(notes[key][0], notes[key][1], disease_key, catalogue, rng)
        for key, disease_key in rows
    ]


def _distinct_notes(disease_key: str, wanted: int, rng: random.Random) -> dict:
    """Up to `wanted` different template notes of one disease (fewer when its signs run out)."""
    from vetllm.data import synth_cases, synth_render

    found: dict[str, tuple[str, synth_render.ClinicalCase]] = {}
    for _attempt in range(wanted * _ATTEMPTS_PER_NOTE):
        if len(found) >= wanted:
            break
        case = synth_cases.sample_case(disease_key, rng)
        note = synth_render.render_template(case, rng)
        found.setdefault(note_key(note), (note, case))
    return found


def _copies_per_note(n_rows: int, n_notes: int, rng: random.Random) -> list[int]:
    """Copies of each note: at least one each, the rest heavy-tailed, none above MAX_COPIES."""
    copies = [1] * n_notes
    weights = [rng.paretovariate(COPIES_TAIL) for _ in range(n_notes)]
    for _ in range(n_rows - n_notes):
        open_notes = [i for i in range(n_notes) if copies[i] < MAX_COPIES]
        if not open_notes:  # every note full: a tiny disease with few notes takes the rest
            open_notes = list(range(n_notes))
        index = rng.choices(open_notes, weights=[weights[i] for i in open_notes])[0]
        copies[index] += 1
    return copies


def _add_label_noise(rows: list[tuple[str, str]], notes: dict, rng: random.Random) -> list:
    """Relabel part of the copies of repeated notes until ~CONFLICT_SHARE of notes conflict."""
    by_note: dict[str, list[int]] = {}
    for index, (key, _) in enumerate(rows):
        by_note.setdefault(key, []).append(index)
    conflicting = {key for key, idx in by_note.items() if len({rows[i][1] for i in idx}) > 1}
    target = round(CONFLICT_SHARE * len(by_note))
    candidates = sorted(key for key, idx in by_note.items() if len(idx) >= 2)
    rng.shuffle(candidates)
    rows = list(rows)
    for key in candidates:
        if len(conflicting) >= target:
            break
        species = notes[key][1].species
        true_key = rows[by_note[key][0]][1]
        options = [
            other
            for other in PROFILES[true_key].confusable
            if species in {name for name, _ in PROFILES[other].species}
        ]
        if key in conflicting or not options:
            continue
        indices = by_note[key]
        # A minority of the copies gets the other label: the majority label stays the true one.
        n_wrong = max(1, round(len(indices) * rng.uniform(0.25, 0.5)))
        for index in rng.sample(indices, min(n_wrong, len(indices) - 1)):
            rows[index] = (key, rng.choice(options))
        conflicting.add(key)
    return rows
