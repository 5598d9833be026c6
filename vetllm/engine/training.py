"""train(cfg, run_dir): the one training path for the tiny CPU default, one GPU and several GPUs.

Everything goes through the HF Trainer: dynamic padding, micro-batch x accumulation, cosine
schedule with warmup, checkpoints into RUN_DIR/checkpoints (resumed from the last one marked
COMPLETE, never HF's "highest number" guess), and DDP when started by `accelerate launch` or
`torchrun` (only rank 0 writes run files). Periodic validation adds strict and lenient accuracy of
greedy generations to the eval loss; the step with the best lenient accuracy becomes the run's
model, and early stopping watches lenient accuracy (vetllm.engine.selection). Failures end as
status "failed" with a one-line cause (CUDA out of memory gets remedies); the traceback goes to
train.log only.
"""

from __future__ import annotations

import gc
import os
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import TrainingArguments, set_seed

from vetllm.catalogue import Catalogue, load_catalogue
from vetllm.config import TrainConfig
from vetllm.config_checks import TINY_BASE, tracker_names
from vetllm.data.records import Record
from vetllm.engine import modeling
from vetllm.engine.calibrate import calibrate_at_finish
from vetllm.engine.callbacks import RunCallback
from vetllm.engine.collate import (
    DropoutEpochCallback,
    ResponseOnlyCollator,
    encode_records,
    load_training_data,
)
from vetllm.engine.ensemble import ensemble_summary
from vetllm.engine.environment import check_trackers
from vetllm.engine.evaluate import evaluate_at_finish, headline_metrics
from vetllm.engine.members import MemberProcesses
from vetllm.engine.selection import (
    GenerationEval,
    LenientEarlyStopping,
    VetTrainer,
    selection_arguments,
    served_step,
    too_few_to_choose,
    validation_subset,
)
from vetllm.engine.speed import speed_arguments
from vetllm.errors import VetLLMError
from vetllm.runs.directory import RunDirectory, atomic_write_text
from vetllm.runs.faults import record_failure
from vetllm.runs.state import RunState

OOM_REMEDY = (
    "lower per_device_batch (raise grad_accum to keep the effective batch), shorten max_length, "
    "or set gradient_checkpointing: true"
)


def is_main_process() -> bool:
    """Rank 0 of a torchrun / accelerate launch, or the only process."""
    return int(os.environ.get("RANK", "0")) == 0


class RunLog:
    """Progress lines to stdout and, unless stdout already is the run's train.log, to train.log."""

    def __init__(self, run: RunDirectory):
        self.path = run.log_path
        self.tee = is_main_process() and not _stdout_is(self.path)

    def __call__(self, message: str) -> None:
        if not is_main_process():
            return
        line = f"[{time.strftime('%H:%M:%S')}] {message}"
        print(line, flush=True)
        if self.tee:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(line + "\n")


def _stdout_is(path: Path) -> bool:
    try:
        return path.exists() and os.path.samestat(os.fstat(sys.stdout.fileno()), os.stat(path))
    except (OSError, ValueError, AttributeError):
        return False


def train(cfg: TrainConfig, run_dir: str | Path, resume: bool = False) -> dict:
    """Train as configured into `run_dir`; returns the final status dict.

    Raises VetLLMError (status "failed" with cause and remedy already written) on failure.
    """
    if not resume:  # a resumed run keeps the micro-batch its config.yaml recorded
        cfg = _planned(cfg)
    status = _train_and_record(cfg, run_dir, resume)
    _leave_process_group()  # after success only: a failed rank must not wait in a barrier
    return status


def _planned(cfg: TrainConfig) -> TrainConfig:
    """auto_micro_batch: the fastest micro-batch that fits this GPU's free memory (issue 10)."""
    from vetllm.engine.environment import apply_batch_plan, gpu_free_memory_gb

    planned, plan = apply_batch_plan(cfg, gpu_free_memory_gb() if cfg.auto_micro_batch else None)
    if cfg.auto_micro_batch and is_main_process():
        print(f"[{time.strftime('%H:%M:%S')}] auto_micro_batch: {plan.reason}", flush=True)
    return planned


def _leave_process_group() -> None:
    """Under torchrun, ranks leave together: one exiting while gloo/NCCL still talks aborts another."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _train_and_record(cfg: TrainConfig, run_dir: str | Path, resume: bool) -> dict:
    run = RunDirectory(run_dir)
    log = RunLog(run)
    if is_main_process():
        run.path.mkdir(parents=True, exist_ok=True)
        cfg.to_yaml(run.config_path)
        run.clear_stop()
        state = {"pid": os.getpid(), "error": None, "remedy": None, "message": "preparing"}
        if resume or run.read_status().state == RunState.QUEUED:
            # Keep what the launcher wrote (name, created_at, pid_start for liveness checks).
            run.write_status(RunState.RUNNING, **state)
        else:
            run.reset_status(RunState.RUNNING, step=0, progress=0.0, **state)
        run.pin()  # a deleted run folder now fails the run instead of being recreated
    try:
        return _train(cfg, run, resume, log)
    except torch.cuda.OutOfMemoryError:
        gc.collect()  # drop the failed step's tensors, then hand the cached blocks back
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        cause = "CUDA out of memory"
        _record_failure(run, log, cause, OOM_REMEDY, None)
        raise VetLLMError(f"training failed: {cause}; {OOM_REMEDY}") from None
    except VetLLMError as error:
        cause = _record_failure(run, log, str(error), None, error)
        if cause != str(error):
            raise VetLLMError(f"training failed: {cause}") from None
        raise
    except Exception as error:  # noqa: BLE001 - any crash must end as a readable status
        cause = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        cause = _record_failure(run, log, cause, "see train.log for the traceback", error)
        raise VetLLMError(f"training failed: {cause} (details in {run.log_path.name})") from None


def _record_failure(
    run: RunDirectory, log: RunLog, cause: str, remedy: str | None, error: BaseException | None
) -> str:
    """Log the traceback and mark the run failed, even on a full disk; returns the cause."""
    if not is_main_process():
        return cause
    try:  # the log itself may be on the full disk
        log("training failed: " + cause)
        if log.tee:
            with open(log.path, "a", encoding="utf-8") as handle:
                handle.write(traceback.format_exc())
        else:
            traceback.print_exc()
    except OSError:
        pass
    return record_failure(run, cause, remedy, error)


@dataclass
class Recipe:
    """One run's inputs, gathered once by `_train` and read by `_prepare_trainer` and `_finish`."""

    cfg: TrainConfig
    run: RunDirectory
    log: RunLog
    source: str | None  # the base model's local folder or hub id; None for the tiny model
    catalogue: Catalogue
    train_records: list[Record]  # the user's notes (the model may train on a mix, training_mix)
    val_records: list[Record]
    data_files: dict  # name -> path and sha256 of each data file, for the run card
    started: float  # time.monotonic() when training began, for the wall time
    mix: dict | None = None  # what training_mix changed, for the run card


def _train(cfg: TrainConfig, run: RunDirectory, resume: bool, log: RunLog) -> dict:
    started = time.monotonic()
    set_seed(cfg.seed)
    if cfg.torch_threads:
        torch.set_num_threads(cfg.torch_threads)
    if cfg.method == "qlora":
        modeling.require_qlora_support()  # before any data or weights are touched
    check_trackers(cfg)  # report_to: a missing tracker fails now, not after the first steps
    if cfg.bf16 and not torch.cuda.is_available():
        log("bf16: no CUDA device, training in float32")
    source = None if cfg.base_model == TINY_BASE else modeling.resolve_base_model(cfg)
    catalogue = load_catalogue(cfg.catalogue)
    train_records, val_records, data_files = load_training_data(cfg, catalogue)
    log(f"data: {len(train_records)} training notes, {len(val_records)} validation notes")
    recipe = Recipe(
        cfg, run, log, source, catalogue, train_records, val_records, data_files, started
    )
    model_records, recipe.mix = training_mix(cfg, train_records, catalogue, log)
    trainer, callback, params = _prepare_trainer(recipe, model_records, resume)
    checkpoint = run.last_complete_checkpoint() if resume else None
    for name, problem in run.damaged_checkpoints() if resume else []:
        log(f"{name} is damaged ({problem}); not resuming from it")
    if resume:
        log(f"resuming from {checkpoint.name}" if checkpoint else "no checkpoint: from the start")
    others = MemberProcesses(cfg, run.path, log) if cfg.ensemble > 1 else None
    if others is not None:
        others.start()  # the ensemble's other models train alongside (vetllm.engine.members)
    try:
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    except BaseException:
        if others is not None:
            others.stop()
        raise
    if callback.stopped:
        log(f"stopped at step {trainer.state.global_step} ({callback.stop_reason}); resumable")
        if others is not None:
            others.stop()  # a STOP flag reaches them too; a signal may have reached only us
        return _stopped(run, callback.stop_reason)
    return _finish(recipe, trainer, params, others)


def _fit_bag_of_words_voter(recipe: Recipe) -> dict | None:
    """Fit the bag-of-words voter on the user's training notes and save it with the model;
    its run card entry. None, said in the log, when it cannot be fitted: the models' training is
    done and must not be lost to it."""
    from vetllm.engine.bag_of_words_vote import VOTER_FILE, fit_voter, save_voter

    recipe.run.write_status(message="fitting the bag-of-words voter")
    try:
        state = fit_voter(recipe.train_records, recipe.cfg.seed)
        if state is not None:
            save_voter(state, recipe.run.model_dir)
    except (ValueError, OSError) as error:  # e.g. no note holds a word of two letters or more
        recipe.log(f"bag-of-words vote: skipped ({error}); the models answer alone")
        return None
    if state is None:
        recipe.log("bag-of-words vote: skipped, the training notes hold a single label set")
        return None
    settings = state["settings"]
    words = "words and word pairs" if settings["ngram_range"][1] == 2 else "words"
    summary = f"the tuned bag of words votes too (C {settings['C']:g}, {words})"
    recipe.log(summary)
    return {"file": VOTER_FILE, "settings": settings, "summary": summary}


def _stopped(run: RunDirectory, reason: str) -> dict:
    if is_main_process():
        return run.write_status(RunState.STOPPED, message=f"stopped ({reason})")
    return {"state": RunState.STOPPED.value}


def _prepare_trainer(recipe: Recipe, model_records: list[Record], resume: bool) -> tuple:
    """(Trainer with its callbacks, the RunCallback, parameter counts) for `model_records`."""
    cfg, run, log = recipe.cfg, recipe.run, recipe.log
    tokenizer = modeling.tokenizer_for_training(
        cfg,
        recipe.source,
        model_records,
        recipe.catalogue.labels,
        run.path / "tokenizer",
        fresh=not resume,
    )
    model = modeling.model_for_training(cfg, recipe.source, tokenizer)
    params = modeling.count_parameters(model)
    log(
        f"model: {cfg.base_model} ({cfg.method}); trainable parameters {params['trainable']:,} "
        f"of {params['total']:,} ({params['trainable_share']:.3%})"
    )
    eval_records = validation_subset(recipe.val_records, cfg.eval_samples)
    too_few = None
    if cfg.eval_steps and eval_records:
        too_few = too_few_to_choose(eval_records)
        served = "the step with the best lenient accuracy is served"
        if too_few:
            served = f"the final step is served: {too_few}"
        log(
            f"validation every {cfg.eval_steps} steps on {len(eval_records)} of "
            f"{len(recipe.val_records)} notes; {served}"
        )
    template = cfg.prompt()
    train_set = encode_records(
        tokenizer,
        template,
        model_records,
        cfg.max_length,
        cfg.note_token_dropout,
        cfg.seed,
        segment_shuffle=cfg.note_segment_shuffle,
    )
    eval_set = encode_records(tokenizer, template, eval_records, cfg.max_length)
    source_of = "reused from the datasets cache" if train_set.from_cache else "tokenized"
    log(f"training examples: {len(train_set)} {source_of} in {train_set.tokenize_seconds:.2f} s")
    callback = RunCallback(run)
    trainer = _build_trainer(cfg, run, model, tokenizer, train_set, eval_set, callback, too_few)
    trainer.generation_eval = GenerationEval(cfg, tokenizer, eval_records, recipe.catalogue)
    return trainer, callback, params


def _finish(
    recipe: Recipe, trainer: VetTrainer, params: dict, others: MemberProcesses | None
) -> dict:
    """Save the final model and run card, evaluate, write the report, mark the run completed.

    `others`: an ensemble's other models, still training or done (waited for here)."""
    cfg, run, log = recipe.cfg, recipe.run, recipe.log
    trainer.save_model(str(run.model_dir))  # only rank 0 writes; every rank must call it
    if not is_main_process():
        return {"state": RunState.COMPLETED.value}
    voter = _fit_bag_of_words_voter(recipe) if cfg.bag_of_words_vote else None
    members = []
    if others is not None:
        run.write_status(message="waiting for the ensemble's other models")
        members = others.wait()
        if members is None:
            return _stopped(run, "while the ensemble's other models trained")
    trainer.processing_class.save_pretrained(str(run.model_dir))
    train_seconds = time.monotonic() - recipe.started
    labels = {label for r in recipe.train_records for label in r.labels}
    card = modeling.build_run_card(
        cfg, recipe.source, params, recipe.data_files, labels, trainer.state
    )
    # load_best_model_at_end has already put the best step's weights in the model just saved.
    card["served"] = served_step(
        trainer.state, trainer.args.load_best_model_at_end, trainer.too_few_to_choose
    )
    if members:
        served = [card["served"], *(member["served"] or {} for member in members)]
        summary = ensemble_summary([cfg.seed, *(m["seed"] for m in members)], served)
        card["ensemble"] = {"members": members, "summary": summary}
        card["served"]["summary"] += f"; answers by {summary}"
    if voter is not None:
        card["bag_of_words_vote"] = voter
        card["served"]["summary"] += f"; {voter['summary']}"
    log("served model: " + card["served"]["summary"])
    card["training_mix"] = recipe.mix
    modeling.write_json(run.model_dir / modeling.RUN_CARD, card)
    calibrate_at_finish(run.path, cfg, recipe.val_records, log)  # before the evaluation uses it
    evaluation = None
    if cfg.final_eval and recipe.val_records:
        run.write_status(message="final evaluation")
        evaluation = evaluate_at_finish(run.path, recipe.val_records, log)
        card["final_metrics"] = headline_metrics(evaluation)
        modeling.write_json(run.model_dir / modeling.RUN_CARD, card)
    write_report(run, cfg, recipe.train_records, evaluation, log, served=card["served"])
    total = time.monotonic() - recipe.started
    log(f"done in {total:.1f} s (training {train_seconds:.1f} s); model in {run.model_dir}")
    return run.write_status(
        RunState.COMPLETED,
        message="completed",
        wall_s=round(total, 2),
        final_metrics=headline_metrics(evaluation),
        served=card["served"],
    )


def training_mix(cfg: TrainConfig, records: list[Record], catalogue: Catalogue, log) -> tuple:
    """(records the model trains on, summary or None): dedupe and synthetic notes, if set.

    Only the training records: validation stays the user's own notes.
    """
    if not cfg.dedupe_notes and not cfg.synthetic_notes:
        return records, None
    from vetllm.data.synth_mix import build_training_mix

    mixed, summary = build_training_mix(
        records,
        dedupe=cfg.dedupe_notes,
        synthetic_notes=cfg.synthetic_notes,
        seed=cfg.seed,
        catalogue=catalogue,
    )
    log(
        f"training mix: {len(records)} user records"
        + (f" -> {summary['deduplicated_to']} distinct notes" if cfg.dedupe_notes else "")
        + f" + {summary['synthetic_free_text_notes']} synthetic free-text notes"
    )
    return mixed, summary


# -- the Trainer -----------------------------------------------------------------------------
def training_arguments(
    cfg: TrainConfig, run: RunDirectory, has_eval: bool, choose_step: bool = True
) -> TrainingArguments:
    """The HF TrainingArguments for a config (one place, so tests can inspect them).

    `choose_step`: validation may choose the served step (False: too small, see selection.py)."""
    on_cuda = torch.cuda.is_available()
    periodic_eval = has_eval and cfg.eval_steps is not None
    extra: dict = {}
    if cfg.gradient_checkpointing:  # only passed when on: the argument name is being renamed
        extra["gradient_checkpointing"] = True
        extra["gradient_checkpointing_kwargs"] = {"use_reentrant": False}
    extra.update(speed_arguments(cfg, on_cuda))  # length grouping, Liger kernels (issue 10)
    return TrainingArguments(
        **extra,
        output_dir=str(run.checkpoints_dir),
        per_device_train_batch_size=cfg.per_device_batch,
        per_device_eval_batch_size=max(cfg.per_device_batch, 8),
        gradient_accumulation_steps=cfg.grad_accum,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps or -1,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=cfg.warmup_ratio,  # a float below 1 is a share of all steps (transformers 5)
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        optim=cfg.optim,
        bf16=cfg.bf16 and on_cuda,
        dataloader_drop_last=cfg.drop_last,
        logging_steps=cfg.logging_steps,
        eval_strategy="steps" if periodic_eval else "no",
        eval_steps=cfg.eval_steps if periodic_eval else None,
        save_strategy="steps",
        save_total_limit=2,  # the best checkpoint is kept on top of these (selection.py)
        **selection_arguments(cfg, periodic_eval, choose_step),
        seed=cfg.seed,
        data_seed=cfg.seed,
        report_to=tracker_names(cfg.report_to) or "none",
        remove_unused_columns=False,
        ddp_find_unused_parameters=False,
        use_cpu=not on_cuda,
        disable_tqdm=True,
    )


def _build_trainer(
    cfg, run, model, tokenizer, train_set, eval_set, callback, too_few: str | None = None
) -> VetTrainer:
    callbacks = [callback, DropoutEpochCallback(train_set)]
    if cfg.early_stopping_patience and len(eval_set):
        callbacks.append(LenientEarlyStopping(cfg.early_stopping_patience))
    trainer = VetTrainer(
        model=model,
        args=training_arguments(cfg, run, len(eval_set) > 0, choose_step=too_few is None),
        train_dataset=train_set,
        eval_dataset=eval_set if len(eval_set) else None,
        data_collator=ResponseOnlyCollator(tokenizer.pad_token_id),
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    trainer.too_few_to_choose = too_few  # _finish says why the final step is served
    return trainer


# -- the report ------------------------------------------------------------------------------
def write_report(run, cfg, records, evaluation, log, served: dict | None = None) -> None:
    """RUN_DIR/report.md from vetllm.analysis; a report problem never fails a finished run."""
    if not run.metrics_path.is_file():
        log("report.md skipped: no logging step reached (lower logging_steps)")
        return
    try:
        text = _render_report(run, cfg, records, evaluation, served)
        atomic_write_text(run.report_path, text)
    except Exception as error:  # noqa: BLE001 - the model is saved; the report can be redone
        log(f"report.md skipped ({type(error).__name__}: {error}); retry with `vetllm report`")


def _render_report(run, cfg, records, evaluation, served) -> str:
    from vetllm.data.stats import dataset_stats
    from vetllm.report import report_from_metrics

    plan = cfg.coverage_plan(records, world_size=int(os.environ.get("WORLD_SIZE", "1")))
    return report_from_metrics(
        run.read_metrics(),  # skips a damaged line (issue 11, item 18)
        plan=plan,
        stats=dataset_stats(records),
        config=cfg.to_dict(),
        evaluation=evaluation,
        served=served,
    )
