"""One self-contained HTML report per run: pictures (PNG) and sounds (WAV) embedded as data URIs.

:func:`write_report` takes the results of the expect stage (any of them may be None) and writes
``report.html`` (+ ``results.json``) into ``out_dir``. A section whose data is absent says so in a
note; no element ever points at something missing. It opens from disk, without a server.
"""

from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path

import numpy as np

from roomtone.expect.baselines import BASELINE, BASELINE_METHOD
from roomtone.files import atomic_write_json, atomic_write_text

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:1100px;color:#222;padding:0 1rem}
h1{margin-bottom:.2rem} h2{border-bottom:2px solid #ddd;padding-bottom:.2rem;margin-top:2.2rem}
table{border-collapse:collapse;margin:.6rem 0} td,th{border:1px solid #ccc;padding:.25rem .55rem;text-align:right}
th{background:#f3f3f3} td.l,th.l{text-align:left} .note{color:#666;font-style:italic}
.big{font-size:1.15rem} .ok{color:#17692b;font-weight:bold} .bad{color:#a11;font-weight:bold}
figure{margin:.6rem 0} img{max-width:100%;height:auto;border:1px solid #eee}
.ex{display:grid;grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:1rem}
.card{border:1px solid #ddd;border-radius:6px;padding:.6rem} audio{width:100%;height:32px}
.lab{font-size:.85rem;color:#555;margin:.3rem 0 0}
table.in{margin:0} table.in td{border:none;padding:0 .4rem 0 0}
.pair{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:1.2rem;align-items:start}
"""


def _esc(x) -> str:
    return html.escape(str(x))


def _pct(x) -> str:
    return "—" if x is None else f"{100 * float(x):.1f}%"


def png_data_uri(fig) -> str:
    """Render a matplotlib figure to a ``data:image/png;base64,...`` URI and close it."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def wav_data_uri(wave: np.ndarray, *, sr: int, peak: float = 0.9) -> str:
    """16-bit PCM WAV of ``wave`` ``(time,)`` (peak-normalised to ``peak``) as a ``data:audio/wav`` URI."""
    import soundfile as sf

    w = np.asarray(wave, dtype=np.float32).reshape(-1)
    m = float(np.abs(w).max()) if w.size else 0.0
    if m > 0:
        w = w * (peak / m)
    buf = io.BytesIO()
    sf.write(buf, w, int(sr), format="WAV", subtype="PCM_16")
    return "data:audio/wav;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _img(uri: str, alt: str) -> str:
    return f'<figure><img src="{uri}" alt="{_esc(alt)}"></figure>'


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _cell(value) -> str:
    """A table cell's HTML: a dict becomes a small two-column table (key, value), anything else text."""
    if isinstance(value, dict):
        if not value:
            return "—"
        rows = "".join(f'<tr><td class="l">{_esc(k)}</td><td>{_esc(v)}</td></tr>' for k, v in value.items())
        return f'<table class="in">{rows}</table>'
    return _esc(value)


def _table(head: list[str], rows: list[list], left: int = 1) -> str:
    th = "".join(f'<th class="{"l" if i < left else ""}">{_esc(h)}</th>' for i, h in enumerate(head))
    body = "".join("<tr>" + "".join(f'<td class="{"l" if i < left else ""}">{_cell(c)}</td>' for i, c in enumerate(r))
                   + "</tr>" for r in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def _note(text: str) -> str:
    return f'<p class="note">{_esc(text)}</p>'


def section_audit(audit: dict | None) -> str:
    if not audit:
        return _note("No audit summary for this run.")
    parts = [_table(["item", "value"], [[str(k).replace("_", " "), v] for k, v in audit.get("summary", {}).items()])]
    if audit.get("per_class"):
        splits = audit.get("splits", [])
        parts.append(_table(["class", *splits, "total"],
                            [[c["label"], *[c["counts"].get(s, 0) for s in splits], c["total"]] for c in audit["per_class"]]))
    for w in audit.get("warnings", []):
        parts.append(f'<p class="bad">{_esc(w)}</p>')
    return "".join(parts)


def confusion_figure(cm, labels: list[str], title: str) -> str:
    """A confusion matrix (rows true, columns predicted): cells print counts, colour is the share of the
    true class (row); ``title`` names the model and the test set."""
    plt = _plt()
    cm = np.asarray(cm, dtype=np.float64)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    k = len(labels)
    fig, ax = plt.subplots(figsize=(1.2 + 0.45 * k, 1.0 + 0.42 * k))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), labels, rotation=90 if k > 8 else 0)
    ax.set_yticks(range(k), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title}\ncounts; colour = share of the true class", fontsize=9)
    if k <= 20:
        for i in range(k):
            for j in range(k):
                if cm[i, j]:
                    ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if norm[i, j] > 0.5 else "black")
    return png_data_uri(fig)


def section_baseline(baseline: dict | None) -> str:
    if not baseline:
        return _note("The quick baseline was not computed for this run.")
    out = [f'<p>The {BASELINE}: {_esc(BASELINE_METHOD)} ({baseline.get("n_features")} features, '
           f'{baseline.get("n_examples")} examples).</p>']
    rows = []
    for name in ("holdout", "grouped_cv"):
        r = baseline.get(name)
        if r:
            what = "test split" if name == "holdout" else f"grouped {r.get('n_folds')}-fold CV ({r.get('n_groups')} groups)"
            rows.append([what, _pct(r["accuracy"]), _pct(r["macro_f1"]), _pct(r["chance"]["majority"]),
                         _pct(r["chance"]["uniform"])])
    out.append(_table(["evaluation", "accuracy", "macro F1", "chance (majority)", "chance (uniform)"], rows))
    main = baseline.get("holdout") or baseline.get("grouped_cv")
    if main:
        out.append("<h3>Per class</h3>")
        out.append(_table(["class", "precision", "recall", "F1", "support"],
                          [[c["label"], _pct(c["precision"]), _pct(c["recall"]), _pct(c["f1"]), c["support"]]
                           for c in main["per_class"]]))
        if main.get("confused_pairs"):
            out.append("<h3>Most confused pairs</h3>")
            out.append(_table(["pair", "errors", "a as b", "b as a", "share"],
                              [[f'{p["a"]} / {p["b"]}', p["errors"], p["a_as_b"], p["b_as_a"], _pct(p["share"])]
                               for p in main["confused_pairs"]]))
        out.append("<h3>Confusion matrix</h3>")
        out.append(_img(confusion_figure(main["confusion_matrix"], main["labels"], f"{BASELINE}: test confusion"),
                        "baseline confusion matrix"))
    return "".join(out)


def spectrogram_figure(logmel: np.ndarray, settings: dict, *, title: str):
    """A log-mel ``(n_mels, frames)`` in dB as a figure: time in seconds, the mel bands' centre
    frequencies in Hz, a dB colour bar. ``settings``: ``sr``, ``hop_length`` (default sr // 100),
    ``fmin``, ``fmax`` (default 0 and sr / 2)."""
    from roomtone.features.filters import mel_frequencies

    plt = _plt()
    sr = int(settings.get("sr") or 16000)
    hop = int(settings.get("hop_length") or sr // 100)
    n_mels, frames = logmel.shape
    fmin, fmax = float(settings.get("fmin") or 0.0), float(settings.get("fmax") or sr / 2)
    centres = mel_frequencies(n_mels=n_mels + 2, fmin=fmin, fmax=fmax)[1:-1]
    fig, ax = plt.subplots(figsize=(4.4, 2.4))
    im = ax.imshow(logmel, origin="lower", aspect="auto", cmap="magma",
                   extent=(0.0, frames * hop / sr, -0.5, n_mels - 0.5))
    ticks = np.unique(np.linspace(0, n_mels - 1, 5).round().astype(int))
    ax.set_yticks(ticks, [f"{centres[i]:.0f}" for i in ticks])
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frequency (Hz, mel scale)")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, label="dB", pad=0.02)
    return fig


def section_examples(examples: list[dict] | None, frontend_settings: dict | None) -> str:
    if not examples:
        return _note("No listening examples for this run.")
    out = []
    if frontend_settings:
        out.append("<p>Front end: " + ", ".join(f"{k}={_esc(v)}" for k, v in frontend_settings.items()) + "</p>")
    out.append('<div class="ex">')
    for ex in examples:
        fig = spectrogram_figure(np.asarray(ex["logmel"]), frontend_settings or {"sr": ex["sr"]},
                                 title=f'log-mel of {ex["label"]}: {Path(str(ex.get("name", ""))).name}')
        card = [f'<div class="card"><b>{_esc(ex["label"])}</b>', _img(png_data_uri(fig), f'log-mel spectrogram of {ex["label"]}')]
        for key, title in (("original", "original"), ("simulated", f'simulated ({ex.get("condition", "")})'),
                           ("reconstructed", "reconstructed from the log-mel")):
            if ex.get(key) is not None and np.asarray(ex[key]).size:
                card.append(f'<p class="lab">{_esc(title)}</p><audio controls preload="auto" '
                            f'src="{wav_data_uri(ex[key], sr=ex["sr"])}"></audio>')
        card.append("</div>")
        out.append("".join(card))
    out.append("</div>")
    return "".join(out)


def training_curves_figure(history: list[dict], *, name: str) -> str:
    """Loss and accuracy per epoch (train and valid) from ``metrics.jsonl`` records."""
    plt = _plt()
    ep = [r["epoch"] for r in history]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8.0, 2.8))
    for ax, key, what in ((a1, "loss", "cross-entropy loss"), (a2, "accuracy", "accuracy")):
        for split, style in (("train", "-o"), ("valid", "--s")):
            ys = [r.get(f"{split}_{key}") for r in history]
            if any(y is not None for y in ys):
                ax.plot(ep, [np.nan if y is None else y for y in ys], style, ms=3, label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel(what)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    a2.set_ylim(0, 1.02)
    fig.suptitle(f"{name}: training curves", fontsize=10)
    fig.tight_layout()
    return png_data_uri(fig)


def section_model(model: dict | None, baseline: dict | None) -> str:
    """The trained CNN next to the quick baseline: accuracy clean and corrupted, per class, confusion
    matrix and training curves. ``model``: ``{"name", "evaluations": {"clean": evaluate() dict, <corruption>:
    ...}, "history": metrics.jsonl records}``."""
    if not model or not model.get("evaluations", {}).get("clean"):
        return _note("No trained CNN in this run.")
    name = model.get("name", "CNN")
    ev = model["evaluations"]
    clean = ev["clean"]
    base = (baseline or {}).get("holdout")
    rows = [[f"{name}, test clean", _pct(clean["accuracy"]), _pct(clean["macro_f1"]), clean["n"]]]
    rows += [[f"{name}, test under {k}", _pct(m["accuracy"]), _pct(m["macro_f1"]), m["n"]]
             for k, m in ev.items() if k != "clean"]
    if base:
        rows.append([f"{BASELINE}, test clean", _pct(base["accuracy"]), _pct(base["macro_f1"]),
                     sum(c["support"] for c in base["per_class"])])
    out = [_table(["model and test set", "accuracy", "macro F1", "examples"], rows)]
    per = clean["per_class"]
    base_pc = {c["label"]: c for c in (base or {}).get("per_class", [])}
    head = ["class", f"{name} precision", f"{name} recall", f"{name} F1", "support"]
    if base_pc:
        head.append(f"{BASELINE} F1")
    out.append("<h3>Per class, clean test set</h3>")
    out.append(_table(head, [[lab, _pct(pc["precision"]), _pct(pc["recall"]), _pct(pc["f1"]), pc["support"],
                              *([_pct(base_pc[lab]["f1"])] if lab in base_pc else ([""] if base_pc else []))]
                             for lab, pc in per.items()]))
    out.append("<h3>Confusion matrices, clean test set</h3>")
    figs = [_img(confusion_figure(clean["confusion_matrix"], clean["labels"], f"{name}: test confusion"),
                 f"{name} confusion matrix")]
    if base:
        figs.append(_img(confusion_figure(base["confusion_matrix"], base["labels"], f"{BASELINE}: test confusion"),
                         f"{BASELINE} confusion matrix"))
    out.append('<div class="pair">' + "".join(figs) + "</div>")
    if model.get("history"):
        out.append("<h3>Training curves</h3>")
        out.append(_img(training_curves_figure(model["history"], name=name), f"{name} training curves"))
    bad = clean.get("bad_files") or []
    if bad:
        out.append(_note(f"{len(bad)} test file(s) could not be read and were left out: "
                         + "; ".join(b["path"] for b in bad[:5])))
    return "".join(out)


def section_events(events: dict | None) -> str:
    if not events:
        return _note("The event-duration analysis was not computed for this run.")
    plt = _plt()
    pc = events["per_class"]
    out = [f'<p class="big">Recommended receptive field: <b>{events["recommended_rf_s"]:.2f} s</b>; '
           f'pooling head: <b>{_esc(events["pooling"])}</b>.</p>']
    if events.get("rf_check"):
        cls = "ok" if str(events["rf_check"]).startswith("ok") else "bad"
        out.append(f'<p class="{cls}">Model receptive field: {_esc(events["rf_check"])}</p>')
    out.append(_table(["class", "clips", "events", "median (s)", "p10 (s)", "p90 (s)", "active", "pooling", "RF (s)"],
                      [[c["label"], c["n_clips"], c["n_events"], f'{c["median_s"]:.3f}', f'{c["p10_s"]:.3f}',
                        f'{c["p90_s"]:.3f}', _pct(c["active_fraction"]), c["pooling"], f'{c["rf_s"]:.2f}'] for c in pc]))
    data = [c["durations"] or [0.0] for c in pc]
    fig, ax = plt.subplots(figsize=(max(4, 0.55 * len(pc) + 2), 2.8))
    ax.boxplot(data, showfliers=False)
    ax.set_xticks(range(1, len(pc) + 1), [c["label"] for c in pc], rotation=90 if len(pc) > 8 else 0)
    ax.set_ylabel("event duration (s)")
    ax.set_title("active-event durations per class")
    out.append(_img(png_data_uri(fig), "event durations per class"))
    return "".join(out)


def section_learning_curve(lc) -> str:
    """One curve (a dict from :mod:`roomtone.expect.learning_curve`) or several (a list: baseline, CNN)."""
    curves = [c for c in (lc if isinstance(lc, list) else [lc]) if c]
    if not curves:
        return _note("No learning curve for this run.")
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    out = []
    for c in curves:
        pts = c["points"]
        n = np.array([p["n_train"] for p in pts], dtype=float)
        acc = np.array([p["accuracy"] for p in pts])
        std = np.array([p.get("std", 0.0) for p in pts])
        law = c["power_law"]
        grid = np.geomspace(n.min(), 10 * n.max(), 60)
        line = ax.errorbar(n, acc, yerr=std, fmt="o", label=f'{c.get("model", "")} (measured)')
        ax.plot(grid, np.clip(1 - (law["a"] * grid ** (-law["b"]) + law["c"]), 0, 1), "--", color=line[0].get_color(),
                label=f'fit: err = {law["a"]:.2g} n^-{law["b"]:.2f} + {law["c"]:.3f}')
        out.append(f'<p class="big">{_esc(c.get("model", "model"))}: {_esc(c["verdict"])}.</p>')
        out.append(_table(["fraction", "examples", "accuracy", "std"],
                          [[f'{p["fraction"]:.0%}', p["n_train"], _pct(p["accuracy"]), _pct(p.get("std", 0))]
                           for p in pts]))
    ax.set_xscale("log")
    ax.set_title("test accuracy vs training examples (measured, and the fitted power law)", fontsize=9)
    ax.set_xlabel("training examples")
    ax.set_ylabel("test accuracy")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    out.append(_img(png_data_uri(fig), "learning curve"))
    return "".join(out)


def robustness_figure(rob: dict) -> str:
    plt = _plt()
    acc = np.asarray(rob["accuracy"])
    tr, te = rob["train_conditions"], rob["test_conditions"]
    fig, ax = plt.subplots(figsize=(1.6 + 0.9 * len(te), 1.0 + 0.55 * len(tr)))
    ax.imshow(acc, cmap="RdYlGn", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(te)), te, rotation=30, ha="right")
    ax.set_yticks(range(len(tr)), [f"train {t}" for t in tr])
    for i in range(len(tr)):
        for j in range(len(te)):
            ax.text(j, i, f"{100 * acc[i, j]:.0f}", ha="center", va="center", fontsize=8)
    ax.set_title(f'accuracy (%) — {rob.get("model", "")}: training condition x test condition')
    return png_data_uri(fig)


def section_robustness(rob: dict | None) -> str:
    if not rob:
        return _note("No robustness matrix for this run (run `roomtone expect robustness`).")
    acc = np.asarray(rob["accuracy"])
    out = [_img(robustness_figure(rob), "robustness heatmap"),
           _table(["trained on", *rob["test_conditions"]],
                  [[t, *[_pct(a) for a in acc[i]]] for i, t in enumerate(rob["train_conditions"])])]
    if rob.get("ratio") is not None:
        cls = "ok" if rob.get("passes_half") else "bad"
        out.append(f'<p class="{cls}">On the <b>{_esc(rob["worst"])}</b> test condition the '
                   f'<b>{_esc(rob["robust"])}</b>-trained model loses {_pct(rob["drop"][rob["robust"]])} accuracy, '
                   f'the <b>{_esc(rob["reference"])}</b>-trained one {_pct(rob["drop"][rob["reference"]])} '
                   f'(ratio {rob["ratio"]:.2f}; at most 0.5 means augmentation halved the loss).</p>')
    return "".join(out)


def write_report(out_dir: str | os.PathLike, *, title: str = "roomtone expect", audit: dict | None = None,
                 baseline: dict | None = None, events: dict | None = None, learning_curve: dict | list | None = None,
                 robustness: dict | None = None, examples: list[dict] | None = None,
                 frontend_settings: dict | None = None, notes: list[str] | None = None,
                 recipe_html: str | None = None, filename: str = "report.html", model: dict | None = None) -> Path:
    """Write ``out_dir/report.html`` (self-contained) and ``out_dir/results.json``; return the HTML path.

    ``examples``: dicts with ``label, name, sr, logmel (n_mels, frames)`` and waves ``original``,
    ``simulated`` (+ ``condition``), ``reconstructed`` (each ``(time,)`` or None). ``recipe_html``: the
    training recipe's table (``roomtone.recipe.report.recipe_html``), shown first.
    ``model``: the trained CNN (see :func:`section_model`), shown next to the quick baseline.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = []
    if baseline:
        main = baseline.get("holdout") or baseline.get("grouped_cv")
        summary.append(f'quick baseline {_pct(main["accuracy"])} vs chance {_pct(main["chance"]["majority"])} '
                       f'(majority) / {_pct(main["chance"]["uniform"])} (uniform)')
    if events:
        summary.append(f'receptive field >= {events["recommended_rf_s"]:.2f} s, pooling {events["pooling"]}')
    for c in learning_curve if isinstance(learning_curve, list) else [learning_curve]:
        if c:
            summary.append(f'{c.get("model", "model")}: {c["verdict"]}')
    if robustness and robustness.get("ratio") is not None:
        summary.append(f'augmentation keeps {robustness["ratio"]:.2f} of the clean model\'s loss on "{robustness["worst"]}"')
    sections = [("Recipe: what to train, measured on this data", recipe_html)] if recipe_html else []
    sections += [
        ("Audit", section_audit(audit)),
        ("Feasibility: quick baseline", section_baseline(baseline)),
        *([("The trained CNN next to the quick baseline", section_model(model, baseline))] if model else []),
        ("What the model hears: spectrograms and sounds", section_examples(examples, frontend_settings)),
        ("Pattern length and sparsity", section_events(events)),
        ("Learning curve", section_learning_curve(learning_curve)),
        ("Robustness matrix", section_robustness(robustness)),
    ]
    body = [f"<h1>{_esc(title)}</h1>"]
    if summary:
        body.append("<ul>" + "".join(f"<li>{_esc(s)}</li>" for s in summary) + "</ul>")
    for n in notes or []:
        body.append(_note(n))
    for i, (head, content) in enumerate(sections, 1):
        body.append(f'<section id="s{i}"><h2>{i}. {_esc(head)}</h2>{content}</section>')
    doc = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
           f"<title>{_esc(title)}</title><style>{CSS}</style></head><body>{''.join(body)}</body></html>\n")
    path = out_dir / filename
    atomic_write_text(path, doc)
    results = {"title": title, "audit": audit, "baseline": baseline, "events": events,
               "learning_curve": learning_curve, "robustness": robustness, "frontend": frontend_settings}
    atomic_write_json(out_dir / "results.json", results, default=_jsonable)
    return path


def _jsonable(x):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return str(x)
