"""Baselines every fine-tuned model must be compared with, on the same split.

The seed never reported one, and its fine-tuned 7B model's 40.7% equals always answering PPR.
Three baselines, all scored by exact match of the label set (lenient accuracy's definition):
- majority: the most common label set of the training notes, for every note;
- majority_per_species: the most common label set of the note's species (overall majority for a
  species not seen in training or not given);
- bag_of_words: TF-IDF over words with a logistic regression whose regularisation C and n-gram
  range are chosen by cross-validation on the training notes, grouped by note text (so copies of
  a note never sit on both sides of a fold, as they would not between training and test). An
  untuned C flatters a model compared against it: on template data with many copies and noisy
  labels the tuned one is the strong bar. scikit-learn is imported only when this runs;
  deterministic (lbfgs, fixed folds).
Ties between equally common label sets go to the smallest set in sort order, so results never
depend on record order.
"""

from __future__ import annotations

import copy
from collections import Counter

from vetllm.data.records import Record, note_key
from vetllm.errors import VetLLMError
from vetllm.metrics import wilson_interval

BASELINE_NAMES = ("majority", "majority_per_species", "bag_of_words")
DESCRIPTIONS = {
    "majority": "always the most common label set of the training notes",
    "majority_per_species": "most common label set of the note's species",
    "bag_of_words": "TF-IDF + logistic regression, C and n-grams tuned by grouped CV",
}
# The grid searched for the bag of words: LogisticRegression C (inverse regularisation) and word
# n-gram ranges. Short notes with a few hundred distinct texts need anything from a strong
# penalty (noisy copies) to almost none (clean, unique notes).
C_GRID = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
NGRAM_GRID = ((1, 1), (1, 2))
MAX_FOLDS = 5


def _label_set(record: Record) -> tuple[str, ...]:
    return tuple(sorted(set(record.labels)))


def _most_common(label_sets: list[tuple[str, ...]]) -> tuple[str, ...]:
    counts = Counter(label_sets)
    return min(counts, key=lambda labels: (-counts[labels], labels))


def predict_majority(train: list[Record], test: list[Record]) -> list[tuple[str, ...]]:
    """The training set's most common label set for every test note."""
    majority = _most_common([_label_set(r) for r in train])
    return [majority for _ in test]


def predict_majority_per_species(train: list[Record], test: list[Record]) -> list[tuple[str, ...]]:
    """The most common label set of each species; the overall majority for unseen species."""
    overall = _most_common([_label_set(r) for r in train])
    by_species: dict[str, list[tuple[str, ...]]] = {}
    for record in train:
        if record.species:
            by_species.setdefault(record.species.lower(), []).append(_label_set(record))
    majority = {species: _most_common(sets) for species, sets in by_species.items()}
    return [majority.get((r.species or "").lower(), overall) for r in test]


def predict_bag_of_words(
    train: list[Record], test: list[Record], seed: int = 0
) -> list[tuple[str, ...]]:
    """TF-IDF + logistic regression over label sets (one class per distinct set), tuned."""
    return fit_bag_of_words(train, test, seed)[0]


def fit_bag_of_words(
    train: list[Record], test: list[Record], seed: int = 0
) -> tuple[list[tuple[str, ...]], dict]:
    """(predictions for `test`, chosen settings) of the grouped-CV-tuned bag of words."""
    from threadpoolctl import threadpool_limits

    fitted = tuned_bag_of_words(train, seed)
    if fitted is None:
        # A classifier needs two classes; with one, every answer is that one.
        return predict_majority(train, test), {"fallback": "one label set in training"}
    vectorizer, model, settings = fitted
    with threadpool_limits(limits=1):
        predicted = model.predict(vectorizer.transform([r.note for r in test]))
    return [label_set_of(p) for p in predicted], settings


def tuned_bag_of_words(train: list[Record], seed: int = 0) -> tuple | None:
    """(TfidfVectorizer, LogisticRegression, chosen settings) fitted on `train`, its C and n-gram
    range chosen by grouped CV; its classes are label sets joined by tabs (`label_set_of`).
    None when `train` holds fewer than two label sets (nothing to classify)."""
    from threadpoolctl import threadpool_limits

    targets = ["\t".join(_label_set(r)) for r in train]
    if len(set(targets)) < 2:
        return None
    rows = _weighted_rows([r.note for r in train], targets)
    # One BLAS thread: this problem is tiny (~1k notes x ~3k features) and multi-threaded BLAS
    # on a busy 2-core machine made the fit 14x slower (10 s instead of 0.7 s, measured).
    with threadpool_limits(limits=1):
        settings = _tune_bag_of_words(rows, seed)
        ngram_range = tuple(settings["ngram_range"])
        vectorizer, model = _fit_c_path(rows, ngram_range, (settings["C"],), seed)[settings["C"]]
    return vectorizer, model, settings


def label_set_of(target: str) -> tuple[str, ...]:
    """The labels of one bag-of-words class (label sets are joined by tabs)."""
    return tuple(label for label in str(target).split("\t") if label)


def _weighted_rows(notes: list[str], targets: list[str]) -> list[tuple[str, str, int]]:
    """(note, target, copies): copies of a note with one label set become one weighted row.

    The same loss as over every copy (it sums over rows) at a fraction of the cost: the source's
    1,602 records hold only 444 distinct notes.
    """
    counts: dict[tuple[str, str], int] = {}
    first: dict[tuple[str, str], str] = {}
    for note, target in zip(notes, targets, strict=True):
        key = (note_key(note), target)
        counts[key] = counts.get(key, 0) + 1
        first.setdefault(key, note)
    return [(first[key], key[1], count) for key, count in counts.items()]


def _fit_c_path(rows, ngram_range: tuple[int, int], c_values, seed: int) -> dict:
    """{C: (vectorizer, model)} along increasing C, each fit warm-started from the previous."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = TfidfVectorizer(ngram_range=ngram_range, sublinear_tf=True)
    features = vectorizer.fit_transform([note for note, _, _ in rows])
    targets = [target for _, target, _ in rows]
    weights = [count for _, _, count in rows]
    # newton-cg: ~8 iterations here where lbfgs needs ~50 (measured), and it warm-starts.
    model = LogisticRegression(solver="newton-cg", max_iter=500, random_state=seed, warm_start=True)
    fitted = {}
    for c in sorted(c_values):
        model.set_params(C=c)
        model.fit(features, targets, sample_weight=weights)
        fitted[c] = (vectorizer, copy.deepcopy(model))
    return fitted


def _tune_bag_of_words(rows: list[tuple[str, str, int]], seed: int) -> dict:
    """C and n-gram range with the best record accuracy over folds grouped by note text."""
    from sklearn.model_selection import GroupKFold

    groups = [note_key(note) for note, _, _ in rows]
    n_folds = min(MAX_FOLDS, len(set(groups)))
    if n_folds < 2:
        return {"C": 10.0, "ngram_range": [1, 2], "cv_accuracy": None, "folds": 0}
    correct = {(ngram, c): 0 for ngram in NGRAM_GRID for c in C_GRID}
    for fit_index, score_index in GroupKFold(n_splits=n_folds).split(rows, groups=groups):
        fit_rows = [rows[i] for i in fit_index]
        if len({target for _, target, _ in fit_rows}) < 2:
            continue
        held_out = [rows[i] for i in score_index]
        texts = [note for note, _, _ in held_out]
        for ngram_range in NGRAM_GRID:
            for c, (vectorizer, model) in _fit_c_path(fit_rows, ngram_range, C_GRID, seed).items():
                predicted = model.predict(vectorizer.transform(texts))
                correct[(ngram_range, c)] += sum(
                    count
                    for p, (_, target, count) in zip(predicted, held_out, strict=True)
                    if p == target
                )
    # Ties go to fewer n-grams, then to the stronger penalty: the simpler model.
    ngram_range, c = max(correct, key=lambda key: (correct[key], -key[0][1], -key[1]))
    total = sum(count for _, _, count in rows)
    return {
        "C": c,
        "ngram_range": list(ngram_range),
        "cv_accuracy": correct[(ngram_range, c)] / total,
        "folds": n_folds,
    }


def run_baselines(train: list[Record], test: list[Record], seed: int = 0) -> dict[str, dict]:
    """Score the three baselines on `test` after fitting on `train`.

    Returns {name: {"accuracy", "ci" (95% Wilson, [low, high]), "correct", "n",
    "predictions" (one label list per test note), "description"}}.
    """
    problems = []
    if not train:
        problems.append("the training set is empty; baselines need training notes")
    if not test:
        problems.append("the test set is empty; give at least one note to score")
    if problems:
        raise VetLLMError("run_baselines: " + "; ".join(problems))
    predictions = {
        "majority": predict_majority(train, test),
        "majority_per_species": predict_majority_per_species(train, test),
    }
    predictions["bag_of_words"], settings = fit_bag_of_words(train, test, seed=seed)
    gold = [_label_set(r) for r in test]
    results = {}
    for name in BASELINE_NAMES:
        correct = sum(p == g for p, g in zip(predictions[name], gold, strict=True))
        results[name] = {
            "accuracy": correct / len(test),
            "ci": list(wilson_interval(correct, len(test))),
            "correct": correct,
            "n": len(test),
            "predictions": [list(p) for p in predictions[name]],
            "description": DESCRIPTIONS[name],
        }
    results["bag_of_words"]["settings"] = settings
    return results


def format_baselines_markdown(results: dict[str, dict]) -> str:
    """A small Markdown table of baseline accuracies with their intervals."""
    lines = ["| baseline | accuracy | 95% CI | what it does |", "|---|---|---|---|"]
    for name, result in results.items():
        low, high = result["ci"]
        lines.append(
            f"| {name} | {result['accuracy']:.1%} | {low:.1%} - {high:.1%} |"
            f" {result['description']} |"
        )
    return "\n".join(lines) + "\n"
