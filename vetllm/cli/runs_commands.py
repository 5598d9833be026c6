"""CLI commands (placeholder until this group is written)."""

from __future__ import annotations


def add_commands(commands) -> None:
    """Register this group's sub-commands on the argparse sub-parsers object."""
