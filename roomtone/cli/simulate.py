"""`roomtone simulate IN_DIR_OR_CSV --out OUT_DIR` (or a positional OUT_DIR): augmented copies (noise, rooms, microphones) + a manifest
of every drawn parameter. Maps onto :func:`roomtone.prepare.render.render`."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("simulate")
    def simulate_cmd(
        data: Path = typer.Argument(..., help="Folder of recordings, a CSV, or a prepared folder (manifest.csv)."),
        out_dir: Path = typer.Argument(None, help="Same as --out (kept as a positional alias).", show_default=False),
        out: Path = typer.Option(None, "--out", "-o", help="Where the augmented copies and manifest.csv go (not inside DATA)."),
        noise: str = typer.Option(None, help="Noise folder/CSV (its 'split' rows are used), or 'colored'."),
        snr: str = typer.Option("0:20", help="SNR range in dB, LOW:HIGH (or one number)."),
        rooms: str = typer.Option(None, help="RIR folder/CSV, or 'simulated' (shoebox rooms, cached)."),
        rt60: str = typer.Option(None, help="Only rooms whose measured RT60 is in LOW:HIGH seconds, e.g. 0.3:0.8."),
        mic: str = typer.Option(None, help="Microphone preset(s): phone, laptop, headset, far-field, voip, telephone "
                                "(comma-separated: one drawn per copy)."),
        copies: int = typer.Option(1, help="Augmented copies per example."),
        seed: int = typer.Option(0, help="Seed: each output depends only on (seed, file, copy)."),
        sr: int = typer.Option(None, help="Sample rate of the outputs in Hz (default: each file's own)."),
        split: str = typer.Option("auto", help="Bank split for noises/rooms: auto (test rows get the test banks, "
                                  "others the train banks), train or test."),
        subtype: str = typer.Option("PCM_16", help="Output wav subtype (PCM_16, PCM_24, FLOAT)."),
        overwrite: bool = typer.Option(False, help="Replace a previous run in OUT_DIR."),
    ) -> None:
        """Simulate the real world on a clean dataset: reverberation, noise at an SNR, a microphone.

        Resumable: run the same command again after an interruption and it continues.
        """
        from rich.console import Console

        from roomtone.cli.prepare import output_folder
        from roomtone.prepare.render import render

        render(data, output_folder(out_dir, out), noise=noise, snr_db=snr, rooms=rooms, mic=mic, copies=copies, seed=seed, sr=sr,
               split=split, subtype=subtype, overwrite=overwrite, console=Console(stderr=True), rt60=rt60)
