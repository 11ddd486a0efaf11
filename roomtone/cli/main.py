"""``roomtone <command>``: one module per command, each mapping 1:1 onto library functions.

Every command module defines ``register(app)``, which adds its command (or sub-app) to ``app``.
"""

from __future__ import annotations

import importlib
import sys

import typer

from roomtone.errors import RoomtoneError

# Order is the order of the workflow; it is also the order of `roomtone --help`.
COMMAND_MODULES = (
    "demo",
    "prepare",
    "audit",
    "simulate",
    "features",
    "design",
    "train",
    "evaluate",
    "predict",
    "export",
    "pretrained",
    "embed",
    "expect",
)


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="roomtone",
        help="Deep learning with audio that still works in a noisy, reverberant room.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    for name in COMMAND_MODULES:
        importlib.import_module(f"roomtone.cli.{name}").register(app)
    return app


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``roomtone`` console script. A RoomtoneError exits with code 2 and its message."""
    app = build_app()
    try:
        app(args=argv)
    except RoomtoneError as exc:
        from rich.console import Console
        from rich.text import Text

        Console(stderr=True).print(Text("error: ", style="bold red") + Text(f"{type(exc).__name__}: {exc}"))
        sys.exit(2)


if __name__ == "__main__":
    main()
