"""torchrun: 2 CPU processes (gloo) train a few steps through the CLI; rank 0 writes one checkpoint."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_train import make_tones, random_backbone_cache


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["scratch", "finetune", "probe"])
def test_torchrun_two_cpu_processes(tmp_path, mode):
    data = make_tones(tmp_path / "data")
    random_backbone_cache(tmp_path / "cache")
    out = tmp_path / "run"
    torchrun = Path(sys.executable).with_name("torchrun")
    launcher = [str(torchrun)] if torchrun.exists() else [sys.executable, "-m", "torch.distributed.run"]
    if not torchrun.exists() and shutil.which("torchrun") is None:
        pytest.importorskip("torch.distributed.run")
    model = (["--model", "vgg_tiny", "--set", "frontend={sr: 8000, n_fft: 256, hop_length: 64, n_mels: 32}"]
             if mode == "scratch" else ["--pretrained", "speech-embedding", "--mode", mode])
    cmd = [*launcher, "--standalone", "--nproc_per_node", "2", "-m", "roomtone", "train", str(data), "--out", str(out),
           *model, "--no-progress", "--set", "max_steps=3", "--set", "batch_size=4", "--set", "clip_seconds=0.5",
           "--set", "device=cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ROOMTONE_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ck = torch.load(out / "last.pt", weights_only=True)
    assert ck["state"]["global_step"] == 3
    info = json.loads((out / "run.json").read_text())
    assert info["world_size"] == 2
    assert (info.get("transfer") or {}).get("mode", "scratch") == mode
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 1 and records[0]["step"] == 3  # written once (rank 0), not once per rank
    assert (out / "best.pt").exists()
    assert not list(out.glob(".*.tmp"))
    # each rank validated half of the valid set; the summed metrics equal one process over all of it
    from roomtone.train import evaluate

    if mode == "probe":  # the classifier on the cached, standardized embeddings, in one process
        full = _probe_valid_metrics(out, ck, labels=info["labels"])
    else:
        full = evaluate(out, data_dir=data, split="valid", checkpoint="last")
    assert records[0]["valid_accuracy"] == pytest.approx(full["accuracy"])
    assert records[0]["valid_macro_f1"] == pytest.approx(full["macro_f1"])


def _probe_valid_metrics(out: Path, ck: dict, *, labels: list[str]) -> dict:
    """Accuracy and macro F1 of the probe's trained classifier (``last.pt["net"]``) over all cached valid
    embeddings. (Through the waveform path the folded classifier would do: the random test backbone gives
    embeddings whose mean is so much larger than their spread that float32 rounding can flip near-ties.)"""
    from safetensors.torch import load_file

    from roomtone.train.metrics import classification_metrics

    emb = {p.name.split("-")[0]: load_file(str(p)) for p in (out / "embeddings").glob("*.safetensors")}
    x = emb["train"]["embeddings"]
    mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
    head = torch.nn.Linear(x.shape[1], len(labels))
    head.load_state_dict(ck["net"])
    with torch.no_grad():
        pred = head((emb["valid"]["embeddings"] - mean) / std).argmax(1)
    return classification_metrics(emb["valid"]["targets"].numpy(), pred.numpy(), labels=labels)
