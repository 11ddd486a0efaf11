"""`roomtone export RUN_DIR --format onnx|torchscript`: waveform in, scores out, verified against torch."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("export")
    def export_cmd(
        run_dir: Path = typer.Argument(..., help="Run directory written by `roomtone train`."),
        format: str = typer.Option("onnx", "--format", "-f", help="onnx | torchscript."),
        out: Path = typer.Option(None, "--out", "-o", help="Output file (default RUN_DIR/model.onnx or model.ts)."),
        check: list[Path] = typer.Option(None, "--check", help="Audio files to verify on (default: synthetic chirps)."),
        atol: float = typer.Option(1e-4, help="Largest allowed score difference exported vs torch."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output file."),
    ) -> None:
        """Export a trained model (front end included) and verify it against the torch model."""
        from rich.console import Console
        from rich.markup import escape

        from roomtone.train.export import export_model

        inputs = None
        if check:
            from roomtone.audio import load
            from roomtone.train.run import load_run

            sr = int(load_run(run_dir)[0].sr)
            inputs = [load(p, sr=sr)[0] for p in check]
        r = export_model(run_dir, format=format, out=out, check_inputs=inputs, atol=atol, overwrite=overwrite)
        Console(highlight=False).print(f"[green]exported[/green] {escape(r['path'])} ({r['format']}, sr {r['sr']} Hz): max |diff| vs torch "
                        f"{r['max_abs_diff']:.2e} <= {atol:g} on inputs of {r['checked_lengths']} samples")
