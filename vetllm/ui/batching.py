"""Micro-batching for the prediction endpoint: concurrent single-note requests, one model call.

On CPU the default model predicts ~8 notes/s one at a time but ~115 notes/s in batches of 32
(measured on this project's 2-core machine), so under load the app gathers the requests that
arrive within a few milliseconds and runs them through `Predictor.predict` together. One worker
thread owns the model calls; each request waits for its own answer. A batch that fails is
retried note by note, so one bad request never fails its neighbours.

Overload is answered, not queued (issue 11, item 5): a request that finds `max_backlog` notes
already waiting gets `ServerBusy` at once, and a request that waited longer than `max_age_s`
before its batch started is answered busy without running (its client has given up by then,
so its work would only delay everyone else).
"""

from __future__ import annotations

import os
import queue
import threading
import time
from dataclasses import dataclass, field

from vetllm.errors import VetLLMError

MAX_BATCH = 32  # notes per model call: ~115 notes/s at 32 vs ~8/s one by one on 2 CPU cores
MAX_WAIT_S = 0.005  # how long the first request of a batch waits for company (seconds)
MAX_BACKLOG = 128  # notes waiting for the model: twice 64 clients; more are told "busy"
MAX_AGE_S = 60.0  # a note still waiting after this many seconds is dropped (client gone)


class ServerBusy(VetLLMError):
    """Too much prediction work is waiting; the client should try again shortly."""


@dataclass
class _Job:
    predictor: object
    note: str
    decoding: str
    queued_at: float = field(default_factory=time.monotonic)
    done: threading.Event = field(default_factory=threading.Event)
    result: object = None
    error: BaseException | None = None


class MicroBatcher:
    """Runs `predictor.predict(notes, decoding, batch_size=n)` for requests that arrive together."""

    def __init__(
        self,
        max_batch: int = MAX_BATCH,
        max_wait_s: float = MAX_WAIT_S,
        max_backlog: int = MAX_BACKLOG,
        max_age_s: float = MAX_AGE_S,
    ):
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.max_backlog = max_backlog
        self.max_age_s = max_age_s
        self.batch_sizes: list[int] = []  # sizes of the model calls made (for tests and benches)
        self._jobs: queue.Queue[_Job] = queue.Queue()
        self._worker = threading.Thread(target=self._serve, name="vetllm-predict", daemon=True)
        self._worker.start()

    def predict(self, predictor, note: str, decoding: str):
        """The Prediction for one note; blocks until its batch has run.

        Raises ServerBusy at once when `max_backlog` notes are already waiting, or after
        `max_age_s` seconds of waiting without its batch starting."""
        if self.backlog() >= self.max_backlog:
            raise _busy(f"{self.backlog()} notes are waiting")
        job = _Job(predictor, note, decoding)
        self._jobs.put(job)
        job.done.wait()
        if job.error is not None:
            raise job.error
        return job.result

    def backlog(self) -> int:
        """Notes waiting for a model call (not counting the batch running now)."""
        return self._jobs.qsize()

    def _serve(self) -> None:
        _leave_a_core_for_the_server()
        while True:
            batch = self._fresh([self._jobs.get()])
            while len(batch) < self.max_batch:
                try:
                    batch += self._fresh([self._jobs.get(timeout=self.max_wait_s)])
                except queue.Empty:
                    break
            groups: dict[tuple[int, str], list[_Job]] = {}
            for job in batch:
                groups.setdefault((id(job.predictor), job.decoding), []).append(job)
            for jobs in groups.values():
                self._run(jobs)

    def _fresh(self, jobs: list[_Job]) -> list[_Job]:
        """Jobs still worth running; those that waited past max_age_s are answered busy."""
        cutoff = time.monotonic() - self.max_age_s
        for job in jobs:
            if job.queued_at < cutoff:
                job.error = _busy(f"this note waited over {self.max_age_s:g} s")
                job.done.set()
        return [job for job in jobs if not job.done.is_set()]

    def _run(self, jobs: list[_Job]) -> None:
        first = jobs[0]
        try:
            self.batch_sizes.append(len(jobs))
            results = first.predictor.predict(
                [j.note for j in jobs], first.decoding, batch_size=len(jobs)
            )
            for job, result in zip(jobs, results, strict=True):
                job.result = result
        except BaseException as error:  # noqa: BLE001 - handed to the waiting request
            if len(jobs) == 1:
                first.error = error
            else:
                for job in jobs:  # isolate the culprit: each note on its own
                    self._run([job])
                return
        for job in jobs:
            job.done.set()


def _busy(why: str) -> ServerBusy:
    return ServerBusy(f"the server is busy ({why}); try again in a few seconds")


def _leave_a_core_for_the_server() -> None:
    """Model calls on CPU use every core but one: the web server must still answer at once.

    With torch on both cores of a 2-core machine, join requests waited past clients' 5 s HTTP
    timeout under 64 clients; one thread doubled throughput there (scripts/load_bench.py)."""
    import torch  # here, not at import: the UI starts without loading torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    torch.set_num_threads(max(1, min(torch.get_num_threads(), (cores or 1) - 1)))
