"""`roomtone design --target-duration 0.5 --sr 8000 --hop-length 80`: depth/pooling for a target pattern."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape


def design_settings(*, sr: int | None, hop_length: int | None, n_fft: int | None, n_mels: int | None) -> dict:
    """The front end ``design`` works with: the given values, the rest from ``frontend_defaults(sr=sr)``."""
    from roomtone.errors import ParameterError
    from roomtone.features.defaults import frontend_defaults

    if sr is None:
        raise ParameterError("sr is needed (--sr): the working sample rate, e.g. the one `roomtone expect` chose")
    d = frontend_defaults(sr=sr)
    return {"sr": sr, "hop_length": hop_length or d["hop_length"], "n_fft": n_fft or d["n_fft"],
            "n_mels": n_mels or d["n_mels"]}


def register(app: typer.Typer) -> None:
    @app.command("design")
    def design_cmd(
        target_duration: float = typer.Option(..., help="Length of the target pattern in seconds."),
        sr: int = typer.Option(None, help="Working sample rate in Hz (the recipe's: `roomtone expect` prints it)."),
        hop_length: int = typer.Option(None, help="STFT hop in samples (default: frontend_defaults at --sr)."),
        win_length: int = typer.Option(None, help="STFT window in samples (default n_fft)."),
        n_fft: int = typer.Option(None, help="FFT size in samples (default: frontend_defaults at --sr)."),
        n_mels: int = typer.Option(None, help="Mel bands (default: frontend_defaults at --sr)."),
        run: Path = typer.Option(None, help="Check a trained run's model against the target instead."),
        family: str = typer.Option("vgg", help="Network family: vgg (3x3 conv blocks) or effnet (separable stages)."),
    ) -> None:
        """Propose depth and time pooling so the receptive field covers the target pattern; shows each
        option's forward FLOPs per second of audio beside its field."""
        from rich.console import Console
        from rich.table import Table

        from roomtone.models import check_receptive_field, design, receptive_field

        con = Console()
        if run is not None:
            from roomtone.models.compute import compute_profile
            from roomtone.train import load_run

            model = load_run(run)[0]
            rf = receptive_field(model)
            prof = compute_profile(model)
            con.print(f"receptive field of {run}: {rf.frames} frames = {rf.seconds:.3f} s, {rf.bins} mel bins; "
                      f"jump {rf.jump_seconds:.3f} s; {prof['flops_per_second'] / 1e6:.1f} MFLOP per s of audio, "
                      f"{prof['params']:,} params")
            warn = check_receptive_field(rf, target_duration=target_duration)
            con.print(f"[yellow]warning:[/yellow] {escape(warn)}" if warn else "[green]matches the target[/green]")
            return
        fe = design_settings(sr=sr, hop_length=hop_length, n_fft=n_fft, n_mels=n_mels)
        sr, hop_length, n_fft, n_mels = fe["sr"], fe["hop_length"], fe["n_fft"], fe["n_mels"]
        d = design(target_duration=target_duration, sr=sr, hop_length=hop_length, win_length=win_length,
                   n_fft=n_fft, n_mels=n_mels, family=family, flops=True)
        what = ("VGG blocks (two 3x3 convs + pooling)" if family == "vgg"
                else "EffNet stages (pooling + one depthwise-separable block; strided stem)")
        t = Table(title=f"{what}, hop {hop_length} at {sr} Hz")
        for col in ("blocks", "time pool", "field (frames)", "field (s)", "jump (s)", "min input frames",
                    "MFLOP per s", "covers"):
            t.add_column(col, justify="right")
        for o in (o for o in d["options"] if o["blocks"] <= 6):
            mflops = "-" if o["flops_per_second"] is None else f"{o['flops_per_second'] / 1e6:.1f}"
            t.add_row(str(o["blocks"]), str(o["pool_time"]), str(o["frames"]), f"{o['seconds']:.3f}",
                      f"{o['jump_seconds']:.3f}", str(o["min_frames"]), mflops, "yes" if o["covers"] else "no")
        con.print(t)
        r = d["recommended"]
        con.print(f"[bold]recommended[/bold]: {r['blocks']} blocks, time pooling {r['pool_time']} -> field "
                  f"{r['seconds']:.3f} s for a {target_duration:g} s pattern; model_kwargs: "
                  f"channels of length {r['blocks']}, pool={r['pool']}"
                  + (", depth=1 (model effnet_s)" if family == "effnet" else "") + (f" ({r['note']})" if r.get("note") else ""))
