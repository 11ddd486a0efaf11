"""Robustness matrix: models trained under conditions x test sets corrupted under conditions.

Training conditions (rows): ``clean``, ``noise``, ``room``, ``mic``, ``all``, or any ``+``-joined
combination (``noise+room``: reverberate, then add noise; the order of ``all``), drawn from the ``train`` split of the
noise and room banks. Test conditions (columns): ``clean``, ``noise_0db`` .. ``noise_20db`` (unseen
noises at a fixed SNR), ``room`` (unseen rooms), ``mic`` (phone microphone) and ``all``, drawn from
the ``test`` split only. Every model sees the very same corrupted test set (one seed per column).

Two back ends: :func:`baseline_matrix` (the quick classical baseline, in memory, seconds to
minutes) and :func:`deep_matrix` (``roomtone.train.fit``/``evaluate`` on a prepared dir).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import torch

from roomtone.errors import ParameterError
from roomtone.expect.baselines import BASELINE
from roomtone.files import atomic_write_json

TRAIN_CONDITIONS = ("clean", "noise", "room", "mic", "all")
TEST_CONDITIONS = ("clean", "noise_0db", "noise_5db", "noise_10db", "noise_20db", "room", "mic", "all")
_SNR = re.compile(r"^noise_(-?\d+(?:\.\d+)?)db$")


def make_transform(name: str, *, sr: int, split: str, noise=None, rooms=None, seed: int = 0,
                   snr_db: tuple[float, float] = (0.0, 20.0)):
    """The transform for a condition name (see module doc), or None for ``clean``.

    ``noise_XXdb`` fixes the SNR at XX dB; ``a+b`` composes basic conditions (room, then noise, then mic).
    Built on ``roomtone.prepare.conditions.make_condition`` with ``split`` selecting the bank split.
    """
    from roomtone.prepare.conditions import make_condition

    name = str(name).strip().lower()
    if name == "clean":
        return None
    m = _SNR.match(name)
    if m:
        snr = float(m.group(1))
        return make_condition("noise", sr=sr, noise=noise, rooms=rooms, split=split, snr_db=(snr, snr), seed=seed)
    return make_condition(name, sr=sr, noise=noise, rooms=rooms, split=split, snr_db=snr_db, seed=seed)


def corrupt(waves: list[np.ndarray], transform, *, seed: int) -> list[np.ndarray]:
    """Apply ``transform`` to each waveform ``(time,)`` with one seeded ``torch.Generator`` (same seed, same output)."""
    if transform is None:
        return list(waves)
    g = torch.Generator().manual_seed(int(seed))
    out = []
    for w in waves:
        if w.size == 0:
            out.append(w)
            continue
        y = transform(torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32)), generator=g)
        y = y.detach().cpu().numpy().astype(np.float32).reshape(-1)[: w.size]
        out.append(y)
    return out


def summarise(accuracy: np.ndarray, *, train_conditions, test_conditions, robust: str | None = None,
              reference: str = "clean", worst: str | None = None) -> dict:
    """The matrix as a dict with each model's accuracy drop on ``worst`` and the robust-vs-reference ratio.

    Drop of a model = accuracy of the ``reference``-trained model on the clean test minus this model's
    accuracy on ``worst`` (the same yardstick for every row); ``drop_own`` uses the model's own clean
    accuracy instead. ``ratio`` = drop(robust) / drop(reference); <= 0.5 means augmentation halved the loss.
    ``worst`` defaults to ``all`` when tested, else the last test condition. With a single model (robust ==
    reference) there is no ratio: only its drops.
    """
    acc = np.asarray(accuracy, dtype=np.float64)
    train_conditions, test_conditions = list(train_conditions), list(test_conditions)
    worst = worst or ("all" if "all" in test_conditions else test_conditions[-1])
    out = {"train_conditions": train_conditions, "test_conditions": test_conditions, "accuracy": acc.tolist()}
    if "clean" in test_conditions and worst in test_conditions and reference in train_conditions:
        c, w, r = test_conditions.index("clean"), test_conditions.index(worst), train_conditions.index(reference)
        base = acc[r, c]
        out["drop"] = {t: float(base - acc[i, w]) for i, t in enumerate(train_conditions)}
        out["drop_own"] = {t: float(acc[i, c] - acc[i, w]) for i, t in enumerate(train_conditions)}
        robust = robust or ("noise+room" if "noise+room" in train_conditions else train_conditions[-1])
        if robust in train_conditions and robust != reference and out["drop"][reference] > 0:
            out["robust"], out["reference"], out["worst"] = robust, reference, worst
            out["ratio"] = out["drop"][robust] / out["drop"][reference]
            out["ratio_own"] = (out["drop_own"][robust] / out["drop_own"][reference]
                                if out["drop_own"][reference] > 0 else None)
            out["passes_half"] = bool(out["ratio"] <= 0.5 + 1e-9)
    return out


def baseline_matrix(train_waves, y_train, test_waves, y_test, *, sr: int, frontend, noise=None, rooms=None,
                    train_conditions=TRAIN_CONDITIONS, test_conditions=TEST_CONDITIONS, copies: int = 2,
                    seed: int = 0, robust: str | None = None, progress: bool = False) -> dict:
    """Robustness matrix of the quick baseline (summary features + logistic regression).

    A model for condition ``c`` is trained on the clean clips plus ``copies`` corrupted copies of each
    (the clean clips only for ``clean``). Waves are lists of ``(time,)`` float32 at ``sr``.
    """
    from roomtone.features.summary import feature_matrix, logmel_of, make_classifier, single_thread

    feats = (lambda ws: feature_matrix(logmel_of(ws, frontend=frontend)))  # noqa: E731
    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    step = _progress(progress, len(train_conditions) + len(test_conditions))
    x_test = {}
    for j, t in enumerate(test_conditions):
        tf = make_transform(t, sr=sr, split="test", noise=noise, rooms=rooms, seed=seed + 7919 * (j + 1))
        x_test[t] = feats(corrupt(test_waves, tf, seed=seed + 104729 * (j + 1)))
        step(f"test set {t}")
    acc = np.zeros((len(train_conditions), len(test_conditions)))
    x_clean = feats(train_waves)
    for i, c in enumerate(train_conditions):
        tf = make_transform(c, sr=sr, split="train", noise=noise, rooms=rooms, seed=seed + 31 * (i + 1))
        if tf is None:
            x, y = x_clean, y_train
        else:
            xs = [feats(corrupt(train_waves, tf, seed=seed + 1000 * (i + 1) + k)) for k in range(copies)]
            x, y = np.concatenate([x_clean, *xs]), np.tile(y_train, copies + 1)
        with single_thread():
            clf = make_classifier(seed=seed).fit(x, y)
        for j, t in enumerate(test_conditions):
            acc[i, j] = float(np.mean(clf.predict(x_test[t]) == y_test))
        step(f"model {c}")
    step(None)
    out = summarise(acc, train_conditions=train_conditions, test_conditions=test_conditions, robust=robust)
    out["model"] = BASELINE
    return out


def deep_matrix(config, *, data_dir: str | os.PathLike, out_dir: str | os.PathLike, noise=None, rooms=None,
                train_conditions=TRAIN_CONDITIONS, test_conditions=TEST_CONDITIONS, seed: int = 0,
                robust: str | None = None, set_condition=None) -> dict:
    """Robustness matrix of the deep model: ``roomtone.train.fit`` per training condition, then
    ``roomtone.train.evaluate(run_dir, data_dir=..., split="test", corrupt=transform)`` per test condition.

    ``set_condition(config, name, noise, rooms) -> config`` returns the config that trains under a
    condition (default: :func:`with_condition`). Each run lives in ``out_dir/train_<condition>``.
    """
    from roomtone.train import evaluate, fit

    data_dir, out_dir = Path(data_dir), Path(out_dir)
    set_condition = set_condition or with_condition
    fe = getattr(config, "frontend", None)
    sr = int(getattr(fe, "sr", None) or getattr(config, "sr", None) or _prepared_sr(data_dir))
    acc = np.zeros((len(train_conditions), len(test_conditions)))
    for i, c in enumerate(train_conditions):
        run_dir = out_dir / f"train_{c.replace('+', '_')}"
        fit(set_condition(config, c, noise, rooms), data_dir=data_dir, out_dir=run_dir)
        for j, t in enumerate(test_conditions):
            tf = make_transform(t, sr=sr, split="test", noise=noise, rooms=rooms, seed=seed + 7919 * (j + 1))
            acc[i, j] = float(evaluate(run_dir, data_dir=data_dir, split="test", corrupt=tf)["accuracy"])
    out = summarise(acc, train_conditions=train_conditions, test_conditions=test_conditions, robust=robust)
    out["model"] = getattr(config, "model", "deep")
    atomic_write_json(out_dir / "robustness.json", out)
    return out


def with_condition(config, name: str, noise, rooms):
    """A copy of a ``TrainConfig`` that augments under condition ``name`` (``config.augment``: condition,
    noise, rooms; the rest of it, e.g. ``p`` and ``snr_db``, is kept). Any name of ``make_condition``,
    ``+``-joined combinations included.
    """
    import dataclasses

    aug = getattr(config, "augment", None)
    if aug is None or not dataclasses.is_dataclass(aug):
        raise ParameterError(f"config of type {type(config).__name__} has no `augment` dataclass; pass set_condition=")
    aug = dataclasses.replace(aug, condition=None if name == "clean" else name,
                              noise=None if noise is None else str(noise), rooms=None if rooms is None else str(rooms))
    return dataclasses.replace(config, augment=aug)


def _prepared_sr(data_dir: Path) -> int:
    from roomtone.expect.data import read_prepared
    from roomtone.prepare.dataset import native_sr

    p = read_prepared(data_dir)
    return int(p.sr or native_sr(p.rows))


def _progress(enabled: bool, total: int):
    if not enabled:
        return lambda msg: None
    from rich.progress import Progress

    bar = Progress(transient=True)
    task = bar.add_task("robustness", total=total)
    bar.start()

    def step(msg):
        if msg is None:
            bar.stop()
        else:
            bar.update(task, advance=1, description=f"robustness: {msg}")

    return step
