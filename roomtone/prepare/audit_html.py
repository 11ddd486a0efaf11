"""``audit.html``: one self-contained page (plots embedded as base64 PNG) for an audit report."""

from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path

from roomtone.files import atomic_write_text


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _plots(report: dict) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import numpy as np

    out = []
    s = report["summary"]
    ok = [f for f in report["files"] if f["ok"]]
    if s["labels"]:
        labels = list(s["labels"])
        fig, ax = plt.subplots(figsize=(max(5, 0.35 * len(labels) + 2), 3))
        ax.bar(range(len(labels)), [s["labels"][k]["files"] for k in labels], color="#4c72b0")
        ax.set_xticks(range(len(labels)), labels, rotation=60 if len(labels) > 8 else 0, ha="right" if len(labels) > 8 else "center")
        ax.set_ylabel("files")
        ax.set_title("class balance")
        out.append(("Class balance", _png(fig)))
    if ok:
        d = np.array([f["duration"] for f in ok])
        fig, ax = plt.subplots(figsize=(6, 3))
        ax.hist(d, bins=min(50, max(5, len(d) // 10)), color="#55a868")
        ax.set_xlabel("duration (s)")
        ax.set_ylabel("files")
        ax.set_title("durations (all classes)")
        out.append(("Duration histogram", _png(fig)))
        labels = sorted({f["label"] for f in ok})
        if 1 < len(labels) <= 30:
            fig, ax = plt.subplots(figsize=(max(5, 0.35 * len(labels) + 2), 3))
            ax.boxplot([[f["duration"] for f in ok if f["label"] == lab] for lab in labels])
            ax.set_xticks(range(1, len(labels) + 1), labels, rotation=60 if len(labels) > 8 else 0)
            ax.set_ylabel("duration (s)")
            ax.set_title("durations per class")
            out.append(("Durations per class", _png(fig)))
        fig, axes = plt.subplots(1, 3, figsize=(11, 2.8))
        axes[0].hist([f["peak"] for f in ok], bins=30, color="#c44e52")
        axes[0].set_xlabel("peak (full scale = 1)")
        axes[1].hist([f["rms_db"] for f in ok], bins=30, color="#8172b2")
        axes[1].set_xlabel("RMS level (dBFS)")
        axes[2].hist([f["silence"] for f in ok], bins=20, range=(0, 1), color="#937860")
        axes[2].set_xlabel("silent fraction")
        for a in axes:
            a.set_ylabel("files")
        out.append(("Levels", _png(fig)))
    return out


def _cell(value) -> str:
    """A dict (``{"16000": 576}``) as a small table of its values; anything else as text."""
    if isinstance(value, dict):
        if not value:
            return "none"
        inner = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(_plain(v))}</td></tr>"
                        for k, v in value.items())
        return f"<table class='in'>{inner}</table>"
    return html.escape(_plain(value))


def _plain(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _table(head: list[str], rows: list[list], limit: int = 500) -> str:
    h = "".join(f"<th>{html.escape(str(x))}</th>" for x in head)
    body = "".join("<tr>" + "".join(f"<td>{_cell(c)}</td>" for c in r) + "</tr>" for r in rows[:limit])
    more = f"<p>... {len(rows) - limit} more in audit.json</p>" if len(rows) > limit else ""
    return f"<table><tr>{h}</tr>{body}</table>{more}"


def write_audit_html(report: dict, path: str | os.PathLike) -> Path:
    """Write the audit page to ``path`` (atomically) and return it."""
    s = report["summary"]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>roomtone audit</title><style>",
        "body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;"
        "margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;font-size:13px}"
        ".bad{color:#b00}img{max-width:100%}table.in{margin:0}table.in td{border:none;padding:0 6px 0 0}",
        "</style></head><body>",
        f"<h1>Dataset audit</h1><p>{html.escape(report.get('data', ''))}</p>",
        _table(["files", "ok", "bad", "skipped", "with warnings", "duplicate groups", "classes", "groups"],
               [[s["files"], s["ok"], s["bad"], s["skipped"], s["with_warnings"], s["duplicate_groups"],
                 len(s["labels"]), s["groups"]]]),
        _table(["sample rates (Hz: files)", "channels (n: files)", "bit depths (bits: files)", "duration (s)", "warnings (kind: files)"],
               [[s["sample_rates"], s["channels"], s["bit_depths"], s["duration"], s.get("warning_kinds", {})]]),
    ]
    for title, png in _plots(report):
        parts.append(f"<h2>{html.escape(title)}</h2><img alt='{html.escape(title)}' src='data:image/png;base64,{png}'>")
    bad = [[b["path"], b["label"], b["reason"]] for b in report["bad"]] + \
          [[k["path"], "", "skipped: " + k["reason"]] for k in report["skipped"]]
    parts.append(f"<h2 class='bad'>Bad files ({len(bad)}), left out</h2>")
    parts.append(_table(["file", "label", "reason"], bad) if bad else "<p>none</p>")
    parts.append(f"<h2>Duplicates ({len(report['duplicates'])})</h2>")
    parts.append(_table(["kept", "copies", "labels"], [[d["kept"], "; ".join(d["paths"][1:]), ", ".join(d["labels"])]
                                                         for d in report["duplicates"]]) if report["duplicates"] else "<p>none</p>")
    parts.append(f"<h2>Warnings ({len(report['warnings'])}), kept</h2>")
    parts.append(_table(["file", "label", "warning"], [[w["path"], w["label"], w["warning"]] for w in report["warnings"]])
                 if report["warnings"] else "<p>none</p>")
    parts.append("</body></html>")
    path = Path(path)
    atomic_write_text(path, "\n".join(parts))
    return path
