"""`python -m vetllm` is the same as the `vetllm` console script."""

from vetllm.cli import main

raise SystemExit(main())
