"""`roomtone evaluate RUN_DIR`: accuracy, macro-F1, per-class precision/recall, confusion matrix."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("evaluate")
    def evaluate_cmd(
        run_dir: Path = typer.Argument(..., help="Run directory written by `roomtone train`."),
        data: Path = typer.Option(None, "--data", help="Prepared folder (default: the one the run trained on)."),
        split: str = typer.Option("test", help="train | valid | test."),
        out: Path = typer.Option(None, "--out", "-o", help="metrics JSON (default RUN_DIR/metrics_<split>.json); "
                                 "the confusion PNG goes next to it."),
        corrupt: str = typer.Option(None, help="Evaluate under a condition: noise | room | mic | all, or parts joined by + (room+mic); test banks."),
        noise: Path = typer.Option(None, help="Noise bank folder/CSV for --corrupt (default: procedural noise)."),
        rooms: Path = typer.Option(None, help="RIR bank folder/CSV for --corrupt (default: simulated rooms)."),
        seed: int = typer.Option(0, help="Seed of the corruption draws."),
        checkpoint: str = typer.Option("best", help="best | last | path to a .pt file."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing metrics file."),
    ) -> None:
        """Evaluate a trained run (optionally under noise / room / microphone corruption)."""
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        from roomtone.train import evaluate

        if out is None:
            out = Path(run_dir) / (f"metrics_{split}" + (f"_{corrupt}" if corrupt else "") + ".json")
        m = evaluate(run_dir, data_dir=data, split=split, corrupt=corrupt, noise=noise, rooms=rooms, seed=seed,
                     out=out, checkpoint=checkpoint, overwrite=overwrite)
        t = Table(title=f"{split}{' / ' + corrupt if corrupt else ''}: accuracy {m['accuracy']:.4f}, "
                        f"macro-F1 {m['macro_f1']:.4f} (n={m['n']})")
        for col in ("label", "precision", "recall", "f1", "support"):
            t.add_column(col, justify="right")
        for lab, pc in m["per_class"].items():
            t.add_row(Text(lab), f"{pc['precision']:.3f}", f"{pc['recall']:.3f}", f"{pc['f1']:.3f}", str(pc["support"]))
        con = Console(highlight=False)
        con.print(t)
        if "recording_accuracy" in m:
            r = m["recording"]
            con.print(f"recordings: accuracy {m['recording_accuracy']:.4f}, macro-F1 {r['macro_f1']:.4f} "
                      f"(n={r['n']} recordings from {r['n_windows']} windows, window accuracy {m['accuracy']:.4f})")
        for bad in m.get("bad_files", []):
            con.print(Text(f"unreadable, left out: {bad['path']}: {bad['error']}", style="yellow"))
        con.print(Text(f"wrote {out} and {m.get('confusion_png')}"))
