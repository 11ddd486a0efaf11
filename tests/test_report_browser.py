"""The HTML report in a real browser: headless Chromium renders it with no console messages, and every
image and audio element loads. A screenshot is kept in ``test-artifacts/``."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from roomtone.expect.report import write_report
from roomtone.expect.robustness import summarise

pytestmark = pytest.mark.browser

# Injected into a COPY of the report: collect load errors, then wait for the audio metadata and write
# what loaded into the DOM, which --dump-dom prints.
HEAD_JS = ("<script>window.__errs=[];window.addEventListener('error',function(e){var t=e.target;"
           "__errs.push(t&&t.tagName?('load failed: '+t.tagName):String(e.message));},true);</script>")
TAIL_JS = """<script>
window.addEventListener('load', function () {
  var imgs = [].slice.call(document.images), auds = [].slice.call(document.querySelectorAll('audio'));
  function done() {
    var r = {images: imgs.length, images_ok: imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length,
             audio: auds.length, audio_ok: auds.filter(function (a) {
               return a.readyState >= 1 && isFinite(a.duration) && a.duration > 0 && !a.error; }).length,
             errors: window.__errs};
    var p = document.createElement('pre'); p.id = 'rt-check'; p.textContent = JSON.stringify(r); document.body.appendChild(p);
  }
  var n = 0;
  function tick() { n++; var pending = auds.filter(function (a) { return a.readyState < 1 && !a.error; }).length;
    if (pending && n < 200) { setTimeout(tick, 50); } else { done(); } }
  tick();
});
</script>"""
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
         "--disable-extensions", "--mute-audio", "--disable-dev-shm-usage"]


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("headless Chromium not found (Debian: apt-get install chromium; .ci/run installs it)")


def check_in_browser(report: Path, work: Path) -> tuple[dict, list[str]]:
    """Open a copy of ``report`` with the check script; returns (what loaded, console lines)."""
    html = report.read_text(encoding="utf-8")
    probe = work / "probe.html"
    probe.write_text(html.replace("<head>", "<head>" + HEAD_JS, 1).replace("</body>", TAIL_JS + "</body>", 1),
                     encoding="utf-8")
    proc = subprocess.run([_chromium(), *FLAGS, "--enable-logging=stderr", "--v=0", "--virtual-time-budget=15000",
                           f"--user-data-dir={work / 'profile'}", "--dump-dom", probe.as_uri()],
                          capture_output=True, text=True, timeout=120)
    m = re.search(r'<pre id="rt-check">(.*?)</pre>', proc.stdout, re.S)
    assert m, f"the check did not run; chromium rc={proc.returncode}, stderr tail:\n{proc.stderr[-2000:]}"
    console = [ln for ln in proc.stderr.splitlines() if ":CONSOLE" in ln]
    return json.loads(m.group(1).replace("&quot;", '"')), console


def screenshot(report: Path, png: Path, work: Path) -> None:
    subprocess.run([_chromium(), *FLAGS, "--hide-scrollbars", "--window-size=1200,2600", "--virtual-time-budget=5000",
                    f"--user-data-dir={work / 'profile-shot'}", f"--screenshot={png}", report.as_uri()],
                   capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def full_report(tmp_path_factory) -> Path:
    from test_expect_cli import write_prepared

    from roomtone.expect.run import expect

    base = tmp_path_factory.mktemp("report")
    prepared = write_prepared(base / "prep", n_per_class=6)
    acc = np.array([[0.95, 0.7, 0.6, 0.5], [0.93, 0.9, 0.85, 0.8], [0.9, 0.88, 0.86, 0.84]])
    rob = summarise(acc, train_conditions=["clean", "noise", "noise+room"],
                    test_conditions=["clean", "noise_0db", "room", "all"])
    rob["model"] = "test"
    res = expect(prepared, base / "out", simulate="all", robustness=rob, examples_per_class=1)
    return Path(res["report"])


def test_full_report_renders(full_report: Path, tmp_path: Path, artifacts_dir: Path):
    html = full_report.read_text()
    assert "http://" not in html and "https://" not in html  # self-contained
    for section in ("Audit", "quick baseline", "What the model hears", "Pattern length", "Learning curve",
                    "Robustness matrix"):
        assert section in html
    n_img, n_audio = html.count("<img "), html.count("<audio ")
    assert n_img >= 5 and n_audio == 2 * 3
    got, console = check_in_browser(full_report, tmp_path)
    assert console == [], console
    assert got == {"images": n_img, "images_ok": n_img, "audio": n_audio, "audio_ok": n_audio, "errors": []}
    shutil.copy(full_report, artifacts_dir / "expect_report.html")
    png = artifacts_dir / "expect_report.png"
    screenshot(full_report, png, tmp_path)
    assert png.exists() and png.stat().st_size > 10_000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_empty_report_has_notes_not_broken_elements(tmp_path: Path):
    path = write_report(tmp_path / "r", title="nothing yet")
    html = path.read_text()
    assert "<img" not in html and "<audio" not in html and html.count('class="note"') == 6
    got, console = check_in_browser(path, tmp_path)
    assert console == [] and got == {"images": 0, "images_ok": 0, "audio": 0, "audio_ok": 0, "errors": []}


def test_check_catches_broken_elements(full_report: Path, tmp_path: Path):
    """Negative control: a truncated image and a bogus sound must be reported by the same check."""
    broken = tmp_path / "broken.html"
    html = full_report.read_text().replace(
        "</body>", '<img src="data:image/png;base64,iVBORw0K" alt="x"><audio src="data:audio/wav;base64,AAAA"></audio>'
        "<script>console.error('boom')</script></body>", 1)
    broken.write_text(html)
    got, console = check_in_browser(broken, tmp_path)
    assert got["images_ok"] == got["images"] - 1 and got["audio_ok"] == got["audio"] - 1
    assert len(got["errors"]) == 2 and any("boom" in ln for ln in console)
