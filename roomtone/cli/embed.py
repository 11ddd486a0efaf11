"""`roomtone embed RUN_DIR_OR_NAME FILES... --out emb.npy`: one embedding per file (HEAR scene embeddings)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("embed")
    def embed_cmd(
        model: str = typer.Argument(..., help="A run directory from `roomtone train`, or a pre-trained name (speech-embedding, aisfx, panns-cnn14, ...)."),
        files: list[Path] = typer.Argument(..., help="Audio files (any rate: resampled to the model's rate)."),
        out: Path = typer.Option(..., "--out", "-o", help="Output .npy: (n_files, D) float32; rows of unreadable files are NaN."),
        timestamps: bool = typer.Option(False, help="Also write OUT.timestamps.npz with frame embeddings and times (ms) per file."),
        cache_dir: Path = typer.Option(None, help="Cache folder for pre-trained weights."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out file."),
    ):
        """Embed audio files with a trained run or a pre-trained backbone; writes OUT and OUT.files.csv."""
        from roomtone.hear import embed_files

        summary = embed_files(model, files, out=out, timestamps=timestamps, cache_dir=cache_dir,
                              overwrite=overwrite)
        from rich.console import Console
        from rich.text import Text

        c = Console(highlight=False)
        c.print(Text(f"wrote {summary['out']} {tuple(summary['shape'])}, index {summary['index']}"))
        for path, why in summary["failed"]:
            c.print(Text("skipped ", style="yellow") + Text(f"{path}: {why}"))
