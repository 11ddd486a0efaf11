"""``roomtone expect``: feasibility before training, robustness after (thin wrappers over :mod:`roomtone.expect`).

    roomtone expect PREPARED_DIR --out REPORT_DIR          # = roomtone expect run PREPARED_DIR --out ...
    roomtone expect robustness PREPARED_DIR --out DIR --noise NOISE --rooms RIR [--config train.yaml]
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from typer.core import TyperGroup


class _DefaultRun(TyperGroup):
    """A group whose first argument, when it is not a sub-command, goes to ``run`` (the default)."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


def _fmt_pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def _split_csv(text: str | None) -> tuple[str, ...] | None:
    return None if not text else tuple(t.strip() for t in text.split(",") if t.strip())


def register(app: typer.Typer) -> None:
    sub = typer.Typer(cls=_DefaultRun, no_args_is_help=True, add_completion=False, rich_markup_mode=None,
                      help="Feasibility report before training (default: `run`), robustness matrix after.")
    app.add_typer(sub, name="expect")

    @sub.command("run")
    def run(
        prepared_dir: Path = typer.Argument(..., help="A prepared dir (manifest.csv [+ prepare.json])."),
        out: Path = typer.Option(..., "--out", "-o", help="Folder for report.html and results.json."),
        model: str | None = typer.Option(None, "--model", help="Registered model name or run dir whose front end "
                                         "and receptive field to analyse (default: explicit front-end settings)."),
        sr: int | None = typer.Option(None, "--sr", help="Analysis sample rate (default: prepare.json or the files')."),
        n_fft: int | None = typer.Option(None, "--n-fft"),
        hop_length: int | None = typer.Option(None, "--hop-length"),
        n_mels: int | None = typer.Option(None, "--n-mels"),
        fmin: float = typer.Option(0.0, "--fmin", help="Lowest mel frequency (Hz): the model's crop."),
        fmax: float | None = typer.Option(None, "--fmax", help="Highest mel frequency (Hz; default sr/2)."),
        examples: int = typer.Option(1, "--examples", help="Listening examples per class."),
        simulate: str = typer.Option("all", "--simulate", help="Condition played beside each example ('none' to skip)."),
        noise: Path | None = typer.Option(None, "--noise", help="Noise bank (folder/CSV) for --simulate."),
        rooms: str | None = typer.Option(None, "--rooms", help="RIR bank (folder/CSV) or 'simulated' for --simulate."),
        robustness: Path | None = typer.Option(None, "--robustness", help="robustness.json to include in the report."),
        cnn_config: Path | None = typer.Option(None, "--cnn-config", help="Train config YAML: also draw the "
                                               "CNN's learning curve (one training per fraction; slow)."),
        budget: str = typer.Option(None, "--budget", help="Training time budget of the recipe shown (as for "
                                   "`roomtone train`: default 15m, none = no cap)."),
        seed: int = typer.Option(0, "--seed"),
    ) -> None:
        """Quick baselines, listening, event lengths and a learning curve -> one HTML report."""
        from rich.console import Console

        from roomtone.cli.train import parse_seconds
        from roomtone.expect.run import expect

        res = expect(prepared_dir, out, sr=sr, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels, fmin=fmin,
                     fmax=fmax, model=model, examples_per_class=examples,
                     simulate=None if simulate.lower() == "none" else simulate, noise=noise, rooms=rooms,
                     robustness=robustness, seed=seed, cnn_config=cnn_config, budget_s=parse_seconds(budget),
                     progress=True)
        b = res["baseline"].get("holdout") or res["baseline"]["grouped_cv"]
        c = Console()
        c.print(f"baseline accuracy {_fmt_pct(b['accuracy'])} (chance {_fmt_pct(b['chance']['majority'])} majority, "
                f"{_fmt_pct(b['chance']['uniform'])} uniform); grouped CV "
                f"{_fmt_pct(res['baseline']['grouped_cv']['accuracy'])}")
        ev = res["events"]
        c.print(f"receptive field >= {ev['recommended_rf_s']:.2f} s, pooling {ev['pooling']}"
                + (f"; model: {ev['rf_check']}" if ev.get("rf_check") else ""))
        c.print(res["learning_curve"]["verdict"])
        if res.get("recipe") is not None:
            from roomtone.recipe.report import print_recipe

            print_recipe(res["recipe"], console=c)
            c.print(f"train it: {res['recipe'].train_command()}  (recipe: {Path(out) / 'recipe.yaml'})", markup=False)
        c.print(f"report: {escape(str(res['report']))}  ({res['seconds']:.0f} s)")

    @sub.command("robustness")
    def robustness_cmd(
        prepared_dir: Path = typer.Argument(..., help="A prepared dir with train and test splits."),
        out: Path = typer.Option(..., "--out", "-o", help="Folder for robustness.json and report.html."),
        noise: Path | None = typer.Option(None, "--noise", help="Noise bank (folder/CSV with a split column); "
                                          "None = procedural colored noise."),
        rooms: str | None = typer.Option(None, "--rooms", help="RIR bank (folder/CSV) or 'simulated' (default)."),
        backend: str = typer.Option("baseline", "--backend", help="baseline (quick classical model) or deep "
                                    "(roomtone.train.fit with --config)."),
        config: Path | None = typer.Option(None, "--config", help="Train config YAML for --backend deep."),
        train_conditions: str | None = typer.Option(None, "--train", help="Comma list, e.g. clean,noise,room,mic,all,noise+room."),
        test_conditions: str | None = typer.Option(None, "--test", help="Comma list, e.g. clean,noise_0db,room,mic,all."),
        copies: int = typer.Option(2, "--copies", help="Corrupted copies per training clip (baseline backend)."),
        seed: int = typer.Option(0, "--seed"),
    ) -> None:
        """Models trained under conditions x unseen test conditions: heatmap + table in a report."""
        from rich.console import Console

        from roomtone.errors import ParameterError
        from roomtone.expect import robustness as rb
        from roomtone.expect.report import write_report
        from roomtone.files import atomic_write_json

        tr = _split_csv(train_conditions) or (rb.TRAIN_CONDITIONS if backend == "deep" else
                                              (*rb.TRAIN_CONDITIONS, "noise+room"))
        te = _split_csv(test_conditions) or rb.TEST_CONDITIONS
        out.mkdir(parents=True, exist_ok=True)
        if backend == "baseline":
            res = _baseline_backend(prepared_dir, noise=noise, rooms=rooms, train=tr, test=te, copies=copies, seed=seed)
        elif backend == "deep":
            if config is None:
                raise ParameterError("--backend deep needs --config (a train config YAML)")
            from roomtone.config import load_config

            res = rb.deep_matrix(load_config(config), data_dir=prepared_dir, out_dir=out, noise=noise, rooms=rooms,
                                 train_conditions=tr, test_conditions=te, seed=seed)
        else:
            raise ParameterError(f"--backend {backend!r} must be 'baseline' or 'deep'")
        atomic_write_json(out / "robustness.json", res)
        path = write_report(out, title=f"roomtone robustness: {Path(prepared_dir).name}", robustness=res)
        c = Console()
        for cond, acc in zip(res["train_conditions"], res["accuracy"], strict=True):
            c.print(f"train {cond:>12}: " + "  ".join(f"{t} {_fmt_pct(a)}" for t, a in zip(res["test_conditions"], acc,
                                                                                            strict=True)))
        if res.get("ratio") is not None:
            c.print(f"loss on {res['worst']}: {res['robust']} {_fmt_pct(res['drop'][res['robust']])} vs "
                    f"{res['reference']} {_fmt_pct(res['drop'][res['reference']])} (ratio {res['ratio']:.2f})")
        c.print(f"report: {escape(str(path))}")


def _baseline_backend(prepared_dir, *, noise, rooms, train, test, copies, seed) -> dict:
    import numpy as np

    from roomtone.errors import DataError
    from roomtone.expect import robustness as rb
    from roomtone.expect.data import load_waveforms, read_prepared
    from roomtone.expect.frontend import make_frontend
    from roomtone.prepare.dataset import native_sr

    p = read_prepared(prepared_dir)
    sr = int(p.sr or native_sr(p.rows))
    sp, y = p.splits, p.y
    tr, te = np.flatnonzero(np.isin(sp, ["train", "valid"])), np.flatnonzero(sp == "test")
    if not tr.size or not te.size:
        raise DataError(f"{prepared_dir}: robustness needs train and test rows; splits are {sorted(set(sp))}")
    waves, _ = load_waveforms(p.rows, sr=sr, progress=True)
    return rb.baseline_matrix([waves[i] for i in tr], y[tr], [waves[i] for i in te], y[te], sr=sr,
                              frontend=make_frontend(sr=sr), noise=noise, rooms=rooms, train_conditions=train,
                              test_conditions=test, copies=copies, seed=seed, progress=True)
