"""Robustness matrix on FSDD with the real CNN (default ``vgg`` config) and the real noises and rooms.

Bar (issue 7): a model trained with noise+room augmentation loses at most half the accuracy that the
clean-trained model loses on the ``all`` test condition (unseen test-split noises and rooms + phone mic).
``bench_robustness`` measures the same bar with the quick classical baseline; this suite trains the default
CNN twice with ``roomtone.train.fit`` on the official FSDD split (prepared as in ``bench_recipe``):
once without waveform augmentation (``augment.condition = None``), once with on-the-fly ``noise+room``
from the TRAIN split of the banks. Both are evaluated with ``roomtone.train.evaluate`` on the test clips,
clean and under the TEST split of the banks (noises and rooms never seen in training). Both runs get the same
everything else (default config: SpecAugment and the stretches stay on in both). No peer library computes
such a matrix, so there is no peer column; the quick baseline's matrix is in the section above (`bench_robustness`).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from benchmarks import load_note

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("ROOMTONE_SHARED_DATA", ROOT.parent / "shared" / "data"))
FSDD = DATA / "fsdd" / "recordings"
NOISE = DATA / "noise"
RIR = DATA / "rir"
PATTERN = r"(?P<label>\d)_(?P<group>[a-z]+)_\d+\.wav"
TEST_CONDITIONS = ("clean", "noise", "room", "mic", "all")
P_AUG = 0.7           # probability that a training example goes through noise+room (chosen a priori, not tuned)
TRAIN_SEEDS = (0, 1)  # a second training seed pair shows how much of the ratio is run-to-run noise
TEST_SEEDS = (0, 1, 2)  # corruption draws of the test set for the `all` condition


def _prepare(out: Path) -> Path:
    from roomtone.prepare.pipeline import prepare

    return prepare(FSDD, out, label_pattern=PATTERN, valid=0.1, seed=0, group_split=False, html=False,
                   overwrite=True, test_pattern=r"_[0-4]\.wav$")


def _configs(quick: bool, seed: int):
    from roomtone.config import TrainConfig

    base = TrainConfig(seed=seed)
    if quick:
        base = base.replace(epochs=1, max_steps=10)
    clean = base.replace(**{"augment.condition": None})
    robust = base.replace(**{"augment.condition": "noise+room", "augment.noise": str(NOISE),
                             "augment.rooms": str(RIR), "augment.p": P_AUG})
    return {"clean": clean, "noise+room": robust}


def _eval(run_dir: Path, cond: str, seed: int) -> float:
    from roomtone.train import evaluate

    corrupt = None if cond == "clean" else cond
    m = evaluate(run_dir, split="test", corrupt=corrupt, noise=NOISE, rooms=RIR, seed=seed)
    return float(m["accuracy"])


def run(*, quick: bool) -> str:
    import numpy as np
    import torch

    from roomtone.train import fit

    head = "## Robustness matrix with the CNN (FSDD, real noises and rooms)\n\n"
    for p in (FSDD, NOISE / "files.csv", RIR / "files.csv"):
        if not p.exists():
            return head + f"Skipped: {p} not found.\n"
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    threads = 2
    torch.set_num_threads(threads)
    t_start = time.perf_counter()
    seeds = TRAIN_SEEDS[:1] if quick else TRAIN_SEEDS
    test_seeds = TEST_SEEDS[:1] if quick else TEST_SEEDS
    acc: dict[tuple[int, str], dict[str, float]] = {}     # (train seed, model) -> test condition -> accuracy
    acc_all: dict[tuple[int, str], list[float]] = {}      # (train seed, model) -> `all` accuracy per test seed
    info: dict[tuple[int, str], dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = _prepare(tmp / "fsdd-official")
        for seed in seeds:
            for name, cfg in _configs(quick, seed).items():
                run_dir = tmp / f"run-{name.replace('+', '-')}-{seed}"
                t0 = time.perf_counter()
                summary = fit(cfg, data_dir=data, out_dir=run_dir, progress=False)
                wall = time.perf_counter() - t0
                info[seed, name] = {"train_s": summary["train_seconds"], "wall_s": wall,
                                    "epochs": summary["epochs_run"], "best": summary["best_epoch"]}
                t0 = time.perf_counter()
                conds = TEST_CONDITIONS if seed == seeds[0] else ("clean", "all")
                acc[seed, name] = {c: _eval(run_dir, c, 0) for c in conds}
                acc_all[seed, name] = [acc[seed, name]["all"]] + [_eval(run_dir, "all", s) for s in test_seeds[1:]]
                info[seed, name]["eval_s"] = time.perf_counter() - t0
                print(f"  seed {seed} {name}: {acc[seed, name]} all over test seeds {acc_all[seed, name]} "
                      f"({info[seed, name]})", flush=True)
    total = time.perf_counter() - t_start

    def ratio(seed: int, a_clean: str = "clean", a_all: float | None = None, b_all: float | None = None):
        base = acc[seed, "clean"]["clean"]  # the same yardstick for both rows, as in bench_robustness
        d_ref = base - (acc[seed, "clean"]["all"] if a_all is None else a_all)
        d_rob = base - (acc[seed, "noise+room"]["all"] if b_all is None else b_all)
        return d_ref, d_rob, (d_rob / d_ref if d_ref > 0 else float("nan"))

    s0 = seeds[0]
    cfgs = _configs(quick, s0)
    c = cfgs["clean"]
    out = [head,
           f"FSDD official split (takes 0-4 = test, 300 clips; 10 % of the rest = valid by file), prepared with "
           f"`roomtone.prepare` as in the training suite. Model: default `TrainConfig` - `{c.model}` "
           f"({c.frontend.sr} Hz, log-mel {c.frontend.n_mels} bands, n_fft {c.frontend.n_fft}, hop "
           f"{c.frontend.hop_length}), {c.clip_seconds} s clips, {c.epochs} epochs max (early stopping patience "
           f"{c.patience} on {c.monitor}), batch {c.batch_size}, AdamW lr {c.lr} {c.schedule}, label smoothing "
           f"{c.label_smoothing}, SpecAugment {c.specaugment.freq_masks}x{c.specaugment.freq_width} bins / "
           f"{c.specaugment.time_masks}x{c.specaugment.time_width} frames, stretch freq {c.specaugment.freq_stretch}"
           f" / time {c.specaugment.time_stretch}; torch threads {threads}. The two rows differ only in `augment`:",
           "",
           "* clean-trained: `augment={\"condition\": None}` (no waveform augmentation; note the library default "
           "is `\"mic\"`, p 0.5);",
           f"* noise+room-trained: `augment={{\"condition\": \"noise+room\", \"noise\": \"{NOISE}\", \"rooms\": "
           f"\"{RIR}\", \"p\": {P_AUG}, \"snr_db\": {list(cfgs['noise+room'].augment.snr_db)}}}` - on the fly, "
           f"TRAIN split of the banks, every epoch a fresh draw (p chosen before the run, not tuned on test).",
           "",
           "Test conditions (`roomtone.train.evaluate(run, split=\"test\", corrupt=..., noise=..., rooms=..., "
           "seed=0)`): TEST split of the banks (unseen noises and rooms), every clip transformed, SNR 0-20 dB, "
           "`mic` = phone preset, `all` = room, then noise, then phone mic."
           + (" QUICK (smoke) run: 1 epoch, 10 steps - the numbers mean nothing." if quick else ""),
           "",
           "| trained on | " + " | ".join(TEST_CONDITIONS) + " |",
           "|---|" + "---:|" * len(TEST_CONDITIONS)]
    for name in ("clean", "noise+room"):
        out.append(f"| {name} | " + " | ".join(f"{100 * acc[s0, name][t]:.1f}" for t in TEST_CONDITIONS) + " |")
    d_ref, d_rob, r = ratio(s0)
    own_ref = acc[s0, "clean"]["clean"] - acc[s0, "clean"]["all"]
    own_rob = acc[s0, "noise+room"]["clean"] - acc[s0, "noise+room"]["all"]
    r_own = own_rob / own_ref if own_ref > 0 else float("nan")
    ok = r <= 0.5 + 1e-9
    out += ["", f"Accuracy (%) on the 300 test clips, training seed {s0}, test corruption seed 0.", "",
            "| loss on `all` (points) | vs clean model on clean test | vs own clean accuracy |",
            "|---|---:|---:|",
            f"| clean-trained | {100 * d_ref:.1f} | {100 * own_ref:.1f} |",
            f"| noise+room-trained | {100 * d_rob:.1f} | {100 * own_rob:.1f} |",
            f"| ratio (bar: <= 0.5) | **{r:.2f}** | {r_own:.2f} |",
            "",
            (f"Bar {'met' if ok else 'NOT met'}: the noise+room-trained CNN loses {r:.2f}x the clean-trained CNN's "
             f"loss on `all` (training seed {s0}, test seed 0)." if np.isfinite(r) else
             "Ratio undefined: the clean-trained model lost nothing on `all`."), ""]
    # run-to-run spread: other corruption draws of the test set, and a second training seed pair
    out += ["| training seed | test seed | clean model: clean / all | noise+room model: clean / all | ratio |",
            "|---:|---:|---:|---:|---:|"]
    ratios = []
    for seed in seeds:
        for j, ts in enumerate(test_seeds):
            a, b = acc_all[seed, "clean"][j], acc_all[seed, "noise+room"][j]
            _, _, rr = ratio(seed, a_all=a, b_all=b)
            ratios.append(rr)
            out.append(f"| {seed} | {ts} | {100 * acc[seed, 'clean']['clean']:.1f} / {100 * a:.1f} | "
                       f"{100 * acc[seed, 'noise+room']['clean']:.1f} / {100 * b:.1f} | {rr:.2f} |")
    fin = [x for x in ratios if np.isfinite(x)]
    out += ["", (f"Ratio over {len(ratios)} (training seed, test seed) pairs: mean {np.mean(fin):.2f}, "
                 f"max {np.max(fin):.2f}; " if fin else f"Ratio undefined in all {len(ratios)} pairs; ")
            + f"bar met in {sum(x <= 0.5 + 1e-9 for x in fin)}/{len(ratios)}.",
            "", "| run | epochs (best) | training s | fit wall s | evaluation s |", "|---|---:|---:|---:|---:|"]
    for seed in seeds:
        for name in ("clean", "noise+room"):
            i = info[seed, name]
            out.append(f"| {name}, seed {seed} | {i['epochs']} ({i['best']}) | {i['train_s']:.0f} | {i['wall_s']:.0f} "
                       f"| {i['eval_s']:.0f} |")
    out += ["", f"Total wall time {total:.0f} s (data preparation, {2 * len(seeds)} trainings, evaluations).",
            "", "Commands (same code path, seed 0):", "", "```",
            f"roomtone prepare {FSDD} prepared/fsdd-official --label-pattern '{PATTERN}' "
            r"--test-pattern '_[0-4]\.wav$' --no-group-split",
            "roomtone train prepared/fsdd-official --out runs/clean --set augment.condition=null",
            f"roomtone train prepared/fsdd-official --out runs/noise-room --set augment.condition=noise+room "
            f"--set augment.noise={NOISE} --set augment.rooms={RIR} --set augment.p={P_AUG}",
            f"roomtone evaluate runs/clean --split test --corrupt all --noise {NOISE} --rooms {RIR} --seed 0",
            "```"]
    note = load_note(" (the machine is shared; times are noisy)")
    if note:
        out.append(note)
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(run(quick=True))
