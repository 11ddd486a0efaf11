"""GPU path: front end, augmentation chain, bf16 autocast training steps and throughput vs batch size, on one
CUDA device (``python -m benchmarks gpu``). Without CUDA the suite is a skip with its reason (the section
says so and no number is written).

Measured on ``cuda:0``, every timing after warm-up and with ``torch.cuda.synchronize``:
* log-mel front end (8 kHz and 16 kHz, 1 s clips, batch 256);
* the training augmentation chain (``make_condition("all")``: room + noise + microphone) on a GPU batch of
  64 clips, one ``torch.Generator`` per example (as the fit loop seeds each item), and once per batch;
* training steps (forward, cross-entropy, backward, AdamW) under ``torch.autocast(dtype=bfloat16)`` and in
  float32 for ``vgg`` and ``effnet_s``: clips per second vs batch size.
"""

from __future__ import annotations

import time


def skip_reason() -> str | None:
    """Why the suite cannot run here (None when a CUDA device is available)."""
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return f"no CUDA device (torch {torch.__version__}, CUDA build {torch.version.cuda or 'none'})"
    return None


def _timeit(fn, *, repeat: int, warmup: int = 2) -> float:
    import torch

    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / repeat


def _frontend_rows(dev, *, quick: bool) -> list[str]:
    import torch

    from roomtone.features import log_mel

    rows = ["| front end | batch | ms per batch | clips per s |", "|---|---:|---:|---:|"]
    batch = 32 if quick else 256
    for sr, n_fft, hop in ((8000, 512, 80), (16000, 512, 160)):
        fe = log_mel(sr=sr, n_fft=n_fft, hop_length=hop, n_mels=64).to(dev)
        x = torch.randn(batch, sr, device=dev) * 0.1
        with torch.no_grad():
            t = _timeit(lambda fe=fe, x=x: fe(x), repeat=5 if quick else 20)
        rows.append(f"| log-mel {sr} Hz, n_fft {n_fft}, hop {hop}, 64 mels | {batch} | {1e3 * t:.2f} | {batch / t:.0f} |")
    return rows


def _augment_rows(dev, *, quick: bool) -> list[str]:
    import torch

    from roomtone.prepare.conditions import make_condition

    sr, batch = 16000, 8 if quick else 64
    chain = make_condition("all", sr=sr, p=1.0, seed=0)
    x = torch.randn(batch, sr, device=dev) * 0.1

    def per_example():
        return torch.stack([chain(x[i:i + 1], generator=torch.Generator().manual_seed(i))[0] for i in range(batch)])

    def per_batch():
        return chain(x, generator=torch.Generator().manual_seed(0))

    out = per_batch()
    assert out.device.type == "cuda", "the chain left the device"
    rows = ["| augmentation chain (room + noise + mic), 1 s at 16 kHz | batch | ms per batch | clips per s |",
            "|---|---:|---:|---:|"]
    for name, fn in (("one generator per example", per_example), ("one generator per batch", per_batch)):
        t = _timeit(fn, repeat=2 if quick else 5, warmup=1)
        rows.append(f"| {name} | {batch} | {1e3 * t:.1f} | {batch / t:.0f} |")
    return rows


def _train_rows(dev, *, quick: bool) -> list[str]:
    import torch

    from roomtone.models import create_model

    rows = ["| model | precision | batch | ms per step | clips per s |", "|---|---|---:|---:|---:|"]
    batches = (32, 128) if quick else (32, 64, 128, 256, 512)
    for name in ("vgg", "effnet_s"):
        for precision in ("bf16 autocast", "float32"):
            for b in batches:
                torch.manual_seed(0)
                model = create_model(name, num_classes=10, sr=16000, hop_length=160).to(dev).train()
                opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
                x = torch.randn(b, 16000, device=dev) * 0.1
                y = torch.arange(b, device=dev) % 10

                def step(model=model, opt=opt, x=x, y=y, bf16=precision.startswith("bf16")):
                    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
                        loss = torch.nn.functional.cross_entropy(model(x).float(), y)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()

                t = _timeit(step, repeat=3 if quick else 10)
                rows.append(f"| {name} | {precision} | {b} | {1e3 * t:.1f} | {b / t:.0f} |")
    return rows


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
    for part in (_frontend_rows, _augment_rows, _train_rows):
        lines += part(dev, quick=quick) + [""]
    return "\n".join(lines)
