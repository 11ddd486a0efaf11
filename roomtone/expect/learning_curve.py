"""Learning curves: accuracy on growing fractions of the training data, and what more data would buy.

The test set stays fixed; each fraction of the training pool is a class-stratified random subset
(seeded, repeated). The error is fitted with a power law ``err(n) = a * n^-b + c`` (``c`` the
irreducible error), or ``a * n^-b`` when three free parameters do not fit, and extrapolated to 2x
and 10x the data.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from roomtone.errors import DataError, ParameterError
from roomtone.expect.baselines import BASELINE
from roomtone.features.summary import make_classifier, single_thread
from roomtone.files import atomic_write_json

DEFAULT_FRACTIONS = (0.1, 0.25, 0.5, 1.0)


def stratified_subset(y: np.ndarray, fraction: float, *, seed: int) -> np.ndarray:
    """Indices of a class-stratified random subset of ``y`` (at least one example per class)."""
    if not 0 < fraction <= 1:
        raise ParameterError(f"fraction={fraction!r} must be in (0, 1]")
    rng = np.random.default_rng(seed)
    keep = []
    for k in np.unique(y):
        idx = np.flatnonzero(y == k)
        n = max(1, int(round(fraction * idx.size)))
        keep.append(rng.permutation(idx)[:n])
    return np.sort(np.concatenate(keep))


def fit_power_law(n: np.ndarray, err: np.ndarray) -> dict:
    """Fit ``err = a * n^-b + c`` (``c >= 0``); falls back to ``c = 0`` (a line in log-log). Returns ``{a, b, c}``."""
    n, err = np.asarray(n, dtype=np.float64), np.clip(np.asarray(err, dtype=np.float64), 1e-4, 1.0)
    if n.size < 2:
        raise ParameterError(f"a power law needs >= 2 points; got {n.size}")
    b, log_a = np.polyfit(np.log(n), np.log(err), 1)
    fallback = {"a": float(np.exp(log_a)), "b": float(-b), "c": 0.0}
    if n.size < 4:
        return fallback
    from scipy.optimize import curve_fit

    try:
        p, _ = curve_fit(lambda x, a, b, c: a * x ** (-b) + c, n, err, p0=[fallback["a"], max(fallback["b"], 0.1), 0.0],
                         bounds=([0, 0, 0], [np.inf, 3.0, float(err.min())]), maxfev=5000)
    except (RuntimeError, ValueError):
        return fallback
    return {"a": float(p[0]), "b": float(p[1]), "c": float(p[2])}


def predict_accuracy(law: dict, n: float) -> float:
    return float(np.clip(1.0 - (law["a"] * n ** (-law["b"]) + law["c"]), 0.0, 1.0))


def summarise(points: list[dict]) -> dict:
    """Add the power-law fit and the 2x / 10x extrapolation to curve ``points`` (``n_train``, ``accuracy``)."""
    n = np.array([p["n_train"] for p in points], dtype=np.float64)
    acc = np.array([p["accuracy"] for p in points], dtype=np.float64)
    law = fit_power_law(n, 1 - acc)
    n_full = float(n.max())
    now = predict_accuracy(law, n_full)
    x2, x10 = predict_accuracy(law, 2 * n_full), predict_accuracy(law, 10 * n_full)
    return {
        "points": points, "power_law": law, "n_full": int(n_full),
        "accuracy_full": float(acc[n == n_full].mean()),
        "predicted_2x": x2, "predicted_10x": x10, "gain_2x": x2 - now, "gain_10x": x10 - now,
        "ceiling": float(1 - law["c"]),
        "verdict": (f"doubling the data would buy about {100 * (x2 - now):+.1f} points, 10x about "
                    f"{100 * (x10 - now):+.1f} (fitted ceiling {100 * (1 - law['c']):.1f}%)"),
    }


def baseline_learning_curve(x: np.ndarray, y: np.ndarray, *, train: np.ndarray, test: np.ndarray,
                            fractions=DEFAULT_FRACTIONS, repeats: int = 3, seed: int = 0, name: str = BASELINE) -> dict:
    """The quick baseline trained on ``fractions`` of the ``train`` indices, scored on ``test`` indices.

    ``x`` is any fixed per-clip feature matrix read by the baseline's logistic regression: the log-mel summary
    (the quick baseline), or a frozen backbone's embeddings (its linear probe: the transfer curve); ``name``
    labels the curve.

    Smaller fractions are repeated ``repeats`` times with different subsets (the full set once); each
    point is ``{fraction, n_train, accuracy, std}``. See :func:`summarise` for the rest of the result.
    """
    x, y = np.asarray(x), np.asarray(y)
    train, test = np.asarray(train), np.asarray(test)
    if train.size == 0 or test.size == 0:
        raise DataError("a learning curve needs training and test examples")
    points = []
    for f in sorted(fractions):
        accs, ns = [], []
        for r in range(1 if f >= 1 else repeats):
            sub = train[stratified_subset(y[train], f, seed=seed + 1000 * r)]
            if len(np.unique(y[sub])) < 2:
                continue
            with single_thread():
                clf = make_classifier(seed=seed).fit(x[sub], y[sub])
            accs.append(float(np.mean(clf.predict(x[test]) == y[test])))
            ns.append(sub.size)
        if accs:
            points.append({"fraction": float(f), "n_train": int(np.mean(ns)), "accuracy": float(np.mean(accs)),
                           "std": float(np.std(accs))})
    if len(points) < 2:
        raise DataError(f"too few usable fractions for a learning curve: {points}")
    out = summarise(points)
    out["model"] = name
    return out


def cnn_learning_curve(config, *, data_dir: str | os.PathLike, out_dir: str | os.PathLike,
                       fractions=DEFAULT_FRACTIONS, seed: int = 0) -> dict:
    """The deep model (``roomtone.train.fit``) trained on fractions of the ``train`` rows of a prepared dir.

    Each fraction gets its own prepared dir under ``out_dir/frac_XX`` (subset of train, same valid/test)
    and run dir ``out_dir/frac_XX/run``; scored with ``roomtone.train.evaluate`` on ``test``.
    """
    from roomtone.prepare.manifest import read_manifest, write_manifest
    from roomtone.train import evaluate, fit

    data_dir, out_dir = Path(data_dir), Path(out_dir)
    rows = read_manifest(data_dir)
    tr = [i for i, r in enumerate(rows) if r.split == "train"]
    if not tr:
        raise DataError(f"{data_dir}: no `train` rows for a learning curve")
    index = {lab: i for i, lab in enumerate(sorted({r.label for r in rows}))}
    y_tr = np.array([index[rows[i].label] for i in tr])
    points = []
    for f in sorted(fractions):
        keep = {tr[i] for i in stratified_subset(y_tr, f, seed=seed)}
        sub = [r for i, r in enumerate(rows) if r.split != "train" or i in keep]
        d = out_dir / f"frac_{int(round(100 * f)):03d}"
        write_manifest(d, sub)
        if (data_dir / "prepare.json").exists():
            shutil.copy(data_dir / "prepare.json", d / "prepare.json")
        fit(config, data_dir=d, out_dir=d / "run")
        m = evaluate(d / "run", data_dir=d, split="test")
        points.append({"fraction": float(f), "n_train": len(keep), "accuracy": float(m["accuracy"]), "std": 0.0})
    out = summarise(points)
    out["model"] = "cnn"
    atomic_write_json(out_dir / "learning_curve.json", out)
    return out
