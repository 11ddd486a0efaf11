"""The recipe end to end: ``prepare -> train (no settings: the data's recipe) -> evaluate`` on four domains.

Datasets (prepared with ``roomtone.prepare.pipeline.prepare``, the CLI's code path):
* FSDD, official split (takes 0-4 test) and split by speaker (theo, yweweler test): 8 kHz spoken digits;
* insects (``insects/files.csv``, 30 % test by session group): 44.1 kHz field recordings of 1-39 s, judged
  per recording from its windows;
* the embedded synthetic events (generated in code, split by session).

Per dataset: the recipe's summary, the quick baseline of ``roomtone expect`` (log-mel statistics + logistic
regression on the recipe's front end, same split; per file), the CNN's test accuracy (and recording
accuracy where rows are windows), and the fit loop's training seconds. Bars (issue 12): FSDD official
>= 99.5 %, by speaker >= 95 %, insects recording accuracy >= 75 %.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from benchmarks import load_note

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("ROOMTONE_SHARED_DATA", ROOT.parent / "shared" / "data"))
FSDD = DATA / "fsdd" / "recordings"
INSECTS = DATA / "insects" / "files.csv"
PATTERN = r"(?P<label>\d)_(?P<group>[a-z]+)_\d+\.wav"
SI_TEST = ("theo", "yweweler")
BARS = {"fsdd-official": ("accuracy", 0.995), "fsdd-speaker": ("accuracy", 0.95),
        "insects": ("recording_accuracy", 0.75)}


def prepare_fsdd(out: Path, *, official: bool) -> Path:
    """FSDD prepared by the CLI's code path: official split (takes 0-4 test) or by speaker (``SI_TEST``)."""
    from roomtone.prepare.pipeline import prepare

    kw = {"test_pattern": r"_[0-4]\.wav$"} if official else {"test_groups": list(SI_TEST)}
    return Path(prepare(FSDD, out, label_pattern=PATTERN, valid=0.1, group_split=False, seed=0, html=False,
                        overwrite=True, **kw))


def prepare_dataset(name: str, out: Path, *, synthetic_per_class: int = 64) -> Path | None:
    """One of the suite's datasets, prepared into ``out`` (None when its files are absent); the synthetic set with
    ``synthetic_per_class`` clips per class."""
    from roomtone.prepare.pipeline import prepare

    common = {"seed": 0, "html": False, "overwrite": True}
    if name.startswith("fsdd"):
        return prepare_fsdd(out, official=name == "fsdd-official") if FSDD.exists() else None
    if name == "insects":
        return Path(prepare(INSECTS, out, test=0.3, **common)) if INSECTS.exists() else None
    from roomtone.prepare.datasets.synthetic import synthetic_events

    manifest = synthetic_events(out.with_name(out.name + "-wav"), seed=0, n_per_class=synthetic_per_class, n_sessions=8,
                                overwrite=True)
    return Path(prepare(manifest, out, valid=0.125, test=0.25, **common))


def quick_baseline(data: Path, rec) -> float:
    """``roomtone expect``'s quick baseline on the recipe's front end (the scratch recipe's, when the recipe
    chose a backbone's probe), test split, one row per file."""
    import numpy as np

    from roomtone.expect import baselines
    from roomtone.expect.data import load_waveforms, read_prepared
    from roomtone.expect.frontend import make_frontend
    from roomtone.features.summary import feature_matrix, logmel_of

    p = read_prepared(data)
    if rec.config.pretrained:
        from roomtone.recipe import recipe

        rec = recipe(data, transfer=False, measurements=rec.measurements)
    f = rec.config.frontend
    fe = make_frontend(sr=f.sr, n_fft=f.n_fft, hop_length=f.hop_length, n_mels=f.n_mels, fmin=f.fmin, fmax=f.fmax)
    waves, _ = load_waveforms(p.rows, sr=f.sr)
    ok = np.array([w.size > 0 for w in waves])
    x = feature_matrix(logmel_of(waves, frontend=fe))
    res = baselines.quick_baseline(x[ok], p.y[ok], labels=p.labels, groups=p.groups[ok], splits=p.splits[ok], seed=0)
    return float((res.get("holdout") or res["grouped_cv"])["accuracy"])


def summary_of(rec) -> str:
    c = rec.config
    if c.pretrained:
        point = next(p for p in rec.measurements["transfer"] if p["backbone"] == c.pretrained)
        return (f"{rec.summary()} (transfer point: probe {point['probe_accuracy']:.1%} vs quick baseline "
                f"{point['baseline_accuracy']:.1%}, grouped CV of the training split)")
    kw = c.model_kwargs
    win = f", windows every {c.window_hop:g} s" if c.window_hop else ""
    return (f"{c.frontend.sr} Hz, n_fft {c.frontend.n_fft}, hop {c.frontend.hop_length}, {c.frontend.n_mels} mels; "
            f"{c.clip_seconds:g} s clips{win}; VGG {len(kw['channels'])} blocks, {kw['head']} head; "
            f"{c.max_steps} steps{', balanced' if c.balanced else ''}; augment {c.augment.condition}")


def run(*, quick: bool) -> str:
    import torch

    from roomtone.recipe import recipe
    from roomtone.recipe.budget import DEFAULT_BUDGET_S
    from roomtone.recipe.transfer import candidate_backbones
    from roomtone.train import evaluate, fit

    threads = int(os.environ.get("ROOMTONE_BENCH_THREADS", "2"))
    torch.set_num_threads(threads)
    names = [n for n in os.environ.get("ROOMTONE_BENCH_RECIPE", "insects,fsdd-speaker,fsdd-official,synthetic")
             .split(",") if n]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name in names:
            data = prepare_dataset(name, tmp / name)
            if data is None:
                rows.append((name, "skipped: data not found", None, None, None, None))
                continue
            rec = recipe(data, budget_s=DEFAULT_BUDGET_S)  # what `roomtone train` does with no settings
            cfg = rec.config.replace(max_steps=8, epochs=1) if quick else rec.config
            summary = fit(cfg, data_dir=data, out_dir=tmp / f"run-{name}", progress=False)
            m = evaluate(tmp / f"run-{name}", split="test")
            base = quick_baseline(data, rec)
            rows.append((name, summary_of(rec), base, m["accuracy"], m.get("recording_accuracy"),
                         summary["train_seconds"]))
            print(f"{name}: {rows[-1]}", flush=True)
    out = ["## The recipe end to end (no settings)", "",
           "`roomtone prepare DATA P && roomtone train P --out R && roomtone evaluate R` on each dataset: the "
           "training settings are the data's recipe (`roomtone.recipe`), nothing is set by hand. Quick baseline = "
           f"`roomtone expect`'s log-mel statistics + logistic regression on the same split. torch threads {threads}. "
           f"Backbone weights in the cache (the recipe measures transfer points for them on small data): "
           f"{', '.join(candidate_backbones()) or 'none'}."
           + (" QUICK (smoke) run." if quick else ""), "",
           "| dataset | recipe | quick baseline | CNN test accuracy | recording accuracy | training s | bar | pass |",
           "|---|---|---|---|---|---|---|---|"]
    for name, summ, base, acc, rec_acc, secs in rows:
        if acc is None:
            out.append(f"| {name} | {summ} | | | | | | |")
            continue
        key, bar = BARS.get(name, (None, None))
        got = rec_acc if key == "recording_accuracy" else acc
        verdict = "" if bar is None else ("yes" if got is not None and got >= bar else "NO")
        out.append(f"| {name} | {summ} | {base:.4f} | {acc:.4f} | "
                   f"{'' if rec_acc is None else f'{rec_acc:.4f}'} | {secs:.0f} | "
                   f"{'' if bar is None else f'{key} >= {bar}'} | {verdict} |")
    out += ["", "Commands (same code path):", "", "```",
            f"roomtone prepare {FSDD} P --label-pattern '{PATTERN}' --test-pattern '_[0-4]\\.wav$' --no-group-split",
            f"roomtone prepare {FSDD} P --label-pattern '{PATTERN}' --test-groups {','.join(SI_TEST)} --no-group-split",
            f"roomtone prepare {INSECTS} P --test 0.3",
            "roomtone train P --out R && roomtone evaluate R", "```", "",
            "Training seconds = the fit loop's own clock (epochs incl. validation). The machine is shared: see the "
            "load note."]
    note = load_note()
    if note:
        out.append(note)
    return "\n".join(out) + "\n"
