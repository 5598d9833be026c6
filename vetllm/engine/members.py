"""The ensemble's other models, trained in their own processes while the first model trains.

`vetllm.engine.ensemble` says what an ensemble is; this module runs its members. Each member is a
run folder (RUN/members/seed-N) trained by `python -m vetllm.engine.member_process CONFIG FOLDER`
(the same `train` path as any run), its output in its own train.log. All members start together
with the first model: three single-threaded processes on 2 cores take about 1.5 times one model's
time, where one after another would take 3 times. A member stops, with a checkpoint, at a STOP
flag in the ensemble's folder or its own, and when the training process is gone (even by
kill -9: no orphan trains on); a resumed run resumes or retrains only the members that did not
complete.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from vetllm.config import TrainConfig
from vetllm.engine.ensemble import member_entry, member_folder, member_seeds
from vetllm.engine.modeling import RUN_CARD
from vetllm.errors import VetLLMError
from vetllm.runs.directory import RunDirectory
from vetllm.runs.launcher import child_environment
from vetllm.runs.state import RunState


@dataclass
class Member:
    seed: int
    run: RunDirectory
    process: subprocess.Popen | None = None  # None: completed before this session


class MemberProcesses:
    """Start the members of `cfg`'s ensemble in `run_path`, then wait for them or stop them."""

    def __init__(self, cfg: TrainConfig, run_path: Path, log):
        self.cfg, self.run_path, self.log = cfg, Path(run_path), log
        self.members = [
            Member(seed, RunDirectory(member_folder(self.run_path, seed)))
            for seed in member_seeds(cfg.seed, cfg.ensemble)
        ]

    def start(self) -> None:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise VetLLMError(
                "ensemble: its models train as separate processes; launch an ensemble without "
                "torchrun / accelerate launch, or set ensemble: 1 (and bag_of_words_vote: false)"
            )
        pending = [member for member in self.members if not _completed(member.run)]
        for member in pending:
            member.process = self._spawn(member)
        if pending:
            folders = ", ".join(str(m.run.path.relative_to(self.run_path)) for m in pending)
            self.log(f"ensemble: {len(pending)} more models training alongside ({folders})")

    def _spawn(self, member: Member) -> subprocess.Popen:
        member.run.path.mkdir(parents=True, exist_ok=True)
        config = member.run.config_path  # train() writes the same file again
        # One model of the vote: the run's own folder holds the bag-of-words voter, if any.
        member_cfg = self.cfg.replace(
            seed=member.seed, ensemble=1, final_eval=False, bag_of_words_vote=False
        )
        member_cfg.to_yaml(config)
        resume = member.run.last_complete_checkpoint() is not None
        command = [
            sys.executable,
            "-m",
            "vetllm.engine.member_process",
            str(config),
            str(member.run.path),
        ]
        # One thread each unless configured: the members share the cores with the first model.
        env = child_environment(OMP_NUM_THREADS=str(self.cfg.torch_threads or 1))
        with open(member.run.log_path, "a", encoding="utf-8") as log:
            return subprocess.Popen(
                [*command, *(["--resume"] if resume else [])],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )

    def wait(self) -> list[dict] | None:
        """Run card entries of every member once all ended; None when a stop ended one.

        Raises VetLLMError naming the member when one failed.
        """
        for member in self.members:
            if member.process is not None:
                member.process.wait()
        entries, stopped = [], False
        for member in self.members:
            status = member.run.read_status()
            if status.state == RunState.STOPPED:
                stopped = True
                continue
            if not _completed(member.run):
                where = member.run.path.relative_to(self.run_path)
                cause = status.error or f"it ended without finishing (see {where}/train.log)"
                raise VetLLMError(f"ensemble model seed {member.seed} failed: {cause}")
            entries.append(member_entry(self.run_path, member.seed, dict(status.served or {})))
        return None if stopped else entries

    def stop(self) -> None:
        """Ask every running member to stop (a STOP flag in its folder) and wait for it."""
        running = [m for m in self.members if m.process and m.process.poll() is None]
        for member in running:
            member.run.request_stop()
        for member in running:
            member.process.wait()


def _completed(run: RunDirectory) -> bool:
    return (run.model_dir / RUN_CARD).is_file() and run.read_status().state == RunState.COMPLETED
