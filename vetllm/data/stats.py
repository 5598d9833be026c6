"""Data set statistics a researcher needs before training: duplicates, label noise, baselines.

Notes are grouped by `note_key` (case and whitespace folded). From the groups follow the number
of unique notes, the most repeated notes, notes whose copies carry different label sets, and the
accuracy ceiling those conflicts imply: the share of records a model gets right if it answers
every note with that note's most common label set (no model can do better on this data). The
majority baseline is the share of the most common label set over all records.
"""

from __future__ import annotations

import html
import re
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass

from vetllm.catalogue import Catalogue, load_catalogue
from vetllm.data.records import Record, note_key
from vetllm.errors import VetLLMError

_PREVIEW_CHARS = 100  # note text shown in reports; whole notes can be long and sensitive
_TOP_N = 10


@dataclass
class DatasetStats:
    """Counts and shares over a list of records; `to_dict()` is JSON-ready."""

    n_records: int
    n_unique_notes: int
    n_duplicate_records: int  # records whose note text already appeared earlier
    duplicates: list[dict]  # most repeated notes: note (preview), count, label_sets
    n_conflicting_notes: int
    conflicts: list[dict]  # notes with different label sets: note, count, label_sets
    accuracy_ceiling: float
    label_counts: dict[str, int]  # label -> records carrying it
    label_names: dict[str, str]
    species_counts: dict[str, int]
    uncoded_labels: list[dict]  # labels with no SNOMED code: label, name, count
    invalid_sctid_labels: list[dict]  # label, name, count, reason, suggested_code
    majority_baseline: dict  # labels, count, share
    n_multi_label_records: int
    catalogue_version: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    def to_markdown(self) -> str:
        return _markdown(self)


def dataset_stats(records: list[Record], catalogue: Catalogue | None = None) -> DatasetStats:
    """Statistics over `records` (labels are catalogue labels, as the loader produces)."""
    if not records:
        raise VetLLMError("dataset statistics: got 0 records; load a data file with records first")
    catalogue = catalogue or load_catalogue()
    groups: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        groups[note_key(record.note)].append(record)
    label_sets = Counter(_label_set(r) for r in records)
    majority_set, majority_count = label_sets.most_common(1)[0]
    ceiling_hits = sum(
        Counter(_label_set(r) for r in g).most_common(1)[0][1] for g in groups.values()
    )
    label_counts = Counter(label for r in records for label in dict.fromkeys(r.labels))
    repeated = sorted((g for g in groups.values() if len(g) > 1), key=len, reverse=True)
    conflicting = [g for g in groups.values() if len({_label_set(r) for r in g}) > 1]
    conflicting.sort(key=len, reverse=True)
    return DatasetStats(
        n_records=len(records),
        n_unique_notes=len(groups),
        n_duplicate_records=len(records) - len(groups),
        duplicates=[_group_summary(g) for g in repeated[:_TOP_N]],
        n_conflicting_notes=len(conflicting),
        conflicts=[_group_summary(g) for g in conflicting[:_TOP_N]],
        accuracy_ceiling=ceiling_hits / len(records),
        label_counts=dict(label_counts.most_common()),
        label_names={label: _name(label, catalogue) for label in label_counts},
        species_counts=dict(Counter(r.species or "unknown" for r in records).most_common()),
        uncoded_labels=_uncoded(label_counts, catalogue),
        invalid_sctid_labels=_invalid_codes(label_counts, catalogue),
        majority_baseline={
            "labels": list(majority_set),
            "count": majority_count,
            "share": majority_count / len(records),
            "accuracy": majority_count / len(records),  # same number, the name metrics use
        },
        n_multi_label_records=sum(1 for r in records if len(set(r.labels)) > 1),
        catalogue_version=catalogue.version,
    )


def _label_set(record: Record) -> tuple[str, ...]:
    return tuple(sorted(set(record.labels)))


def _preview(note: str) -> str:
    text = " ".join(note.split())
    return text if len(text) <= _PREVIEW_CHARS else text[: _PREVIEW_CHARS - 1] + "…"


def _group_summary(group: list[Record]) -> dict:
    sets = Counter(_label_set(r) for r in group)
    return {
        "note": _preview(group[0].note),
        "count": len(group),
        "label_sets": [{"labels": list(s), "count": n} for s, n in sets.most_common()],
    }


def _name(label: str, catalogue: Catalogue) -> str:
    disease = catalogue.by_label(label)
    return disease.name if disease else label


def _uncoded(label_counts: Counter, catalogue: Catalogue) -> list[dict]:
    out = []
    for label, count in label_counts.most_common():
        disease = catalogue.by_label(label)
        if disease is None or disease.code is None:
            out.append({"label": label, "name": _name(label, catalogue), "count": count})
    return out


def _invalid_codes(label_counts: Counter, catalogue: Catalogue) -> list[dict]:
    out = []
    for label, count in label_counts.most_common():
        disease = catalogue.by_label(label)
        check = disease.sctid if disease else None
        if check is not None and not check.valid:
            out.append(
                {
                    "label": label,
                    "name": disease.name,
                    "count": count,
                    "reason": check.reason,
                    "suggested_code": disease.suggested_code,
                }
            )
    return out


def _pct(share: float) -> str:
    return f"{100 * share:.1f}%"


def _md_text(text: object) -> str:
    """User text made inert in Markdown: no links, images, HTML or broken table cells."""
    escaped = html.escape(str(text), quote=False)  # <img ...> shows as text, never as HTML
    return re.sub(r"([\\`*_\[\]!|#~])", r"\\\1", escaped).replace("\n", " ")


def _markdown(stats: DatasetStats) -> str:
    n = stats.n_records
    lines = [
        "## Data set statistics",
        "",
        f"- Records: **{n:,}**; unique note texts: **{stats.n_unique_notes:,}** "
        f"({stats.n_duplicate_records:,} records repeat an earlier note)",
        f"- Notes with conflicting labels: **{stats.n_conflicting_notes}**; accuracy ceiling "
        f"(majority label set per note): **{_pct(stats.accuracy_ceiling)}**",
        f"- Majority baseline (always `{', '.join(stats.majority_baseline['labels'])}`): "
        f"**{_pct(stats.majority_baseline['share'])}**",
        f"- Records with more than one label: {stats.n_multi_label_records:,}",
        "",
        "### Labels",
        "",
        "| label | disease | records | share |",
        "|---|---|---:|---:|",
    ]
    for label, count in stats.label_counts.items():
        lines.append(
            f"| `{label}` | {_md_text(stats.label_names.get(label, label))} | {count} "
            f"| {_pct(count / n)} |"
        )
    lines += ["", "### Species", "", "| species | records |", "|---|---:|"]
    lines += [f"| {_md_text(s)} | {c} |" for s, c in stats.species_counts.items()]
    lines += _markdown_code_warnings(stats)
    lines += _markdown_groups("Most repeated notes", stats.duplicates)
    lines += _markdown_groups("Notes with conflicting labels", stats.conflicts)
    return "\n".join(lines) + "\n"


def _markdown_code_warnings(stats: DatasetStats) -> list[str]:
    lines = []
    if stats.uncoded_labels:
        lines += ["", "### Labels without a SNOMED code", ""]
        lines += [
            f"- `{u['label']}` ({u['name']}): {u['count']} records" for u in stats.uncoded_labels
        ]
    if stats.invalid_sctid_labels:
        lines += ["", "### Codes that are not valid SCTIDs", ""]
        for item in stats.invalid_sctid_labels:
            hint = f"; suggested: {item['suggested_code']}" if item["suggested_code"] else ""
            lines.append(
                f"- `{item['label']}` ({item['name']}, {item['count']} records): "
                f"{item['reason']}{hint}"
            )
    return lines


def _markdown_groups(title: str, groups: list[dict]) -> list[str]:
    if not groups:
        return []
    lines = ["", f"### {title}", "", "| copies | labels | note |", "|---:|---|---|"]
    for group in groups:
        sets = "; ".join(f"{', '.join(s['labels'])} ×{s['count']}" for s in group["label_sets"])
        lines.append(f"| {group['count']} | {sets} | {_md_text(group['note'])} |")
    return lines
