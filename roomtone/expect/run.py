"""``roomtone expect PREPARED_DIR --out REPORT_DIR``: the whole feasibility study, then the report."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from roomtone.errors import DataError, ParameterError
from roomtone.recipe.budget import DEFAULT_BUDGET_S


def audit_summary(prepared, waves: list[np.ndarray], errors: list[str], *, sr: int) -> dict:
    """Counts per class and split, durations, groups; merged with ``audit.json`` of the prepared dir when present."""
    splits = sorted({r.split or "(none)" for r in prepared.rows})
    per = {lab: Counter() for lab in prepared.labels}
    for r in prepared.rows:
        per[r.label][r.split or "(none)"] += 1
    durs = np.array([w.size / sr for w in waves if w.size])
    summary = {
        "examples": len(prepared.rows), "classes": len(prepared.labels),
        "groups": len({r.group for r in prepared.rows if r.group}) or "none (every example its own group)",
        "unreadable": len(errors), "analysis sample rate (Hz)": sr,
    }
    if durs.size:
        summary["duration min / median / max (s)"] = f"{durs.min():.2f} / {np.median(durs):.2f} / {durs.max():.2f}"
        summary["total audio (min)"] = f"{durs.sum() / 60:.1f}"
    counts = [sum(per[lab].values()) for lab in prepared.labels]
    if counts and min(counts):
        summary["imbalance (max/min class)"] = f"{max(counts) / min(counts):.2f}"
    aj = prepared.path / "audit.json"
    if aj.exists():
        try:
            a = json.loads(aj.read_text()).get("summary", {})
            for k in ("files", "ok", "bad", "with_warnings", "duplicate_groups", "sample_rates"):
                if k in a:
                    summary[f"audit: {k}"] = a[k]
        except (OSError, ValueError):
            summary["audit"] = f"{aj} unreadable"
    warnings = [f"unreadable: {e}" for e in errors[:10]]
    return {"summary": summary, "splits": splits, "warnings": warnings,
            "per_class": [{"label": lab, "counts": dict(per[lab]), "total": sum(per[lab].values())}
                          for lab in prepared.labels]}


def _holdout_indices(prepared, y: np.ndarray, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    sp = prepared.splits
    tr, te = np.flatnonzero(np.isin(sp, ["train", "valid"])), np.flatnonzero(sp == "test")
    if tr.size and te.size:
        return tr, te
    from sklearn.model_selection import StratifiedGroupKFold

    groups = prepared.groups
    k = min(5, len(np.unique(groups)))
    if k < 2:
        raise DataError("the learning curve needs a test split or at least 2 groups")
    tr, te = next(StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed).split(y, y, groups))
    return tr, te


def pick_examples(y: np.ndarray, waves: list[np.ndarray], *, per_class: int, seed: int) -> list[int]:
    """``per_class`` readable clips of each class, chosen with a seeded generator."""
    rng = np.random.default_rng(seed)
    out = []
    for k in np.unique(y):
        idx = [i for i in np.flatnonzero(y == k) if waves[i].size]
        out += [int(i) for i in rng.permutation(idx)[:per_class]]
    return out


def transfer_curves(prepared, train_recipe, *, ok: np.ndarray, train: np.ndarray, test: np.ndarray, fractions,
                    seed: int) -> list[dict]:
    """Learning curves of the linear probe of each backbone the recipe measured a transfer point for: its
    frozen embeddings of every row (first ``clip_seconds``, as in the point) read by the baseline's classifier on
    the baseline curve's own train/test indices. Rows the backbone cannot read are left out of both sides."""
    from roomtone.expect import learning_curve
    from roomtone.models import create_model
    from roomtone.recipe.transfer import decode_clips, embed

    out = []
    clip = float(train_recipe.config.clip_seconds or 1.0)
    for point in train_recipe.measurements.get("transfer") or []:
        model = create_model(point["backbone"], pretrained=True, num_classes=len(prepared.labels))
        waves, kept = decode_clips(prepared.rows, sr=int(model.sr), clip_s=clip)
        if not waves:
            continue
        clips = embed(model, waves)
        emb = np.zeros((len(prepared.rows), clips.shape[1]), dtype=np.float32)
        emb[kept] = clips
        readable = np.zeros(len(prepared.rows), dtype=bool)
        readable[kept] = True
        tr, te = train[readable[train] & ok[train]], test[readable[test] & ok[test]]
        out.append(learning_curve.baseline_learning_curve(emb, prepared.y, train=tr, test=te, fractions=fractions,
                                                          seed=seed, name=f"{point['backbone']} probe"))
    return out


def expect(prepared_dir: str | os.PathLike, out_dir: str | os.PathLike, *, sr: int | None = None,
           n_fft: int | None = None, hop_length: int | None = None, n_mels: int | None = None,
           fmin: float = 0.0, fmax: float | None = None, model: str | None = None,
           examples_per_class: int = 1, fractions=(0.1, 0.25, 0.5, 1.0), simulate: str | None = "all",
           noise=None, rooms=None, robustness: str | os.PathLike | dict | None = None, seed: int = 0,
           cnn_config=None, budget_s: float | None = DEFAULT_BUDGET_S, transfer: bool = True,
           progress: bool = False) -> dict:
    """Run the feasibility study on a prepared dir and write the HTML report into ``out_dir``.

    Front end: ``model`` (a registered model name or a run dir of ``roomtone train``: its own
    ``model.frontend`` and receptive field), or the explicit settings, or (none given) the front end of the
    data's training recipe (:func:`roomtone.recipe.recipe`, also written as ``out_dir/recipe.yaml`` and shown
    first in the report with the exact ``roomtone train`` line). ``simulate``: a
    condition whose test-split corruption is played beside each example (None = skip). ``robustness``:
    a ``robustness.json`` (or its dict) from ``roomtone expect robustness`` to include. ``cnn_config``:
    a ``TrainConfig`` (or YAML path) whose model also gets a learning curve (trains once per fraction;
    runs in ``out_dir/cnn_curve``). ``budget_s``, ``transfer``: the recipe's (see :func:`roomtone.recipe.recipe`).
    Returns the results dict, with ``report`` (the HTML path), ``seconds`` and the listening ``examples``
    (waveforms and log-mels, as passed to :func:`roomtone.expect.report.write_report`).
    """
    from roomtone.expect import baselines, learning_curve
    from roomtone.expect.data import load_waveforms, read_prepared
    from roomtone.expect.frontend import make_frontend, settings_of
    from roomtone.expect.listen import logmel_to_audio
    from roomtone.expect.report import write_report
    from roomtone.features.summary import feature_matrix, logmel_of
    from roomtone.prepare.dataset import native_sr
    from roomtone.recipe import events

    t0 = time.perf_counter()
    if examples_per_class < 0:
        raise ParameterError(f"examples_per_class={examples_per_class!r} must be >= 0")
    prepared = read_prepared(prepared_dir)
    mdl = None
    if model and Path(model).is_dir():
        from roomtone.train import load_run

        mdl = load_run(model)[0]
    elif model:
        from roomtone.models import create_model

        mdl = create_model(model, num_classes=len(prepared.labels)).eval()
        sr = int(getattr(mdl, "sr", None) or sr or 0) or None
    train_recipe = None
    if mdl is None and all(v is None for v in (sr, n_fft, hop_length, n_mels, fmax)) and not fmin:
        from roomtone.recipe import recipe

        # the front end the recipe trains on is analysed here; for a backbone's probe, the scratch recipe's log-mel
        train_recipe = recipe(prepared.path, seed=seed, budget_s=budget_s, transfer=transfer)
        f = train_recipe.config.frontend
        if train_recipe.config.pretrained:
            f = recipe(prepared.path, seed=seed, transfer=False, measurements=train_recipe.measurements).config.frontend
        sr, n_fft, hop_length, n_mels, fmin, fmax = f.sr, f.n_fft, f.hop_length, f.n_mels, f.fmin, f.fmax
    sr = int(sr or prepared.sr or native_sr(prepared.rows))
    fe = make_frontend(sr=sr, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels, fmin=fmin, fmax=fmax, model=mdl)
    notes = []
    waves, errors = load_waveforms(prepared.rows, sr=sr, progress=progress)
    ok = np.array([w.size > 0 for w in waves])
    y = prepared.y
    audit = audit_summary(prepared, waves, errors, sr=sr)
    logmels = logmel_of(waves, frontend=fe)
    x = feature_matrix(logmels)
    keep = np.flatnonzero(ok)
    base = baselines.quick_baseline(x[keep], y[keep], labels=prepared.labels, groups=prepared.groups[keep],
                                    splits=prepared.splits[keep], seed=seed)
    model_rf = events.model_receptive_field_s(mdl) if mdl is not None else None
    ev = events.analyse_events([waves[i] for i in keep], y[keep], labels=prepared.labels, sr=sr, model_rf_s=model_rf)
    tr, te = _holdout_indices(prepared, y, seed=seed)
    tr, te = tr[ok[tr]], te[ok[te]]
    lc = learning_curve.baseline_learning_curve(x, y, train=tr, test=te, fractions=fractions, seed=seed)
    curves = [lc]
    if train_recipe is not None:  # the recipe measured transfer points: their probes get curves on the same split
        curves += transfer_curves(prepared, train_recipe, ok=ok, train=tr, test=te, fractions=fractions, seed=seed)
    if cnn_config is not None:
        if isinstance(cnn_config, (str, os.PathLike)):
            from roomtone.config import TrainConfig

            cnn_config = TrainConfig.from_yaml(cnn_config)
        curves.append(learning_curve.cnn_learning_curve(cnn_config, data_dir=prepared.path,
                                                        out_dir=Path(out_dir) / "cnn_curve", fractions=fractions,
                                                        seed=seed))

    examples = []
    tf = None
    if simulate and examples_per_class:
        try:
            from roomtone.expect.robustness import make_transform

            tf = make_transform(simulate, sr=sr, split="test", noise=noise, rooms=rooms, seed=seed)
        except ImportError as exc:
            notes.append(f"simulated examples skipped: {exc}")
    g = torch.Generator().manual_seed(seed)
    for i in pick_examples(y, waves, per_class=examples_per_class, seed=seed):
        sim = None
        if tf is not None:
            sim = tf(torch.from_numpy(waves[i]), generator=g, sources=[prepared.rows[i].path])
            sim = sim.detach().cpu().numpy().reshape(-1)
        rec = logmel_to_audio(logmels[i], frontend=fe, length=waves[i].size, generator=g)
        examples.append({"label": prepared.labels[y[i]], "name": prepared.rows[i].path, "sr": sr,
                         "logmel": logmels[i], "original": waves[i], "simulated": sim, "condition": simulate,
                         "reconstructed": rec})
    rob = None
    if robustness is not None:
        rob = robustness if isinstance(robustness, dict) else json.loads(Path(robustness).read_text())
    if len(prepared.rows) and not prepared.splits.any():
        notes.append("the manifest has no split column: scores are grouped cross-validation only")
    settings = {k: v for k, v in settings_of(fe).items() if v is not None}
    table = None
    if train_recipe is not None:
        from roomtone.recipe.report import recipe_html

        Path(out_dir).mkdir(parents=True, exist_ok=True)
        train_recipe.to_yaml(Path(out_dir) / "recipe.yaml")
        table = recipe_html(train_recipe)
    path = write_report(out_dir, title=f"roomtone expect: {prepared.path.name}", audit=audit, baseline=base,
                        events=ev, learning_curve=curves if len(curves) > 1 else lc, robustness=rob, examples=examples,
                        frontend_settings=settings, notes=notes, recipe_html=table)
    cnn = [c for c in curves if c["model"] == "cnn"]
    return {"report": str(path), "seconds": time.perf_counter() - t0, "baseline": base, "events": ev,
            "learning_curve": lc, "cnn_learning_curve": cnn[0] if cnn else None, "audit": audit,
            "transfer_curves": [c for c in curves[1:] if c["model"] != "cnn"],
            "robustness": rob, "examples": examples, "recipe": train_recipe}
