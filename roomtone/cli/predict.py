"""`roomtone predict RUN_DIR FILES_OR_DIR`: sliding-window scores + clip decision; bad files reported."""

from __future__ import annotations

import sys
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("predict")
    def predict_cmd(
        run_dir: Path = typer.Argument(..., help="Run directory written by `roomtone train`."),
        inputs: list[Path] = typer.Argument(..., help="Audio files and/or folders (any length, any sample rate)."),
        out: Path = typer.Option(None, "--out", "-o", help="preds.csv or preds.json (default: print a table)."),
        window: float = typer.Option(None, help="Window in seconds (default: the run's clip length)."),
        hop: float = typer.Option(None, help="Hop in seconds (default: half a window)."),
        min_seconds: float = typer.Option(0.1, help="Shorter files are reported as bad."),
        max_seconds: float = typer.Option(3600.0, help="Longer files are reported as bad."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out file."),
    ) -> None:
        """Predict files: per-window scores with timestamps and a clip-level label for each file."""
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        from roomtone.train import predict_files

        recs = predict_files(run_dir, inputs, window_seconds=window, hop_seconds=hop, min_seconds=min_seconds,
                             max_seconds=max_seconds, out=out, progress=True,
                             overwrite=overwrite)
        t = Table(title=f"{sum(r['ok'] for r in recs)} predicted, {sum(not r['ok'] for r in recs)} bad")
        for col in ("file", "label", "score", "windows", "error"):
            t.add_column(col)
        for r in recs:
            if r["ok"]:
                t.add_row(Text(r["file"]), Text(r["label"]), f"{r['score']:.3f}", str(len(r["windows"])), "")
            else:
                t.add_row(Text(r["file"]), "", "", "", Text(r["error"]))
        con = Console(highlight=False)
        con.print(t)
        if out is not None:
            con.print(Text(f"wrote {out}"))
        n_bad = sum(not r["ok"] for r in recs)
        if n_bad:  # the good files are predicted (and written); the exit code says that some were not
            print(f"error: {n_bad} of {len(recs)} files could not be predicted (listed above)", file=sys.stderr)
            raise typer.Exit(1)
