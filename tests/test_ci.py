"""CI runs the README's two commands verbatim: both blocks exist and .ci/run extracts exactly them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _readme_block(marker: str) -> str:
    text = (ROOT / "README.md").read_text()
    after = text.split(f"<!-- {marker} -->", 1)[1]
    return after.split("```bash\n", 1)[1].split("\n```", 1)[0]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize("marker", ["demo-command", "test-command"])
def test_ci_runs_the_readme_command_verbatim(marker):
    script = (ROOT / ".ci" / "run").read_text()
    assert "for name in demo-command test-command" in script
    # the extraction function of .ci/run itself, run on the README
    fn = script[script.index("readme_cmd() {"):script.index("}\n", script.index("readme_cmd() {")) + 2]
    got = subprocess.run(["bash", "-c", f"{fn}\nreadme_cmd {marker}"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.rstrip("\n")
    assert got == _readme_block(marker)
    assert got.startswith("python3 -m venv .venv && ")  # a fresh environment, as a user starts


def test_the_demo_command_is_the_full_demo():
    cmd = _readme_block("demo-command")
    assert cmd.endswith(".venv/bin/roomtone demo --out roomtone-demo") and "--quick" not in cmd
