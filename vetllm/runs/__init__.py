"""Torch-free run management: everything that reads or manages a training run's folder.

A training run is a folder of plain files (status.json, metrics.jsonl, checkpoints, the final
model); this package owns them without ever importing torch, transformers or gradio, so the CLI,
the app and tests can list, launch, stop, resume and serve runs cheaply. The training process
itself (`vetllm.engine.training`, `vetllm.engine.callbacks`) writes through `RunDirectory`.

    state.py      RunState (queued, running, ... completed) and RunStatus (status.json, typed)
    directory.py  RunDirectory: the run folder, its status and metrics files, checkpoints
    faults.py     disk full, damaged checkpoints, failure records
    lock.py       one training per runs folder, for every entry point
    launcher.py   launch / stop / resume / list: training as a separate process
    serving.py    served.json (which run answers predictions) and the runs-table rows
"""
