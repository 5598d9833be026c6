"""The tuned bag-of-words classifier as one more voter beside a run's models.

Why (issue 7, `vetllm bench accuracy`, with and without `--set bag_of_words_vote=false`): on
source-like data (few template notes, many copies, label noise) a seed ensemble of from-scratch
models and a tuned bag of words make *different* errors: the models read a note's signs in any
order, the bag of words keys on the exact template phrases. As a fourth voter the bag of words
decides only where the models split (a 2-2 tie goes to the larger summed confidence). Measured
over 3 splits x 3 seeds: the worst seed on source-like split 1 rose from 0.8895 to 0.903 (the
bag of words alone: 0.903), on split 2 from 0.911 to 0.946, no run got worse; on free text after
template training, where the bag of words alone scores 0.54-0.68, the minima held or rose.

The voter is the baseline's own fit (`baselines.tuned_bag_of_words`: TF-IDF + logistic
regression, C and n-grams chosen by CV grouped by note text) on the user's training records,
saved as plain JSON in RUN/model/bag_of_words.json (vocabulary, idf, coefficients; never a
pickle, which would run code when a shared run is loaded), checked when loaded. Predicting uses
scikit-learn's tokenizer and numpy for the arithmetic; predict.py turns its ranked label sets into
Predictions.
"""

from __future__ import annotations

import json
from pathlib import Path

from vetllm.data.records import Record
from vetllm.errors import VetLLMError

VOTER_FILE = "bag_of_words.json"
FORMAT = "vetllm-bag-of-words/1"


def fit_voter(records: list[Record], seed: int) -> dict | None:
    """The voter's saved form, fitted on `records`; None when they hold one label set only."""
    from vetllm.baselines import tuned_bag_of_words

    fitted = tuned_bag_of_words(records, seed)
    if fitted is None:
        return None
    vectorizer, model, settings = fitted
    vocabulary = sorted(vectorizer.vocabulary_, key=vectorizer.vocabulary_.__getitem__)
    return {
        "format": FORMAT,
        "ngram_range": list(vectorizer.ngram_range),
        "vocabulary": vocabulary,
        "idf": [float(x) for x in vectorizer.idf_],
        "classes": [str(c) for c in model.classes_],
        "coef": [[float(x) for x in row] for row in model.coef_],
        "intercept": [float(x) for x in model.intercept_],
        "settings": settings,
    }


def save_voter(state: dict, model_dir: Path) -> Path:
    """Write the voter (fit_voter's dict) into the run's model folder."""
    path = Path(model_dir) / VOTER_FILE
    path.write_text(json.dumps(state), encoding="utf-8")
    return path


class BagOfWordsVoter:
    """A saved voter: label-set probabilities for notes (checked when built: ValueError)."""

    def __init__(self, state: dict):
        import numpy as np
        from sklearn.feature_extraction.text import TfidfVectorizer

        from vetllm.baselines import label_set_of

        low, high = _ngram_range(state["ngram_range"])
        self.analyze = TfidfVectorizer(ngram_range=(low, high)).build_analyzer()
        terms, classes = state["vocabulary"], state["classes"]
        if not all(isinstance(item, str) for item in [*terms, *classes]) or len(classes) < 2:
            raise ValueError("vocabulary and classes must be lists of text, two classes or more")
        self.index = {term: i for i, term in enumerate(terms)}
        self.classes = [label_set_of(c) for c in classes]
        self.idf = np.asarray(state["idf"], dtype=float)
        self.coef = np.asarray(state["coef"], dtype=float)
        self.intercept = np.asarray(state["intercept"], dtype=float)
        rows = 1 if len(self.classes) == 2 else len(self.classes)  # binary: one row of weights
        shape = (rows, len(self.index))
        if (
            self.coef.shape != shape
            or self.idf.shape != shape[1:]
            or self.intercept.shape != (rows,)
        ):
            raise ValueError(f"weights of shape {self.coef.shape}, expected {shape}")
        if not all(np.isfinite(a).all() for a in (self.idf, self.coef, self.intercept)):
            raise ValueError("weights must be finite numbers")

    @classmethod
    def load(cls, model_dir: Path) -> BagOfWordsVoter:
        """The voter saved in `model_dir`; VetLLMError (what to do) when it cannot be used."""
        path = Path(model_dir) / VOTER_FILE
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
            if state.get("format") != FORMAT:
                raise ValueError(f"format {state.get('format')!r}, expected {FORMAT!r}")
            return cls(state)
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as error:
            raise VetLLMError(
                f"{path}: the bag-of-words voter cannot be read ({error}); train the run again, "
                "or delete the bag_of_words_vote entry from model/run_card.json to answer with "
                "the models alone"
            ) from None

    def probabilities(self, notes: list[str]):
        """One row of class probabilities per note (as LogisticRegression.predict_proba)."""
        import numpy as np

        features = np.zeros((len(notes), len(self.index)))
        for row, note in enumerate(notes):
            for term in self.analyze(note):
                column = self.index.get(term)
                if column is not None:
                    features[row, column] += 1
        # TfidfVectorizer(sublinear_tf=True): 1 + log(count), times idf, rows scaled to length 1.
        nonzero = features > 0
        features[nonzero] = 1 + np.log(features[nonzero])
        features *= self.idf
        norms = np.linalg.norm(features, axis=1, keepdims=True)
        features /= np.where(norms > 0, norms, 1)
        scores = features @ self.coef.T + self.intercept
        if len(self.classes) == 2:  # a binary model has one score: class 1 against class 0
            scores = np.hstack([np.zeros_like(scores), scores])
        scores -= scores.max(axis=1, keepdims=True)
        weights = np.exp(scores)
        return weights / weights.sum(axis=1, keepdims=True)

    def ranked(self, notes: list[str]) -> list[list[tuple[tuple[str, ...], float]]]:
        """Per note, every label set with its probability, most probable first."""
        return [
            sorted(zip(self.classes, row.tolist(), strict=True), key=lambda pair: -pair[1])
            for row in self.probabilities(notes)
        ]


def _ngram_range(value) -> tuple[int, int]:
    pair = isinstance(value, list) and len(value) == 2
    if not (pair and all(isinstance(n, int) for n in value) and 1 <= value[0] <= value[1]):
        raise ValueError(f"ngram_range {value!r} is not two whole numbers 1 <= low <= high")
    return value[0], value[1]
