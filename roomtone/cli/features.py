"""``roomtone features``: ``describe`` (representation size table) and ``cache`` (precomputed features)."""

from __future__ import annotations

import importlib.util
import json

import typer


def register(app: typer.Typer) -> None:
    """Add the ``features`` sub-app (``describe``, ``cache``) to ``app``."""
    sub = typer.Typer(help="Feature layers: describe what each representation costs, cache features.",
                      no_args_is_help=True, rich_markup_mode=None)

    @sub.command("describe")
    def describe(
        sr: int = typer.Option(44100, help="Sample rate of the audio (Hz)."),
        seconds: float = typer.Option(1.0, help="Clip length (s)."),
        n_fft: int = typer.Option(1024, help="FFT size (samples)."),
        hop_length: int = typer.Option(512, help="Hop between frames (samples)."),
        n_mels: int = typer.Option(128, help="Mel bands."),
        n_mfcc: int = typer.Option(20, help="MFCC coefficients."),
        n_bins: int = typer.Option(72, help="CQT bins."),
        bins_per_octave: int = typer.Option(12, help="CQT bins per octave."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    ) -> None:
        """Shape, values and bytes per second of audio for waveform / STFT / mel / CQT / MFCC (from the real layers)."""
        from rich.console import Console
        from rich.table import Table

        from roomtone.features.describe import describe_sizes

        rows = describe_sizes(sr=sr, seconds=seconds, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels,
                              n_mfcc=n_mfcc, n_bins=n_bins, bins_per_octave=bins_per_octave)
        if as_json:
            typer.echo(json.dumps([r.as_dict() for r in rows], indent=2))
            return
        base = rows[0].bytes_per_second
        table = Table(title=f"{seconds:g} s of mono audio at {sr} Hz (hop {hop_length})",
                      caption="features are float32; a complex STFT is twice the |X| size")
        for col, justify in (("representation", "left"), ("shape", "right"), ("values", "right"),
                             ("dtype", "left"), ("bytes/s", "right"), ("x wav", "right"), ("note", "left")):
            table.add_column(col, justify=justify)
        for r in rows:
            shape = " x ".join(str(s) for s in r.shape) or "-"
            ratio = f"{r.bytes_per_second / base:.2f}x" if r.bytes else "-"
            table.add_row(r.name, shape, f"{r.values:,}", r.dtype, f"{r.bytes_per_second:,.0f}", ratio, r.note)
        Console().print(table)

    # `features cache` is built by the dataset area (roomtone/cli/features_cache.py). Registered only when
    # that module is present, so this file works on its own in a partial checkout.
    if importlib.util.find_spec("roomtone.cli.features_cache") is not None:
        from roomtone.cli.features_cache import register_cache

        register_cache(sub)

    app.add_typer(sub, name="features")
