"""`roomtone pretrained list|fetch`: the pre-trained backbones and their offline cache."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape


def register(app: typer.Typer) -> None:
    sub = typer.Typer(help="Pre-trained backbones (speech-embedding, aiSFX, PANNs CNN6/10/14): list them, fetch them for "
                           "offline use.", no_args_is_help=True, rich_markup_mode=None)

    @sub.command("list")
    def list_cmd(cache_dir: Path = typer.Option(None, help="Cache folder (default $ROOMTONE_CACHE or ~/.cache/roomtone).")):
        """List the backbones, their input rate, embedding size, licence and whether they are cached."""
        from rich.console import Console
        from rich.table import Table

        from roomtone.models.pretrained import list_pretrained

        table = Table(title="roomtone pre-trained backbones")
        for col in ("name", "model", "sr", "embedding", "licence", "cached"):
            table.add_column(col, no_wrap=True)
        table.add_column("path", overflow="fold")
        for d in list_pretrained(cache_dir=cache_dir):
            table.add_row(d["name"], d["model"], str(d["sr"]), str(d["embedding_size"]), d["licence"],
                          "yes" if d["cached"] else "no", d["path"])
        Console().print(table)

    @sub.command("fetch")
    def fetch_cmd(name: str = typer.Argument(..., help="Backbone name: speech-embedding, aisfx, panns-cnn6, panns-cnn10, panns-cnn14."),
                  cache_dir: Path = typer.Option(None, help="Cache folder (default $ROOMTONE_CACHE or ~/.cache/roomtone)."),
                  force: bool = typer.Option(False, help="Fetch again even when cached.")):
        """Download (or unpack) a backbone into the cache and verify its hash; offline, say where to put the file."""
        from rich.console import Console

        from roomtone.models.pretrained import CATALOG, fetch

        path = fetch(name, cache_dir=cache_dir, force=force)
        e = CATALOG[name]
        Console().print(f"[green]ok[/green] {escape(name)}: {escape(str(path))}\n  weights by {e.credit} ({e.licence})")

    app.add_typer(sub, name="pretrained")
