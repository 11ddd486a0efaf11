"""From measurements of a prepared dataset to a fully resolved ``TrainConfig``, one reason per choice.

    from roomtone.recipe import recipe
    r = recipe("prepared")            # measures the data (a few seconds), decides, explains
    print(r.table())                  # setting | value | measured from | why
    fit(r.config, data_dir="prepared", out_dir="runs/a")

The rules are written once here, each with the constant it uses; none is tuned to one dataset:

* sample rate: the smallest standard rate whose Nyquist covers the measured band of every class
  (``measure.ENERGY_FRACTION`` of the active-frame energy), never above the files' own rate;
* front end: :func:`roomtone.features.frontend_defaults` at that rate (the single home of those numbers);
  ``fmin``/``fmax`` crop the mel bands to the measured band when it stops well inside the rate's range;
* clip: ``CLIP_MARGIN`` x the 95th percentile of durations (at most ``MAX_CLIP_SECONDS``); longer recordings are
  cut into windows of ``WINDOW_SECONDS`` (or less, for short ones) every half window, and evaluation and
  prediction decide per recording from its windows;
* depth: VGG blocks (at least ``MIN_BLOCKS``) until the receptive field covers the measured pattern length;
  head: ``max`` for sparse events, ``mean+max`` in between, ``mean`` for dense textures (median over classes);
* budget: ``STEPS_PER_SQRT_EXAMPLE * sqrt(n_train)`` optimizer steps of ``BATCH_SIZE`` (small sets see many
  epochs, large ones few). With ``budget_s``, a few steps and the data path (on the user's files) are timed on
  this machine; when the model would run less than ``MIN_STEP_SHARE`` of its steps in the budget, the recipe
  takes the first lighter size of ``SIZES`` that does (narrower channels and fewer mel bands with one conv in
  the first block, then a coarser hop too), then caps the steps to the budget; each size tried is timed in
  float32 and under bfloat16 autocast and judged at the faster, and bfloat16 (``amp="on"``) is taken where it is
  ``budget.AMP_MIN_GAIN`` x faster;
* balanced sampling above ``IMBALANCE_FROM`` (largest / smallest class);
* augmentation: a simulated microphone always (deployment means another microphone); noise too when the
  recordings are studio-clean (quiet-to-loud range >= ``CLEAN_RANGE_DB``);
* transfer: below ``SMALL_DATA`` training files, every backbone whose weights are here gets a
  transfer point (:mod:`roomtone.recipe.transfer`: a linear probe of its embeddings against the quick
  baseline's features, same grouped folds of the training split). When the best probe makes at most
  ``TRANSFER_ERROR_RATIO`` of the baseline's errors, the recipe trains that probe (``PROBE_EPOCHS`` epochs of
  ``PROBE_BATCH_SIZE`` on the cached embeddings) instead of a VGG from scratch.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from roomtone.config import PROBE_OVERRIDES, TrainConfig
from roomtone.errors import ParameterError

STANDARD_RATES = (8000, 11025, 16000, 22050, 32000, 44100, 48000)
MAX_CLIP_SECONDS = 6.0
WINDOW_SECONDS = 3.0
MIN_CLIP_SECONDS = 0.25
CLIP_MARGIN = 1.25
FMAX_BELOW = 0.8          # a band ending below this share of Nyquist gets fmax (the mel bands stop there)
MIN_BLOCKS = 4
CHANNELS = (16, 32, 64, 128, 128, 128, 128, 128)
# Batch 16 with the same steps (channels x0.45 size, FSDD by speaker, 2 threads, seeds 0 / 1 / 2): 92.2 / 90.1 / 89.1 %
# in 23-27 s, against batch 32's 94.8 % (seed 0) in 35 s: halving the batch loses more than the time it saves.
BATCH_SIZE = 32
# FSDD by speaker (2000 files): 10 epochs 89.5 %, 18 epochs 92.5 %, 30 x sqrt(n) = 1342 steps 94.6 % (1 torch
# thread) / 94.9 % (2); 45 x sqrt(n) = 2013 steps 96.1 % (1) / 93.7 % (2). Past ~30 x the run-to-run spread (the
# thread count changes the float order) is larger than the gain, so the cheaper count stays.
STEPS_PER_SQRT_EXAMPLE = 30
MIN_STEPS = 300
# best.pt is the best validation epoch of the last quarter of the one-cycle schedule (lr below 1/4 of its peak).
# Earlier epochs spike on small validation splits: insects (14 validation recordings), every epoch of two runs
# scored (1 thread), recording accuracy on test for the epoch kept by each rule, seed 0 / seed 1:
#   best of all epochs 75.0 / 77.3 % (epochs 18, 26 of 46; another run kept epoch 14: 59.1 %) | best of the last half
#   79.5 / 77.3 % | best of the last quarter 81.8 / 79.5 % | last epoch 81.8 / 81.8 % | weights averaged over the
#   last quarter 81.8 / 79.5 %. Test accuracy rises through the schedule; validation on 81 windows does not see it.
#   FSDD by speaker (validation saturates, ties go later): every rule keeps the last epoch (94.5 / 94.6 %).
SELECT_AFTER = 0.75
IMBALANCE_FROM = 1.5
CLEAN_RANGE_DB = 40.0
# Transfer points are measured below this many train-split files; above it the recipe trains from scratch. Where a
# probe stops winning depends on the data: on FSDD by speaker (2000 files) the speech-embedding probe gets ~98 %
# against the scratch VGG's 94.6 %, but on FSDD's official split (2700 files, test speakers seen in training) it
# gets 99.0 % against 100.0 %, though its transfer point (grouped by speaker) looked as strong. Kept conservative.
SMALL_DATA = 500
TRANSFER_ERROR_RATIO = 0.5  # the probe must remove at least half of the quick baseline's errors
PROBE_EPOCHS = 60
PROBE_BATCH_SIZE = 16
PROBE_LR = 3e-3
# Lighter sizes tried in order when the budget binds: (hop x, channels x, n_mels x, convs in the first block). An
# undertrained model loses more than a smaller one. FSDD official split, 1 torch thread, all 1559 steps unless said
# (full size: 100 % in 531 s):
#   full size cut to 260 steps: 93.3 % (91 s) | hop x2 alone: 94.7 % (262 s) | channels and mels x0.5: 97.7 % (138 s)
#   | channels x0.5 alone: 93.0 % (253 s) | hop x2, channels x0.5: 97.0 % (133 s) | hop x2, channels and mels x0.5:
#   97.7 % (85 s). Single runs: the held-out speaker (jackson, 50 of the 300 test files) makes a spread of a few points.
# A coarser hop with the full width generalised worst to the held-out speaker, so it is not a size here.
# The lighter sizes have ONE conv in the first block: at full resolution its second conv is the costliest layer per
# FLOP on a CPU (a one-channel-input conv whose input gradient mkldnn computes slowly). Channels and mels x0.5 with one
# first conv: 16.8 MFLOP per second of audio (1/9.7 of the full size), FSDD official 99.7 % in 121 s, by speaker
# 95.1 % in 101 s (the full size: 94.5 % in 449 s; both runs 1 thread, side by side).
# Channels x0.45 (7-58) brings it to 13.5 MFLOP (1/12), under issue 15's 1/10. Seeds 0 / 1 / 2, 1 thread, official |
# by speaker: channels x0.5 99.7 / 99.7 / 99.3 | 95.1 / 95.3 / 92.0 %; x0.45 99.7 / 99.3 / 99.3 | 95.4 / 92.9 / 91.9 %;
# x0.5 with one conv in block 2 too (13.1 MFLOP) 99.7 / 99.3 / - | 94.4 / 93.7 / - %; the full size 100 / - / 99.7 |
# 94.5 / 94.4 / 93.8 %. A seed moves one run by up to 3 points; the means differ by less (by speaker: full 94.2,
# x0.5 94.1, x0.45 93.4 %), and x0.45 is what meets the 1/10.
SIZES = ((1, 1.0, 1.0, 2), (1, 0.45, 0.5, 1), (2, 0.45, 0.5, 1))
# Tried for the full size, not taken: one conv in its first block (bfloat16, 2 threads, seeds 0 / 1 / 2): official 100
# / 100 / 100 % in 62-73 s, by speaker 94.7 / 94.3 / 93.9 % in 52-57 s, against two convs 99.7 / 100 / 99.7 % in
# 82-94 s and 95.8 / 94.9 / 94.8 % in 71-85 s: ~25 % faster, ~0.9 point lost on unseen speakers.
# Tried as SIZES[1], not taken: hop x2 with channels x0.63 (13.0 MFLOP, 1/12.5, 117k params), all steps, 2
# threads, seeds 0 / 1 / 2: official 99.7 / 99.3 / 99.0 % in 33-36 s, by speaker 94.5 / 92.2 / 93.2 % in 25 s;
# x0.45 at the recipe's hop the same day: by speaker 94.8 / 92.1 / 91.8 % in 34-38 s. As accurate and ~30 %
# faster, so under a budget it runs more of its steps: through the time_to_accuracy bench (3 seeds, as
# SIZES[1]) 71-95 % of them against 54-65 %, and it gained nothing: at 1/5, official 99.2 % (x0.45: 99.1), by
# speaker 91.3 % (91.5), synthetic 99.3 % (99.5), so SIZES keeps x0.45.
# Capacity is not what x0.45 lacks: FSDD by speaker, all 1342 steps, no budget, AVX2 EPYC, float32, seeds 0-4:
# x0.45 96.8 / 95.7 / 94.7 / 95.5 / 94.3 % (mean 95.4) against the full size's 95.4 / 95.6 / 93.3 / 96.6 / 95.1 %
# (95.2); its step takes 0.27-0.30 of the full size's there (67-77 s against 251-288 s), so 1/5 of the full
# size's time holds ~70 % of its steps, and the missing steps are its by-speaker gap at 1/5 (93.3 %, stop 30).
# Tried on an AVX2-only CPU (float32, 2 threads), FSDD by speaker, all 1342 steps, seeds 0 / 1 / 2, against x0.45 at
# the recipe's hop 93.7 / 90.5 / 90.5 % (58-67 s): depthwise-separable blocks 3-4 widened to 64 / 128 (9.4 MFLOP, 37k
# params) 91.3 / 91.9 / 90.0 %; hop x2 with all 64 mels (13.3 MFLOP) 91.7 / 90.5 / 89.3 %. Neither a wider late stage
# nor finer bands in place of finer frames moves the small size past the seed spread.
# Every size pools each block before its last BN + ReLU (``VGG(pool_before_norm=True)``: the same function for a
# positive BN scale, on a quarter of the elements). A training step on 2 cores: the full size 101 -> 81 ms, channels
# x0.45 21 -> 16 ms. Seeds 0 / 1 / 2, 1 thread, all steps, official | by speaker: x0.45 99.3 / 99.7 / 99.3 |
# 95.8 / 91.2 / 92.6 % (49 / 41 / 41 s by speaker; without: 99.7 / 99.3 / 99.3 | 95.4 / 92.9 / 91.9 %, 51 / 49 / 49 s);
# the full size 100 / 100 / 99.7 | 95.8 / 94.9 / 93.9 % (168 / 175 / 216 s; without: 94.5 / 94.4 / 93.8 %, 225-267 s).
POOL_BEFORE_NORM = True
# SpecAugment masks per axis at the lighter sizes (the full size keeps TrainConfig's 2 + 2). A small model underfits
# with masks on top of the stretch and the microphone: regularisation has to shrink with capacity (RandAugment found
# the same for image models). Channels x0.45, all steps, bfloat16 EPYC, 2 threads, seeds 0 / 1 / 2, FSDD by speaker:
# 2 + 2 masks 94.8 / 92.1 / 92.7 % (mean 93.2), 1 + 1 93.6 / 94.0 / - %, none 94.0 / 95.2 / 94.5 % (94.6), none and no
# stretch 93.4 / 95.4 / 93.4 % (94.1), no microphone 93.0 / 90.8 / 92.1 % (92.0); official split, none: 100 / 100 /
# 100 % in 56 s (2 + 2: 99.3 / 99.7 / 99.3 %). The full size without masks: by speaker 95.4 / 95.6 / 94.6 % (with
# them 95.8 / 94.9 / 94.8 %): neutral there, so it keeps them.
LIGHT_SIZE_MASKS = 0
#: ``model_kwargs`` that lay out plain VGG blocks (the sizes' first-block convs, the pooling order). A ``model``
#: override to a family that builds its own stages (``effnet_*``, ``tcnet_*``) drops them (:func:`for_model`).
VGG_BLOCK_KWARGS = ("block_convs", "pool_before_norm")
MIN_STEP_SHARE = 0.5      # a size is taken when it runs at least this share of the recipe's steps in the budget


@dataclass
class Choice:
    """One decision: the config field(s) it sets, the value, what it was measured from, and why."""

    setting: str
    value: object
    measured: str
    reason: str

    def as_dict(self) -> dict:
        return {"setting": self.setting, "value": self.value, "measured": self.measured, "reason": self.reason}


@dataclass
class Recipe:
    """A resolved ``TrainConfig`` with the choices behind it and the raw measurements."""

    config: TrainConfig
    choices: list[Choice]
    measurements: dict
    prepared_dir: str = ""
    overrides: dict = field(default_factory=dict)
    transfer: bool = True  # recipe(transfer=...): whether a pre-trained backbone could be chosen
    predicted_seconds: float | None = None  # training seconds the budget's timing predicts (None: no budget)

    def table(self) -> list[dict]:
        """Rows ``{"setting", "value", "measured", "reason"}`` (overrides marked as such)."""
        rows = [c.as_dict() for c in self.choices]
        for k, v in self.overrides.items():
            rows.append({"setting": k, "value": v, "measured": "given by the user", "reason": "override"})
        return rows

    def with_overrides(self, overrides: dict) -> Recipe:
        """The recipe with ``TrainConfig.replace(**overrides)`` applied and recorded. A ``model`` override keeps the
        recipe's channels, pooling and head; its VGG block layout only where the new model builds VGG blocks
        (:func:`for_model`)."""
        if not overrides:
            return self
        config = self.config
        if "model" in overrides and "model_kwargs" not in overrides:
            config = for_model(config, overrides["model"])
        return Recipe(config=config.replace(**overrides), choices=list(self.choices),
                      measurements=self.measurements, prepared_dir=self.prepared_dir,
                      overrides={**self.overrides, **overrides}, transfer=self.transfer)  # no prediction: changed

    def summary(self) -> str:
        """One line: rate, clip, and the model (VGG depth, head and steps, or the backbone probe)."""
        c = self.config
        where = f"{c.clip_seconds:g} s clips{' (windows)' if c.window_hop else ''}"
        if c.pretrained:
            return f"{where}, {c.pretrained} {c.mode} ({c.epochs} epochs on its embeddings)"
        k = c.model_kwargs
        return (f"{c.frontend.sr} Hz, {where}, {c.model} {len(k.get('channels', []))} blocks, {k.get('head')} head, "
                f"{c.max_steps} steps")

    def train_command(self, *, out: str = "RUN") -> str:
        """The ``roomtone train`` line that trains exactly this recipe."""
        sets = " ".join(f"--set {k}={_yaml_scalar(v)}" for k, v in self.overrides.items())
        flags = "" if self.transfer else " --no-transfer"
        return f"roomtone train {self.prepared_dir or 'PREPARED'} --out {out}{flags}" + (f" {sets}" if sets else "")

    def to_dict(self) -> dict:
        m = {k: v for k, v in self.measurements.items() if k != "train_durations"}
        return {"prepared_dir": self.prepared_dir, "config": self.config.to_dict(), "choices": self.table(),
                "overrides": dict(self.overrides), "predicted_seconds": self.predicted_seconds,
                "measurements": _plain(m)}

    def to_yaml(self, path: str | os.PathLike) -> Path:
        """Write ``recipe.yaml`` (config + choices + measurements) atomically; returns the path."""
        import yaml

        from roomtone.files import atomic_write_text

        path = Path(path)
        atomic_write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))
        return path


def _yaml_scalar(v) -> str:
    import yaml

    return yaml.safe_dump(v, default_flow_style=True).strip().removesuffix("...").strip()


def _plain(x):
    import numpy as np

    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    return x


def working_rate(f_high: float, *, file_sr: int) -> int:
    """Smallest standard rate with ``sr / 2 >= f_high``, at most ``file_sr`` (the files' own rate)."""
    need = 2.0 * float(f_high)
    for rate in STANDARD_RATES:
        if rate >= need - 1e-6:
            return int(min(rate, file_sr))
    return int(file_sr)


def clip_and_windows(durations: dict, *, pattern_s: float) -> tuple[float, float | None, str]:
    """``(clip_seconds, window_hop or None, reason)`` from the duration percentiles and the pattern length."""
    p95, p10, p90 = durations["p95"], durations["p10"], durations["p90"]
    if p90 <= MAX_CLIP_SECONDS:
        longest = math.ceil(durations["max"] * 10) / 10   # never pad past the longest clip
        clip = max(MIN_CLIP_SECONDS, math.ceil(min(CLIP_MARGIN * p95, MAX_CLIP_SECONDS, longest) * 10) / 10)
        return clip, None, (f"95 % of the clips last <= {p95:.2f} s: every clip is cropped (energy-centred) or "
                            f"padded to {clip:g} s ({CLIP_MARGIN:g} x, room for the event to move)")
    window = min(WINDOW_SECONDS, max(1.0, pattern_s), max(1.0, p10))
    window = math.floor(window * 10) / 10
    return window, window / 2, (f"recordings last {p10:.1f}-{p90:.1f} s (10-90 %): cut into {window:g} s windows "
                                f"every {window / 2:g} s; a recording is judged from all its windows")


def depth_for(pattern_s: float, *, sr: int, hop_length: int, n_fft: int, n_mels: int, clip_s: float) -> dict:
    """VGG blocks/pooling (``roomtone.models.design``) covering ``pattern_s`` (at most the clip), >= MIN_BLOCKS."""
    from roomtone.models import design

    target = max(1e-3, min(pattern_s, clip_s))
    d = design(target_duration=target, sr=sr, hop_length=hop_length, n_fft=n_fft, n_mels=n_mels)
    rec = d["recommended"]
    blocks = max(MIN_BLOCKS, int(rec["blocks"]))
    max_freq_blocks = max(0, n_mels.bit_length() - 3)
    pool = [[2 if i < max_freq_blocks else 1, int(rec["pool_time"])] for i in range(blocks)]
    frames = max(1, int(clip_s * sr / hop_length))
    while blocks > 1 and int(rec["pool_time"]) ** blocks > frames:   # the pooling must fit in one clip
        blocks -= 1
        pool = pool[:blocks]
    option = next((o for o in d["options"] if o["blocks"] == blocks and o["pool_time"] == rec["pool_time"]), rec)
    return {"blocks": blocks, "pool": pool, "seconds": float(option["seconds"]), "target": target}


def head_for(events: dict) -> tuple[str, str]:
    """Pooling head from the task's sparsity: the median over classes of the fraction of active frames.

    Sparse (< ``SPARSE_BELOW``): ``max`` (a short event decides); dense (>= ``DENSE_FROM``): ``mean`` (a
    texture is everywhere); in between ``mean+max`` (both statistics, the classifier weighs them).
    """
    from roomtone.recipe.events import DENSE_FROM, SPARSE_BELOW

    fracs = [c["active_fraction"] for c in events["per_class"]]
    task = float(sorted(fracs)[len(fracs) // 2])
    name = "max" if task < SPARSE_BELOW else "mean" if task >= DENSE_FROM else "mean+max"
    return name, (f"events fill {task:.0%} of a clip (median over classes; {min(fracs):.0%}-{max(fracs):.0%}): "
                  + {"max": "sparse, so max pooling over time", "mean+max": "in between, so mean and max pooling",
                     "mean": "dense textures, so mean pooling over time"}[name])


def steps_for(n_train: int) -> int:
    """Optimizer steps for ``n_train`` training examples: ``STEPS_PER_SQRT_EXAMPLE * sqrt(n)``, >= MIN_STEPS."""
    return int(max(MIN_STEPS, round(STEPS_PER_SQRT_EXAMPLE * math.sqrt(max(1, n_train)))))


def recipe(prepared_dir: str | os.PathLike, *, budget_s: float | None = None, seed: int = 0, domain: str | None = None,
           transfer: bool = True, measurements: dict | None = None, progress: bool = False) -> Recipe:
    """The training recipe of a prepared folder (see the module docstring for the rules).

    Args:
        budget_s: training time budget in seconds. None (default): the step count depends on the data only, so
            the same data gives the same recipe on any machine holding the same backbone weights (they decide
            the transfer points); else it is also capped from a few timed steps of the chosen model here.
        domain: ``"speech"``, ``"sound effects"`` or ``"general audio"`` (optional): only that domain's
            backbones get transfer points (default: every backbone whose weights are here).
        transfer: False = always from scratch (no transfer points). A probe trains on embeddings of the clean
            clips, without the recipe's augmentation: pass False when robustness to the simulated conditions
            matters more than clean accuracy.
        measurements: reuse a :func:`roomtone.recipe.measure.measure` result instead of measuring again.
    """
    from roomtone.features.defaults import frontend_defaults
    from roomtone.prepare.dataset import load_prepared, native_sr
    from roomtone.recipe.measure import ENERGY_FRACTION, measure

    if budget_s is not None and budget_s <= 0:
        raise ParameterError(f"budget_s={budget_s!r} must be a positive number of seconds or None")
    prepared_dir = Path(prepared_dir)
    rows, meta = load_prepared(prepared_dir)
    labels = list(meta["labels"])
    if len(labels) < 2:
        raise ParameterError(f"{prepared_dir}: a classifier needs at least 2 classes, found {labels}")
    file_sr = int(meta.get("sr") or native_sr(rows))
    m = measurements or measure(rows, labels=labels, sr=file_sr, seed=seed, progress=progress)
    choices: list[Choice] = []

    sr = working_rate(m["f_high"], file_sr=file_sr)
    choices.append(Choice("frontend.sr", sr, f"band of each class ({ENERGY_FRACTION:.1%} of its active energy) "
                          f"reaches {m['f_high']:.0f} Hz; files at {file_sr} Hz",
                          f"smallest standard rate with Nyquist >= {m['f_high']:.0f} Hz" +
                          (" (capped at the files' rate)" if sr == file_sr and 2 * m["f_high"] > file_sr else "")))
    fe = frontend_defaults(sr=sr)
    fmin = float(math.floor(m["f_low"] / 10) * 10) if m["f_low"] >= 50.0 else 0.0
    fe["fmin"] = fmin
    choices.append(Choice("frontend.n_fft, hop_length, n_mels", f"{fe['n_fft']}, {fe['hop_length']}, {fe['n_mels']}",
                          f"sr {sr} Hz", "roomtone.features.frontend_defaults: 32-64 ms window, 10 ms hop, 64 mels"))
    choices.append(Choice("frontend.fmin", fmin, f"lowest class band edge {m['f_low']:.0f} Hz",
                          "no class has energy below it" if fmin else "some class has energy near 0 Hz: keep it"))
    fmax = None
    if m["f_high"] < FMAX_BELOW * sr / 2:
        fmax = float(min(sr / 2, math.ceil(1.05 * m["f_high"] / 100) * 100))
    choices.append(Choice("frontend.fmax", fmax, f"highest class band edge {m['f_high']:.0f} Hz, Nyquist {sr / 2:.0f} Hz",
                          "the mel bands stop where the energy stops" if fmax else
                          f"the band reaches {FMAX_BELOW:.0%} of Nyquist or more: keep it all"))

    ev = m["events"]
    pattern = float(ev["recommended_rf_s"])
    clip, hop, why = clip_and_windows(m["durations"], pattern_s=pattern)
    d = m["durations"]
    choices.append(Choice("clip_seconds", clip, f"durations {d['min']:.2f} / {d['median']:.2f} / {d['p95']:.2f} / "
                          f"{d['max']:.2f} s (min / median / p95 / max)", why))
    if hop is not None:
        choices.append(Choice("window_hop", hop, "long recordings", "half-window overlap: every moment is seen twice"))

    depth = depth_for(pattern, sr=sr, hop_length=fe["hop_length"], n_fft=fe["n_fft"], n_mels=fe["n_mels"], clip_s=clip)
    head, head_why = head_for(ev)
    channels = list(CHANNELS[: depth["blocks"]])
    choices.append(Choice("model_kwargs.channels, pool", f"{depth['blocks']} blocks, field {depth['seconds']:.2f} s",
                          f"pattern length {pattern:.2f} s (1.2 x p90 event, at most the clip)",
                          f"the shallowest VGG (>= {MIN_BLOCKS} blocks) whose receptive field covers the pattern"))
    choices.append(Choice("model_kwargs.head", head, "event sparsity", head_why))
    choices.append(Choice("model_kwargs.pool_before_norm", POOL_BEFORE_NORM, "max pooling in every block",
                          "pooling before each block's last BN + ReLU is the same function with BN and ReLU on a "
                          "quarter of the elements: a training step ~20 % faster on a CPU"))

    n_train = _train_examples(m, clip=clip, hop=hop)
    balanced = m["imbalance"] > IMBALANCE_FROM
    choices.append(Choice("balanced", balanced, f"largest / smallest class = {m['imbalance']:.2f}",
                          f"class-balanced sampling above {IMBALANCE_FROM}" if balanced else
                          f"classes are balanced enough (<= {IMBALANCE_FROM})"))
    clean = m["range_db"] >= CLEAN_RANGE_DB
    condition = "noise+mic" if clean else "mic"
    choices.append(Choice("augment.condition", condition, f"median quiet-to-loud range {m['range_db']:.0f} dB",
                          "studio-clean recordings: add noise (0-20 dB SNR) and a phone microphone" if clean else
                          "recordings already carry their own noise floor: simulate another microphone only"))

    model_kwargs = {"channels": channels, "pool": depth["pool"], "head": head, "pool_before_norm": POOL_BEFORE_NORM}
    config = TrainConfig(
        model="vgg", model_kwargs=model_kwargs,
        frontend={"sr": sr, "n_fft": fe["n_fft"], "hop_length": fe["hop_length"], "n_mels": fe["n_mels"],
                  "fmin": fmin, "fmax": fmax},
        clip_seconds=clip, window_hop=hop, batch_size=BATCH_SIZE, balanced=balanced, patience=None,
        select_after=SELECT_AFTER, augment={"condition": condition}, seed=seed)
    n_fit = sum((r.split or "train") == "train" for r in rows)  # what the model learns from (valid rows only select)
    if not transfer:
        m = {**m, "transfer": []}
    elif "transfer" not in m:
        m = {**m, "transfer": _transfer_points(rows, labels=labels, n_fit=n_fit, frontend=config.frontend, clip=clip,
                                               domain=domain, seed=seed)}
    pick = (transfer_choice(n_fit, points=m["transfer"], domain=domain) if transfer else
            Choice("pretrained", None, "transfer=False", "from scratch, as asked (with the recipe's augmentation)"))
    if pick.value is not None:  # a backbone's probe: the VGG's layout and step budget do not apply
        keep = {"frontend.sr", "clip_seconds", "window_hop", "balanced"}
        config = TrainConfig(pretrained=pick.value, mode="probe", clip_seconds=clip, window_hop=hop,
                             batch_size=PROBE_BATCH_SIZE, lr=PROBE_LR, epochs=PROBE_EPOCHS, label_smoothing=0.0,
                             balanced=balanced, patience=None, seed=seed).replace(**PROBE_OVERRIDES)
        return Recipe(config=config, choices=[c for c in choices if c.setting in keep] + [pick], measurements=m,
                      prepared_dir=str(prepared_dir), transfer=transfer)
    steps = steps_for(n_train)
    why_steps = f"{STEPS_PER_SQRT_EXAMPLE} x sqrt({n_train} training examples)"
    predicted = None
    if budget_s is not None:
        config, steps, why_steps, timed, predicted = fit_budget(
            config, steps=steps, budget_s=budget_s, num_classes=len(labels), pattern_s=pattern, why_steps=why_steps,
            prepared_dir=prepared_dir)
        choices.extend(timed)
    per_epoch = fitted_batches(n_train, n_fit=n_fit, n_rows=int(m["n_train"]),
                               has_valid=any(r.split == "valid" for r in rows), valid_fraction=config.valid_fraction)
    epochs = max(1, math.ceil(steps / per_epoch))   # enough epochs for every step; max_steps ends the run
    config = config.replace(epochs=epochs, max_steps=steps, max_seconds=budget_s)
    choices.append(Choice("max_steps, epochs" + (", max_seconds" if budget_s is not None else ""),
                          f"{steps} steps ({epochs} epochs)" + (f", <= {budget_s:.0f} s" if budget_s is not None else ""),
                          f"{n_train} training examples, batch {BATCH_SIZE}", why_steps +
                          f"; no early stopping: best.pt is the best validation epoch after {SELECT_AFTER:.0%} of the "
                          "steps (earlier, high-lr epochs spike on small validation splits)" +
                          ("; the run keeps to the budget: slower than timed here, it cuts its steps left and "
                           "re-plans its schedule" if budget_s is not None else "")))
    choices.append(pick)
    return Recipe(config=config, choices=choices, measurements=m, prepared_dir=str(prepared_dir), transfer=transfer,
                  predicted_seconds=predicted)


def sized(config: TrainConfig, size: tuple[float, float, float, int], *, pattern_s: float) -> TrainConfig:
    """``config`` at one of :data:`SIZES` ``(hop x, channels x, n_mels x, first-block convs)``: the VGG depth and
    pooling are derived again for the new frames (:func:`depth_for`); the lighter sizes train without SpecAugment's
    masks (:data:`LIGHT_SIZE_MASKS`), the stretch stays."""
    hop_x, width_x, mels_x, first_convs = size
    if size == SIZES[0]:
        return config
    fe = config.frontend
    hop, n_mels = int(fe.hop_length * hop_x), max(8, int(round(fe.n_mels * mels_x)))
    depth = depth_for(pattern_s, sr=fe.sr, hop_length=hop, n_fft=fe.n_fft, n_mels=n_mels, clip_s=config.clip_seconds)
    channels = [max(4, int(round(c * width_x))) for c in CHANNELS[: depth["blocks"]]]
    return config.replace(**{"frontend.hop_length": hop, "frontend.n_mels": n_mels,
                             "specaugment.freq_masks": LIGHT_SIZE_MASKS, "specaugment.time_masks": LIGHT_SIZE_MASKS,
                             "model_kwargs": {**config.model_kwargs, "channels": channels, "pool": depth["pool"],
                                              "block_convs": [first_convs] + [2] * (len(channels) - 1)}})


def for_model(config: TrainConfig, model: str) -> TrainConfig:
    """``config`` with ``model``; the :data:`VGG_BLOCK_KWARGS` are dropped when ``model`` builds its own stages
    (an ``EffNet`` or ``TCNet`` refuses them). Raises ``ParameterError`` for an unregistered name."""
    from roomtone.models import VGG, create_model

    kwargs = dict(config.model_kwargs)
    if any(k in kwargs for k in VGG_BLOCK_KWARGS):
        cls = type(create_model(model, num_classes=2))
        if not (issubclass(cls, VGG) and cls.make_features is VGG.make_features):
            kwargs = {k: v for k, v in kwargs.items() if k not in VGG_BLOCK_KWARGS}
    return config.replace(model=model, model_kwargs=kwargs)


def size_label(config: TrainConfig) -> str:
    """``hop 10 ms, 64 mels, 4 blocks 16-128`` of a VGG config (``, one conv in block 1`` where it has one,
    ``, no masks`` where SpecAugment masks nothing)."""
    c, fe = config.model_kwargs["channels"], config.frontend
    one = (config.model_kwargs.get("block_convs") or [2])[0] == 1
    sa = config.specaugment
    return (f"hop {1000 * fe.hop_length / fe.sr:g} ms, {fe.n_mels} mels, {len(c)} blocks {c[0]}-{max(c)}"
            + (", one conv in block 1" if one else "") + ("" if sa.freq_masks or sa.time_masks else ", no masks"))


def fit_budget(config: TrainConfig, *, steps: int, budget_s: float, num_classes: int, pattern_s: float,
               why_steps: str, prepared_dir: str | os.PathLike
               ) -> tuple[TrainConfig, int, str, list[Choice], float]:
    """``(config, steps, why_steps, [size_choice, amp_choice], predicted_seconds)`` under ``budget_s``: the first of
    :data:`SIZES` that runs >= ``MIN_STEP_SHARE`` of ``steps`` in the budget (else the lightest), with the steps
    capped to what fits, in bfloat16 autocast (``amp="on"``) where that size's step is
    ``budget.AMP_MIN_GAIN`` x faster so.
    A size's seconds are timed here: its model steps in both precisions, and the data path on ``prepared_dir``'s
    own training examples (:mod:`roomtone.recipe.budget`)."""
    from roomtone.recipe import budget

    data = budget.data_seconds(config, prepared_dir)
    tried = []
    for size in SIZES:
        cand = sized(config, size, pattern_s=pattern_s)
        cost = budget.step_cost(cand, data, num_classes=num_classes)
        tried.append(f"{size_label(cand)}: {cost.per_step:.3f} s/step")
        fits = cost.steps_in(budget_s)
        if fits >= MIN_STEP_SHARE * steps:
            break
    full = size == SIZES[0]
    reason = (f"the full size runs {MIN_STEP_SHARE:.0%} or more of the {steps} steps in the budget" if full else
              f"the larger sizes would run < {MIN_STEP_SHARE:.0%} of the {steps} steps in {budget_s:.0f} s: a smaller "
              f"input and model trained longer beats a larger one cut short" +
              ("; no SpecAugment masks (a small model underfits with them)" if LIGHT_SIZE_MASKS == 0 else
               f"; {LIGHT_SIZE_MASKS} SpecAugment masks per axis"))
    choices = [Choice("frontend.hop_length, n_mels, model_kwargs.channels", size_label(cand),
                      "; ".join(tried) + f" (data path timed on {data.timed} of the {data.n_train} training examples)",
                      reason), amp_choice(cost)]
    if cost.amp:
        cand = cand.replace(amp="on")
    if fits < steps:
        steps = max(1, fits)
        return (cand, steps, f"{why_steps}, capped by the {budget_s:.0f} s budget at {cost.describe()}", choices,
                cost.seconds(steps))
    return (cand, steps, f"{why_steps}; ~{cost.seconds(steps):.0f} s at {cost.describe()} here "
                         f"(budget {budget_s:.0f} s)", choices, cost.seconds(steps))


def amp_choice(cost) -> Choice:
    """The ``amp`` row of a timed :class:`roomtone.recipe.budget.StepCost`."""
    from roomtone.recipe.budget import AMP_MIN_GAIN

    if None in (cost.float32_s, cost.bfloat16_s):
        return Choice("amp", "on" if cost.amp else "off", "one precision timed", "the config fixes the precision")
    measured = (f"a training step {1000 * cost.float32_s:.0f} ms in float32, {1000 * cost.bfloat16_s:.0f} ms under "
                "bfloat16 autocast here")
    if cost.amp:
        return Choice("amp", "on", measured, f"bfloat16 autocast is >= {AMP_MIN_GAIN:g} x faster on this machine; "
                      "the front end and the loss stay float32")
    return Choice("amp", "auto", measured, f"bfloat16 is not {AMP_MIN_GAIN:g} x faster here: float32 on a CPU "
                  "(autocast on a CUDA device)")


def fitted_batches(n_examples: int, *, n_fit: int, n_rows: int, has_valid: bool, valid_fraction: float) -> int:
    """A lower bound on the batches of ``BATCH_SIZE`` per epoch: ``n_examples`` (from train + valid rows) scaled to
    the train split (``n_fit`` of ``n_rows``), less the carved validation share when the manifest has no valid rows
    (counted twice: a carve by group can take more than its fraction)."""
    share = n_fit / max(1, n_rows) if has_valid else 1.0 - 2.0 * valid_fraction
    return max(1, int(n_examples * share) // BATCH_SIZE)


def _transfer_points(rows, *, labels, n_fit: int, frontend, clip: float, domain: str | None, seed: int) -> list[dict]:
    """Transfer points of the backbones here (small data only; [] otherwise)."""
    from roomtone.recipe.transfer import candidate_backbones, transfer_points

    if n_fit >= SMALL_DATA:
        return []
    return transfer_points(rows, labels=labels, frontend=dataclasses.asdict(frontend), clip_s=clip,
                           backbones=candidate_backbones(domain), seed=seed)


def transfer_choice(n_train: int, *, points: list[dict], domain: str | None = None) -> Choice:
    """Scratch or transfer: the backbone whose probe errs least, when that is at most ``TRANSFER_ERROR_RATIO``
    of the quick baseline's errors on the same folds (``points`` from :func:`roomtone.recipe.transfer.transfer_points`;
    small data only: ``n_train`` counts the rows the model is fitted on, the ``train`` split; ``valid`` rows only
    select the epoch). ``value`` is the backbone's name, or None (train from scratch)."""
    from roomtone.models.pretrained import CATALOG, DOMAINS

    if domain is not None and domain not in DOMAINS:
        raise ParameterError(f"domain={domain!r} must be one of {list(DOMAINS)} or None")
    if n_train >= SMALL_DATA:
        return Choice("pretrained", None, f"{n_train} training files",
                      f"enough data (>= {SMALL_DATA} files) to train from scratch")
    if not points:
        fits = [n for n, e in CATALOG.items() if domain is None or e.domain == domain]
        return Choice("pretrained", None, f"{n_train} training files; no backbone weights here",
                      f"small data: `roomtone pretrained fetch NAME` ({', '.join(fits)}) lets the recipe measure a "
                      f"transfer point")
    best = max(points, key=lambda p: p["probe_accuracy"])
    base_err, probe_err = 1.0 - best["baseline_accuracy"], 1.0 - best["probe_accuracy"]
    measured = "; ".join(f"{p['backbone']} probe {p['probe_accuracy']:.1%}" for p in points) + (
        f" vs quick baseline {best['baseline_accuracy']:.1%} ({best['folds']}-fold grouped CV of {best['n']} "
        f"training files)")
    if probe_err <= TRANSFER_ERROR_RATIO * base_err and probe_err < base_err:
        return Choice("pretrained", best["backbone"], measured,
                      f"the {best['backbone']} probe makes {probe_err / max(base_err, 1e-9):.0%} of the baseline's "
                      f"errors (<= {TRANSFER_ERROR_RATIO:.0%}): train its probe (mode probe, {PROBE_EPOCHS} epochs)")
    return Choice("pretrained", None, measured,
                  f"no probe removes {1 - TRANSFER_ERROR_RATIO:.0%} of the baseline's errors: train from scratch")


def _train_examples(m: dict, *, clip: float, hop: float | None) -> int:
    """Training examples per epoch: train rows, or the windows of ``clip`` every ``hop`` they are cut into."""
    if hop is None:
        return int(m["n_train"])
    from roomtone.prepare.segment import sliding_windows

    return int(sum(len(sliding_windows(0.0, d, window=clip, hop=hop)) for d in m["train_durations"]))
