"""`roomtone prepare DATA --out OUT_DIR` (or `prepare DATA OUT_DIR`): manifest + audit + trim/segment + leak-free splits."""

from __future__ import annotations

from pathlib import Path

import typer


def _list(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


def output_folder(positional: Path | None, option: Path | None) -> Path:
    """The output folder of a command that takes it as ``--out/-o`` or, as a documented alias, as its
    last positional argument."""
    from roomtone.errors import ParameterError

    if positional is not None and option is not None and Path(positional) != Path(option):
        raise ParameterError(f"two output folders given: {str(positional)!r} and --out {str(option)!r}; give one")
    out = option if option is not None else positional
    if out is None:
        raise ParameterError("no output folder: give --out DIR")
    return Path(out)


def columns_option(path_column, label_column, group_column, split_column) -> dict[str, str] | None:
    cols = {k: v for k, v in (("path", path_column), ("label", label_column), ("group", group_column),
                              ("split", split_column)) if v}
    return cols or None


def register(app: typer.Typer) -> None:
    @app.command("prepare")
    def prepare_cmd(
        data: Path = typer.Argument(..., help="Folder of recordings (label = parent folder), or a CSV file."),
        out_dir: Path = typer.Argument(None, help="Same as --out (kept as a positional alias).", show_default=False),
        out: Path = typer.Option(None, "--out", "-o", help="Prepared folder to write (manifest.csv, prepare.json, audit)."),
        label_pattern: str = typer.Option(None, help=r"Regex on file names with named groups label, group, split, "
                                          r"e.g. '(?P<label>\d)_(?P<group>[a-z]+)_\d+\.wav'."),
        test_pattern: str = typer.Option(None, help=r"Regex on relative paths: matching files are test "
                                         r"(FSDD official split: '_[0-4]\.wav$')."),
        path_column: str = typer.Option(None, help="CSV column with file paths (default: detected)."),
        label_column: str = typer.Option(None, help="CSV column with labels (default: detected)."),
        group_column: str = typer.Option(None, help="CSV column with groups, e.g. speaker (default: detected)."),
        split_column: str = typer.Option(None, help="CSV column with a given split (default: detected)."),
        valid: float = typer.Option(0.1, help="Validation fraction of unassigned rows."),
        test: float = typer.Option(0.2, help="Test fraction of unassigned rows."),
        seed: int = typer.Option(0, help="Split seed."),
        group_split: bool = typer.Option(True, help="Keep each group on one side of the split."),
        test_groups: str = typer.Option(None, help="Leave-groups-out: comma-separated groups for test."),
        valid_groups: str = typer.Option(None, help="Comma-separated groups for valid."),
        clip_seconds: float = typer.Option(None, help="Fixed clip length (energy-centred crop / zero pad)."),
        trim_db: float = typer.Option(None, help="Trim leading/trailing audio this many dB below the peak."),
        window: float = typer.Option(None, help="Sliding window length in seconds (long recordings)."),
        hop: float = typer.Option(None, help="Sliding window hop in seconds (default: window)."),
        sr: int = typer.Option(None, help="Working sample rate in Hz (default: most common in the data)."),
        min_duration: float = typer.Option(0.05, help="Files shorter than this (s) are bad."),
        workers: int = typer.Option(1, help="Audit processes."),
        overwrite: bool = typer.Option(False, help="Replace an existing prepared folder."),
    ) -> None:
        """Prepare a dataset: manifest, audit (bad files listed and left out), trim/segment, grouped splits."""
        from rich.console import Console

        from roomtone.prepare.pipeline import prepare

        prepare(data, output_folder(out_dir, out), label_pattern=label_pattern, test_pattern=test_pattern,
                columns=columns_option(path_column, label_column, group_column, split_column),
                valid=valid, test=test, seed=seed, group_split=group_split, test_groups=_list(test_groups),
                valid_groups=_list(valid_groups), clip_seconds=clip_seconds, trim_db=trim_db, window=window,
                hop=hop, sr=sr, min_duration=min_duration, workers=workers, overwrite=overwrite,
                console=Console())
