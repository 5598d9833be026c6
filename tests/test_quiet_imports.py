"""The CLI stays quiet and light: no bitsandbytes notices on stderr, no 4-bit library loaded
by commands that never quantize."""

from __future__ import annotations

import subprocess
import sys


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )


def _vetllm(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "vetllm", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)


def test_help_and_codes_check_print_nothing_on_stderr():
    for args in (("--help",), ("codes", "check", "72934000")):
        done = _vetllm(*args)
        assert done.returncode == 0, done.stderr
        assert done.stderr == "", (args, done.stderr)


def test_importing_the_cli_loads_no_bitsandbytes():
    done = _python("import sys, vetllm.cli; print('bitsandbytes' in sys.modules)")
    assert done.stdout.strip() == "False", done.stderr


def test_training_imports_do_not_print_the_cpu_kernel_notice():
    # peft imports bitsandbytes when installed; on AVX512-BF16 CPUs it used to log this notice.
    done = _python("import vetllm.engine.training")
    assert done.returncode == 0, done.stderr
    assert "gemm_4bit_forward" not in done.stderr
