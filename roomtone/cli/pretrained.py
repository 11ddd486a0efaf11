"""`roomtone pretrained` — not written yet (owned by the issue that builds it)."""

import typer


def register(app: typer.Typer) -> None:
    """Add this command to the app. Placeholder until the command is built."""
