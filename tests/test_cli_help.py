"""`roomtone <command> --help` prints every help text literally: regex examples keep their [a-z]."""

from __future__ import annotations

import re

import pytest
import typer.main
from typer.testing import CliRunner

from roomtone.cli.main import build_app


def _commands(group, path=()):
    """(path, click command) for every leaf command and sub-group of the app."""
    for name, cmd in sorted(getattr(group, "commands", {}).items()):
        yield (*path, name), cmd
        yield from _commands(cmd, (*path, name))


COMMANDS = list(_commands(typer.main.get_command(build_app())))


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def test_every_command_is_covered():
    names = {" ".join(p) for p, _ in COMMANDS}
    assert {"demo", "prepare", "train", "evaluate", "predict", "export", "expect run", "features cache"} <= names


@pytest.mark.parametrize("path,cmd", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_help_is_literal(path, cmd):
    res = CliRunner().invoke(build_app(), [*path, "--help"])
    assert res.exit_code == 0, res.output
    shown = _flat(res.output)
    helps = [p.help for p in cmd.params if getattr(p, "help", None)]
    for h in helps:
        assert _flat(h) in shown, f"{' '.join(path)}: help text not shown literally: {h!r}"
    # every bracketed part of a regex example survives (the bug was rich markup eating "[a-z]")
    for h in helps:
        for part in re.findall(r"\[[^\]]*\]", h):
            assert part in shown


def test_regex_example_of_prepare_is_valid():
    res = CliRunner().invoke(build_app(), ["prepare", "--help"])
    example = re.search(r"'(\(\?P<label>[^']+)'", _flat(res.output)).group(1)
    assert re.compile(example).fullmatch("3_jackson_12.wav")


def test_every_output_flag_is_out_or_o():
    """One convention: the option that names what a command writes is --out, with -o as its short form."""
    for path, cmd in COMMANDS:
        outs = [p for p in cmd.params if "--out" in getattr(p, "opts", [])]
        if outs:
            assert "-o" in outs[0].opts, " ".join(path)
    with_out = {" ".join(p) for p, c in COMMANDS if any("--out" in getattr(q, "opts", []) for q in c.params)}
    assert {"demo", "prepare", "simulate", "audit", "train", "evaluate", "predict", "export", "embed",
            "expect run", "expect robustness", "features cache"} <= with_out


def test_positional_output_is_an_alias_of_out(tmp_path, capsys):
    from roomtone.cli.main import main

    with pytest.raises(SystemExit) as done:
        main(["prepare", str(tmp_path), str(tmp_path / "a"), "--out", str(tmp_path / "b")])
    assert done.value.code == 2
    assert capsys.readouterr().err.startswith("error: two output folders given")
    with pytest.raises(SystemExit) as done:
        main(["simulate", str(tmp_path)])
    assert done.value.code == 2 and "give --out DIR" in capsys.readouterr().err
