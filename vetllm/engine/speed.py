"""Training-speed switches of the fast GPU presets, turned into HF TrainingArguments (issue 10).

`speed_arguments(cfg)` maps the config's speed fields onto whatever this transformers version
calls them: length-grouped batches are `train_sampling_strategy="group_by_length"` from 5.2x and
`group_by_length=True` before; Liger kernels (`use_liger_kernel`) are passed only on CUDA with
the liger-kernel package importable (they are triton kernels, and the Trainer raises without the
package), otherwise the run goes on without them and `liger_status` says why.
"""

from __future__ import annotations

import dataclasses
import importlib.util

from vetllm.config import TrainConfig


def _argument_names() -> set[str]:
    from transformers import TrainingArguments

    return {f.name for f in dataclasses.fields(TrainingArguments)}


def liger_status(on_cuda: bool) -> str | None:
    """None when Liger kernels can be used here, else the reason they cannot."""
    if not on_cuda:
        return "Liger kernels need a CUDA GPU"
    if importlib.util.find_spec("liger_kernel") is None:
        return "liger-kernel is not installed (pip install liger-kernel)"
    return None


def speed_arguments(cfg: TrainConfig, on_cuda: bool) -> dict:
    """Extra TrainingArguments for the config's speed fields (empty for the source recipe)."""
    names = _argument_names()
    extra: dict = {}
    if cfg.group_by_length:
        if "train_sampling_strategy" in names:
            extra["train_sampling_strategy"] = "group_by_length"
        elif "group_by_length" in names:
            extra["group_by_length"] = True
    if cfg.use_liger_kernel and liger_status(on_cuda) is None and "use_liger_kernel" in names:
        extra["use_liger_kernel"] = True
    return extra
