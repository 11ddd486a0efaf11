"""`roomtone design --target-duration 0.5 --sr 8000 --hop-length 80`: depth/pooling for a target pattern."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape


def register(app: typer.Typer) -> None:
    @app.command("design")
    def design_cmd(
        target_duration: float = typer.Option(..., help="Length of the target pattern in seconds."),
        sr: int = typer.Option(8000, help="Sample rate in Hz."),
        hop_length: int = typer.Option(80, help="STFT hop in samples."),
        win_length: int = typer.Option(None, help="STFT window in samples (default n_fft)."),
        n_fft: int = typer.Option(512, help="FFT size in samples."),
        n_mels: int = typer.Option(64, help="Mel bands."),
        run: Path = typer.Option(None, help="Check a trained run's model against the target instead."),
    ) -> None:
        """Propose VGG depth and time pooling so the receptive field covers the target pattern."""
        from rich.console import Console
        from rich.table import Table

        from roomtone.models import check_receptive_field, design, receptive_field

        con = Console()
        if run is not None:
            from roomtone.train import load_run

            model = load_run(run)[0]
            rf = receptive_field(model)
            con.print(f"receptive field of {run}: {rf.frames} frames = {rf.seconds:.3f} s, {rf.bins} mel bins; "
                      f"jump {rf.jump_seconds:.3f} s")
            warn = check_receptive_field(rf, target_duration=target_duration)
            con.print(f"[yellow]warning:[/yellow] {escape(warn)}" if warn else "[green]matches the target[/green]")
            return
        d = design(target_duration=target_duration, sr=sr, hop_length=hop_length, win_length=win_length,
                   n_fft=n_fft, n_mels=n_mels)
        t = Table(title=f"VGG blocks (two 3x3 convs + pooling), hop {hop_length} at {sr} Hz")
        for col in ("blocks", "time pool", "field (frames)", "field (s)", "jump (s)", "min input frames", "covers"):
            t.add_column(col, justify="right")
        for o in d["options"]:
            if o["blocks"] <= 6:
                t.add_row(str(o["blocks"]), str(o["pool_time"]), str(o["frames"]), f"{o['seconds']:.3f}",
                          f"{o['jump_seconds']:.3f}", str(o["min_frames"]), "yes" if o["covers"] else "no")
        con.print(t)
        r = d["recommended"]
        con.print(f"[bold]recommended[/bold]: {r['blocks']} blocks, time pooling {r['pool_time']} -> field "
                  f"{r['seconds']:.3f} s for a {target_duration:g} s pattern; model_kwargs: "
                  f"channels of length {r['blocks']}, pool={r['pool']}" + (f" ({r['note']})" if r.get("note") else ""))
