"""Do a run's logged steps and epochs agree with its declared arguments and data size?

A Trainer log pairs optimizer steps with the epoch the Trainer logged for them
(`micro-batches consumed / micro-batches per epoch`, see vetllm.coverage). From those pairs
`infer_steps_per_epoch` finds every whole number of optimizer steps per epoch S that explains all
of them: after step k = idx * S + j (0 < j < S) the logged epoch lies between idx + j / S and
idx + j / (S - 1) (the last accumulation window of an epoch may be short), and at j = 0 it is idx
exactly; epochs rounded when logged (older transformers kept 2 decimals) widen each bound by half
a unit of the last decimal.

`check_consistency` compares S and the total with the coverage plan of the declared arguments
(`vetllm.coverage.plan_coverage`, tested against the real Trainer) and, when they disagree or are
missing, lists the configurations (micro-batch, accumulation, drop_last) that do produce the
logged numbers with this many samples, or the sample counts that the declared arguments would
need.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from vetllm.coverage import CoveragePlan, plan_coverage
from vetllm.errors import VetLLMError

MAX_SEARCHED = 64  # largest micro-batch and accumulation tried when listing configurations
MAX_CANDIDATES = 100_000  # widest range of steps per epoch checked one by one
MAX_LISTED = 16  # configurations shown in a report


@dataclass
class LoggedRun:
    """What the log and trainer_state.json say, without any declared argument."""

    steps_per_epoch: int | None  # the one value consistent with the log, else the likeliest
    candidates: list[int]  # every steps-per-epoch value consistent with the log (capped)
    how: str  # how steps_per_epoch was obtained, for the report
    final_step: int
    final_epoch: float | None
    planned_steps: int | None  # trainer_state max_steps
    planned_epochs: float | None  # trainer_state num_train_epochs
    micro_batch: int | None  # trainer_state train_batch_size (per process)
    epoch_decimals: int | None

    @property
    def complete(self) -> bool | None:
        """True when the log reaches the planned step count (None when it is not known)."""
        return None if self.planned_steps is None else self.final_step >= self.planned_steps


@dataclass
class ConsistencyCheck:
    """The log against the declared arguments and data size; `to_dict()` is JSON-ready."""

    logged: LoggedRun
    samples: int | None
    declared: dict | None  # normalised training arguments (vetllm.trainer_run)
    plan: CoveragePlan | None  # what the declared arguments give with `samples`
    agrees: bool | None  # None: nothing declared to compare with
    mismatches: list[str] = field(default_factory=list)
    fitting: list[dict] = field(default_factory=list)  # configurations that give the log
    fitting_summary: str = ""
    implied_samples: list[int] | None = None  # [low, high] the declared arguments need

    def to_dict(self) -> dict:
        out = asdict(self)
        out["plan"] = self.plan.to_dict() if self.plan else None
        out["logged"]["complete"] = self.logged.complete
        return out


def infer_logged_run(history: list[dict], state: dict | None = None) -> LoggedRun:
    """Steps per epoch and totals from logged (step, epoch) pairs plus trainer_state.json fields."""
    state = state or {}
    pairs = _step_epoch_pairs(history, state)
    steps = [int(e["step"]) for e in history if _number(e.get("step"))]
    final_step = max(steps + [_int_or_none(state.get("global_step")) or 0])
    if final_step < 1:
        raise VetLLMError("log: no optimizer step was logged; log with logging_steps > 0")
    decimals = max((_decimals(e) for _, e in pairs), default=None)
    candidates = _candidates(pairs, decimals)
    spe, how = _choose(candidates, pairs, decimals)
    epochs = [e for _, e in pairs]
    return LoggedRun(
        steps_per_epoch=spe,
        candidates=candidates[:MAX_LISTED],
        how=how,
        final_step=final_step,
        final_epoch=max(epochs) if epochs else None,
        planned_steps=_positive_int(state.get("max_steps")),
        planned_epochs=_positive_number(state.get("num_train_epochs")),
        micro_batch=_positive_int(state.get("train_batch_size")),
        epoch_decimals=decimals,
    )


def _step_epoch_pairs(history: list[dict], state: dict) -> list[tuple[int, float]]:
    pairs = {}
    for entry in history:
        step, epoch = entry.get("step"), entry.get("epoch")
        if _number(step) and _number(epoch) and step >= 1 and epoch > 0:
            pairs[int(step)] = float(epoch)
    step, epoch = state.get("global_step"), state.get("epoch")
    if _number(step) and _number(epoch) and step >= 1 and epoch > 0:
        pairs.setdefault(int(step), float(epoch))
    return sorted(pairs.items())


def _decimals(epoch: float) -> int:
    text = repr(float(epoch))
    return 0 if "e" in text else len(text.split(".")[1].rstrip("0"))


def _tolerance(decimals: int | None) -> float:
    # 2 decimals (older transformers rounded) -> 0.005; full precision -> float noise only
    return 0.5 * 10.0**-decimals if decimals is not None and decimals < 6 else 1e-9


def _candidates(pairs: list[tuple[int, float]], decimals: int | None) -> list[int]:
    """Every S that explains all (step, epoch) pairs, from a coarse range checked one by one."""
    if not pairs:
        return []
    t = _tolerance(decimals)
    low, high = 1, math.inf
    for step, epoch in pairs:
        low = max(low, math.ceil(step / (epoch + t) - 1e-9))
        if epoch - t > 0:
            high = min(high, math.floor(step / (epoch - t) + 1e-9) + 1)
    if high == math.inf or high - low > MAX_CANDIDATES:
        return []
    return [s for s in range(low, int(high) + 1) if _explains(s, pairs, t)]


def _explains(spe: int, pairs: list[tuple[int, float]], t: float) -> bool:
    for step, epoch in pairs:
        index, within = divmod(step, spe)
        if within == 0:
            low = high = float(index)
        else:
            low = index + within / spe
            high = index + (within / (spe - 1) if spe > 1 else 1.0)
        if not (low - t - 1e-9 <= epoch <= high + t + 1e-9):
            return False
    return True


def _choose(candidates, pairs, decimals) -> tuple[int | None, str]:
    if not pairs:
        return None, "no epoch was logged, so steps per epoch cannot be read off the log"
    rounding = f"epochs logged to {decimals} decimals" if decimals is not None else ""
    if len(candidates) == 1:
        return candidates[0], (
            f"the only whole number that fits all {len(pairs)} logged step/epoch pairs, {rounding}"
        )
    step, epoch = pairs[-1]
    guess = max(round(step / epoch), 1)
    if not candidates:
        return guess, (
            f"step {step} / logged epoch {epoch:g}; no single value fits every logged pair "
            "(a resumed run or changed settings?)"
        )
    if guess not in candidates:
        guess = candidates[len(candidates) // 2]
    return guess, (
        f"step {step} / logged epoch {epoch:g}; {len(candidates)} values fit the log: "
        f"{candidates[0]}-{candidates[-1]}, {rounding}"
    )


def check_consistency(
    logged: LoggedRun, declared: dict | None, samples: int | None
) -> ConsistencyCheck:
    """Compare the log with the declared arguments' coverage plan; list what fits the log."""
    check = ConsistencyCheck(logged=logged, samples=samples, declared=declared, plan=None,
                             agrees=None)  # fmt: skip
    if declared and samples:
        check.plan = declared_plan(declared, samples)
        check.mismatches = _mismatches(logged, declared, check.plan)
        check.agrees = not check.mismatches
    elif declared:
        check.mismatches = _state_mismatches(logged, declared)
        check.agrees = False if check.mismatches else None
    if samples and not check.agrees and logged.candidates:
        world = int((declared or {}).get("world_size") or 1)
        check.fitting = fitting_configurations(logged, samples, world)
        check.fitting_summary = summarise_fitting(check.fitting)
    if declared and not samples and logged.candidates:
        check.implied_samples = implied_samples(logged, declared)
    return check


def declared_plan(declared: dict, samples: int) -> CoveragePlan:
    """The coverage plan of normalised training arguments over `samples` records."""
    return plan_coverage(
        samples=samples,
        per_device_batch=declared["per_device_train_batch_size"] * declared.get("n_gpu", 1),
        grad_accum=declared["gradient_accumulation_steps"],
        epochs=declared["num_train_epochs"],
        max_steps=declared.get("max_steps"),
        world_size=declared.get("world_size", 1),
        drop_last=declared["dataloader_drop_last"],
    )


def _mismatches(logged: LoggedRun, declared: dict, plan: CoveragePlan) -> list[str]:
    out = []
    if logged.candidates and plan.steps_per_epoch not in logged.candidates:
        out.append(
            f"the arguments give {plan.steps_per_epoch:,} steps per epoch, the log "
            f"{_logged_spe(logged)}"
        )
    total = logged.planned_steps
    if total and plan.total_steps != total:
        out.append(
            f"the arguments give {plan.total_steps:,} steps in all, the run planned {total:,}"
        )
    return out + _state_mismatches(logged, declared)


def _state_mismatches(logged: LoggedRun, declared: dict) -> list[str]:
    out = []
    batch = declared["per_device_train_batch_size"] * declared.get("n_gpu", 1)
    if logged.micro_batch and logged.micro_batch != batch:
        out.append(
            f"trainer_state.json says train_batch_size {logged.micro_batch} per process, the "
            f"arguments {batch}"
        )
    epochs = logged.planned_epochs
    if epochs and declared.get("max_steps") is None and epochs != declared["num_train_epochs"]:
        out.append(
            f"trainer_state.json says num_train_epochs {epochs:g}, the arguments "
            f"{declared['num_train_epochs']:g}"
        )
    return out


def _logged_spe(logged: LoggedRun) -> str:
    if len(logged.candidates) == 1:
        return f"{logged.candidates[0]:,}"
    return f"{logged.candidates[0]:,}-{logged.candidates[-1]:,}"


def fitting_configurations(logged: LoggedRun, samples: int, world_size: int = 1) -> list[dict]:
    """(micro-batch, accumulation, drop_last) with `samples` that give the logged step counts.

    Checked with the coverage arithmetic itself, after a cheap filter; micro-batch and
    accumulation up to MAX_SEARCHED each. When trainer_state.json recorded the micro-batch per
    process (train_batch_size), rows with that micro-batch are marked `matches_state`.
    """
    wanted = set(logged.candidates)
    rows = []
    for batch in range(1, MAX_SEARCHED + 1):
        for accum in range(1, MAX_SEARCHED + 1):
            rough = math.ceil(samples / (batch * world_size) / accum)
            if not any(abs(rough - s) <= 1 for s in wanted):
                continue
            for drop_last in (False, True):
                row = _fitting_row(samples, batch, accum, world_size, drop_last, logged)
                if row and row["steps_per_epoch"] in wanted and _total_fits(row, logged):
                    rows.append(row)
    return rows


def _total_fits(row: dict, logged: LoggedRun) -> bool:
    """The planned total follows from epochs (ceil(E x S)) or set max_steps (E = ceil(T / S))."""
    total, epochs, spe = logged.planned_steps, logged.planned_epochs, row["steps_per_epoch"]
    if not (total and epochs):
        return True
    return math.ceil(epochs * spe) == total or math.ceil(total / spe) == epochs


def _fitting_row(samples, batch, accum, world_size, drop_last, logged) -> dict | None:
    try:
        plan = plan_coverage(samples, batch, accum, logged.planned_epochs or 1.0,
                             world_size=world_size, drop_last=drop_last)  # fmt: skip
    except VetLLMError:  # drop_last with fewer samples than one micro-batch
        return None
    return {
        "per_device_batch": batch,
        "grad_accum": accum,
        "world_size": world_size,
        "drop_last": drop_last,
        "effective_batch": plan.effective_batch,
        "steps_per_epoch": plan.steps_per_epoch,
        "total_steps": plan.total_steps,
        "samples_dropped_per_epoch": plan.samples_dropped_per_epoch,
        "coverage": plan.coverage,
        "matches_state": logged.micro_batch in (None, batch),
    }


def summarise_fitting(rows: list[dict]) -> str:
    """One line: e.g. 'micro-batch x accumulation = 8: 1x8, 2x4 (either drop_last); 4x2, 8x1
    (drop_last off)'."""
    if not rows:
        return "no micro-batch and accumulation up to 64 each produce the logged steps"
    groups: dict[int, dict[tuple[int, int], set[bool]]] = {}
    for row in rows:
        pair = (row["per_device_batch"], row["grad_accum"])
        groups.setdefault(row["effective_batch"], {}).setdefault(pair, set()).add(row["drop_last"])
    parts = []
    for effective, pairs in sorted(groups.items()):
        shown = []
        for (batch, accum), drops in sorted(pairs.items()):
            when = "either drop_last" if len(drops) == 2 else (
                "drop_last on" if True in drops else "drop_last off")  # fmt: skip
            shown.append(f"{batch}x{accum} ({when})")
        world = rows[0]["world_size"]
        name = "micro-batch x accumulation" + (f" x {world} processes" if world > 1 else "")
        parts.append(f"{name} = {effective}: " + ", ".join(shown))
    return "; ".join(parts)


def implied_samples(logged: LoggedRun, declared: dict) -> list[int] | None:
    """[fewest, most] training samples for which the declared arguments give the logged steps."""
    batch = declared["per_device_train_batch_size"] * declared.get("n_gpu", 1)
    world = declared.get("world_size", 1)
    step = batch * world * declared["gradient_accumulation_steps"]
    wanted = set(logged.candidates)
    if step > 4096:
        return None
    found = []
    for spe in sorted(wanted):
        for n in range(max(1, (spe - 1) * step - batch * world), spe * step + batch * world + 1):
            try:
                plan = declared_plan(declared, n)
            except VetLLMError:
                continue
            if plan.steps_per_epoch in wanted:
                found.append(n)
    return [min(found), max(found)] if found else None


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _int_or_none(value) -> int | None:
    return int(value) if _number(value) else None


def _positive_int(value) -> int | None:
    return int(value) if _number(value) and value >= 1 and float(value).is_integer() else None


def _positive_number(value) -> float | None:
    return float(value) if _number(value) and value > 0 else None
