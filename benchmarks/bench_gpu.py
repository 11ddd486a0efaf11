"""GPU path: front end, augmentation chain, bf16 autocast training steps, throughput vs batch size, and the fit
loop itself, on one CUDA device (``python -m benchmarks gpu``). Without CUDA the suite is a skip with its reason
(the section says so and no number is written).

Measured on ``cuda:0``, every timing after warm-up and with the device synchronised:
* log-mel front end (8 kHz and 16 kHz, 1 s clips, batch 256);
* the training augmentation chain (``make_condition("all")``: room + noise + microphone) on a GPU batch of
  64 clips, one ``torch.Generator`` per example (as the fit loop seeds each item), and once per batch;
* training steps (forward, cross-entropy, backward, AdamW) under ``torch.autocast(dtype=bfloat16)`` and in
  float32 for ``vgg`` and ``effnet_s``: clips per second vs batch size;
* ``roomtone.train.fit`` on the device (the synthetic set, the recipe's config, a fixed number of steps): its
  steps per second and the share of its clock spent outside the model (the data path runs on the host: decode,
  crop, waveform augmentation), with 0 and with several DataLoader workers.

Every table is built by :func:`sections` for any device, so the suite's code runs in the CPU test suite at
:data:`SMOKE` sizes; only :func:`run` insists on CUDA.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

#: Sizes of a full run, of ``--quick`` and of the CPU test (the code path only).
FULL = {"frontend_batch": 256, "frontend_repeat": 20, "augment_batch": 64, "augment_repeat": 5,
        "train_batches": (32, 64, 128, 256, 512), "train_repeat": 10,
        "fit_steps": 300, "fit_workers": (0, 4), "fit_per_class": 64}
QUICK = {"frontend_batch": 32, "frontend_repeat": 5, "augment_batch": 8, "augment_repeat": 2,
         "train_batches": (32, 128), "train_repeat": 3,
         "fit_steps": 60, "fit_workers": (0, 4), "fit_per_class": 32}
SMOKE = {"frontend_batch": 2, "frontend_repeat": 1, "augment_batch": 2, "augment_repeat": 1,
         "train_batches": (2,), "train_repeat": 1,
         "fit_steps": 4, "fit_workers": (0,), "fit_per_class": 8}
TRAIN_MODELS = ("vgg", "effnet_s")


def skip_reason() -> str | None:
    """Why the suite cannot run here (None when a CUDA device is available)."""
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return f"no CUDA device (torch {torch.__version__}, CUDA build {torch.version.cuda or 'none'})"
    return None


def _sync(dev) -> None:
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _timeit(fn, dev, *, repeat: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    _sync(dev)
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    _sync(dev)
    return (time.perf_counter() - t0) / repeat


def _frontend_rows(dev, sizes: dict) -> list[str]:
    import torch

    from roomtone.features import log_mel

    rows = ["| front end | batch | ms per batch | clips per s |", "|---|---:|---:|---:|"]
    batch = sizes["frontend_batch"]
    for sr, n_fft, hop in ((8000, 512, 80), (16000, 512, 160)):
        fe = log_mel(sr=sr, n_fft=n_fft, hop_length=hop, n_mels=64).to(dev)
        x = torch.randn(batch, sr, device=dev) * 0.1
        with torch.no_grad():
            t = _timeit(lambda fe=fe, x=x: fe(x), dev, repeat=sizes["frontend_repeat"])
        rows.append(f"| log-mel {sr} Hz, n_fft {n_fft}, hop {hop}, 64 mels | {batch} | {1e3 * t:.2f} | {batch / t:.0f} |")
    return rows


def _augment_rows(dev, sizes: dict) -> list[str]:
    import torch

    from roomtone.prepare.conditions import make_condition

    sr, batch = 16000, sizes["augment_batch"]
    chain = make_condition("all", sr=sr, p=1.0, seed=0)
    x = torch.randn(batch, sr, device=dev) * 0.1

    def per_example():
        return torch.stack([chain(x[i:i + 1], generator=torch.Generator().manual_seed(i))[0] for i in range(batch)])

    def per_batch():
        return chain(x, generator=torch.Generator().manual_seed(0))

    out = per_batch()
    if out.device != x.device:
        raise AssertionError(f"the chain left the device: {x.device} in, {out.device} out")
    rows = ["| augmentation chain (room + noise + mic), 1 s at 16 kHz | batch | ms per batch | clips per s |",
            "|---|---:|---:|---:|"]
    for name, fn in (("one generator per example", per_example), ("one generator per batch", per_batch)):
        t = _timeit(fn, dev, repeat=sizes["augment_repeat"], warmup=1)
        rows.append(f"| {name} | {batch} | {1e3 * t:.1f} | {batch / t:.0f} |")
    return rows


def _train_rows(dev, sizes: dict) -> list[str]:
    import torch

    from roomtone.models import create_model
    from roomtone.models.compute import adamw, to_training_layout

    rows = ["| model | precision | batch | ms per step | clips per s |", "|---|---|---:|---:|---:|"]
    for name in TRAIN_MODELS:
        for precision in ("bf16 autocast", "float32"):
            for b in sizes["train_batches"]:
                torch.manual_seed(0)
                model = create_model(name, num_classes=10, sr=16000, hop_length=160)
                model = to_training_layout(model.to(dev).train())
                opt = adamw(model.parameters(), lr=1e-3)
                x = torch.randn(b, 16000, device=dev) * 0.1
                y = torch.arange(b, device=dev) % 10

                def step(model=model, opt=opt, x=x, y=y, bf16=precision.startswith("bf16")):
                    with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
                        loss = torch.nn.functional.cross_entropy(model(x).float(), y)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()

                t = _timeit(step, dev, repeat=sizes["train_repeat"])
                rows.append(f"| {name} | {precision} | {b} | {1e3 * t:.1f} | {b / t:.0f} |")
    return rows


def _fit_rows(dev, sizes: dict) -> list[str]:
    """``fit`` on the synthetic set with the recipe's config on ``dev`` for ``fit_steps`` steps."""
    from benchmarks.bench_recipe import prepare_dataset
    from roomtone.recipe import recipe
    from roomtone.train import fit

    rows = ["| fit loop (synthetic set, the recipe's config) | DataLoader workers | precision | steps | s | steps per s "
            "| clips per s | outside the model |", "|---|---:|---|---:|---:|---:|---:|---:|"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = prepare_dataset("synthetic", tmp / "synthetic", synthetic_per_class=sizes["fit_per_class"])
        base = recipe(data, transfer=False).config
        steps = sizes["fit_steps"]
        for workers in sizes["fit_workers"]:
            cfg = base.replace(device=str(dev), num_workers=workers, max_steps=steps, max_seconds=None,
                               epochs=steps, patience=None, checkpoint_every=0)  # >= 1 step an epoch: max_steps binds
            s = fit(cfg, data_dir=data, out_dir=tmp / f"run-{workers}", progress=False)
            c, secs = s["compute"], s["train_seconds"]
            rows.append(f"| {cfg.model}, {cfg.frontend.sr} Hz, batch {cfg.batch_size} | {workers} | "
                        f"{s['precision']} (amp {cfg.amp}) | "
                        f"{s['global_step']} | {secs:.1f} | {s['global_step'] / secs:.1f} | "
                        f"{s['global_step'] * cfg.batch_size / secs:.0f} | {c['outside_model_share']:.0%} |")
    return rows


def sections(dev, *, sizes: dict) -> list[str]:
    """The suite's tables on device ``dev`` (any device: the CPU test runs them at :data:`SMOKE` sizes)."""
    lines: list[str] = []
    for part in (_frontend_rows, _augment_rows, _train_rows, _fit_rows):
        lines += part(dev, sizes) + [""]
    return lines


def run(*, quick: bool) -> str:
    head = "## GPU path (`benchmarks/bench_gpu.py`)"
    reason = skip_reason()
    if reason is not None:
        return f"{head}\n\nskipped: {reason}.\n"
    import torch

    dev = torch.device("cuda", 0)
    props = torch.cuda.get_device_properties(dev)
    lines = [head, "", f"Device: {props.name} ({props.total_memory / 2**30:.0f} GiB), CUDA {torch.version.cuda}, "
             f"bf16 supported: {torch.cuda.is_bf16_supported()}." + (" QUICK (smoke) run." if quick else ""), ""]
    return "\n".join(lines + sections(dev, sizes=QUICK if quick else FULL))
