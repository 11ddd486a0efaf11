"""`roomtone train PREPARED_DIR --out RUN_DIR`: train a model (also under torchrun for DDP)."""

from __future__ import annotations

from pathlib import Path

import typer


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
        resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint."),
        no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar."),
    ) -> None:
        """Train from a prepared folder; writes best.pt/last.pt, metrics.jsonl and config.yaml to --out."""
        from rich.console import Console

        from roomtone.config import TrainConfig
        from roomtone.train import fit

        cfg = TrainConfig.from_yaml(config) if config else TrainConfig()
        overrides = {k: v for k, v in (("model", model), ("epochs", epochs), ("batch_size", batch_size), ("lr", lr),
                                       ("seed", seed), ("device", device), ("pretrained", pretrained),
                                       ("mode", mode)) if v is not None}
        if (mode or cfg.mode) == "probe" and (pretrained or cfg.pretrained):
            from roomtone.train.strategy import PROBE_OVERRIDES

            overrides.update(PROBE_OVERRIDES)  # the probe trains on embeddings of the clean clips
        overrides.update(_parse_set(set_))
        if overrides:
            cfg = cfg.replace(**overrides)
        summary = fit(cfg, data_dir=data, out_dir=out, resume=resume, progress=not no_progress)
        best = summary.get("best") or {}
        con = Console()
        con.print(f"[bold]run[/bold] {summary.get('run_dir', out)}: {summary.get('epochs_run')} epochs, "
                  f"best epoch {summary.get('best_epoch')}"
                  + (f", valid accuracy {best['valid_accuracy']:.4f}" if "valid_accuracy" in best else "")
                  + (", stopped early" if summary.get("stopped_early") else ""))
