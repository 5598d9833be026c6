"""Baselines every fine-tuned model must be compared with, on the same split.

The seed never reported one, and its fine-tuned 7B model's 40.7% equals always answering PPR.
Three baselines, all scored by exact match of the label set (lenient accuracy's definition):
- majority: the most common label set of the training notes, for every note;
- majority_per_species: the most common label set of the note's species (overall majority for a
  species not seen in training or not given);
- bag_of_words: TF-IDF over word uni- and bigrams with a logistic regression (scikit-learn,
  imported only when this baseline runs; deterministic: lbfgs with a fixed seed).
Ties between equally common label sets go to the smallest set in sort order, so results never
depend on record order.
"""

from __future__ import annotations

from collections import Counter

from vetllm.data.records import Record
from vetllm.errors import VetLLMError
from vetllm.metrics import wilson_interval

BASELINE_NAMES = ("majority", "majority_per_species", "bag_of_words")
DESCRIPTIONS = {
    "majority": "always the most common label set of the training notes",
    "majority_per_species": "most common label set of the note's species",
    "bag_of_words": "TF-IDF (word 1-2 grams) + logistic regression",
}
_INVERSE_REGULARISATION = 10.0  # LogisticRegression C; the notes are short, weak penalty fits


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
    """TF-IDF + logistic regression over label sets (one class per distinct set)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    targets = ["\t".join(_label_set(r)) for r in train]
    if len(set(targets)) < 2:
        # A classifier needs two classes; with one, every answer is that one.
        return predict_majority(train, test)
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    features = vectorizer.fit_transform([r.note for r in train])
    model = LogisticRegression(C=_INVERSE_REGULARISATION, max_iter=2000, random_state=seed)
    # One BLAS thread: this problem is tiny (~1k notes x ~3k features) and multi-threaded BLAS
    # on a busy 2-core machine made the fit 14x slower (10 s instead of 0.7 s, measured).
    with threadpool_limits(limits=1):
        model.fit(features, targets)
    predicted = model.predict(vectorizer.transform([r.note for r in test]))
    return [tuple(label for label in str(p).split("\t") if label) for p in predicted]


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
        "bag_of_words": predict_bag_of_words(train, test, seed=seed),
    }
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
