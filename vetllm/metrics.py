"""Scores for predicted codes: strict and lenient accuracy, F1, Wilson intervals, confusion.

Strict accuracy counts an answer only when its span is already a clean list of catalogue labels
(`PostprocessResult.strict_codes`) and that set equals the gold set; lenient accuracy compares
the post-processed set. The gap between them is exactly what post-processing repaired, so both
are always reported, each with a 95% Wilson interval (the seed's "0% strict, 40-43% lenient"
on 160 notes spans several points either way). F1 is computed over catalogue labels only:
unknown digit strings lower strict accuracy and the format-valid rate, not F1.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from vetllm.catalogue import Catalogue, load_catalogue
from vetllm.errors import DataError, Problem, VetLLMError
from vetllm.postprocess import PostprocessResult, postprocess
from vetllm.sctid import check_sctid

NO_PREDICTION = "(none)"
SEVERAL_LABELS = "(multiple)"
OUTPUT_FIELDS = ("output", "raw_output")
GOLD_FIELDS = ("snomed_codes", "labels", "gold")


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a proportion; (0.0, 1.0) when n is 0 (nothing is known)."""
    if n < 0 or not 0 <= successes <= n:
        raise VetLLMError(f"wilson_interval: need 0 <= successes <= n, got {successes} of {n}")
    if n == 0:
        return (0.0, 1.0)
    share = successes / n
    denominator = 1 + z * z / n
    centre = (share + z * z / (2 * n)) / denominator
    half = z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass(frozen=True)
class ItemOutcome:
    """One scored prediction."""

    gold: list[str]
    result: PostprocessResult
    strict_correct: bool
    lenient_correct: bool

    def to_dict(self) -> dict:
        return {
            "gold": self.gold,
            "codes": self.result.codes,
            "strict_correct": self.strict_correct,
            "lenient_correct": self.lenient_correct,
            "format_valid": self.result.format_valid,
            "unknown_codes": self.result.unknown_codes,
            "repairs": self.result.repairs,
        }


@dataclass(frozen=True)
class Scores:
    """All scores of one prediction set; `to_dict()` is what gets written and shown."""

    n: int
    strict_correct: int
    lenient_correct: int
    format_valid: int
    micro_precision: float
    micro_recall: float
    micro_f1: float
    macro_f1: float
    per_code: list[dict]
    confusion: dict
    outcomes: list[ItemOutcome] = field(default_factory=list, repr=False)

    @property
    def strict_accuracy(self) -> float:
        return self.strict_correct / self.n if self.n else 0.0

    @property
    def lenient_accuracy(self) -> float:
        return self.lenient_correct / self.n if self.n else 0.0

    @property
    def format_valid_rate(self) -> float:
        return self.format_valid / self.n if self.n else 0.0

    def to_dict(self, include_items: bool = False) -> dict:
        out = {
            "n": self.n,
            "strict_accuracy": self.strict_accuracy,
            "lenient_accuracy": self.lenient_accuracy,
            "format_valid_rate": self.format_valid_rate,
            "strict_correct": self.strict_correct,
            "lenient_correct": self.lenient_correct,
            "format_valid": self.format_valid,
            "strict_ci": list(wilson_interval(self.strict_correct, self.n)),
            "lenient_ci": list(wilson_interval(self.lenient_correct, self.n)),
            "micro_precision": self.micro_precision,
            "micro_recall": self.micro_recall,
            "micro_f1": self.micro_f1,
            "macro_f1": self.macro_f1,
            "per_code": self.per_code,
            "confusion": self.confusion,
        }
        if include_items:
            out["items"] = [outcome.to_dict() for outcome in self.outcomes]
        return out

    def to_markdown(self) -> str:
        """A readable summary and per-code table (also what `vetllm score` prints)."""
        return format_scores_markdown(self.to_dict())


def score_predictions(
    items: list[tuple[str, list[str]]], catalogue: Catalogue | None = None
) -> Scores:
    """Score (raw_output, gold_labels) pairs; see the module docstring for the definitions."""
    catalogue = catalogue or load_catalogue()
    pairs = _validated_items(items)
    outcomes = []
    for raw_output, gold in pairs:
        result = postprocess(raw_output, catalogue)
        gold_set = set(gold)
        strict_ok = result.strict_codes is not None and set(result.strict_codes) == gold_set
        outcomes.append(ItemOutcome(gold, result, strict_ok, set(result.codes) == gold_set))
    per_code, micro = _per_code_table(outcomes, catalogue)
    f1_values = [row["f1"] for row in per_code]
    return Scores(
        n=len(outcomes),
        strict_correct=sum(o.strict_correct for o in outcomes),
        lenient_correct=sum(o.lenient_correct for o in outcomes),
        format_valid=sum(o.result.format_valid for o in outcomes),
        micro_precision=micro[0],
        micro_recall=micro[1],
        micro_f1=micro[2],
        macro_f1=sum(f1_values) / len(f1_values) if f1_values else 0.0,
        per_code=per_code,
        confusion=confusion_matrix(outcomes, catalogue),
        outcomes=outcomes,
    )


def coverage_scores(correct: list[bool], answered: list[bool]) -> dict:
    """Coverage (share of notes given a code) and accuracy on the answered notes, with CI.

    `strict_accuracy` and `lenient_accuracy` stay defined on all notes (an abstention counts
    as wrong, so they compare with the baselines); these two say what the answers given are
    worth.
    """
    if len(correct) != len(answered):
        raise VetLLMError(f"coverage: {len(correct)} verdicts but {len(answered)} answer flags")
    n, given = len(correct), sum(answered)
    right = sum(ok for ok, a in zip(correct, answered, strict=True) if a)
    return {
        "coverage": given / n if n else 0.0,
        "answered": given,
        "abstained": n - given,
        "accuracy_on_answered": right / given if given else None,
        "accuracy_on_answered_ci": list(wilson_interval(right, given)),
    }


def _validated_items(items) -> list[tuple[str, list[str]]]:
    problems, pairs = [], []
    for index, item in enumerate(items):
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            problems.append(f"item {index}: expected (raw_output, gold_labels), got {item!r:.60}")
            continue
        raw_output, gold = item
        if not isinstance(raw_output, str):
            problems.append(
                f"item {index}: raw output must be text, got {type(raw_output).__name__}"
            )
        if not isinstance(gold, (list, tuple)) or not all(isinstance(x, str) for x in gold):
            problems.append(
                f"item {index}: gold labels must be a list of strings, got {gold!r:.60}"
            )
            continue
        pairs.append((raw_output, list(dict.fromkeys(label.strip() for label in gold))))
    if problems:
        raise VetLLMError("cannot score these predictions:\n  - " + "\n  - ".join(problems[:50]))
    if not pairs:
        raise VetLLMError("no predictions to score: give at least one (raw_output, gold) pair")
    return pairs


def _f1(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    """Precision, recall, F1; an undefined ratio counts as 0 (as scikit-learn's default)."""
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def _per_code_table(outcomes: list[ItemOutcome], catalogue: Catalogue):
    """Per-label counts over labels seen in gold or predictions (scikit-learn's macro set)."""
    tp, fp, fn = Counter(), Counter(), Counter()
    for outcome in outcomes:
        gold, predicted = set(outcome.gold), set(outcome.result.codes)
        tp.update(gold & predicted)
        fp.update(predicted - gold)
        fn.update(gold - predicted)
    labels = sorted(set(tp) | set(fp) | set(fn), key=lambda x: (-(tp[x] + fn[x]), x))
    rows = []
    for label in labels:
        precision, recall, f1 = _f1(tp[label], fp[label], fn[label])
        rows.append(
            {
                **describe_label(label, catalogue),
                "support": tp[label] + fn[label],
                "predicted": tp[label] + fp[label],
                "true_positives": tp[label],
                "precision": precision,
                "recall": recall,
                "f1": f1,
            }
        )
    micro = _f1(sum(tp.values()), sum(fp.values()), sum(fn.values()))
    return rows, micro


def describe_label(label: str, catalogue: Catalogue) -> dict:
    """The label with its disease name and whether it is a valid SCTID (None for local labels)."""
    disease = catalogue.by_label(label)
    if disease is not None:
        check = disease.sctid
    else:
        check = check_sctid(label) if label.isdigit() else None
    return {
        "code": label,
        "name": disease.name if disease else None,
        "valid_sctid": check.valid if check else None,
    }


def _single_label(labels: list[str]) -> str:
    if not labels:
        return NO_PREDICTION
    return labels[0] if len(labels) == 1 else SEVERAL_LABELS


def confusion_matrix(outcomes: list[ItemOutcome], catalogue: Catalogue) -> dict:
    """Gold label (rows) vs predicted label (columns), square over one label list.

    Notes with several gold or predicted labels fall in the "(multiple)" row/column, empty
    predictions in "(none)"; these two come last and only when they occur.
    """
    pairs = [(_single_label(o.gold), _single_label(o.result.codes)) for o in outcomes]
    counts = Counter(label for pair in pairs for label in pair)
    special = [x for x in (NO_PREDICTION, SEVERAL_LABELS) if x in counts]
    ordinary = sorted((x for x in counts if x not in special), key=lambda x: (-counts[x], x))
    labels = ordinary + special
    index = {label: i for i, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for gold, predicted in pairs:
        matrix[index[gold]][index[predicted]] += 1
    names = [(describe_label(x, catalogue)["name"] or x) if x not in special else x for x in labels]
    return {"labels": labels, "names": names, "matrix": matrix}


def load_prediction_items(
    path: str | Path, catalogue: Catalogue | None = None
) -> list[tuple[str, list[str]]]:
    """Read a predictions JSONL file: each line has `output` and `snomed_codes` (gold).

    `raw_output` is accepted for `output`, `labels`/`gold` for `snomed_codes`; gold may be a
    list or a "a, b" string; an empty gold list falls back to the `disease` name when the
    catalogue knows it. Every bad line is reported at once, by line number.
    """
    catalogue = catalogue or load_catalogue()
    path = Path(path)
    try:
        text = path.read_text("utf-8-sig")
    except FileNotFoundError:
        raise VetLLMError(f"predictions file {path.name}: not found; check the path") from None
    except (OSError, UnicodeDecodeError) as error:
        raise VetLLMError(
            f"predictions file {path.name}: cannot read it as UTF-8 text ({error})"
        ) from None
    items, problems = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        item = _parse_prediction_line(line, catalogue, path.name, number, problems)
        if item is not None:
            items.append(item)
    if problems:
        raise DataError(f"predictions file {path.name}: {len(problems)} bad line(s)", problems)
    if not items:
        raise VetLLMError(f"predictions file {path.name}: no prediction lines; it is empty")
    return items


def _parse_prediction_line(line, catalogue, source, number, problems):
    def problem(field_name, message):
        problems.append(Problem(source, number, field_name, message))

    try:
        row = json.loads(line)
    except json.JSONDecodeError as error:
        return problem(None, f"not valid JSON ({error.msg} at column {error.colno})")
    if not isinstance(row, dict):
        return problem(None, f"expected a JSON object, got {type(row).__name__}")
    output_field = next((f for f in OUTPUT_FIELDS if f in row), None)
    gold_field = next((f for f in GOLD_FIELDS if f in row), None)
    if output_field is None or not isinstance(row[output_field], str):
        return problem("output", f"missing or not text (got {row.get(output_field)!r:.60})")
    gold = row.get(gold_field) if gold_field else None
    if isinstance(gold, str):
        gold = [part.strip() for part in gold.replace(";", ",").split(",") if part.strip()]
    if not isinstance(gold, list) or not all(isinstance(x, (str, int)) for x in gold):
        return problem("snomed_codes", f"must be a list of codes, got {gold!r:.60}")
    gold = [str(x).strip() for x in gold]
    if not gold and isinstance(row.get("disease"), str):
        disease = catalogue.lookup_name(row["disease"])
        gold = [disease.label] if disease else []
    if not gold:
        return problem("snomed_codes", "empty, and no known 'disease' name to fall back on")
    return row[output_field], gold


def format_scores_markdown(scores: dict) -> str:
    """Markdown for a `Scores.to_dict()`: headline numbers, then the per-code table."""
    n = scores["n"]

    def line(name, key, ci_key=None, as_share=True):
        value = f"{scores[key]:.1%}" if as_share else f"{scores[key]:.3f}"
        if not ci_key:
            return f"| {name} | {value} | |"
        low, high = scores[ci_key]
        return f"| {name} | {value} | {low:.1%} - {high:.1%} |"

    lines = [
        f"Scored {n} predictions.",
        "",
        "| metric | value | 95% CI |",
        "|---|---|---|",
        line("strict accuracy", "strict_accuracy", "strict_ci"),
        line("lenient accuracy", "lenient_accuracy", "lenient_ci"),
        line("format-valid rate", "format_valid_rate"),
        line("micro F1", "micro_f1", as_share=False),
        line("macro F1", "macro_f1", as_share=False),
        *_coverage_lines(scores),
        "",
        "| code | disease | valid SCTID | support | predicted | precision | recall | F1 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in scores["per_code"]:
        valid = {True: "yes", False: "NO", None: "-"}[row["valid_sctid"]]
        lines.append(
            f"| {row['code']} | {row['name'] or '?'} | {valid} | {row['support']} | "
            f"{row['predicted']} | {row['precision']:.2f} | {row['recall']:.2f} | {row['f1']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def _coverage_lines(scores: dict) -> list[str]:
    """Coverage and accuracy-on-answered rows, when the scores have them."""
    if "coverage" not in scores:
        return []
    lines = [f"| coverage (notes given a code) | {scores['coverage']:.1%} | |"]
    if scores.get("accuracy_on_answered") is not None:
        low, high = scores["accuracy_on_answered_ci"]
        lines.append(
            f"| lenient accuracy on answered notes | {scores['accuracy_on_answered']:.1%} | "
            f"{low:.1%} - {high:.1%} |"
        )
    return lines
