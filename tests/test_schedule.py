"""Schedules and the time budget (``TrainConfig.max_seconds``): the cut's arithmetic, a re-planned schedule equal to
one planned for the new total from the start, and the fit loop keeping to its seconds."""

from __future__ import annotations

import pytest
import torch
from test_train import make_tones, tiny_config

from roomtone.config import TrainConfig
from roomtone.errors import ParameterError
from roomtone.train.schedule import make_scheduler, steps_in_time


@pytest.mark.parametrize("schedule", ["onecycle", "cosine"])
def test_schedules_survive_very_short_runs(schedule):
    """Runs of 1..12 optimizer steps (max_steps, tiny datasets): no ZeroDivisionError, no stepping past the
    schedule, a positive learning rate for every step taken, never above the configured lr."""
    for total in range(1, 13):
        model = torch.nn.Linear(2, 2)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        cfg = TrainConfig(schedule=schedule, lr=1e-3)
        sched = make_scheduler(opt, cfg, total, max(1, total // 2))
        for _ in range(total):
            lr = opt.param_groups[0]["lr"]  # the rate this step uses
            assert 0 < lr <= 1e-3 * (1 + 1e-9), (schedule, total, lr)
            opt.step()
            sched.step()


def test_steps_in_time_counts_whole_epochs_then_a_partial_one():
    # 60 s left; an epoch = 10 steps of 1 s + 2 s validation = 12 s: 5 whole epochs, nothing left for a partial one
    kw = dict(done=20, step_s=1.0, valid_s=2.0, steps_per_epoch=10, total_steps=1000)
    assert steps_in_time(100.0, spent_s=40.0, **kw) == 20 + 50
    # 65 s left: 5 epochs (60 s) + 3 steps and their validation pass (5 s)
    assert steps_in_time(105.0, spent_s=40.0, **kw) == 20 + 53
    assert steps_in_time(1e9, spent_s=40.0, **kw) == 1000        # it fits: the planned steps, never more
    assert steps_in_time(30.0, spent_s=40.0, **kw) == 20         # the time is spent: stop here
    assert steps_in_time(42.5, spent_s=40.0, **kw) == 20         # 2.5 s: a step and its validation do not fit


@pytest.mark.parametrize("schedule", ["onecycle", "cosine"])
def test_a_replanned_schedule_is_the_one_planned_for_its_total(schedule):
    """Cut from 100 to 60 steps after 30: lr (and one-cycle's momentum) at every later step are those of a run
    planned for 60 steps from the start, in every parameter group (a backbone at a tenth of the lr)."""
    cfg = TrainConfig(schedule=schedule, lr=2e-3)

    def optimizer():
        a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
        return torch.optim.AdamW([{"params": a.parameters(), "lr": 2e-3}, {"params": b.parameters(), "lr": 2e-4}])

    ref_opt, cut_opt = optimizer(), optimizer()
    ref = make_scheduler(ref_opt, cfg, 60, 10)
    cut = make_scheduler(cut_opt, cfg, 100, 10)
    for _ in range(30):
        for opt, sched in ((ref_opt, ref), (cut_opt, cut)):
            opt.step()
            sched.step()
    assert cut_opt.param_groups[0]["lr"] != pytest.approx(ref_opt.param_groups[0]["lr"])
    cut = make_scheduler(cut_opt, cfg, 60, 10, done_steps=30)
    for _ in range(30):
        for g_ref, g_cut in zip(ref_opt.param_groups, cut_opt.param_groups, strict=True):
            assert g_cut["lr"] == pytest.approx(g_ref["lr"], rel=1e-12)
            assert g_cut["betas"] == pytest.approx(g_ref["betas"], rel=1e-12)
        for opt, sched in ((ref_opt, ref), (cut_opt, cut)):
            opt.step()
            sched.step()


def test_fit_keeps_to_max_seconds_and_is_unchanged_when_it_fits(tmp_path):
    from roomtone.train import fit, read_metrics

    data = make_tones(tmp_path / "data", per_class=(16, 4, 6))  # 48 train clips, batch 6: 8 steps per epoch
    cfg = tiny_config(epochs=6, mixup=0.0, checkpoint_every=0)
    # a budget spent by the end of the second epoch (the first is never the rate): the run ends there
    s = fit(cfg.replace(max_seconds=1e-3), data_dir=data, out_dir=tmp_path / "cut", progress=False)
    assert (s["global_step"], s["total_steps"], s["epochs_run"]) == (16, 16, 2)
    assert TrainConfig.from_yaml(tmp_path / "cut" / "config.yaml").max_seconds == 1e-3
    # a budget it fits in: the same run, record for record and weight for weight, as no budget at all
    a = fit(cfg, data_dir=data, out_dir=tmp_path / "a", progress=False)
    b = fit(cfg.replace(max_seconds=1e6), data_dir=data, out_dir=tmp_path / "b", progress=False)
    assert a["global_step"] == b["global_step"] == b["total_steps"] == 48

    def records(run):
        return [{k: v for k, v in r.items() if k != "time_s"} for r in read_metrics(tmp_path / run)]

    assert records("a") == records("b")
    wa = torch.load(tmp_path / "a" / "last.pt", weights_only=True)["model"]
    wb = torch.load(tmp_path / "b" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    with pytest.raises(ParameterError, match="max_seconds"):
        tiny_config(max_seconds=0)


def scripted_clock(monkeypatch, *, fail_at: int | None = None, late_step_s: float = 1.0) -> None:
    """The fit loop's clock scripted: the first epoch's 8 steps take 18 s, the second's 1 s each, later steps
    ``late_step_s`` each, every validation pass 2 s. ``fail_at``: the step that raises (an interrupted run)."""
    import roomtone.train.loop as loop

    clock = {"t": 0.0, "steps": 0}
    real_validate, real_stop = loop._validate, loop.ComputeMeter.stop

    def validate(*a, **k):
        clock["t"] += 2.0
        return real_validate(*a, **k)

    def stop(self):
        clock["steps"] += 1
        if clock["steps"] == fail_at:
            raise KeyboardInterrupt
        clock["t"] += 18.0 / 8 if clock["steps"] <= 8 else 1.0 if clock["steps"] <= 16 else late_step_s
        real_stop(self)

    class Clock:
        @staticmethod
        def perf_counter():
            return clock["t"]

    monkeypatch.setattr(loop, "_validate", validate)
    monkeypatch.setattr(loop, "time", Clock)
    monkeypatch.setattr(loop.ComputeMeter, "stop", stop)


@pytest.mark.parametrize("schedule", ["onecycle", "cosine"])
def test_fit_cuts_to_the_measured_rate_and_resumes_the_cut_run(tmp_path, monkeypatch, schedule):
    """45 s; 20 s spent by the first epoch, 10 s by the second (8 s of steps, 2 s validation): after it the run is
    cut to one more whole epoch (10 s) and 3 steps with their validation (5 s). Interrupted in the third epoch and
    resumed (on the real clock: it only ever cuts), it ends on the same step with the same weights."""
    from roomtone.train import fit

    data = make_tones(tmp_path / "data", per_class=(16, 4, 6))  # 8 steps per epoch
    cfg = tiny_config(epochs=6, mixup=0.0, checkpoint_every=0, max_seconds=45.0, schedule=schedule)
    with monkeypatch.context() as m:
        scripted_clock(m)
        s = fit(cfg, data_dir=data, out_dir=tmp_path / "run", progress=False)
    assert (s["total_steps"], s["global_step"], s["epochs_run"]) == (16 + 8 + 3, 27, 4)
    assert s["train_seconds"] == pytest.approx(45.0)
    with monkeypatch.context() as m:
        scripted_clock(m, fail_at=20)
        with pytest.raises(KeyboardInterrupt):
            fit(cfg, data_dir=data, out_dir=tmp_path / "again", progress=False)
    r = fit(cfg, data_dir=data, out_dir=tmp_path / "again", progress=False, resume=True)
    assert (r["total_steps"], r["global_step"]) == (27, 27)
    wa = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["model"]
    wb = torch.load(tmp_path / "again" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_fit_plans_a_run_that_slows_down_at_its_latest_pace(tmp_path, monkeypatch):
    """80 s; epochs of 20 s, 10 s (1 s steps), then 18 s (2 s steps). After the second the 48 planned steps fit; after
    the third (48 s spent) the mean pace (1.5 s a step) would plan 41 steps, re-plan 39 after the fourth and end at
    82 s. The latest pace plans 38: one more epoch (18 s) and 6 steps with their validation (14 s), ending at 80 s."""
    from roomtone.train import fit

    data = make_tones(tmp_path / "data", per_class=(16, 4, 6))  # 8 steps per epoch
    cfg = tiny_config(epochs=6, mixup=0.0, checkpoint_every=0, max_seconds=80.0)
    scripted_clock(monkeypatch, late_step_s=2.0)
    s = fit(cfg, data_dir=data, out_dir=tmp_path / "run", progress=False)
    assert (s["total_steps"], s["global_step"], s["epochs_run"]) == (38, 38, 5)
    assert s["train_seconds"] == pytest.approx(80.0)
