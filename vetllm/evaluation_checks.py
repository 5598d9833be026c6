"""Honest numbers beside an evaluation: distinct notes, grouped intervals, and warnings.

Record-level accuracy treats repeated notes as independent evidence; they are not. Source-like
data holds few distinct notes repeated many times (300 test records can be 88 notes, 8 of them
41% of the records), so here:
- accuracy over DISTINCT notes (each note counted once, as the mean verdict of its records),
  with a 95% interval from a bootstrap that resamples distinct notes;
- the record-level accuracy's interval from the same grouped bootstrap (wider than Wilson's
  when notes repeat);
- the difference between two answerers on the same records (the model and bag-of-words) with a
  PAIRED interval from the same grouped bootstrap: both are scored on each resampled note, so the
  interval is about their gap, not two separate intervals that happen to overlap;
- warnings: a few notes dominate the records; validation too small to choose anything; gold
  labels missing from training or with too few training records; the model does not clearly
  beat the bag-of-words baseline (below it, or the intervals overlap).
Pure Python (random.Random with a fixed seed): no torch.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Sequence

BOOTSTRAP_RESAMPLES = 1000
DOMINANT_TOP_SHARE = 0.1  # the most repeated 10% of distinct notes ...
DOMINANT_RECORD_SHARE = 0.3  # ... holding 30% of the records or more is "a few notes dominate"
MIN_DISTINCT_VALIDATION = 100  # fewer distinct notes: too few to choose a checkpoint/threshold
MIN_TRAIN_RECORDS = 10  # a label with fewer training records is barely learnable


def _quantile(sorted_values: list[float], q: float) -> float:
    position = q * (len(sorted_values) - 1)
    low = int(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def _note_totals(keys: Sequence[str], values: Sequence[int]) -> list[list[int]]:
    """[sum of the values, records] per distinct note key, in first-seen order."""
    groups: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for key, value in zip(keys, values, strict=True):
        groups[key][0] += value
        groups[key][1] += 1
    return list(groups.values())


def _per_record(totals: list[list[int]]) -> float:
    return sum(value for value, _ in totals) / sum(n for _, n in totals)


def _per_note(totals: list[list[int]]) -> float:
    return sum(value / n for value, n in totals) / len(totals)


def _bootstrap_intervals(totals, statistics, resamples: int, seed: int) -> list[list[float]]:
    """95% interval of each statistic over resamples of the distinct notes (with replacement);
    every statistic is computed on the same resamples."""
    rng = random.Random(seed)
    draws: list[list[float]] = [[] for _ in statistics]
    for _ in range(resamples):
        drawn = [totals[rng.randrange(len(totals))] for _ in totals]
        for values, statistic in zip(draws, statistics, strict=True):
            values.append(statistic(drawn))
    return [[_quantile(sorted(v), 0.025), _quantile(sorted(v), 0.975)] for v in draws]


def grouped_accuracy(
    keys: Sequence[str],
    correct: Sequence[bool],
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> dict:
    """Accuracy by record and by distinct note, each with a note-grouped bootstrap 95% interval.

    Args:
        keys: one note key per record (records with the same key are the same note).
        correct: one verdict per record.
    Returns:
        {"n_records", "n_distinct", "record_accuracy", "record_ci", "distinct_accuracy",
        "distinct_ci"}.
    """
    if len(keys) != len(correct):
        raise ValueError(f"grouped_accuracy: {len(keys)} keys but {len(correct)} verdicts")
    totals = _note_totals(keys, [int(bool(ok)) for ok in correct])  # [right, records] per note
    if not totals:
        return {"n_records": 0, "n_distinct": 0}
    record_ci, distinct_ci = _bootstrap_intervals(totals, (_per_record, _per_note), resamples, seed)
    return {
        "n_records": len(keys),
        "n_distinct": len(totals),
        "record_accuracy": _per_record(totals),
        "record_ci": record_ci,
        "distinct_accuracy": _per_note(totals),
        "distinct_ci": distinct_ci,
    }


def paired_gap(
    keys: Sequence[str],
    correct: Sequence[bool],
    other_correct: Sequence[bool],
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> dict:
    """Record accuracy of `correct` minus that of `other_correct` (the same records), with a
    95% interval from a bootstrap resampling distinct notes; {"gap", "ci"}."""
    if not len(keys) == len(correct) == len(other_correct):
        raise ValueError(
            f"paired_gap: {len(keys)} keys, {len(correct)} and {len(other_correct)} verdicts"
        )
    if not keys:
        return {"gap": 0.0, "ci": [0.0, 0.0]}
    pairs = zip(correct, other_correct, strict=True)
    differences = [bool(ok) - bool(other) for ok, other in pairs]
    totals = _note_totals(keys, differences)  # [right minus other's right, records] per note
    (ci,) = _bootstrap_intervals(totals, (_per_record,), resamples, seed)
    return {"gap": _per_record(totals), "ci": ci}


def dominance_warning(keys: Sequence[str]) -> str | None:
    """A warning when the most repeated tenth of the distinct notes holds 30%+ of the records."""
    counts = sorted(Counter(keys).values(), reverse=True)
    if len(counts) < 2:
        return None
    top = max(1, round(DOMINANT_TOP_SHARE * len(counts)))
    share = sum(counts[:top]) / len(keys)
    if share < DOMINANT_RECORD_SHARE:
        return None
    return (
        f"{top} of {len(counts)} distinct notes make up {share:.0%} of the {len(keys)} records: "
        f"a few repeated notes dominate this score (one note repeated {counts[0]} times moves "
        f"accuracy by {counts[0] / len(keys):.1%}); read the accuracy over distinct notes"
    )


def small_validation_warning(n_distinct: int, purpose: str = "choose anything") -> str | None:
    """A warning when validation holds fewer than MIN_DISTINCT_VALIDATION distinct notes."""
    if n_distinct >= MIN_DISTINCT_VALIDATION:
        return None
    return (
        f"validation holds only {n_distinct} distinct notes (under {MIN_DISTINCT_VALIDATION}): "
        f"too few to {purpose} reliably; prefer cross-validation grouped by note text"
    )


def label_support_warnings(
    eval_labels: Sequence[Sequence[str]], train_labels: Sequence[Sequence[str]]
) -> list[str]:
    """Warnings for gold labels missing from training or with < MIN_TRAIN_RECORDS records."""
    train_counts = Counter(label for labels in train_labels for label in set(labels))
    eval_counts = Counter(label for labels in eval_labels for label in set(labels))
    missing = sorted(label for label in eval_counts if not train_counts[label])
    rare = sorted(label for label in eval_counts if 0 < train_counts[label] < MIN_TRAIN_RECORDS)
    warnings = []
    if missing:
        records = sum(eval_counts[label] for label in missing)
        warnings.append(
            f"labels {', '.join(missing)} ({records} evaluated records) never occur in the "
            "training data: the model cannot have learned them"
        )
    if rare:
        detail = ", ".join(f"{label} ({train_counts[label]})" for label in rare)
        warnings.append(
            f"labels with under {MIN_TRAIN_RECORDS} training records: {detail}; their scores "
            "rest on almost nothing"
        )
    return warnings


def baseline_verdict(model_accuracy: float, model_ci: Sequence[float], baseline: dict) -> dict:
    """Whether the model clearly beats the bag-of-words baseline, and a plain sentence saying so.

    "Clearly" means above it with non-overlapping 95% intervals; below it, or overlapping
    intervals, is reported as not beating it.
    """
    accuracy, ci = baseline["accuracy"], baseline["ci"]
    above = model_accuracy > accuracy
    separated = model_ci[0] > ci[1]
    if above and separated:
        sentence = (
            f"The model ({model_accuracy:.1%}) beats the bag-of-words baseline ({accuracy:.1%}); "
            "their 95% intervals do not overlap."
        )
    elif above:
        sentence = (
            f"The model does not clearly beat bag-of-words: {model_accuracy:.1%} vs "
            f"{accuracy:.1%}, and their 95% intervals overlap, so the difference may be chance."
        )
    else:
        sentence = (
            f"The model does not beat bag-of-words: {model_accuracy:.1%} vs {accuracy:.1%}. A "
            "simple word-count classifier does as well or better on these notes."
        )
    return {"beats_bag_of_words": above and separated, "sentence": sentence}
