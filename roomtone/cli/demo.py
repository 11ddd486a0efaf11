"""``roomtone demo``: the main job end to end (a thin wrapper over :func:`roomtone.demo.run_demo`)."""

from __future__ import annotations

from pathlib import Path

import typer


def summary_table(result):
    """A rich Table of the demo's numbers: baseline, CNN clean and corrupted, time, paths."""
    from rich.table import Table
    from rich.text import Text

    from roomtone.expect.baselines import BASELINE, BASELINE_METHOD

    def pct(v):
        return "n/a" if v is None else f"{v:.1%}"

    t = Table(title=f"roomtone demo: {result.dataset}", show_header=True, header_style="bold")
    t.add_column("what")
    t.add_column("value", justify="right")
    if result.labels:
        n = ", ".join(f"{k} {v}" for k, v in sorted(result.n_examples.items()))
        t.add_row("classes / examples", Text(f"{len(result.labels)} / {n}"))
    t.add_row("chance accuracy", pct(result.chance_accuracy))
    t.add_row(f"{BASELINE} accuracy ({BASELINE_METHOD})", pct(result.baseline_accuracy))
    t.add_row("CNN test accuracy, clean", pct(result.test_accuracy))
    for name, acc in result.corrupted_accuracy.items():
        t.add_row(f"CNN test accuracy, corrupted: {name}", pct(acc))
    t.add_row("train time", "n/a" if result.train_seconds is None else f"{result.train_seconds:.0f} s")
    t.add_row("total time", f"{result.total_seconds:.0f} s")
    t.add_row("ONNX model", Text(str(result.onnx) if result.onnx else "n/a"))
    t.add_row("report", Text(str(result.report) if result.report else "n/a"))
    return t


def accuracy_line(result) -> str:
    """One grep-able line: ``accuracy: baseline 80.1%, CNN clean 95.0%, corrupted all 71.3%, ...``."""

    def pct(v):
        return "n/a" if v is None else f"{v:.1%}"

    parts = [f"baseline {pct(result.baseline_accuracy)}", f"CNN clean {pct(result.test_accuracy)}"]
    parts += [f"corrupted {k} {pct(v)}" for k, v in result.corrupted_accuracy.items()]
    return "accuracy: " + ", ".join(parts)


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        out: Path = typer.Option(Path("roomtone-demo"), "--out", "-o", help="Folder for everything the demo writes."),
        data: Path | None = typer.Option(None, "--data", help="Your folder of recordings or manifest CSV "
                                         "(label = parent folder, or --label-pattern); with --dataset fsdd, "
                                         "the FSDD recordings folder."),
        dataset: str = typer.Option("synthetic", "--dataset", help="synthetic (embedded, no download) or fsdd."),
        quick: bool = typer.Option(False, "--quick", help="Reduced-size smoke run (CI)."),
        seed: int = typer.Option(0, "--seed", help="Seeds data, split, augmentation and training."),
        label_pattern: str | None = typer.Option(None, "--label-pattern",
                                                 help=r'Regex on file names, e.g. "(?P<label>\d)_(?P<group>[a-z]+)_\d+\.wav".'),
        epochs: int | None = typer.Option(None, "--epochs", help="Override the number of training epochs."),
    ) -> None:
        """Run the main job end to end: data -> prepare -> expect -> train with simulated noise, rooms and
        microphones -> evaluate clean and corrupted -> ONNX export -> HTML report."""
        from rich.console import Console
        from rich.text import Text

        from roomtone.demo import run_demo

        console = Console()
        result = run_demo(out, data=data, dataset=dataset, quick=quick, seed=seed, label_pattern=label_pattern,
                          epochs=epochs, console=console)
        console.print(summary_table(result))
        console.print(accuracy_line(result), soft_wrap=True, highlight=False)
        if result.beats_baseline is not None:
            verdict = "beats" if result.beats_baseline else "does NOT beat"
            console.print(f"The CNN {verdict} the quick baseline on this data.")
        bad = [s for s in result.steps if s.status != "ok"]
        for s in bad:
            console.print(Text(f"{s.status}: ", style="bold yellow") + Text(f"{s.name}: {s.detail}"))
        if result.report:
            console.print(Text(f"Report: {result.report}"), soft_wrap=True, highlight=False)
        if any(s.status == "failed" for s in bad):
            raise typer.Exit(1)
