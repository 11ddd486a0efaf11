"""roomtone.expect: before training, what to expect (chance level, a quick baseline, learning curves, event lengths,
a robustness matrix), in one HTML report.

    from roomtone.expect import expect, quick_baseline
    result = expect("prepared/", "expect/")          # writes expect/report.html and recipe.yaml

Names load on first use (importing ``roomtone.expect`` stays cheap for the CLI).
"""

from __future__ import annotations

from roomtone.lazy import lazy_exports

#: public name -> the submodule that defines it
_EXPORTS = {
    "expect": "run",
    "chance_levels": "baselines", "quick_baseline": "baselines", "confused_pairs": "baselines",
    "Prepared": "data", "read_prepared": "data", "load_waveforms": "data",
    "make_frontend": "frontend",
    "fit_power_law": "learning_curve", "predict_accuracy": "learning_curve",
    "baseline_learning_curve": "learning_curve", "cnn_learning_curve": "learning_curve",
    "griffin_lim": "listen", "logmel_to_audio": "listen",
    "baseline_matrix": "robustness", "deep_matrix": "robustness",
    "write_report": "report",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
