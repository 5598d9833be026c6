"""Analysis of a Trainer run made elsewhere: the source analysis's two questions, answered.

The source document asked "How did we achieve such low loss so quickly?" and "Was the model
trained on the whole dataset?" and answered both wrongly. `analyse_trainer_run` joins a run's
loss history and trainer_state.json fields with its declared training arguments and, when given,
its training and validation data; `render_trainer_run_report` opens with one line per question
(numbers, and how each was obtained), then the consistency check of the log against the
arguments (vetllm.consistency), the data join (duplicates, exposures per distinct note,
conflicting labels and the ceiling, leakage) and finally the usual training report
(vetllm.report).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from vetllm.analysis import LossAnalysis, analyse_losses
from vetllm.consistency import ConsistencyCheck, check_consistency, infer_logged_run
from vetllm.coverage import CoveragePlan, plan_coverage
from vetllm.data.records import Record, note_key
from vetllm.report import render_training_report
from vetllm.trainer_report_text import (
    answer_loss_question,
    answer_whole_dataset_question,
    consistency_lines,
    data_lines,
)
from vetllm.trainer_run import (
    ARGS_BIN_NAME,
    find_trainer_state,
    normalise_training_args,
    read_args_json,
    read_trainer_state,
)

QUESTIONS = (
    "How did we achieve such low loss so quickly?",
    "Was the model trained on the whole dataset?",
)


@dataclass
class TrainerRunAnalysis:
    """A run's log joined with its arguments and data (plain data; `to_dict()` is JSON-ready)."""

    name: str
    history: list[dict]
    analysis: LossAnalysis
    check: ConsistencyCheck
    plan: CoveragePlan | None  # coverage used in the answers (see plan_basis)
    plan_basis: str
    stats: object | None  # vetllm.data.stats.DatasetStats of the training file
    leakage: object | None  # vetllm.data.split.LeakageReport of the validation file
    copies_per_note: list[int] = field(default_factory=list)
    skipped_rows: int = 0
    notes: list[str] = field(default_factory=list)
    answers: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "questions": dict(
                zip(QUESTIONS, (self.answers["loss"], self.answers["whole"]), strict=True)
            ),  # fmt: skip
            "consistency": self.check.to_dict(),
            "plan": self.plan.to_dict() if self.plan else None,
            "plan_basis": self.plan_basis,
            "data": self.stats.to_dict() if self.stats else None,
            "leakage": self.leakage.to_dict() if self.leakage else None,
            "analysis": self.analysis.to_dict(),
            "notes": list(self.notes),
        }


def analyse_trainer_run(
    history: list[dict],
    state: dict | None = None,
    declared: dict | None = None,
    *,
    train: list[Record] | None = None,
    val: list[Record] | None = None,
    samples: int | None = None,
    skipped_rows: int = 0,
    config: dict | None = None,
    name: str = "run",
    notes: list[str] | None = None,
    steps_per_epoch: int | None = None,
) -> TrainerRunAnalysis:
    """Join the log, the declared arguments and the data; answer the two questions.

    `samples` is the training-set size the run used; without it, the size of `train` plus the
    rows the loader had to skip (the run's own script did not skip them).
    """
    from vetllm.data.split import leakage_report
    from vetllm.data.stats import dataset_stats

    logged = infer_logged_run(history, state)
    if samples is None and train:
        samples = len(train) + skipped_rows
    check = check_consistency(logged, declared, samples)
    single = logged.steps_per_epoch if len(logged.candidates) == 1 else None
    analysis = analyse_losses(history, steps_per_epoch=steps_per_epoch or single, config=config)
    if not steps_per_epoch and single:
        analysis.steps_per_epoch_source = "inferred from every logged step/epoch pair"
    stats = dataset_stats(train) if train else None
    unique = stats.n_unique_notes if stats else None
    plan, basis = _coverage_plan(check, samples, unique)
    result = TrainerRunAnalysis(
        name=name, history=history, analysis=analysis, check=check, plan=plan, plan_basis=basis,
        stats=stats, leakage=leakage_report(train, val) if train and val else None,
        copies_per_note=list(Counter(note_key(r.note) for r in train or []).values()),
        skipped_rows=skipped_rows, notes=list(notes or []),
    )  # fmt: skip
    result.answers = {
        "loss": answer_loss_question(result, config),
        "whole": answer_whole_dataset_question(result),
    }
    return result


def _coverage_plan(check: ConsistencyCheck, samples, unique) -> tuple[CoveragePlan | None, str]:
    """The declared plan when it agrees with the log, else the one configuration that fits."""
    if check.plan is not None and check.agrees:
        return _with_unique(check.plan, unique), "the declared arguments, which agree with the log"
    rows = [r for r in check.fitting if r["matches_state"]]
    declared = check.declared or {}
    for key, name in (("drop_last", "dataloader_drop_last"), ("grad_accum", "gradient_accumulation_steps")):  # fmt: skip
        narrowed = [r for r in rows if name in declared and r[key] == declared[name]]
        rows = narrowed if len(narrowed) >= 1 and len(rows) > 1 else rows
    if len(rows) != 1 or not samples:
        return None, ""
    row, epochs = rows[0], check.logged.planned_epochs or 1.0
    plan = plan_coverage(samples, row["per_device_batch"], row["grad_accum"], epochs,
                         world_size=row["world_size"], drop_last=row["drop_last"],
                         unique_notes=unique)  # fmt: skip
    drop = "on" if row["drop_last"] else "off"
    return plan, (
        f"micro-batch {row['per_device_batch']} x accumulation {row['grad_accum']}, drop_last "
        f"{drop}, the only configuration that fits both the log and trainer_state.json"
    )


def _with_unique(plan: CoveragePlan, unique: int | None) -> CoveragePlan:
    if not unique:
        return plan
    return plan_coverage(
        plan.samples, plan.per_device_batch, plan.grad_accum, plan.epochs, plan.max_steps,
        plan.world_size, plan.drop_last, unique_notes=unique,
    )  # fmt: skip


def render_trainer_run_report(result: TrainerRunAnalysis, evaluation=None) -> str:
    """The report: the two questions, consistency, data join, then the usual training report."""
    out = [f"# Training analysis: {_md(result.name)}", "", "## The two questions", ""]
    out += [
        f"- **{QUESTIONS[0]}** {result.answers['loss']}",
        f"- **{QUESTIONS[1]}** {result.answers['whole']}",
        "",
    ]
    out += ["## Steps and epochs: the log against the arguments", "", *consistency_lines(result)]
    out += ["", "## Data", "", *data_lines(result), ""]
    if result.notes:
        out += ["## Notes on the inputs", "", *[f"- {n}" for n in result.notes], ""]
    body = render_training_report(
        result.analysis, plan=result.plan, stats=result.stats, evaluation=evaluation
    )
    out += [line.replace("# Training analysis", "## The training report", 1) if i == 0 else
            ("#" + line if line.startswith("## ") else line)
            for i, line in enumerate(body.splitlines())]  # fmt: skip
    return "\n".join(out) + "\n"


def _md(text: str) -> str:
    """A file or run name made inert in a Markdown heading."""
    return "".join("\\" + c if c in "\\`*[]<>#|" else c for c in str(text))


def analyse_run_files(
    run: str | Path,
    *,
    args_file: str | Path | None = None,
    args_raw: dict | None = None,
    overrides: dict | None = None,
    data: str | Path | None = None,
    val_data: str | Path | None = None,
    samples: int | None = None,
    steps_per_epoch: int | None = None,
    max_bytes: int | None = None,
    display_names: dict | None = None,
    discover_args: bool = True,
) -> TrainerRunAnalysis:
    """Everything from files: the run (folder, checkpoint or state), arguments and data.

    Arguments come from `args_raw` (already read, e.g. by the CLI's opt-in unpickling), else
    `args_file`, else a training_args.json found next to the state; `overrides` (flags) win.
    `display_names` maps "run", "args", "data", "val" to the names used in messages (uploads).
    `discover_args=False` looks for nothing next to the state (an upload's folder is not the run's).
    """
    from vetllm.data.loading import load_dataset_file

    names = display_names or {}
    limit = {"max_bytes": max_bytes} if max_bytes else {}
    files = find_trainer_state(run)
    if not discover_args:
        files.args_path = files.args_bin_path = None
    history, state = read_trainer_state(files.state_path, **limit)
    notes = list(files.notes)
    if args_raw is None and args_file is None and files.args_path is not None:
        args_file = files.args_path
        notes.append(f"training arguments read from {files.args_path.name} next to the state")
    elif args_raw is None and args_file is None and files.args_bin_path is not None:
        notes.append(
            f"{ARGS_BIN_NAME} found but not read: it is a Python pickle and loading it runs any "
            "code it contains; give the arguments as JSON or flags"
        )
    if args_file is not None:
        args_raw = read_args_json(args_file)
    declared = None
    if args_raw is not None or any(v is not None for v in (overrides or {}).values()):
        source = names.get("args") or (Path(args_file).name if args_file else "training arguments")
        declared = normalise_training_args(args_raw or {}, source, overrides)
    train = val = None
    skipped = 0
    if data is not None:
        loaded = load_dataset_file(data, on_error="skip", display_name=names.get("data"), **limit)
        train, skipped = loaded.records, loaded.skipped_rows
        if skipped:
            notes.append(f"{skipped:,} row(s) of the training file are unusable here; they still "
                         "count as samples the Trainer saw")  # fmt: skip
    if val_data is not None:
        val = load_dataset_file(val_data, on_error="skip", display_name=names.get("val"),
                                **limit).records  # fmt: skip
    return analyse_trainer_run(
        history, state, declared, train=train, val=val, samples=samples, skipped_rows=skipped,
        name=names.get("run") or files.description, notes=notes, steps_per_epoch=steps_per_epoch,
    )  # fmt: skip
