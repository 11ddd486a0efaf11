"""`roomtone audit DATA --out DIR`: per-file facts, duplicates, bad files; audit.json + audit.html."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape


def register(app: typer.Typer) -> None:
    @app.command("audit")
    def audit_cmd(
        data: Path = typer.Argument(..., help="Folder of recordings, a CSV file, or a prepared folder."),
        out: Path = typer.Option(None, "--out", "-o", help="Folder for audit.json and audit.html (default: print only)."),
        label_pattern: str = typer.Option(None, help="Regex on file names with named groups label, group, split."),
        path_column: str = typer.Option(None, help="CSV column with file paths (default: detected)."),
        label_column: str = typer.Option(None, help="CSV column with labels (default: detected)."),
        min_duration: float = typer.Option(0.05, help="Files shorter than this (s) are bad."),
        workers: int = typer.Option(1, help="Processes."),
        max_rows: int = typer.Option(20, help="Rows shown per terminal table."),
    ) -> None:
        """Audit a dataset: sample rates, channels, levels, clipping, silence, duplicates, unreadable files."""
        from rich.console import Console
        from rich.progress import Progress

        from roomtone.cli.prepare import columns_option
        from roomtone.prepare.audit import audit, print_audit

        console = Console()
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task("auditing", total=None)
            report = audit(data, out=out, label_pattern=label_pattern,
                           columns=columns_option(path_column, label_column, None, None),
                           workers=workers, min_duration=min_duration,
                           progress=lambda n: bar.advance(task, n))
        print_audit(report, console=console, max_rows=max_rows)
        if out is not None:
            console.print(f"wrote {escape(str(out / 'audit.json'))} and {escape(str(out / 'audit.html'))}")
