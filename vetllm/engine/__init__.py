"""Everything that builds or runs a model (imports torch / transformers / peft lazily here only).

peft imports bitsandbytes whenever it is installed (peft/helpers.py), and `transformers.Trainer`
imports peft, so every training or LoRA process loads bitsandbytes even when nothing is 4-bit.
On CPUs with AVX512-BF16, bitsandbytes then logs "Failed to load CPU gemm_4bit_forward from
kernels-community" at import: an optional CPU kernel for 4-bit matmuls, which this package never
runs (QLoRA needs CUDA, `modeling.require_qlora_support`). That one record is dropped here, before
any engine module imports peft; every other bitsandbytes message still shows.
"""

import logging

_CPU_KERNEL_NOTICE = "gemm_4bit_forward from kernels-community"


def _drop_cpu_kernel_notice(record: logging.LogRecord) -> bool:
    return _CPU_KERNEL_NOTICE not in str(record.msg)


logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(_drop_cpu_kernel_notice)
