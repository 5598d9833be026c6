"""Everything that builds or runs a model (imports torch / transformers / peft lazily here only)."""
