"""AudioDataset (resampling, segments, fixed clips, deterministic transforms with workers), sampler, collate."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import soundfile as sf
import torch
from torch.utils.data import DataLoader

from roomtone.errors import DataError, ParameterError
from roomtone.prepare.dataset import AudioDataset, class_balanced_sampler, collate_padded, item_generator
from roomtone.prepare.manifest import ManifestRow


def _write(path, n, sr, value=None, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    y = (0.1 * rng.standard_normal(n)).astype(np.float32) if value is None else np.full(n, value, np.float32)
    sf.write(str(path), y, sr, subtype="FLOAT")
    return y


def add_noise(x, *, generator):
    return x + torch.randn(x.shape, generator=generator)


@pytest.fixture()
def rows(tmp_path):
    out = []
    for k in range(6):
        n = 4000 + 500 * k
        _write(tmp_path / f"{k}.wav", n, 16000, seed=k)
        out.append(ManifestRow(path=str(tmp_path / f"{k}.wav"), label="ab"[k % 2], group=f"g{k}"))
    return out


def test_resample_on_load_matches_audio_load(rows):
    from roomtone.audio import load

    ds = AudioDataset(rows, labels=["a", "b"], sr=8000)
    x, y = ds[1]
    ref, _ = load(rows[1].path, sr=8000)
    assert x.dtype == torch.float32 and x.shape == ref.shape and torch.equal(x, ref)
    assert y == 1 and len(ds) == 6


def test_segments_and_fixed_clips(tmp_path):
    sr = 8000
    y = _write(tmp_path / "long.wav", 3 * sr, sr, seed=1)
    row = ManifestRow(path=str(tmp_path / "long.wav"), label="a", start=1.0, end=1.5)
    x, _ = AudioDataset([row], labels=["a"], sr=sr)[0]
    np.testing.assert_array_equal(x.numpy(), y[sr:sr + sr // 2])
    x, _ = AudioDataset([row], labels=["a"], sr=sr, clip_seconds=1.0)[0]
    assert x.shape == (sr,) and x[sr // 2:].eq(0).all()
    whole = ManifestRow(path=str(tmp_path / "long.wav"), label="a")
    x, _ = AudioDataset([whole], labels=["a"], sr=sr, clip_seconds=0.25)[0]
    assert x.shape == (sr // 4,)


def test_transform_deterministic_across_workers_and_epochs(rows):
    ds = AudioDataset(rows, labels=["a", "b"], sr=8000, clip_seconds=0.5, transform=add_noise, seed=7)
    single = [ds[i][0] for i in range(len(ds))]
    loader = DataLoader(ds, batch_size=2, num_workers=2, shuffle=False)
    batched = torch.cat([b[0] for b in loader])
    assert torch.equal(batched, torch.stack(single))
    ds.set_epoch(1)
    assert not torch.equal(ds[0][0], single[0])
    ds.set_epoch(0)
    assert torch.equal(ds[0][0], single[0])
    g1, g2 = item_generator(7, 0, 0), item_generator(7, 1, 0)
    assert not torch.equal(torch.rand(4, generator=g1), torch.rand(4, generator=g2))


@pytest.mark.parametrize("condition", ["mic", "noise+mic", "all", "one of"])
def test_a_batch_is_augmented_at_once_as_its_items_one_by_one(rows, condition):
    from roomtone.prepare.conditions import make_condition
    from roomtone.prepare.transforms import Gain, OneOf, SimulateMicrophone

    if condition == "one of":
        t = OneOf([Gain(min_gain_db=-6, max_gain_db=6, sr=8000), SimulateMicrophone(["phone", "laptop"], sr=8000)],
                  p=0.8)
    else:
        t = make_condition(condition, sr=8000, p=0.7)
    ds = AudioDataset(rows, labels=["a", "b"], sr=8000, clip_seconds=0.5, transform=t, seed=3)
    ds.set_epoch(2)
    order = [4, 0, 5, 2, 1, 3]
    one_by_one = [ds[i] for i in order]
    batch = ds.__getitems__(order)
    assert [y for _, y in batch] == [y for _, y in one_by_one]
    for (a, _), (b, _) in zip(batch, one_by_one, strict=True):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)  # float summation order only
    assert any(not torch.equal(a, ds.load(i)) for (a, _), i in zip(batch, order, strict=True))  # it augmented
    loader = DataLoader(ds, batch_sampler=[order[:3], order[3:]], collate_fn=collate_padded)
    x = torch.cat([b[0] for b in loader])
    assert torch.equal(x, torch.stack([a for a, _ in batch]))  # the DataLoader fetches through __getitems__
    assert torch.equal(x, torch.cat([b[0] for b in loader]))  # same seed, epoch and batches: same bytes


def test_collate_padded(rows):
    ds = AudioDataset(rows, labels=["a", "b"], sr=16000)
    x, y, lengths = collate_padded([ds[0], ds[3]])
    assert x.shape == (2, 5500) and lengths.tolist() == [4000, 5500] and y.tolist() == [0, 1]
    assert x[0, 4000:].eq(0).all() and torch.equal(x[0, :4000], ds[0][0])
    feats = [(torch.ones(3, 5), 0), (torch.ones(3, 2), 1)]
    f, _, fl = collate_padded(feats)
    assert f.shape == (2, 3, 5) and fl.tolist() == [5, 2] and f[1, :, 2:].eq(0).all()
    with pytest.raises(DataError, match="leading shape"):
        collate_padded([(torch.ones(3, 5), 0), (torch.ones(4, 5), 0)])


def test_class_balanced_sampler_balances_and_is_reproducible():
    rows = [ManifestRow(path=f"/{k}", label="a") for k in range(90)] + \
           [ManifestRow(path=f"/b{k}", label="b") for k in range(10)]
    s = class_balanced_sampler(rows, generator=torch.Generator().manual_seed(0), num_samples=4000)
    drawn = list(s)
    c = Counter(rows[i].label for i in drawn)
    assert abs(c["a"] - c["b"]) < 300  # ~2000 each (unbalanced data would give 3600/400)
    again = list(class_balanced_sampler(rows, generator=torch.Generator().manual_seed(0), num_samples=4000))
    assert drawn == again
    with pytest.raises(ParameterError, match="torch.Generator"):
        class_balanced_sampler(rows, generator=0)


def test_errors(rows):
    with pytest.raises(DataError, match="not in labels"):
        AudioDataset(rows, labels=["a"], sr=8000)
    with pytest.raises(ParameterError, match="sr=0"):
        AudioDataset(rows, labels=["a", "b"], sr=0)
    with pytest.raises(ParameterError, match="clip_seconds"):
        AudioDataset(rows, labels=["a", "b"], sr=None, clip_seconds=1.0)


def test_from_prepared_dir(tmp_path, rows):
    from roomtone.prepare.pipeline import prepare

    out = prepare(tmp_path, tmp_path / "prep", label_pattern=r"(?P<label>\d)\.wav", valid=0.0, test=0.34, sr=8000,
                  clip_seconds=0.25, html=False)
    ds = AudioDataset.from_dir(out, split="train")
    assert ds.sr == 8000 and ds.clip_seconds == 0.25 and ds[0][0].shape == (2000,)
    assert len(ds) + len(AudioDataset.from_dir(out, split="test")) == 6
