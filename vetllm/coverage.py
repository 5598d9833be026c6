"""Coverage arithmetic: exactly what the Hugging Face Trainer does with batches and epochs.

`plan_coverage()` reproduces, without importing torch, the numbers the Trainer of
transformers >= 4.52 (checked against 5.24's `trainer.py` and accelerate 1.15's
`data_loader.py`) derives from a data set size, the per-device micro-batch, gradient
accumulation, epochs or `max_steps`, the data-parallel world size and `dataloader_drop_last`:

* micro-batches per epoch per rank = `len(train_dataloader)`. One process: the torch
  `BatchSampler` gives floor(n / b) micro-batches with drop_last, else ceil(n / b) (the last one
  short). Several processes (DDP through accelerate's `BatchSamplerShard`, `even_batches=True`,
  which is what the Trainer uses, not torch's `DistributedSampler`): the batches of that
  sampler are dealt out round-robin, so each rank gets floor(B / W) of them with drop_last and
  ceil(B / W) without, where every short or missing batch is completed with samples from the
  start of the epoch (those samples are seen twice).
* optimizer steps per epoch = ceil(micro_batches / grad_accum), at least 1: the last, shorter
  accumulation window of an epoch still makes an optimizer step (before 4.52 this was floor).
  drop_last only drops a short *micro-batch*, never a short accumulation window.
* total steps = `max_steps` if given, else ceil(epochs * steps_per_epoch) computed in floating
  point exactly as the Trainer does (so 1.1 epochs of 10 steps is 12 steps, not 11).
* the epoch the Trainer logs after optimizer step k is
  epoch_index + micro_batches_consumed / micro_batches_per_epoch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

from vetllm.errors import VetLLMError

# How each input is called in messages unless the caller (CLI, UI) passes its own labels.
DEFAULT_FIELD_LABELS = {
    "samples": "samples",
    "per_device_batch": "per_device_batch",
    "grad_accum": "grad_accum",
    "epochs": "epochs",
    "max_steps": "max_steps",
    "world_size": "world_size",
    "unique_notes": "unique_notes",
}


MAX_EPOCHS = 1_000_000


@dataclass(frozen=True)
class CoveragePlan:
    """What one training run does with the data, step by step (all counts are whole numbers).

    Per-epoch sample counts are summed over all ranks; `micro_batches_per_epoch` is per rank
    (it is what every rank iterates and what the Trainer calls `len(train_dataloader)`).
    """

    samples: int
    per_device_batch: int
    grad_accum: int
    world_size: int
    drop_last: bool
    epochs: float
    max_steps: int | None
    unique_notes: int | None
    effective_batch: int  # samples per optimizer step in a full window, all ranks together
    micro_batches_per_epoch: int
    steps_per_epoch: int
    last_window_micro_batches: int  # micro-batches in the last accumulation window of an epoch
    last_micro_batch_size: int  # per rank; smaller than per_device_batch only if the last is short
    samples_seen_per_epoch: int  # distinct samples fed in one full epoch
    samples_dropped_per_epoch: int  # samples never fed in one full epoch
    samples_repeated_per_epoch: int  # padding fed a second time (several ranks, no drop_last)
    samples_fed_per_epoch: int  # seen + repeated
    coverage: float  # samples_seen_per_epoch / samples, 0-1
    total_steps: int
    epochs_started: int  # how many epoch loops the Trainer begins (the last may be partial)
    full_epochs: int
    steps_in_last_epoch: int  # steps run in the last epoch loop (= steps_per_epoch if full)
    exposures: int  # samples fed over the whole run, repeats included
    exposures_per_sample: float
    exposures_per_unique_note: float | None
    notes: list[str] = field(default_factory=list)

    @property
    def epochs_run(self) -> float:
        """Epochs actually trained, as the Trainer would log it at the end of the run."""
        return self.logged_epoch(self.total_steps)

    def logged_epoch(self, step: int) -> float:
        """The `epoch` value the Trainer logs after optimizer step `step` (1-based)."""
        if step < 0:
            raise VetLLMError(f"step: expected 0 or more, got {step}")
        epoch_index, step_in_epoch = divmod(step, self.steps_per_epoch)
        consumed = min(step_in_epoch * self.grad_accum, self.micro_batches_per_epoch)
        return epoch_index + consumed / self.micro_batches_per_epoch

    def to_dict(self) -> dict:
        out = asdict(self)
        out["epochs_run"] = self.epochs_run
        return out

    def to_markdown(self) -> str:
        """A two-column table of the plan, then its notes."""
        rows = [
            ("samples", f"{self.samples:,}"),
            ("per-device micro-batch x grad accumulation x world size", self._batch_text()),
            ("drop_last", "yes" if self.drop_last else "no"),
            ("micro-batches per epoch (per rank)", f"{self.micro_batches_per_epoch:,}"),
            ("optimizer steps per epoch", f"{self.steps_per_epoch:,}"),
            ("last accumulation window", f"{self.last_window_micro_batches} micro-batch(es)"),
            ("total optimizer steps", f"{self.total_steps:,}"),
            ("epochs trained", f"{self.epochs_run:.4g}"),
            ("samples seen per epoch", f"{self.samples_seen_per_epoch:,}"),
            ("samples dropped per epoch", f"{self.samples_dropped_per_epoch:,}"),
            ("samples repeated per epoch", f"{self.samples_repeated_per_epoch:,}"),
            ("coverage per epoch", f"{self.coverage:.1%}"),
            ("total exposures", f"{self.exposures:,}"),
            ("exposures per sample", f"{self.exposures_per_sample:.3g}"),
        ]
        if self.exposures_per_unique_note is not None:
            rows.append(("exposures per unique note", f"{self.exposures_per_unique_note:.3g}"))
        lines = ["| quantity | value |", "|---|---|"]
        lines += [f"| {name} | {value} |" for name, value in rows]
        lines += [""] + [f"- {note}" for note in self.notes]
        return "\n".join(lines)

    def _batch_text(self) -> str:
        return (
            f"{self.per_device_batch} x {self.grad_accum} x {self.world_size}"
            f" = {self.effective_batch}"
        )


def plan_coverage(
    samples: int,
    per_device_batch: int,
    grad_accum: int = 1,
    epochs: float = 1.0,
    max_steps: int | None = None,
    world_size: int = 1,
    drop_last: bool = False,
    unique_notes: int | None = None,
    *,
    field_labels: Mapping[str, str] | None = None,
) -> CoveragePlan:
    """Work out what the Trainer will do with these settings.

    Args:
        samples: training records (rows, duplicates included).
        per_device_batch: `per_device_train_batch_size` (samples per micro-batch per rank).
            For DataParallel (several GPUs in one process, no torchrun) pass it times n_gpu:
            the Trainer's `train_batch_size` is per_device_train_batch_size x n_gpu.
        grad_accum: `gradient_accumulation_steps`.
        epochs: `num_train_epochs`, fractional allowed; ignored when `max_steps` is given.
        max_steps: `max_steps` (None = derive from epochs, as the Trainer's default -1 does).
        world_size: data-parallel processes (GPUs under DDP).
        drop_last: `dataloader_drop_last`.
        unique_notes: distinct note texts, to report exposures per unique note.
        field_labels: names to use for the inputs in error messages (e.g. CLI flags).

    Raises:
        VetLLMError: listing every invalid input, or when no micro-batch can be formed.
    """
    labels = {**DEFAULT_FIELD_LABELS, **(field_labels or {})}
    _validate(
        labels, samples, per_device_batch, grad_accum, epochs, max_steps, world_size, unique_notes
    )
    per_epoch = _epoch_batches(samples, per_device_batch, world_size, drop_last)
    micro = per_epoch["micro_batches"]
    if micro == 0:
        raise VetLLMError(
            f"{labels['samples']}: {samples} samples cannot fill one micro-batch of "
            f"{per_device_batch} x {world_size} rank(s) with drop_last on, so nothing would be "
            "trained; use a smaller batch or turn drop_last off"
        )
    steps_per_epoch = max(micro // grad_accum + int(micro % grad_accum > 0), 1)
    if max_steps is None:
        # Same float expression as the Trainer: ceil(num_train_epochs * steps_per_epoch).
        total_steps = math.ceil(float(epochs) * steps_per_epoch)
    else:
        total_steps = int(max_steps)
    full_epochs, partial_steps = divmod(total_steps, steps_per_epoch)
    fed = per_epoch["fed"]
    # A partial epoch stops after `partial_steps` full windows: all micro-batches in it are full,
    # because a short one can only be the very last micro-batch of the epoch.
    partial_fed = partial_steps * grad_accum * per_device_batch * world_size
    exposures = full_epochs * fed + partial_fed
    plan = CoveragePlan(
        samples=samples,
        per_device_batch=per_device_batch,
        grad_accum=grad_accum,
        world_size=world_size,
        drop_last=bool(drop_last),
        epochs=float(epochs),
        max_steps=max_steps,
        unique_notes=unique_notes,
        effective_batch=per_device_batch * grad_accum * world_size,
        micro_batches_per_epoch=micro,
        steps_per_epoch=steps_per_epoch,
        last_window_micro_batches=micro - (steps_per_epoch - 1) * grad_accum,
        last_micro_batch_size=per_epoch["last_micro_batch_size"],
        samples_seen_per_epoch=per_epoch["seen"],
        samples_dropped_per_epoch=samples - per_epoch["seen"],
        samples_repeated_per_epoch=fed - per_epoch["seen"],
        samples_fed_per_epoch=fed,
        coverage=per_epoch["seen"] / samples,
        total_steps=total_steps,
        epochs_started=full_epochs + int(partial_steps > 0),
        full_epochs=full_epochs,
        steps_in_last_epoch=partial_steps or steps_per_epoch,
        exposures=exposures,
        exposures_per_sample=exposures / samples,
        exposures_per_unique_note=exposures / unique_notes if unique_notes else None,
    )
    plan.notes.extend(_explain(plan))
    return plan


def _epoch_batches(samples: int, batch: int, world_size: int, drop_last: bool) -> dict:
    """Micro-batches per rank and samples seen / fed in one epoch (see the module docstring)."""
    sampler_batches = samples // batch if drop_last else -(-samples // batch)
    if world_size == 1:
        short = 0 if drop_last else samples - (sampler_batches - 1) * batch
        last = short if 0 < short < batch else batch
        seen = sampler_batches * batch if drop_last else samples
        return {
            "micro_batches": sampler_batches,
            "seen": seen,
            "fed": seen,
            "last_micro_batch_size": last if sampler_batches else 0,
        }
    if drop_last:
        # BatchSamplerShard yields a round only when every rank gets a full batch.
        per_rank = sampler_batches // world_size
        seen = per_rank * world_size * batch
        return {
            "micro_batches": per_rank,
            "seen": seen,
            "fed": seen,
            "last_micro_batch_size": batch,
        }
    # even_batches: complete the last round with samples from the start of the epoch.
    per_rank = -(-sampler_batches // world_size)
    return {
        "micro_batches": per_rank,
        "seen": samples,
        "fed": per_rank * world_size * batch,
        "last_micro_batch_size": batch,
    }


def _explain(plan: CoveragePlan) -> list[str]:
    """Plain-language statements about the plan that a reader might otherwise get wrong."""
    notes = []
    if plan.samples_dropped_per_epoch:
        notes.append(
            f"drop_last leaves out {plan.samples_dropped_per_epoch} sample(s) per epoch "
            "(a different random subset each epoch, since the sampler shuffles)"
        )
    elif plan.drop_last:
        notes.append("drop_last drops nothing here: the samples fill whole micro-batches")
    if plan.samples_repeated_per_epoch:
        notes.append(
            f"{plan.samples_repeated_per_epoch} sample(s) per epoch are fed twice to give every "
            "rank the same number of full micro-batches (accelerate even_batches)"
        )
    if plan.last_window_micro_batches < plan.grad_accum:
        notes.append(
            f"the last optimizer step of each epoch accumulates only "
            f"{plan.last_window_micro_batches} of {plan.grad_accum} micro-batches; it still "
            "counts as a step (transformers >= 4.52)"
        )
    if plan.max_steps is not None:
        notes.append(f"max_steps={plan.max_steps} overrides epochs")
    if plan.steps_in_last_epoch < plan.steps_per_epoch:
        notes.append(
            f"the last epoch stops after {plan.steps_in_last_epoch} of {plan.steps_per_epoch} "
            "steps, so part of the data is seen one time fewer"
        )
    if plan.unique_notes and plan.unique_notes < plan.samples:
        notes.append(
            f"only {plan.unique_notes} of {plan.samples} rows are distinct notes: each distinct "
            f"note is seen {plan.exposures_per_unique_note:.3g} times on average"
        )
    return notes


def _validate(labels, samples, batch, grad_accum, epochs, max_steps, world_size, unique) -> None:
    problems = [
        _whole_number_problem(labels["samples"], samples),
        _whole_number_problem(labels["per_device_batch"], batch),
        _whole_number_problem(labels["grad_accum"], grad_accum),
        _whole_number_problem(labels["world_size"], world_size),
    ]
    if max_steps is not None:
        problems.append(
            _whole_number_problem(labels["max_steps"], max_steps, hint="or leave it unset")
        )
    elif not _is_positive_finite(epochs):
        problems.append(
            f"{labels['epochs']}: expected a number greater than 0 and at most {MAX_EPOCHS:,} "
            f"(fractions allowed), got {epochs!r}"
        )
    if unique is not None:
        problems.append(_unique_notes_problem(labels["unique_notes"], unique, samples))
    problems = [p for p in problems if p]
    if problems:
        raise VetLLMError("invalid training settings:\n" + "\n".join(f"  - {p}" for p in problems))


def _unique_notes_problem(label: str, unique, samples) -> str | None:
    problem = _whole_number_problem(label, unique)
    if not problem and isinstance(samples, int) and unique > samples:
        problem = (
            f"{label}: {unique} distinct notes cannot exceed {samples} samples; "
            "count distinct note texts in the training file"
        )
    return problem


def _whole_number_problem(label: str, value, hint: str = "") -> str | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
    if ok:
        return None
    suffix = f" {hint}" if hint else ""
    return f"{label}: expected a whole number of at least 1{suffix}, got {value!r}"


def _is_positive_finite(value) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    # Upper bound only keeps ceil(epochs * steps) finite; no real run comes near it.
    return math.isfinite(value) and 0 < value <= MAX_EPOCHS
