"""Leak-free train/val/test splits grouped by note text, and a leakage report for given splits.

Every copy of a note (grouped by `note_key`) lands in the same part, so no test note is seen in
training: the source data has 1,602 records but only 444 unique notes, and a random record split
puts most test notes verbatim in training. Groups are ordered by their majority label set, then
shuffled within it by the seed, and dealt to the parts by systematic sampling, so each label's
notes spread over the parts in proportion (rare diseases still reach validation). Fractions count
unique notes, not records.
"""

from __future__ import annotations

import os
import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from vetllm.data.prompts import ALPACA, PromptTemplate
from vetllm.data.records import Record, note_key
from vetllm.data.writing import write_records
from vetllm.errors import VetLLMError

PARTS = ("train", "val", "test")
_PREVIEW_CHARS = 100


@dataclass
class DataSplit:
    """The three parts (test may be empty) and how they were made."""

    train: list[Record]
    val: list[Record]
    test: list[Record]
    seed: int = 0
    val_fraction: float = 0.15
    test_fraction: float = 0.0

    def parts(self) -> dict[str, list[Record]]:
        return {"train": self.train, "val": self.val, "test": self.test}

    def to_dict(self) -> dict:
        seen_labels = {label for r in self.train for label in r.labels}
        out = {
            "seed": self.seed,
            "val_fraction": self.val_fraction,
            "test_fraction": self.test_fraction,
        }
        for part, records in self.parts().items():
            unseen = sorted({label for r in records for label in r.labels} - seen_labels)
            out[part] = {
                "records": len(records),
                "unique_notes": len({note_key(r.note) for r in records}),
                "labels_not_in_train": unseen,
            }
        for part in ("val", "test"):
            out[part]["leakage"] = leakage_report(self.train, self.parts()[part]).share_leaked
        return out


def split_by_note(
    records: list[Record], val_fraction: float = 0.15, test_fraction: float = 0.0, seed: int = 0
) -> DataSplit:
    """Split records so that no note text occurs in two parts; deterministic for a seed.

    Args:
        val_fraction, test_fraction: shares of the unique notes for validation and test.
        seed: the same records and seed always give the same split, whatever their order.
    """
    _check_fractions(val_fraction, test_fraction)
    groups: dict[str, list[int]] = defaultdict(list)
    for index, record in enumerate(records):
        groups[note_key(record.note)].append(index)
    if len(groups) < 2 and val_fraction + test_fraction > 0:
        raise VetLLMError(
            f"split: the data has {len(groups)} unique note text(s); a split needs at least 2"
        )
    fractions = {
        "test": test_fraction,
        "val": val_fraction,
        "train": 1 - val_fraction - test_fraction,
    }
    assignment = _deal_groups(_ordered_groups(groups, records, seed), fractions, seed)
    parts: dict[str, list[int]] = {part: [] for part in PARTS}
    for key, part in assignment.items():
        parts[part].extend(groups[key])
    chosen = {part: [records[i] for i in sorted(indices)] for part, indices in parts.items()}
    return DataSplit(
        chosen["train"], chosen["val"], chosen["test"], seed, val_fraction, test_fraction
    )


def _check_fractions(val_fraction: float, test_fraction: float) -> None:
    problems = []
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not isinstance(value, (int, float)) or not 0 <= value < 1:
            problems.append(f"{name}: got {value!r}; use a share from 0 to below 1 (e.g. 0.15)")
    if not problems and val_fraction + test_fraction >= 1:
        problems.append(
            f"val_fraction + test_fraction = {val_fraction + test_fraction:g}; it must stay below "
            "1 so training keeps some notes"
        )
    if problems:
        raise VetLLMError("split: " + "; ".join(problems))


def _ordered_groups(groups: dict[str, list[int]], records: list[Record], seed: int) -> list[str]:
    """Note keys ordered by majority label set, shuffled by seed within each label set."""
    keys = sorted(groups)  # independent of the input order
    random.Random(seed).shuffle(keys)
    rank = {key: position for position, key in enumerate(keys)}

    def majority(key: str) -> tuple[str, ...]:
        sets = Counter(tuple(sorted(set(records[i].labels))) for i in groups[key])
        # ties broken by the labels themselves, not by input order
        return min(sets, key=lambda labels: (-sets[labels], labels))

    return sorted(keys, key=lambda key: (majority(key), rank[key]))


def _deal_groups(ordered: list[str], fractions: dict[str, float], seed: int) -> dict[str, str]:
    """Systematic sampling: each group goes to the part furthest below its target share."""
    phase = random.Random(seed + 1).random()  # where in the cycle the first group falls
    assigned = dict.fromkeys(fractions, 0)
    assignment = {}
    for position, key in enumerate(ordered):
        deficit = {p: f * (position + 1 + phase) - assigned[p] for p, f in fractions.items()}
        part = max(deficit, key=deficit.get)
        assigned[part] += 1
        assignment[key] = part
    for part in ("val", "test"):  # a requested part must not end empty on tiny data
        if fractions[part] > 0 and assigned[part] == 0:
            donor = next(k for k in reversed(ordered) if assignment[k] == "train")
            if assigned["train"] < 2:
                raise VetLLMError(
                    f"split: too few unique notes ({len(ordered)}) for the {part} part"
                )
            assignment[donor] = part
            assigned["train"] -= 1
            assigned[part] += 1
    return assignment


@dataclass
class LeakageReport:
    """How much of `other` (val or test) occurs verbatim (after normalising) in training."""

    n_other_records: int
    n_other_notes: int
    n_leaked_records: int
    n_leaked_notes: int
    share_leaked: float  # share of other's records whose note text is also in train
    share_leaked_notes: float  # share of other's unique note texts also in train
    examples: list[dict]

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    def to_text(self) -> str:
        lines = [
            f"leakage: {100 * self.share_leaked:.1f}% of records "
            f"({self.n_leaked_records:,} of {self.n_other_records:,}) and "
            f"{100 * self.share_leaked_notes:.1f}% of unique notes "
            f"({self.n_leaked_notes:,} of {self.n_other_notes:,}) also occur in train"
        ]
        for example in self.examples:
            lines.append(
                f"  {example['count_in_other']}x here, {example['count_in_train']}x in train: "
                f"{example['note']}"
            )
        return "\n".join(lines)


def leakage_report(
    train: list[Record], other: list[Record], max_examples: int = 5
) -> LeakageReport:
    """Which notes of `other` also occur in `train` (grouped by `note_key`)."""
    train_counts = Counter(note_key(r.note) for r in train)
    other_counts = Counter(note_key(r.note) for r in other)
    preview = {note_key(r.note): r.note for r in other}
    leaked = [key for key in other_counts if key in train_counts]
    leaked.sort(key=lambda key: other_counts[key], reverse=True)
    leaked_records = sum(other_counts[key] for key in leaked)
    examples = [
        {
            "note": _preview(preview[key]),
            "count_in_other": other_counts[key],
            "count_in_train": train_counts[key],
        }
        for key in leaked[:max_examples]
    ]
    return LeakageReport(
        n_other_records=len(other),
        n_other_notes=len(other_counts),
        n_leaked_records=leaked_records,
        n_leaked_notes=len(leaked),
        share_leaked=leaked_records / len(other) if other else 0.0,
        share_leaked_notes=len(leaked) / len(other_counts) if other_counts else 0.0,
        examples=examples,
    )


def _preview(note: str) -> str:
    text = " ".join(note.split())
    return text if len(text) <= _PREVIEW_CHARS else text[: _PREVIEW_CHARS - 1] + "…"


def write_split(
    split: DataSplit, out_dir: str | os.PathLike, template: PromptTemplate = ALPACA
) -> dict[str, Path]:
    """Write train.json, val.json (and test.json when not empty) in the source format."""
    out_dir = Path(out_dir)
    written = {}
    for part, records in split.parts().items():
        if records or part != "test":
            written[part] = write_records(records, out_dir / f"{part}.json", template)
    return written
