"""Training seconds of a config on this machine, timed, for the recipe's time budget.

A run's clock (the fit loop's ``train_seconds``) is, per step, the model's work (forward with SpecAugment,
backward, optimizer step: :func:`roomtone.models.compute.step_seconds` in the training layout) plus the data path
(decode, crop, waveform augmentation, collate: :func:`data_seconds` on a few of the user's own training examples),
plus the validation passes, and once per run the first decode of every training example (the clips are cached
after it). A constant factor for everything outside the model was 10 % off for the recipe's small sizes, which
spend ~28 % of their time there against ~10 % for the full size. The model's steps are timed with a data batch
fetched before each (as the fit loop runs them), not in a tight loop with warm caches.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import time
from collections.abc import Callable

import torch

from roomtone.config import TrainConfig

#: The training time budget of ``roomtone train`` and ``roomtone expect`` when none is given: on 2 CPU cores a
#: recipe's run then ends within ~20 minutes. ``recipe()`` itself has no default budget (the same data gives the
#: same recipe on any machine).
DEFAULT_BUDGET_S = 15 * 60.0
#: A validation example costs this share of a training example's model time (forward only, no SpecAugment).
FORWARD_SHARE = 1.0 / 3.0
#: Examples the data path is timed on (spread over the training split).
TIMED_EXAMPLES = 64
#: A model's training step is timed in float32 and under bfloat16 autocast (``TrainConfig(amp="on")``); bfloat16 is
#: taken when its step is at least this many times faster here (else float32: the exact numbers, at no cost).
#: AMD EPYC with avx512_bf16, 2 cores, batch 32 x 0.9 s at 8 kHz: the recipe's full size 81 -> 56 ms per step, its
#: channels x0.45 size 16.5 -> 16.5 ms (too narrow to gain). FSDD, the full size, seeds 0 / 1 / 2, all steps: official
#: 99.7 / 100 / 99.7 % (float32 100 / 100 / 99.7), by speaker 95.8 / 94.9 / 94.8 % (float32 96.6 / 95.0 / 94.2).
#: AMD EPYC with AVX2 only (no AVX-512): the channels x0.45 size 45 ms in float32, 296 ms under bfloat16: float32.
#: Was 1.15: at the small sizes bfloat16 timed 1.15-1.2 x faster (15 vs 18, 20 vs 23 ms) and then ran at 19.6 and
#: 32 ms per model step in the run itself (FSDD official, 27 s budget: 41 s taken), while float32 ran as timed
#: (20 -> 19.7, 23 -> 21.4 ms). The full size's 1.45 x holds in its runs, so the margin sits between the two.
AMP_MIN_GAIN = 1.3
#: Timed training steps per precision (after one warm-up step): their median is the step's seconds.
TIMED_STEPS = 5


@dataclasses.dataclass(frozen=True)
class StepCost:
    """Seconds of a config's run on this machine: ``model_s`` + ``data_s`` per step, ``valid_s`` per step (the
    validation passes spread over the steps), ``once_s`` per run (the first decode of every training and
    validation example)."""

    model_s: float
    data_s: float
    valid_s: float
    once_s: float
    amp: bool = False                  # model_s is the bfloat16-autocast step (AMP_MIN_GAIN x faster here)
    float32_s: float | None = None     # the model step in each precision timed (None: not timed)
    bfloat16_s: float | None = None

    @property
    def per_step(self) -> float:
        return self.model_s + self.data_s + self.valid_s

    def seconds(self, steps: int) -> float:
        """Predicted training seconds of ``steps`` steps."""
        return self.once_s + steps * self.per_step

    def steps_in(self, budget_s: float) -> int:
        """Steps that fit in ``budget_s`` seconds (0 when the one-off decode alone fills it)."""
        return max(0, int((budget_s - self.once_s) / self.per_step))

    def describe(self) -> str:
        return (f"{self.per_step:.3f} s/step (model {self.model_s:.3f}{' in bfloat16' if self.amp else ''}, data "
                f"{self.data_s:.3f}, validation {self.valid_s:.3f}) + {self.once_s:.0f} s first decode")


@dataclasses.dataclass(frozen=True)
class DataCost:
    """The data path of a prepared folder under a config: seconds per training example at steady state (cached
    clip + augmentation), the first decode of one example, the train / valid example counts, how many
    examples were timed, and the one-off seconds of the first batch (the fit loop pays them once)."""

    per_example_s: float
    first_decode_s: float
    n_train: int
    n_valid: int
    timed: int
    setup_s: float = 0.0
    #: fetches the next timed batch from the clip cache (what the fit loop does between steps); None: not kept
    fetch: Callable[[], None] | None = dataclasses.field(default=None, compare=False, repr=False)


def data_seconds(config: TrainConfig, prepared_dir: str | os.PathLike, *, examples: int = TIMED_EXAMPLES
                 ) -> DataCost:
    """Time the training data path of ``config`` on ``examples`` of ``prepared_dir``'s training examples (evenly
    spread; windows when the config has them), fetched as the fit loop's DataLoader fetches them (batches of
    ``config.batch_size`` through ``__getitems__``: one augmentation pass per batch). Each batch is fetched twice,
    the first time decoding, the second from the clip cache (when ``config.cache_audio``) with a fresh
    augmentation draw."""
    from roomtone.train.data import load_splits, train_valid_datasets, window_kwargs

    splits, meta = load_splits(prepared_dir, valid_fraction=config.valid_fraction, seed=config.seed,
                               **window_kwargs(config))
    ds, _, _ = train_valid_datasets(config, splits, labels=list(meta["labels"]), sr=config.frontend.resolved().sr,
                                    clip_seconds=config.clip_seconds)
    n = len(ds)
    picks = sorted({int(i * n / min(n, examples)) for i in range(min(n, examples))})
    # One batch of other examples first: the first batch's one-off work in a process (lazy imports, FFT plans,
    # thread pools: ~1 s on 2 cores) is paid once per run, not per example decoded.
    warm = sorted({min(n - 1, i + 1) for i in picks[: config.batch_size]} - set(picks))
    t0 = time.perf_counter()
    if warm:
        ds.__getitems__(warm)
    setup = time.perf_counter() - t0
    batches = [picks[i:i + config.batch_size] for i in range(0, len(picks), config.batch_size)]

    def fetch_all() -> float:
        t0 = time.perf_counter()
        for b in batches:
            ds.__getitems__(b)
        return (time.perf_counter() - t0) / len(picks)

    first = fetch_all()
    ds.set_epoch(1)
    steady = fetch_all()
    again = itertools.cycle(batches)

    def fetch_next() -> None:
        ds.__getitems__(next(again))

    return DataCost(per_example_s=steady, first_decode_s=max(0.0, first - steady) if config.cache_audio else 0.0,
                    n_train=n, n_valid=len(splits["valid"]), timed=len(picks), setup_s=setup, fetch=fetch_next)


def step_cost(config: TrainConfig, data: DataCost, *, num_classes: int, seed: int = 0) -> StepCost:
    """The :class:`StepCost` of ``config``'s model (timed here, batch ``config.batch_size`` x
    ``config.clip_seconds``, 1 s if None, with its SpecAugment) on the data path ``data``. With ``config.amp``
    ``"auto"``, the step is timed in float32 and under bfloat16 autocast; ``amp`` says whether bfloat16 was
    :data:`AMP_MIN_GAIN` x faster (its step is then ``model_s``). ``"on"`` / ``"off"`` time that precision only."""
    from roomtone.models import create_model
    from roomtone.models.compute import step_seconds, to_training_layout
    from roomtone.train.augment import make_spec_augment

    frontend = dataclasses.asdict(config.frontend.resolved())   # the recipe always sets frontend.sr
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = to_training_layout(create_model(config.model, num_classes=num_classes, **frontend,
                                                **(config.model_kwargs or {})))
    spec_aug = make_spec_augment(config.specaugment)

    def timed(dtype) -> float:
        g = torch.Generator().manual_seed(seed)
        return step_seconds(model, batch_size=config.batch_size, seconds=config.clip_seconds or 1.0,
                            steps=TIMED_STEPS, autocast=dtype, between=data.fetch,
                            spec_transform=(lambda s: spec_aug(s, g)) if spec_aug is not None else None)

    float32_s = None if config.amp == "on" else timed(None)
    bf16_s = None if config.amp == "off" else timed(torch.bfloat16)
    amp = bf16_s is not None and (float32_s is None or float32_s >= AMP_MIN_GAIN * bf16_s)
    model_s = bf16_s if amp else float32_s
    b = config.batch_size
    forward_s = FORWARD_SHARE * (float32_s or model_s)   # validation runs in float32
    valid_s = forward_s * data.n_valid / max(1, data.n_train)
    return StepCost(model_s=model_s, data_s=b * data.per_example_s, valid_s=valid_s,
                    once_s=data.first_decode_s * (data.n_train + data.n_valid) + data.setup_s, amp=amp,
                    float32_s=float32_s, bfloat16_s=bf16_s)
