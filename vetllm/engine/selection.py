"""Which weights a run serves: periodic validation, the best step by lenient accuracy, early stop.

Periodic validation scores free-decoding answers (the same Predictor path as `vetllm predict`) for
the validation notes, all of them unless `eval_samples` caps them, and logs strict and lenient
accuracy, the number of notes scored (`eval_n`) and `eval_selection_score` beside the eval loss.

The HF Trainer's own machinery then keeps and serves the best step:
`metric_for_best_model="selection_score"` with `greater_is_better=True` records the best step in
TrainerState (so it survives kill -9 + resume: trainer_state.json of every checkpoint holds it),
`save_total_limit` never deletes the best checkpoint, and `load_best_model_at_end` loads it when
training ends, however it ends (last step, early stopping, a STOP request). Checkpoints are saved
at every evaluation (save steps follow eval_steps while validation runs), so every evaluated step
that could be best has a checkpoint. The Trainer compares one number, so ties in lenient
accuracy are broken inside that number: see `selection_score`.

Validation with fewer than MIN_DISTINCT_VALIDATION distinct notes chooses nothing: the run is
still validated at every evaluation (charts, early stopping), but it serves its final step, and
says why. Choosing among steps on a few dozen distinct notes is noise: measured on source-like
data (`vetllm bench accuracy --datasets source-like --data-seeds 1,2,3`, 44 distinct validation
notes per split), the best-validation step of 27 models (3 splits x 3 seeds x 3 ensemble
members) was an earlier step for 7 of them; on the test notes 5 of those 7 were worse than the
final step (by 0.5 to 9 points: 0.828 against 0.917) and 2 equal; none was better.
"""

from __future__ import annotations

from transformers import Trainer, TrainerCallback

from vetllm.catalogue import Catalogue
from vetllm.config import TrainConfig
from vetllm.data.records import Record, note_key
from vetllm.evaluation_checks import small_validation_warning

SELECTION_METRIC = "selection_score"  # logged as eval_selection_score


def validation_subset(records: list[Record], cap: int | None) -> list[Record]:
    """All records, or `cap` of them spread evenly over the file (a file sorted by disease
    would make its first `cap` rows one or two diseases)."""
    if cap is None or len(records) <= cap:
        return list(records)
    return [records[(i * len(records)) // cap] for i in range(cap)]


def selection_score(lenient_accuracy: float, step: int, max_steps: int, n: int) -> float:
    """Lenient accuracy, ties broken by the later step, as one number the Trainer can compare.

    Accuracies over n notes differ by at least 1/n; the tie-break term step/max_steps/(n + 1) is
    below 1/(n + 1), so it orders equal accuracies by step and never outweighs one more correct
    note. Why the later step and not the lower eval loss: on small validation sets ties are
    common, and the lower loss belongs to the earlier, less trained step (the loss rises as the
    model grows confident while accuracy holds). Measured on source-like data (3 splits x 3
    seeds x 2 recipes trained by `vetllm bench accuracy --datasets source-like --data-seed N`,
    the served and final checkpoints of each run scored on its test notes): 5 of 18 runs served
    an earlier step whose test accuracy differed from the final step's; 4 were 1-7 points
    worse, 1 was 1 point better.
    """
    share = min(max(step, 0), max_steps) / max_steps if max_steps > 0 else 0.0
    return float(lenient_accuracy) + share / (n + 1)


def too_few_to_choose(records: list[Record]) -> str | None:
    """Why these validation notes cannot choose the served step, or None when they can (the
    evaluation's small-validation rule: MIN_DISTINCT_VALIDATION distinct notes)."""
    return small_validation_warning(len({note_key(r.note) for r in records}), "choose a step")


def selection_arguments(cfg: TrainConfig, periodic_eval: bool, choose_step: bool = True) -> dict:
    """TrainingArguments fields for choosing the served step (none without periodic validation,
    or when validation is too small to choose: then the final step is served)."""
    if not periodic_eval or not choose_step:
        return {"save_steps": cfg.save_steps}
    return {
        # A checkpoint at every evaluation: the best step must have one to be restored (and
        # load_best_model_at_end requires save steps to be a multiple of eval steps).
        "save_steps": cfg.eval_steps,
        "load_best_model_at_end": True,
        "metric_for_best_model": SELECTION_METRIC,
        "greater_is_better": True,
    }


class GenerationEval:
    """Greedy answers for validation notes, scored strict and lenient by vetllm.metrics."""

    def __init__(self, cfg: TrainConfig, tokenizer, records: list[Record], catalogue: Catalogue):
        self.cfg, self.tokenizer, self.records, self.catalogue = cfg, tokenizer, records, catalogue

    def answers(self, model) -> list[str]:
        """Free-decoding raw outputs, exactly as `vetllm predict` would produce them."""
        from vetllm.engine.predict import Predictor

        was_training = model.training
        predictor = Predictor(
            model,
            self.tokenizer,
            template=self.cfg.prompt(),
            catalogue=self.catalogue,
            max_length=self.cfg.max_length,
            max_new_tokens=self.cfg.max_new_tokens,
        )
        notes = [r.note for r in self.records]
        outputs = [p.raw_output for p in predictor.predict(notes, "free", batch_size=32)]
        model.train(was_training)
        return outputs

    def scores(self, answers: list[str]) -> dict:
        from vetllm.metrics import score_predictions

        items = [(a, list(r.labels)) for a, r in zip(answers, self.records, strict=True)]
        return score_predictions(items, self.catalogue).to_dict()

    def __call__(self, model) -> dict[str, float]:
        if not self.records:
            return {}
        scores = self.scores(self.answers(model))
        return {key: scores[key] for key in ("strict_accuracy", "lenient_accuracy")}


class VetTrainer(Trainer):
    """The HF Trainer plus generation accuracy and the selection score in every evaluation."""

    generation_eval: GenerationEval | None = None
    too_few_to_choose: str | None = None  # why validation did not choose the served step

    def evaluation_loop(self, *args, **kwargs):
        output = super().evaluation_loop(*args, **kwargs)
        prefix = kwargs.get("metric_key_prefix", "eval")
        if self.generation_eval is not None and output.metrics is not None:
            model = self.accelerator.unwrap_model(self.model)
            scores = self.generation_eval(model)
            if scores:
                n = len(self.generation_eval.records)
                step, max_steps = self.state.global_step, self.state.max_steps
                scores["n"] = n
                scores[SELECTION_METRIC] = selection_score(
                    scores["lenient_accuracy"], step, max_steps, n
                )
            for key, value in scores.items():
                output.metrics[f"{prefix}_{key}"] = value
        return output


class LenientEarlyStopping(TrainerCallback):
    """Stop after `patience` evaluations without a gain in lenient accuracy.

    The count is rebuilt from the Trainer's log history when training starts, so a resumed run
    keeps the evaluations it made before it was interrupted.
    """

    def __init__(self, patience: int):
        self.patience, self.best, self.bad_evals = patience, -1.0, 0

    def on_train_begin(self, args, state, control, **kwargs):
        self.best, self.bad_evals = -1.0, 0
        for entry in state.log_history or []:
            self._count(entry.get("eval_lenient_accuracy"))

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if self._count((metrics or {}).get("eval_lenient_accuracy")):
            control.should_training_stop = self.bad_evals >= self.patience

    def _count(self, value) -> bool:
        if value is None:
            return False
        if value > self.best:
            self.best, self.bad_evals = value, 0
        else:
            self.bad_evals += 1
        return True


def served_step(state, periodic_eval: bool, too_few: str | None = None) -> dict:
    """Which step's weights the run serves and why, from the Trainer's state after training.

    `periodic_eval`: the best validation step was loaded at the end; `too_few`: why validation
    did not choose (see `too_few_to_choose`). Returns plain data for the run card, status.json
    and report.md; `summary` is the sentence ("best validation accuracy 0.930 at step 400 of
    720 (lenient, 217 validation notes)").
    """
    trained, planned = int(state.global_step), int(state.max_steps or state.global_step)
    if too_few:
        return _final_step_served(state, trained, planned, too_few)
    best = getattr(state, "best_global_step", None) if periodic_eval else None
    entry = _eval_entry(state.log_history, best) if best else None
    if entry is None:
        reason = "validation picked no step" if periodic_eval else "no validation during training"
        return {
            "step": trained,
            "trained_steps": trained,
            "planned_steps": planned,
            "selected_by": "final_step",
            "summary": f"final step {trained}: {reason}",
        }
    facts = {
        "step": int(best),
        "trained_steps": trained,
        "planned_steps": planned,
        "selected_by": "best_validation_lenient_accuracy",
        "lenient_accuracy": entry["eval_lenient_accuracy"],
        "strict_accuracy": entry.get("eval_strict_accuracy"),
        "eval_loss": entry.get("eval_loss"),
        "n": entry.get("eval_n"),
    }
    notes = f", {facts['n']} validation notes" if facts["n"] else ""
    ended = f" (stopped early; {planned} planned)" if trained < planned else ""
    facts["summary"] = (
        f"best validation accuracy {facts['lenient_accuracy']:.3f} at step {best} of "
        f"{trained}{ended} (lenient{notes})"
    )
    return facts


def _final_step_served(state, trained: int, planned: int, too_few: str) -> dict:
    """The final step, served because validation was too small to choose (its score if any)."""
    facts = {
        "step": trained,
        "trained_steps": trained,
        "planned_steps": planned,
        "selected_by": "final_step",
    }
    entry = _eval_entry(state.log_history, trained)
    scored = ""
    if entry is not None:
        facts |= {
            "lenient_accuracy": entry["eval_lenient_accuracy"],
            "strict_accuracy": entry.get("eval_strict_accuracy"),
            "n": entry.get("eval_n"),
        }
        scored = f" (validation accuracy {facts['lenient_accuracy']:.3f} there, lenient)"
    ended = f" (stopped early; {planned} planned)" if trained < planned else ""
    facts["summary"] = f"final step {trained}{ended}{scored}: {too_few}"
    return facts


def _eval_entry(history: list[dict], step: int) -> dict | None:
    """The last logged evaluation at `step` that has a lenient accuracy."""
    found = [e for e in history or [] if e.get("step") == step and "eval_lenient_accuracy" in e]
    return found[-1] if found else None
