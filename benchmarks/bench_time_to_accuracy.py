"""Time to accuracy: the efficient family (``effnet_m``) against the default ``vgg``, same run, same machine.

Three datasets, prepared with the same code path as ``roomtone prepare``:
* FSDD official split (takes 0-4 of every speaker test), FSDD split by speaker (theo, yweweler test);
* the embedded synthetic event set (9 classes, 8 sessions: 5 train, 1 valid, 2 test; 16 kHz).

``vgg`` runs each dataset's reference config (``TrainConfig()`` on FSDD / the demo's). ``effnet_m`` runs
the same config with ONE fixed change set, the same on every dataset (no per-dataset tuning), see
:data:`EFFNET_CHANGES`. Reported: test accuracy, the fit loop's training seconds, FLOPs per second of audio
(forward, exact conv/linear count), and the ratios. Bars (issue 15): accuracy within 0.5 point of vgg,
training time <= 1/5, FLOPs <= 1/10; FSDD official >= 99.5 % in <= 60 s of training.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from benchmarks import load_note
from benchmarks.bench_recipe import FSDD, SI_TEST, prepare_fsdd

EFFICIENT = "effnet_m"
# One torch thread per process: on the shared 2-core machine (load average ~11 from other jobs) one thread was
# 2-6x faster per training step than two, for vgg and effnet alike (two threads wait on each other at every op).
THREADS = 1


def effnet_changes(cfg) -> dict:
    """The change set from a dataset's vgg config to the efficient run, as ``TrainConfig.replace`` keys:
    the model, a 20 ms hop (twice the 10 ms of the references: speech and event classes need no finer time
    step; "reduce the data size") and SpecAugment time masks of the same duration in the coarser frames."""
    return {"model": EFFICIENT, "frontend.hop_length": 2 * cfg.frontend.hop_length,
            "specaugment.time_width": max(1, cfg.specaugment.time_width // 2)}


EFFNET_CHANGES = (f"model={EFFICIENT}", "frontend.hop_length x2 (10 ms -> 20 ms)",
                  "specaugment.time_width / 2 (same mask duration)")


DATASETS = ("official", "speaker", "synthetic")


def _datasets(tmp: Path, *, quick: bool, only: tuple[str, ...] = DATASETS) -> list[tuple[str, Path, object]]:
    from roomtone.config import TrainConfig
    from roomtone.demo import frontend_for
    from roomtone.prepare.datasets.synthetic import synthetic_events
    from roomtone.prepare.pipeline import prepare

    out = []
    if FSDD.exists() and "official" in only:
        out.append(("FSDD official split", prepare_fsdd(tmp / "official", official=True), TrainConfig()))
    if FSDD.exists() and "speaker" in only:
        out.append((f"FSDD by speaker ({', '.join(SI_TEST)} test)", prepare_fsdd(tmp / "si", official=False),
                    TrainConfig(epochs=18, patience=None)))
    if "synthetic" not in only:
        return out
    manifest = synthetic_events(tmp / "synthetic-src", seed=0, n_per_class=16 if quick else 64, n_sessions=8,
                                sr=16000, clip_seconds=1.0, overwrite=True)
    syn = prepare(manifest, tmp / "synthetic", valid=0.125, test=0.25, seed=0, clip_seconds=1.0, html=False,
                  overwrite=True)
    out.append(("synthetic events (demo set)", Path(syn), TrainConfig(frontend=frontend_for(16000))))
    return out


def _train(cfg, data: Path, out: Path) -> dict:
    from roomtone.train import evaluate, fit

    t0 = time.perf_counter()
    s = fit(cfg, data_dir=data, out_dir=out, progress=False)
    wall = time.perf_counter() - t0
    m = evaluate(out, split="test")
    return {"accuracy": float(m["accuracy"]), "train_s": float(s["train_seconds"]), "wall_s": wall,
            "epochs": s["epochs_run"], "compute": s["compute"]}


def _step_table(threads: int) -> list[str]:
    """Seconds per training step (batch 32 of 1 s at 8 kHz, front end included) for the recipe's budget."""
    import torch

    from roomtone.models import create_model
    from roomtone.models.compute import compute_profile, step_seconds

    rows = ["| model | hop | MFLOP per s of audio | params | s per step (batch 32 x 1 s) | clips per s |",
            "|---|---|---:|---:|---:|---:|"]
    for name, hop in (("vgg", 80), ("effnet_s", 160), ("effnet_s", 80), ("effnet_m", 160), ("effnet_l", 160)):
        torch.manual_seed(0)
        m = create_model(name, num_classes=10, sr=8000, hop_length=hop)
        prof = compute_profile(m)
        t = step_seconds(m, batch_size=32, seconds=1.0, steps=5, warmup=2)
        rows.append(f"| {name} | {hop} | {prof['flops_per_second'] / 1e6:.1f} | {prof['params']:,} | {t:.3f} | "
                    f"{32 / t:.0f} |")
    return rows + ["", f"`roomtone.models.compute.step_seconds` (median of 5 steps after 2 warm-up, AdamW, "
                       f"{threads} torch threads), measured in this run."]


def run(*, quick: bool, only: tuple[str, ...] = DATASETS) -> str:
    """The section; ``only``: a subset of :data:`DATASETS` (the section then says which ones did not run)."""
    import os

    import torch

    threads = THREADS
    torch.set_num_threads(threads)
    start_load = " / ".join(f"{v:.1f}" for v in os.getloadavg())
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name, data, cfg in _datasets(tmp, quick=quick, only=only):
            if quick:
                cfg = cfg.replace(epochs=1, max_steps=5)
            eff_cfg = cfg.replace(**effnet_changes(cfg))
            ref = _train(cfg, data, tmp / f"run-{len(results)}-vgg")
            eff = _train(eff_cfg, data, tmp / f"run-{len(results)}-eff")
            results.append((name, ref, eff))
    lines = ["## Time to accuracy: efficient family vs default `vgg` (`benchmarks/bench_time_to_accuracy.py`)", "",
             f"Same run, same machine, torch threads {threads}. `vgg`: each dataset's reference config (FSDD: the "
             f"defaults; by speaker: 18 epochs, no early stopping; synthetic: the demo front end, 16 kHz). "
             f"`{EFFICIENT}`: the same config with one change set, the same on every dataset: "
             + "; ".join(EFFNET_CHANGES) + "." + (" QUICK (smoke) run: numbers mean nothing." if quick else "")
             + (f" PARTIAL run: only {', '.join(only)} (not run: "
                f"{', '.join(d for d in DATASETS if d not in only)})." if set(only) != set(DATASETS) else ""),
             "", "| dataset | model | test accuracy | training s | epochs | MFLOP per s of audio | params | "
             "achieved GFLOP/s | time outside model |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, ref, eff in results:
        for model, r in (("vgg", ref), (EFFICIENT, eff)):
            c = r["compute"]
            lines.append(f"| {name} | {model} | {r['accuracy']:.4f} | {r['train_s']:.0f} | {r['epochs']} | "
                         f"{c['flops_per_audio_second'] / 1e6:.1f} | {c['params']:,} | {c['achieved_gflops']:.3g} | "
                         f"{100 * c['outside_model_share']:.0f} % |")
    lines += ["", f"Ratios `{EFFICIENT}` / `vgg` and the bars (accuracy within 0.5 point, time <= 1/5, FLOPs <= 1/10):",
              "", "| dataset | accuracy difference (points) | training time ratio | FLOPs ratio | all bars |",
              "|---|---:|---:|---:|:---:|"]
    for name, ref, eff in results:
        d = 100 * (eff["accuracy"] - ref["accuracy"])
        tr = eff["train_s"] / ref["train_s"]
        fr = eff["compute"]["flops_per_audio_second"] / ref["compute"]["flops_per_audio_second"]
        ok = d >= -0.5 and tr <= 0.2 and fr <= 0.1
        lines.append(f"| {name} | {d:+.2f} | {tr:.3f} (1/{1 / tr:.1f}) | {fr:.4f} (1/{1 / fr:.0f}) | "
                     f"{'yes' if ok else 'NO'} |")
    off = next((e for n, _r, e in results if n.startswith("FSDD official")), None)
    if off is not None:
        ok = off["accuracy"] >= 0.995 and off["train_s"] <= 60
        lines += ["", f"FSDD official split with `{EFFICIENT}`: {off['accuracy']:.4f} test accuracy in "
                      f"{off['train_s']:.0f} s of training (bar >= 0.995 in <= 60 s on 2 cores): "
                      f"{'yes' if ok else 'NO'}."]
    lines += ["", "### Seconds per training step on this machine", ""] + _step_table(threads)
    lines += ["", "Training seconds = the fit loop's clock (steps, validation, checkpoints); time outside the model = "
                  "the share of it not spent in forward, backward and the optimizer step (data, augmentation, "
                  "validation, checkpoints). The machine is shared with other jobs: compare ratios within this run.",
              f"Load average at the start of the run: {start_load} (1/5/15 min)."]
    note = load_note()
    if note:
        lines.append(note)
    return "\n".join(lines) + "\n"
