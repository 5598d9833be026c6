"""Data handling: records, loading and validation, statistics, splits, synthesis, prompts."""
