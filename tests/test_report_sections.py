"""Report sections a person reads: the CNN next to the quick baseline, axes in seconds and Hz, tables not dicts."""

from __future__ import annotations

import numpy as np

from roomtone.expect.baselines import BASELINE
from roomtone.expect.report import section_audit, spectrogram_figure, write_report


def _eval(acc: float, labels=("a", "b")):
    cm = [[3, 1], [0, 4]]
    per = {lab: {"precision": acc, "recall": acc, "f1": acc, "support": 4} for lab in labels}
    return {"accuracy": acc, "macro_f1": acc, "n": 8, "per_class": per, "confusion_matrix": cm, "labels": list(labels)}


def test_demo_report_shows_the_cnn_next_to_the_baseline(tmp_path):
    base = {"n_features": 206, "n_examples": 16, "classifier": "x",
            "holdout": {"accuracy": 0.5, "macro_f1": 0.4, "chance": {"majority": 0.5, "uniform": 0.5},
                        "per_class": [{"label": "a", "precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 4},
                                      {"label": "b", "precision": 0.5, "recall": 0.5, "f1": 0.25, "support": 4}],
                        "confusion_matrix": [[2, 2], [2, 2]], "labels": ["a", "b"]}}
    history = [{"epoch": e, "train_loss": 1 / e, "valid_loss": 1.2 / e, "train_accuracy": 0.5 + e / 10,
                "valid_accuracy": 0.4 + e / 10} for e in (1, 2, 3)]
    model = {"name": "CNN (VGG)", "evaluations": {"clean": _eval(0.875), "all": _eval(0.625)}, "history": history}
    html = write_report(tmp_path, baseline=base, model=model).read_text()
    section = html[html.index("The trained CNN next to the quick baseline"):]
    for text in ("CNN (VGG), test clean", "CNN (VGG), test under all", f"{BASELINE}, test clean", "87.5%", "62.5%",
                 "Per class, clean test set", f"{BASELINE} F1", "25.0%", "Training curves"):
        assert text in section, text
    assert section.count("<img ") == 3  # CNN confusion, baseline confusion, training curves
    assert "row-normalised" not in html and "MFCC stats" not in html


def test_spectrogram_has_seconds_hz_and_a_db_colour_bar():
    lm = np.random.default_rng(0).normal(-40, 10, (64, 101))
    fig = spectrogram_figure(lm, {"sr": 16000, "hop_length": 160}, title="t")
    ax, cbar = fig.axes
    assert ax.get_xlabel() == "time (s)" and ax.get_ylabel().startswith("frequency (Hz")
    assert ax.get_xlim() == (0.0, 101 * 160 / 16000) and cbar.get_ylabel() == "dB"
    ticks = [float(t.get_text()) for t in ax.get_yticklabels()]
    assert ticks[0] < 100 and 6000 < ticks[-1] < 8000  # mel band centres in Hz, up to near sr / 2


def test_audit_cells_are_tables_not_dicts():
    html = section_audit({"summary": {"audit: sample_rates": {"16000": 576, "8000": 3}, "examples": 579}})
    assert "{" not in html and "<td class=\"l\">16000</td><td>576</td>" in html and "audit: sample rates" in html
