"""A seed ensemble: several models trained alike but for the seed, answering by vote.

Why (issue 7, measured with `vetllm bench accuracy`): on source-like data (few template notes,
many copies, label noise) one model's test accuracy swings 3 points with the seed alone, and its
errors differ from seed to seed (one seed reads "lameness and weakness" in a goat as abortion,
the next as foot rot). The vote of three seeds is right where two of them are, which removes most
of those one-seed errors.

Layout: the run folder holds the first model as any run does (seed `seed`); each further model is
a run folder of its own in RUN/members/seed-N (seed + 1000, seed + 2000, ...), trained by the same
`train` path with its own tokenizer, data mix, validation-chosen step and report. The run card's
"ensemble" entry lists them. A STOP flag in the run folder stops the member in training
(vetllm.runs.directory); resuming trains the members not yet completed.

The vote (`vote`), per note: the answer (its set of codes) that most models gave wins, ties going
to the larger summed confidence; its confidence is the models' mean confidence in it (a model that
gave another answer counts 0), which the run's calibration then rescales like a single model's.
With `bag_of_words_vote` the tuned bag of words answers as one more voter
(vetllm.engine.bag_of_words_vote).
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

from vetllm.errors import VetLLMError
from vetllm.runs.directory import MEMBERS_DIR
from vetllm.sharing import ensemble_folders

MEMBER_SEED_STRIDE = 1000  # seeds of a run's models: seed, seed + 1000, seed + 2000, ...


def member_seeds(seed: int, ensemble: int) -> list[int]:
    """Seeds of the models after the first (the run's own seed is the first model's), spaced
    MEMBER_SEED_STRIDE apart so that runs with seeds 0, 1, 2 share no model."""
    return [seed + number * MEMBER_SEED_STRIDE for number in range(1, ensemble)]


def member_folder(run_path: Path, seed: int) -> Path:
    return run_path / MEMBERS_DIR / f"seed-{seed}"


def member_entry(run_path: Path, seed: int, served: dict | None) -> dict:
    """What the run card says of one member: its seed, folder and served step."""
    folder = member_folder(run_path, seed).relative_to(run_path).as_posix()
    return {"seed": seed, "folder": folder, "served": served}


def member_dirs(run_path: str | Path) -> list[Path]:
    """The member run folders a finished run's card lists (none for a single model).

    Raises VetLLMError when a listed member has no model (deleted or copied without it).
    """
    run_path = Path(run_path)
    folders = ensemble_folders(run_path)
    missing = [f.relative_to(run_path).as_posix() for f in folders if not (f / "model").is_dir()]
    if missing:
        raise VetLLMError(
            f"run {run_path.name}: ensemble model(s) {', '.join(missing)} missing; resume the "
            f"run to train them again (`vetllm train --config {run_path.name}/config.yaml "
            f"--output {run_path.name} --resume`)"
        )
    return folders


def ensemble_summary(seeds: list[int], served: list[dict]) -> str:
    """One line for the run card, report and log: the models and their validation accuracy."""
    accuracies = [entry.get("lenient_accuracy") for entry in served]
    if all(isinstance(acc, float) for acc in accuracies):
        pairs = zip(seeds, accuracies, strict=True)
        detail = "validation lenient accuracy: " + ", ".join(f"seed {s} {a:.3f}" for s, a in pairs)
    else:
        detail = "seeds " + ", ".join(str(seed) for seed in seeds)
    return f"vote of {len(seeds)} models trained alike but for the seed ({detail})"


def raw_confidence(prediction) -> float:
    """A prediction's confidence before calibration: free decoding has none of its own, so the
    product of its codes' probabilities (0 for no code)."""
    if prediction.confidence is not None:
        return prediction.confidence
    if not prediction.result.codes:
        return 0.0
    return math.prod(prediction.confidences.values())


def vote(per_model: list[list]) -> list:
    """One Prediction per note from each model's Predictions for the same notes (see module)."""
    return [_vote_one(list(answers)) for answers in zip(*per_model, strict=True)]


def _vote_one(answers: list):
    """The winning answer among the models' answers to one note, its confidence the mean."""
    n_models = len(answers)
    groups: dict[tuple, list] = defaultdict(list)
    for prediction in answers:
        groups[tuple(sorted(prediction.result.codes))].append(prediction)
    strength = {
        key: (len(group), sum(raw_confidence(p) for p in group)) for key, group in groups.items()
    }
    winner = max(groups, key=strength.__getitem__)
    chosen = max(groups[winner], key=raw_confidence)
    chosen.confidence = strength[winner][1] / n_models
    chosen.confidences = {
        code: sum(p.confidences.get(code, 0.0) for p in answers) / n_models
        for code in chosen.result.codes
    }
    chosen.alternatives = _mean_alternatives(answers, n_models)
    if len(groups[winner]) < n_models:
        chosen.warnings.append(
            f"the models disagree: {len(groups[winner])} of {n_models} gave this answer"
        )
    return chosen


def _mean_alternatives(answers, n_models: int) -> list[tuple[str, float]]:
    """The constrained top answers averaged over the models (a missing one counts 0)."""
    totals: dict[str, float] = defaultdict(float)
    for prediction in answers:
        for answer, share in prediction.alternatives:
            totals[answer] += share / n_models
    return sorted(totals.items(), key=lambda pair: -pair[1])[:3]
