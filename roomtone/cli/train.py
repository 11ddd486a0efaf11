"""`roomtone train PREPARED_DIR --out RUN_DIR`: train a model (also under torchrun for DDP)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape


def _parse_set(items: list[str] | None) -> dict:
    import yaml

    from roomtone.errors import ParameterError

    out = {}
    for item in items or []:
        if "=" not in item:
            raise ParameterError(f"--set {item!r} must look like key=value (e.g. epochs=5, frontend.n_mels=40)")
        k, v = item.split("=", 1)
        out[k.strip()] = yaml.safe_load(v)
    return out


def parse_seconds(text: str | None) -> float | None:
    """``"300"``, ``"300s"``, ``"5m"``, ``"1.5h"`` -> seconds; None -> the default budget; ``"none"`` -> None (no cap)."""
    from roomtone.errors import ParameterError
    from roomtone.recipe.budget import DEFAULT_BUDGET_S

    if text is None:
        return DEFAULT_BUDGET_S
    t = str(text).strip().lower()
    if t in ("none", "off"):
        return None
    scale = {"s": 1.0, "m": 60.0, "h": 3600.0}.get(t[-1:], None)
    try:
        value = float(t[:-1] if scale else t) * (scale or 1.0)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise ParameterError(f"budget={text!r} must be a positive duration such as 300, 300s, 5m or 1h, or none")
    return value


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train_cmd(
        data: Path = typer.Argument(..., help="Prepared folder (manifest.csv + prepare.json)."),
        out: Path = typer.Option(..., "--out", "-o", help="Run directory to write (checkpoints, metrics, config)."),
        config: Path = typer.Option(None, "--config", "-c", help="YAML TrainConfig (see `roomtone.config`)."),
        model: str = typer.Option(None, help="Registered model name (vgg, vgg_tiny, vgg_wide, ...)."),
        epochs: int = typer.Option(None, help="Number of epochs."),
        batch_size: int = typer.Option(None, help="Batch size (per process under torchrun)."),
        lr: float = typer.Option(None, help="Peak learning rate."),
        seed: int = typer.Option(None, help="Random seed (data order, augmentation, init)."),
        device: str = typer.Option(None, help="auto | cpu | cuda | cuda:N."),
        pretrained: str = typer.Option(None, help="Pretrained backbone name (transfer learning)."),
        mode: str = typer.Option(None, help="Transfer mode with --pretrained: probe | finetune."),
        set_: list[str] = typer.Option(None, "--set", help="Override any config field: key=value (repeatable)."),
        budget: str = typer.Option(None, help="Training time budget for the recipe (e.g. 300, 5m, 1h): caps the "
                                   "step count from a few timed steps, and the run keeps to it (slower than timed, "
                                   "it cuts its steps left). Default 15m; none = steps from the data's size only."),
        domain: str = typer.Option(None, help="speech | sound effects | general audio: the recipe measures transfer "
                                   "points for this domain's backbones only (default: every backbone here)."),
        transfer: bool = typer.Option(True, "--transfer/--no-transfer", help="Let the recipe measure transfer points "
                                      "and train a backbone's probe on small data (--no-transfer: from scratch)."),
        resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace the results of an earlier run in --out."),
        no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar."),
    ) -> None:
        """Train from a prepared folder; writes best.pt/last.pt, metrics.jsonl and config.yaml to --out.

        Without --config the settings come from the data (roomtone.recipe: measured band, durations, event
        lengths, size); the choices are printed and stored in --out/recipe.yaml. Flags and --set override them.
        """
        from rich.console import Console

        from roomtone.config import TrainConfig
        from roomtone.train import fit

        con = Console()
        overrides = {k: v for k, v in (("model", model), ("epochs", epochs), ("batch_size", batch_size), ("lr", lr),
                                       ("seed", seed), ("device", device), ("pretrained", pretrained),
                                       ("mode", mode)) if v is not None}
        cfg = TrainConfig.from_yaml(config) if config else TrainConfig()  # resume: fit uses the run's config.yaml
        if (mode or cfg.mode) == "probe" and (pretrained or cfg.pretrained):
            from roomtone.config import PROBE_OVERRIDES

            overrides.update(PROBE_OVERRIDES)  # the probe trains on embeddings of the clean clips
        overrides.update(_parse_set(set_))
        rec = None
        if not config and not resume:
            from roomtone.recipe import recipe
            from roomtone.recipe.report import print_recipe

            if overrides.get("pretrained"):  # the recipe's front end and VGG layout do not apply to a backbone
                overrides = {"model_kwargs": {}, "frontend": {}, **overrides}
            rec = recipe(data, budget_s=parse_seconds(budget), seed=int(overrides.get("seed", 0)),
                         domain=domain, transfer=transfer).with_overrides(overrides)
            print_recipe(rec, console=con)
            cfg, overrides = rec.config, {}
        if overrides:
            cfg = cfg.replace(**overrides)
        summary = fit(cfg, data_dir=data, out_dir=out, resume=resume, progress=not no_progress, overwrite=overwrite)
        if rec is not None:
            rec.to_yaml(Path(out) / "recipe.yaml")
        best = summary.get("best") or {}
        con.print(f"[bold]run[/bold] {escape(str(summary.get('run_dir', out)))}: {summary.get('epochs_run')} epochs, "
                  f"best epoch {summary.get('best_epoch')}"
                  + (f", valid accuracy {best['valid_accuracy']:.4f}" if "valid_accuracy" in best else "")
                  + (", stopped early" if summary.get("stopped_early") else ""))
