"""`roomtone features` — placeholder until the features issue builds it."""

import typer


def register(app: typer.Typer) -> None:
    """Add this command to the app. Placeholder until the command is built."""
    sub = typer.Typer(help="Feature layers: describe sizes, cache features.", no_args_is_help=True)

    @sub.command("describe")
    def describe() -> None:
        """Placeholder."""

    app.add_typer(sub, name="features")
