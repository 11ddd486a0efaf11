"""`roomtone features cache PREPARED_DIR --preset log-mel ...`: compute features once, in parallel."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape


def register_cache(sub: typer.Typer) -> None:
    """Add the ``cache`` command to the ``roomtone features`` sub-app."""

    @sub.command("cache")
    def cache_cmd(
        prepared_dir: Path = typer.Argument(..., help="Prepared folder (manifest.csv + prepare.json)."),
        preset: str = typer.Option("log-mel", help="log-mel, mel, mfcc, spectrogram (or a features preset name)."),
        n_fft: int = typer.Option(None, help="FFT size (default: roomtone.features.frontend_defaults at sr)."),
        hop_length: int = typer.Option(None, help="Hop in samples (default: 10 ms, frontend_defaults)."),
        n_mels: int = typer.Option(None, help="Mel bands (default: frontend_defaults)."),
        fmin: float = typer.Option(None, help="Lowest frequency (Hz)."),
        fmax: float = typer.Option(None, help="Highest frequency (Hz, default: sr / 2)."),
        n_mfcc: int = typer.Option(None, help="MFCC coefficients (preset mfcc)."),
        sr: int = typer.Option(None, help="Sample rate (default: prepare.json)."),
        cache_root: Path = typer.Option(None, "--cache-root", "--out", "-o",
                                         help="Where caches live (default: PREPARED_DIR/features)."),
        workers: int = typer.Option(2, help="Worker processes."),
    ) -> None:
        """Cache features for a prepared dataset (resumable; a changed parameter never reuses old features)."""
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        from roomtone.features.cache import cache_prepared
        from roomtone.prepare.manifest import read_manifest

        params = {k: v for k, v in dict(n_fft=n_fft, hop_length=hop_length, n_mels=n_mels, fmin=fmin, fmax=fmax,
                                        n_mfcc=n_mfcc).items() if v is not None}
        console = Console()
        total = len(read_manifest(prepared_dir))
        with Progress(TextColumn("caching {task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeRemainingColumn(), console=console) as bar:
            task = bar.add_task(preset, total=total)
            rep = cache_prepared(prepared_dir, preset=preset, cache_root=cache_root, sr=sr, workers=workers,
                                 progress=lambda n: bar.advance(task, n), **params)
        console.print(f"{rep['rows']} rows: {rep['computed']} computed, {rep['reused']} reused, "
                      f"{rep['recomputed_invalid']} entries of damaged shards recomputed, {len(rep['failed'])} failed")
        for f in rep["failed"][:20]:
            console.print(f"[red]failed[/] {escape(f['path'])}: {escape(str(f['reason']))}")
        console.print(f"cache: {escape(str(rep['cache_dir']))}", highlight=False)
