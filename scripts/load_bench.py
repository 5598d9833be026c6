"""Load benchmark: N concurrent `predict` clients against a VetLLM Studio app on 127.0.0.1.

    .venv/bin/python scripts/load_bench.py --runs-dir runs                # launches app.py itself
    .venv/bin/python scripts/load_bench.py --url http://127.0.0.1:7860/   # an app already running
    .venv/bin/python scripts/load_bench.py --fresh                        # time to first prediction

For each client count (default 8, 32, 64) every client sends `--requests` notes one after the
other through gradio_client; the script prints one JSON document with p50 / p95 / max latency
(seconds), throughput (predictions per second) and errors per level ("busy" answers counted
apart: the app refuses at once what it cannot serve soon). The load generator lowers its own
priority (`--client-nice`, default 5) below the app it launched: on one shared machine the
clients otherwise take the CPU the server needs to accept their requests (in real use they run
elsewhere). `--http-timeout` sets gradio_client's HTTP timeout (default: httpx's 5 s; the
browser's client has none). Bounded in count and time:
at most 64 clients, 50 requests each, `--level-timeout` seconds per level; only loopback URLs.
`--fresh` launches app.py on an empty runs folder and measures the seconds from launch until the
first prediction succeeds (the app trains the CPU default in the background first).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

REPO = Path(__file__).resolve().parents[1]
NOTES = (
    "Goat, 2 years. High fever, nasal discharge, sores on the lips and diarrhoea.",
    "Buffalo with neck swelling, difficulty breathing and very high fever.",
    "Cow: blisters in the mouth and on the feet, drooling, lame, milk dropped.",
    "Sheep, sudden death in the flock, bleeding from the nose.",
)
MAX_CLIENTS, MAX_REQUESTS = 64, 50


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch_app(runs_dir: Path, bootstrap: bool, log_path: Path) -> tuple[subprocess.Popen, str]:
    """Start app.py on a free loopback port; returns the process and its URL."""
    port = free_port()
    command = [
        sys.executable,
        str(REPO / "app.py"),
        "--port",
        str(port),
        "--runs-dir",
        str(runs_dir),
    ]
    if not bootstrap:
        command.append("--no-bootstrap")
    env = dict(os.environ, HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False")
    log = open(log_path, "w")  # noqa: SIM115 - lives as long as the process
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    return process, f"http://127.0.0.1:{port}/"


def wait_until_up(url: str, timeout_s: float) -> float:
    """Seconds until the app answers HTTP; raises TimeoutError."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return time.monotonic() - started
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"the app did not answer within {timeout_s:.0f} s")


def percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def run_level(
    url: str, clients: int, requests: int, decoding: str, timeout_s: float, http: dict
) -> dict:
    """`clients` threads, each its own gradio_client, each sending `requests` notes in turn."""
    from gradio_client import Client

    latencies, errors, lock = [], [], threading.Lock()
    deadline = time.monotonic() + timeout_s
    connections = [Client(url, verbose=False, httpx_kwargs=http) for _ in range(clients)]

    def worker(index: int) -> None:
        for number in range(requests):
            if time.monotonic() > deadline:
                return
            started = time.perf_counter()
            try:
                connections[index].predict(NOTES[(index + number) % len(NOTES)], decoding,
                                           api_name="/predict")  # fmt: skip
            except Exception as error:  # noqa: BLE001 - counted and reported
                with lock:
                    errors.append(type(error).__name__ + ": " + str(error)[:200])
                continue
            with lock:
                latencies.append(time.perf_counter() - started)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    wall_start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(deadline - time.monotonic(), 0) + 5)
    wall = time.perf_counter() - wall_start
    busy = [error for error in errors if "busy" in error]
    return {
        "clients": clients,
        "requests_sent": len(latencies) + len(errors),
        "ok": len(latencies),
        "errors": len(errors) - len(busy),
        "busy": len(busy),
        "error_examples": sorted(set(errors))[:3],
        "p50_s": _round(percentile(latencies, 0.50)),
        "p95_s": _round(percentile(latencies, 0.95)),
        "max_s": _round(max(latencies) if latencies else None),
        "mean_s": _round(statistics.fmean(latencies) if latencies else None),
        "throughput_per_s": round(len(latencies) / wall, 2) if wall > 0 else None,
        "wall_s": round(wall, 2),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def time_to_first_prediction(timeout_s: float, log_dir: Path) -> dict:
    """Launch app.py on an empty runs folder and poll `predict` until it answers."""
    from gradio_client import Client

    runs = Path(tempfile.mkdtemp(prefix="vetllm-fresh-runs-"))
    launched = time.monotonic()
    process, url = launch_app(runs, bootstrap=True, log_path=log_dir / "fresh-app.log")
    try:
        up_s = wait_until_up(url, 120)
        client = Client(url, verbose=False)
        while time.monotonic() - launched < timeout_s:
            try:
                answer = client.predict(NOTES[0], api_name="/predict")
                return {
                    "seconds_to_app_up": round(up_s, 1),
                    "seconds_to_first_prediction": round(time.monotonic() - launched, 1),
                    "codes": [c["code"] for c in answer["codes"]],
                    "run": answer.get("run"),
                }
            except Exception:  # noqa: BLE001 - "no trained model yet" until the run completes
                time.sleep(2)
        return {"seconds_to_app_up": round(up_s, 1), "error": f"no prediction within {timeout_s} s"}
    finally:
        process.terminate()
        process.wait(30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running app on 127.0.0.1 (default: launch app.py)")
    parser.add_argument("--runs-dir", default="runs", help="runs folder for the launched app")
    parser.add_argument("--clients", default="8,32,64", help="comma-separated client counts")
    parser.add_argument("--requests", type=int, default=5, help="requests per client per level")
    parser.add_argument("--decoding", choices=("free", "constrained"), default="free")
    parser.add_argument("--level-timeout", type=float, default=300.0, help="seconds per level")
    parser.add_argument("--client-nice", type=int, default=5, help="niceness added to clients")
    parser.add_argument("--http-timeout", type=float, help="seconds (default: httpx's 5 s)")
    parser.add_argument("--fresh", action="store_true", help="measure launch -> first prediction")
    parser.add_argument("--fresh-timeout", type=float, default=900.0)
    args = parser.parse_args(argv)
    log_dir = Path(tempfile.mkdtemp(prefix="vetllm-bench-"))
    if args.fresh:
        print(json.dumps(time_to_first_prediction(args.fresh_timeout, log_dir), indent=2))
        return 0
    levels = [int(part) for part in args.clients.split(",") if part.strip()]
    if (
        not levels
        or min(levels) < 1
        or max(levels) > MAX_CLIENTS
        or not 1 <= args.requests <= MAX_REQUESTS
    ):
        parser.error(f"clients must be 1-{MAX_CLIENTS} and requests 1-{MAX_REQUESTS}")
    process = None
    url = args.url
    if url is None:
        process, url = launch_app(Path(args.runs_dir).resolve(), False, log_dir / "app.log")
    elif urlparse(url).hostname not in ("127.0.0.1", "localhost", "::1"):
        parser.error(
            "--url must be a loopback address (127.0.0.1): never load-test someone else's app"
        )
    http = {} if args.http_timeout is None else {"timeout": args.http_timeout}
    if args.client_nice:
        os.nice(args.client_nice)  # after launching the app: it keeps the higher priority
    try:
        up_s = wait_until_up(url, 120)
        from gradio_client import Client

        warm_start = time.perf_counter()  # first call loads the model: reported, not timed below
        Client(url, verbose=False).predict(NOTES[0], args.decoding, api_name="/predict")
        warm_s = time.perf_counter() - warm_start
        results = [
            run_level(url, n, args.requests, args.decoding, args.level_timeout, http)
            for n in levels
        ]
    finally:
        if process is not None:
            process.terminate()
            process.wait(30)
    report = {
        "decoding": args.decoding,
        "client_nice": args.client_nice,
        "http_timeout_s": args.http_timeout,
        "requests_per_client": args.requests,
        "seconds_to_app_up": round(up_s, 2),
        "first_prediction_s": round(warm_s, 2),
        "levels": results,
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
