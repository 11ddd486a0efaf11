"""``roomtone <command>``: one module per command, each mapping 1:1 onto library functions.

Every command module defines ``register(app)``, which adds its command (or sub-app) to ``app``.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import traceback

import typer

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
        help="Deep learning with audio that still works in a noisy, reverberant room. On a failure every "
             "command prints one 'error: ...' line (exit 2: bad flag or input, 3: file system, 4: a bug); "
             "add --debug anywhere (or set ROOMTONE_DEBUG=1) for the traceback.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,  # help text is printed literally: regex examples keep their [a-z]
    )
    for name in COMMAND_MODULES:
        importlib.import_module(f"roomtone.cli.{name}").register(app)
    return app


EXIT_FAILED = 1  # the command ran, but some of its results failed (e.g. a demo step, every predicted file bad)
EXIT_USAGE = 2  # a bad flag value or bad input data: fix the command or the data
EXIT_IO = 3  # the file system refused: permission, full disk, a file where a folder is needed
EXIT_INTERNAL = 4  # a bug: the traceback is shown with --debug or ROOMTONE_DEBUG=1


# library argument -> command-line flag, where the two are spelled differently
FLAGS = {"out_dir": "--out", "out": "--out", "data_dir": "--data"}


def cli_message(exc: BaseException) -> str:
    """A library message in the CLI's words: ``overwrite=True`` becomes ``--overwrite``, ``out='x'``
    becomes ``--out 'x'``, ``label_pattern='...'`` becomes ``--label-pattern '...'``."""
    text = re.sub(r"\b([a-z][a-z0-9_]*)=True\b", lambda m: "--" + m.group(1).replace("_", "-"), str(exc))
    text = re.sub(r"\b(out_dir|out|data_dir)=", lambda m: FLAGS[m.group(1)] + " ", text)
    return re.sub(r"\b(label_pattern|test_pattern|clip_seconds)=", lambda m: "--" + m.group(1).replace("_", "-") + " ",
                  text)


def error_line(exc: BaseException) -> tuple[str, int]:
    """The one ``error: ...`` line and the exit code for an exception that reached the command line."""
    from roomtone.errors import RoomtoneError
    from roomtone.files import storage_error

    if isinstance(exc, RoomtoneError):
        return f"error: {cli_message(exc)}", exc.exit_code
    if isinstance(exc, OSError):
        where = exc.filename or "?"
        return f"error: {cli_message(storage_error(exc, where, action='cannot access'))}", EXIT_IO
    if isinstance(exc, MemoryError):
        return "error: out of memory; try a smaller --batch-size or fewer workers", EXIT_IO
    return (f"error: internal error {type(exc).__name__}: {exc} (a bug: rerun with --debug for the traceback "
            "and report it)", EXIT_INTERNAL)


def debug_requested(argv: list[str]) -> bool:
    """``--debug`` anywhere on the command line, or ROOMTONE_DEBUG set to something other than 0/empty."""
    return "--debug" in argv or os.environ.get("ROOMTONE_DEBUG", "0") not in ("", "0")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``roomtone`` console script.

    An expected failure prints one ``error: ...`` line on stderr and exits with EXIT_USAGE (bad flag or
    input) or EXIT_IO (file system); an unexpected one exits with EXIT_INTERNAL. ``--debug`` (any
    position) or ROOMTONE_DEBUG=1 prints the traceback as well.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = debug_requested(argv)
    argv = [a for a in argv if a != "--debug"]
    app = build_app()
    try:
        app(args=argv, prog_name="roomtone")
    except SystemExit:
        raise
    except Exception as exc:  # noqa: BLE001 - the one place where every failure becomes one line
        if debug:
            traceback.print_exc()
        line, code = error_line(exc)
        print(line, file=sys.stderr, flush=True)
        sys.exit(code)


if __name__ == "__main__":
    main()
