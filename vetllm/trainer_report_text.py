"""The sentences and tables of the report on a Trainer run made elsewhere (vetllm.trainer_report).

Each answer is one line that gives its numbers and says where they come from: the logged loss
history (plateau: the 3-point median, vetllm.analysis), the coverage arithmetic
(vetllm.coverage, tested against the real Trainer), the consistency check (vetllm.consistency)
and the data statistics (vetllm.data.stats and vetllm.data.split).
"""

from __future__ import annotations

from vetllm.analysis import _loss_covers_prompt

SHOWN_CONFIGURATIONS = 12


def answer_loss_question(result, config: dict | None) -> str:
    """Why the loss fell so fast, in one line: how fast (log), then why (data, prompt loss)."""
    a = result.analysis
    first_step = a.points[0]["step"]
    if a.plateau:
        p = a.plateau
        fell = (a.first_loss - p["smoothed_loss"]) / a.first_loss if a.first_loss else 0.0
        epoch = f", epoch {p['start_epoch']:.2f}" if p["start_epoch"] is not None else ""
        how = (
            f"the loss fell {fell:.1%} ({a.first_loss:.4f} at step {first_step} to "
            f"{p['smoothed_loss']:.4f} at step {p['start_step']}{epoch}) and then improved only "
            f"{p['later_improvement']:.1%} over the remaining {p['share_of_run_after']:.0%} of "
            "the run (logged losses, 3-point median plateau)"
        )
    else:
        how = (
            f"the loss fell {a.reduction:.1%} ({a.first_loss:.4f} to {a.final_loss:.4f}) over "
            f"{a.final_step:,} steps and was still falling at the end (logged losses)"
        )
    why = _why(result, config)
    return f"{how[0].upper()}{how[1:]}; {why}."


def _why(result, config: dict | None) -> str:
    reasons = []
    stats, plan = result.stats, result.plan
    if stats is not None:
        most = max(result.copies_per_note or [1])
        text = (
            f"the {stats.n_records:,} training rows (training file) hold only "
            f"{stats.n_unique_notes:,} distinct notes (the most repeated {most:,} times)"
        )
        if plan is not None and plan.exposures_per_unique_note:
            text += (
                f", so each distinct note was trained on {plan.exposures_per_unique_note:.3g} "
                f"times ({plan.exposures:,} exposures / {stats.n_unique_notes:,} notes, coverage "
                "arithmetic)"
            )
        reasons.append(text)
    if result.leakage is not None:
        leak = result.leakage
        reasons.append(
            f"{leak.share_leaked_notes:.0%} of the validation notes ({leak.n_leaked_notes:,} of "
            f"{leak.n_other_notes:,}) are verbatim in the training data (validation file)"
        )
    if config and _loss_covers_prompt(config):
        reasons.append("the loss covered the whole prompt, mostly memorised boilerplate")
    if not reasons:
        return (
            "why cannot be measured from the log alone: give the training file (duplicates, "
            "exposures per distinct note) and the validation file (leakage)"
        )
    return "memorisation more than learning: " + "; ".join(reasons)


def answer_whole_dataset_question(result) -> str:
    """Whether every sample was trained on, in one line, with the arithmetic behind it."""
    check, plan, logged = result.check, result.plan, result.check.logged
    if logged.complete is False:
        return (
            f"No: the log ends at step {logged.final_step:,} of the {logged.planned_steps:,} "
            f"planned (epoch {logged.final_epoch or 0:.2f}; trainer_state.json); the run "
            "stopped early or this is a checkpoint from its middle."
        )
    if plan is None:
        return _without_plan(check)
    steps = (
        f"{plan.steps_per_epoch:,} steps per epoch x {plan.epochs:g} epochs = "
        f"{plan.total_steps:,} steps, as logged"
    )
    basis = f"coverage arithmetic with {result.plan_basis}"
    if not check.agrees and check.mismatches:
        basis += f"; the declared arguments cannot produce this log: {check.mismatches[0]}"
    if plan.samples_dropped_per_epoch:
        return (
            f"No: {plan.samples_dropped_per_epoch:,} of {plan.samples:,} samples are left out "
            f"in each epoch ({plan.coverage:.1%} coverage, drop_last; a different subset each "
            f"epoch); {steps} ({basis})."
        )
    return (
        f"Yes: all {plan.samples:,} samples in each of the {plan.full_epochs:,} epochs, "
        f"nothing dropped (100% coverage); {steps} ({basis})."
    )


def _without_plan(check) -> str:
    logged = check.logged
    seen = (
        f"the log shows {logged.steps_per_epoch:,} steps per epoch and "
        f"{logged.final_step:,} steps in all ({logged.how})"
        if logged.steps_per_epoch
        else f"the log ends at step {logged.final_step:,} and logs no epoch"
    )
    if not check.samples:
        need = ""
        if check.implied_samples:
            low, high = check.implied_samples
            need = f"; with the declared arguments that means {low:,}-{high:,} training samples"
        return f"Cannot tell without the data size: {seen}{need}; give the training file."
    if check.fitting:
        covers = sorted({row["coverage"] for row in check.fitting})
        share = "100%" if covers == [1.0] else f"{covers[0]:.1%}-{covers[-1]:.1%}"
        return (
            f"Probably{' yes' if covers == [1.0] else ''}: {seen}; the declared arguments "
            f"cannot produce it ({'; '.join(check.mismatches) or 'none given'}), and the "
            f"configurations that do ({check.fitting_summary}) cover {share} of the "
            f"{check.samples:,} samples per epoch (coverage arithmetic)."
        )
    return (
        f"Cannot tell: {seen}, and no micro-batch and accumulation up to 64 give that with "
        f"{check.samples:,} samples; check the data file and the world size."
    )


def consistency_lines(result) -> list[str]:
    """Table of the log against the arguments, mismatches, and what fits the log."""
    check, logged = result.check, result.check.logged
    plan = check.plan
    rows = [
        ("steps per epoch", _spe(logged), _num(plan and plan.steps_per_epoch)),
        ("total steps", f"{logged.final_step:,} logged; {_num(logged.planned_steps)} planned",
         _num(plan and plan.total_steps)),
        ("epochs", _num(logged.final_epoch), _num(plan and plan.epochs)),
        ("micro-batch per process", _num(logged.micro_batch) + " (train_batch_size)",
         _num(plan and plan.per_device_batch)),
        ("samples dropped per epoch", "-", _num(plan and plan.samples_dropped_per_epoch)),
        ("coverage per epoch", "-", f"{plan.coverage:.1%}" if plan else "-"),
    ]  # fmt: skip
    samples = f"{check.samples:,} samples" if check.samples else "samples unknown"
    lines = [f"| quantity | from the log | from the arguments ({samples}) |", "|---|---|---|"]
    lines += [f"| {name} | {log} | {args} |" for name, log, args in rows]
    lines += ["", f"Steps per epoch from the log: {logged.how}.", ""]
    if check.agrees:
        lines.append("- **agree**: the declared arguments produce exactly the logged steps.")
    for mismatch in check.mismatches:
        lines.append(f"- **mismatch**: {mismatch}")
    if check.declared is None:
        lines.append(
            "- no training arguments were given, so there is nothing to check them against"
        )
    if check.fitting_summary:
        lines += ["", f"Configurations that produce the logged steps with {samples}: "
                  f"{check.fitting_summary}.", "", *_fitting_table(check.fitting)]  # fmt: skip
    if check.implied_samples:
        low, high = check.implied_samples
        lines.append(
            f"- the declared arguments give the logged steps with {low:,}-{high:,} samples"
        )
    return lines


def _fitting_table(rows: list[dict]) -> list[str]:
    out = ["| micro-batch | accumulation | world size | drop_last | dropped per epoch | coverage | "
           "matches trainer_state |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for row in rows[:SHOWN_CONFIGURATIONS]:
        out.append(
            f"| {row['per_device_batch']} | {row['grad_accum']} | {row['world_size']} | "
            f"{'on' if row['drop_last'] else 'off'} | {row['samples_dropped_per_epoch']:,} | "
            f"{row['coverage']:.1%} | {'yes' if row['matches_state'] else 'no'} |"
        )
    if len(rows) > SHOWN_CONFIGURATIONS:
        out.append(f"\n{SHOWN_CONFIGURATIONS} of {len(rows)} shown; --json lists all.")
    return out


def data_lines(result) -> list[str]:
    """Duplicates, exposures per distinct note, conflicts and ceiling, leakage."""
    stats = result.stats
    if stats is None:
        return ["- no training file given: duplicates, exposures and leakage not measured"]
    lines = [
        f"- training rows: {stats.n_records:,} usable"
        + (
            f" ({result.skipped_rows:,} more rows unusable here but counted as samples)"
            if result.skipped_rows
            else ""
        ),  # fmt: skip
        f"- distinct notes: {stats.n_unique_notes:,}; rows repeating an earlier note: "
        f"{stats.n_duplicate_records:,}; most repeated note: {max(result.copies_per_note):,} copies",
    ]
    plan = result.plan
    if plan is not None and plan.exposures_per_unique_note:
        lines.append(
            f"- exposures per distinct note over the run: {plan.exposures_per_unique_note:.3g} "
            f"({plan.exposures:,} samples fed / {stats.n_unique_notes:,} notes)"
        )
    lines.append(
        f"- notes with conflicting labels: {stats.n_conflicting_notes:,}; accuracy ceiling "
        f"(majority label set per note): {stats.accuracy_ceiling:.1%}"
    )
    if result.leakage is not None:
        leak = result.leakage
        lines.append(
            f"- validation leakage: {leak.share_leaked:.1%} of validation rows "
            f"({leak.n_leaked_records:,} of {leak.n_other_records:,}) and "
            f"{leak.share_leaked_notes:.1%} of distinct validation notes are in training"
        )
    else:
        lines.append("- no validation file given: leakage not measured")
    return lines


def _spe(logged) -> str:
    if len(logged.candidates) > 1:
        return f"{logged.candidates[0]:,}-{logged.candidates[-1]:,}"
    return _num(logged.steps_per_epoch)


def _num(value) -> str:
    if value is None or value is False:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return f"{value:,}"
