"""Transfer learning on FSDD with few labels: aiSFX linear probe vs the from-scratch VGG.

Speaker-independent split of FSDD (6 speakers, 8 kHz spoken digits): train george, jackson, nicolas;
valid theo; test lucas, yweweler. Each system is trained on 10% of the training files (5 per digit and
speaker, drawn with a fixed seed) and on all of them, then scored on the test speakers with
``roomtone.train.evaluate``. The probe uses ``fit_transfer`` (``--pretrained aisfx --mode probe``):
frozen aiSFX embeddings (44.1 kHz front end; the 8 kHz clips are resampled, so the bandwidth
warning fires) and a linear head. The VGG is ``roomtone.train.fit`` with its defaults.
"""

from __future__ import annotations

import json
import random
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FSDD = ROOT.parent / "shared" / "data" / "fsdd" / "recordings"
SPLIT = {"george": "train", "jackson": "train", "nicolas": "train", "theo": "valid", "lucas": "test",
         "yweweler": "test"}


def _prepare(out: Path, *, fraction: float, seed: int = 0, quick: bool = False) -> tuple[Path, dict]:
    from roomtone.prepare.manifest import ManifestRow, write_manifest

    by_cell: dict[tuple[str, str], list[Path]] = {}
    for p in sorted(FSDD.glob("*.wav")):
        digit, spk, _take = p.stem.split("_")
        by_cell.setdefault((digit, spk), []).append(p)
    rng = random.Random(seed)
    rows, counts = [], {"train": 0, "valid": 0, "test": 0}
    for (digit, spk), paths in sorted(by_cell.items()):
        split = SPLIT[spk]
        keep = paths
        if split == "train" and fraction < 1:
            keep = sorted(rng.sample(paths, max(1, round(fraction * len(paths)))))
        if quick and split != "train":
            keep = paths[:10]
        for p in keep:
            rows.append(ManifestRow(str(p), digit, spk, split))
            counts[split] += 1
    out.mkdir(parents=True, exist_ok=True)
    write_manifest(out, rows)
    (out / "prepare.json").write_text(json.dumps({"labels": [str(d) for d in range(10)], "sr": 8000,
                                                  "clip_seconds": 1.0}))
    return out, counts


def _vgg(data: Path, out: Path, *, epochs: int) -> dict:
    from roomtone.config import TrainConfig
    from roomtone.train import evaluate, fit

    t = time.perf_counter()
    fit(TrainConfig(epochs=epochs, patience=max(8, epochs // 4)), data_dir=data, out_dir=out, progress=False)
    secs = time.perf_counter() - t
    return {**evaluate(out, split="test"), "seconds": secs}


def _probe(data: Path, out: Path, *, epochs: int) -> dict:
    from roomtone.config import TrainConfig
    from roomtone.train import evaluate
    from roomtone.train.transfer import fit_transfer

    cfg = TrainConfig(pretrained="aisfx", mode="probe", epochs=epochs, lr=3e-3, weight_decay=1e-2, patience=30,
                      label_smoothing=0.0)
    t = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit_transfer(cfg, data_dir=data, out_dir=out, progress=False)
    secs = time.perf_counter() - t
    res = evaluate(out, split="test")
    res["bandwidth_warning"] = any("bandwidth" in str(w.message) for w in caught)
    return {**res, "seconds": secs}


def _finetune(data: Path, out: Path, *, epochs: int) -> dict:
    from roomtone.config import TrainConfig
    from roomtone.train import evaluate
    from roomtone.train.transfer import fit_transfer

    cfg = TrainConfig(pretrained="aisfx", mode="finetune", epochs=epochs, lr=1e-3, backbone_lr_scale=0.1,
                      batch_size=16, patience=None)
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit_transfer(cfg, data_dir=data, out_dir=out, progress=False)
    secs = time.perf_counter() - t
    return {**evaluate(out, split="test"), "seconds": secs}


def run(*, quick: bool) -> str:
    from roomtone.models.pretrained import fetch

    if not FSDD.exists():
        return "## Transfer learning (FSDD)\n\nskipped: FSDD not found at ../shared/data/fsdd/recordings\n"
    fetch("aisfx")  # pip download of the wheel on first use, then offline from the cache
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        plans = [(0.1, 30, 200, 10), (1.0, 8, 200, 0)] if not quick else [(0.1, 3, 20, 1)]
        for fraction, vgg_epochs, probe_epochs, ft_epochs in plans:
            data, counts = _prepare(tmp / f"data{fraction}", fraction=fraction, quick=quick)
            tag = f"{int(fraction * 100)}% ({counts['train']} train files)"
            results.append((tag, "VGG from scratch (8 kHz log-mel 64)", _vgg(data, tmp / f"vgg{fraction}", epochs=vgg_epochs)))
            results.append((tag, "aiSFX probe (frozen, linear head)", _probe(data, tmp / f"probe{fraction}", epochs=probe_epochs)))
            if ft_epochs:
                results.append((tag, "aiSFX finetune (backbone lr x0.1)",
                                _finetune(data, tmp / f"ft{fraction}", epochs=ft_epochs)))
    lines = [
        "## Transfer learning (FSDD, speaker-independent)",
        "",
        "Train speakers george, jackson, nicolas; valid theo; test lucas + yweweler "
        f"({'quick run: 10 test files per digit and speaker' if quick else '1000 test files'}).",
        "Command: `python -m benchmarks transfer`. Training time includes embedding (probe) on 2 CPU cores "
        "shared with other jobs.",
        "",
        "| training data | system | test accuracy | test macro-F1 | train time (s) |",
        "|---|---|---|---|---|",
    ]
    for tag, system, r in results:
        lines.append(f"| {tag} | {system} | {r['accuracy']:.3f} | {r['macro_f1']:.3f} | {r['seconds']:.0f} |")
    ten = {s: r for t, s, r in results if t.startswith("10%")}
    probe = next(r for s, r in ten.items() if "probe" in s)
    vgg = next(r for s, r in ten.items() if "VGG" in s)
    lines += ["", f"With 10% of the labels the aiSFX probe is {probe['accuracy'] - vgg['accuracy']:+.3f} accuracy vs "
              f"the from-scratch VGG (ratio {probe['accuracy'] / max(vgg['accuracy'], 1e-9):.2f}x).",
              "The bandwidth warning fired for the probe (8 kHz audio into a 44.1 kHz backbone): "
              f"{'yes' if probe.get('bandwidth_warning') else 'no'}.",
              "aiSFX weights: A. B. Ma and A. Lerch (ISMIR 2022), CC BY 4.0."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(run(quick=True))
