"""The main job end to end: ``run_demo(out_dir)`` is what ``roomtone demo`` runs.

data (embedded synthetic events, FSDD, or the user's folder) -> audit + grouped split (``prepare``)
-> feasibility report and quick baseline (``expect``) -> VGG baseline trained with noise, room and
microphone simulation on the fly (``train``) -> test accuracy clean and under corruption (``evaluate``)
-> ONNX export -> one HTML report. Every step writes under ``out_dir``::

    out_dir/data/        the generated dataset (synthetic only)
    out_dir/prepared/    manifest.csv, prepare.json, audit outputs
    out_dir/expect/      feasibility numbers (quick baseline, event lengths)
    out_dir/run/         the training run (config.yaml, checkpoints, metrics.jsonl, evaluations)
    out_dir/model.onnx   waveform in, class scores out
    out_dir/report/      report.html
    out_dir/demo.json    the numbers of the summary table

A step whose module is not available is reported as ``missing`` (and the steps that need its output
as ``skipped``); it is never skipped silently.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from roomtone.errors import MissingDependencyError, ParameterError, RoomtoneError
from roomtone.files import atomic_write_json

DATASETS = ("synthetic", "fsdd")
CORRUPTIONS = ("noise", "room", "mic", "all")

# Sizes: the full demo is tuned to finish in <= 5 minutes on 2 CPU cores; quick is a CI smoke run.
# max_steps caps the recipe's step count on the embedded set (the demo promises a few minutes) and always
# with --quick; a user folder (--data) trains the recipe's full budget unless --quick.
FULL = {"n_per_class": 64, "n_sessions": 8, "max_steps": 240, "examples_per_class": 1, "corruptions": CORRUPTIONS}
QUICK = {"n_per_class": 24, "n_sessions": 4, "max_steps": 40, "examples_per_class": 1, "corruptions": ("all",)}


@dataclass
class Step:
    """What one step did: ``status`` is ``ok``, ``missing`` (module not built), ``skipped`` or ``failed``."""

    name: str
    status: str = "pending"
    seconds: float = 0.0
    detail: str = ""
    cpu_seconds: float = 0.0  # CPU time of this process (all threads) during the step


@dataclass
class DemoResult:
    """The demo's numbers and paths. Accuracies are fractions in [0, 1]; None when the step did not run."""

    out_dir: Path
    dataset: str
    data_dir: Path | None = None
    prepared_dir: Path | None = None
    run_dir: Path | None = None
    report: Path | None = None
    onnx: Path | None = None
    labels: list[str] = field(default_factory=list)
    n_examples: dict[str, int] = field(default_factory=dict)  # per split
    chance_accuracy: float | None = None
    baseline_accuracy: float | None = None
    test_accuracy: float | None = None
    test_macro_f1: float | None = None
    corrupted_accuracy: dict[str, float] = field(default_factory=dict)
    train_seconds: float | None = None
    total_seconds: float = 0.0
    steps: list[Step] = field(default_factory=list)

    @property
    def missing(self) -> list[str]:
        """Names of the steps whose module is not available."""
        return [s.name for s in self.steps if s.status == "missing"]

    @property
    def beats_baseline(self) -> bool | None:
        if self.test_accuracy is None or self.baseline_accuracy is None:
            return None
        return self.test_accuracy > self.baseline_accuracy

    def to_dict(self) -> dict:
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, Path):
                d[k] = str(v)
        d["missing"] = self.missing
        d["beats_baseline"] = self.beats_baseline
        return d


class _Missing(Exception):
    """A roomtone module that a step needs is not available."""


def _require(module: str, *names: str):
    """Import ``names`` from ``module``; raise _Missing naming it when the module or a name is absent."""
    import importlib

    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("roomtone"):
            raise _Missing(f"{exc.name} is not available in this build") from exc
        raise
    out = []
    for n in names:
        try:
            out.append(getattr(mod, n))
        except AttributeError as exc:
            raise _Missing(f"{module}.{n} is not available in this build") from exc
        except ModuleNotFoundError as exc:  # a lazy attribute whose module is absent
            if not (exc.name and exc.name.startswith("roomtone")):
                raise
            raise _Missing(f"{module}.{n}: {exc.name} is not available in this build") from exc
    return out[0] if len(out) == 1 else tuple(out)


class _Runner:
    """Runs steps in order, times them, and records ok/missing/skipped/failed without stopping the demo."""

    def __init__(self, result: DemoResult, console, total: int):
        self.result, self.console, self.total = result, console, total

    def __call__(self, name: str, fn: Callable[[], str | None], *, needs: tuple[str, ...] = ()) -> bool:
        step = Step(name)
        self.result.steps.append(step)
        index = len(self.result.steps)
        done = {s.name: s.status for s in self.result.steps}
        blocked = [n for n in needs if done.get(n) != "ok"]
        if blocked:
            step.status, step.detail = "skipped", f"needs {', '.join(blocked)}"
            self._say(index, step)
            return False
        if self.console is not None:
            self.console.rule(f"{index}/{self.total} {name}", style="bold")
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            step.detail = fn() or ""
            step.status = "ok"
        except (_Missing, MissingDependencyError) as exc:
            step.status, step.detail = "missing", str(exc)
        except RoomtoneError as exc:
            step.status, step.detail = "failed", f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # a bug in a step: keep going, but say it loudly
            step.status, step.detail = "failed", f"{type(exc).__name__}: {exc}"
            if self.console is not None:
                self.console.print(traceback.format_exc(), markup=False, highlight=False)
        step.seconds = time.perf_counter() - t0
        step.cpu_seconds = time.process_time() - c0
        self._say(index, step)
        return step.status == "ok"

    def _say(self, index: int, step: Step) -> None:
        if self.console is None:
            return
        style = {"ok": "green", "missing": "bold yellow", "skipped": "yellow", "failed": "bold red"}[step.status]
        from rich.markup import escape

        self.console.print(f"[{style}]{step.status}[/] {escape(step.name)} ({step.seconds:.1f} s) "
                           f"{escape(step.detail)}", highlight=False)


def _check(dataset: str, data, out_dir) -> None:
    if dataset not in DATASETS:
        raise ParameterError(f"dataset={dataset!r} is not known; choose one of {list(DATASETS)}")
    if data is not None and not Path(data).exists():
        raise ParameterError(f"data={str(data)!r} does not exist; give a folder of recordings or a manifest CSV")
    if Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise ParameterError(f"out_dir={str(out_dir)!r} is a file; give a folder")


def run_demo(
    out_dir: str | os.PathLike,
    *,
    data: str | os.PathLike | None = None,
    dataset: str = "synthetic",
    quick: bool = False,
    seed: int = 0,
    label_pattern: str | None = None,
    epochs: int | None = None,
    console=None,
) -> DemoResult:
    """Run the whole workflow on one dataset and return its numbers (also written to ``out_dir/demo.json``).

    Args:
        out_dir: folder for everything the demo writes (created; reruns reuse the generated dataset).
        data: a folder of recordings (label = parent folder, or ``label_pattern``) or a manifest CSV;
            with ``dataset="fsdd"`` the folder of the FSDD recordings. None with ``"synthetic"``:
            the embedded dataset is generated.
        dataset: ``"synthetic"`` (embedded, no download) or ``"fsdd"`` (Free Spoken Digit Dataset).
        quick: a reduced-size smoke run (small data, 40 optimizer steps, one corruption).
        seed: seeds the dataset, the split, the augmentation and the training.
        label_pattern: regex with ``(?P<label>...)`` and optionally ``(?P<group>...)`` on file names.
        epochs: override the recipe's number of training epochs (and lift the demo's step cap).
        console: a ``rich.console.Console`` for progress and step lines; None is silent.
    """
    _check(dataset, data, out_dir)
    size = {**(QUICK if quick else FULL), "quick": quick}
    if epochs is not None:
        if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
            raise ParameterError(f"epochs={epochs!r} must be a positive integer")
        size["epochs"] = epochs
        size["max_steps"] = None
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = DemoResult(out_dir=out_dir, dataset=dataset if data is None or dataset == "fsdd" else "folder")
    run = _Runner(result, console, total=7)
    t_start = time.perf_counter()
    state: dict = {}

    run("data", lambda: _step_data(result, state, data=data, dataset=dataset, size=size, seed=seed, console=console))
    run("prepare", lambda: _step_prepare(result, state, seed=seed, label_pattern=label_pattern, console=console),
        needs=("data",))
    run("expect", lambda: _step_expect(result, state, size=size, seed=seed, console=console), needs=("prepare",))
    run("train", lambda: _step_train(result, state, size=size, seed=seed, console=console), needs=("prepare",))
    run("evaluate", lambda: _step_evaluate(result, state, size=size, seed=seed), needs=("train",))
    run("export", lambda: _step_export(result, state), needs=("train",))
    run("report", lambda: _step_report(result, state), needs=("prepare",))
    result.total_seconds = time.perf_counter() - t_start
    atomic_write_json(out_dir / "demo.json", result.to_dict())
    return result


# ---- steps -------------------------------------------------------------------------------------------------

def _step_data(result, state, *, data, dataset, size, seed, console) -> str:
    if dataset == "fsdd":
        fsdd = _require("roomtone.prepare.datasets.fsdd", "fsdd")
        source = fsdd(root=data) if data is not None else fsdd()
        state["source"] = Path(source)
        result.data_dir = Path(source)
        return f"FSDD at {source}"
    if data is not None:
        state["source"] = Path(data)
        result.data_dir = Path(data)
        return f"your data at {data}"
    from roomtone.prepare.datasets.synthetic import CLASSES, synthetic_events

    target = result.out_dir / "data"
    kw = {"seed": seed, "n_per_class": size["n_per_class"], "n_sessions": size["n_sessions"], "sr": 16000,
          "clip_seconds": 1.0}
    total = len(CLASSES) * size["n_per_class"]
    if console is None:
        manifest = synthetic_events(target, overwrite=True, **kw)
    else:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(TextColumn("synthetic events"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, transient=True) as bar:
            task = bar.add_task("generate", total=total)
            manifest = synthetic_events(target, overwrite=True, progress=lambda d, t: bar.update(task, completed=d), **kw)
    state["source"] = manifest
    result.data_dir = target
    return f"{total} clips, {len(CLASSES)} classes, {size['n_sessions']} sessions -> {target}"


def _count_inputs(src: Path) -> int | None:
    """Files the audit will read, for the progress bar (None when unknown)."""
    from roomtone.prepare.manifest import read_manifest

    try:
        if src.suffix.lower() == ".csv" or (src / "manifest.csv").exists():
            return len({r.path for r in read_manifest(src)})
        if src.is_dir():
            from roomtone.prepare.folder import list_audio_files

            return len(list_audio_files(src))
    except RoomtoneError:
        return None
    return None


def _step_prepare(result, state, *, seed, label_pattern, console) -> str:
    prepare = _require("roomtone.prepare.pipeline", "prepare")
    from roomtone.prepare.manifest import labels_of, read_manifest

    kw = {"seed": seed, "overwrite": True, "console": console}
    if result.dataset == "synthetic":  # 8 sessions: 5 train, 1 valid, 2 test (a steadier test accuracy)
        kw.update(valid=0.125, test=0.25, clip_seconds=1.0)
    if label_pattern is not None:
        kw["label_pattern"] = label_pattern
    total = None
    if console is not None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        total = _count_inputs(Path(state["source"]))
        bar = Progress(TextColumn("audit"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                       console=console, transient=True)
        with bar:
            task = bar.add_task("audit", total=total)
            prepared = Path(prepare(state["source"], result.out_dir / "prepared",
                                    progress=lambda n: bar.advance(task, n), **kw))
    else:
        prepared = Path(prepare(state["source"], result.out_dir / "prepared", **{**kw, "console": None}))
    rows = read_manifest(prepared)
    result.prepared_dir = prepared
    result.labels = labels_of(rows)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.split or "unassigned"] = counts.get(r.split or "unassigned", 0) + 1
    result.n_examples = counts
    state["prepared"] = prepared
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))


def _step_expect(result, state, *, size, seed, console) -> str:
    expect = _require("roomtone.expect.run", "expect")
    res = expect(state["prepared"], result.out_dir / "expect", seed=seed, progress=console is not None,
                 examples_per_class=size["examples_per_class"],   # analyses the recipe's front end
                 transfer=result.dataset != "synthetic")   # the embedded set shows training with simulated rooms
    state["expect"] = res
    state["recipe"] = res["recipe"]
    base = res["baseline"]
    main = base.get("holdout") or base.get("grouped_cv")
    result.baseline_accuracy = float(main["accuracy"])
    result.chance_accuracy = float(main["chance"]["majority"])
    where = "test split" if base.get("holdout") else "grouped cross-validation"
    return (f"quick baseline {result.baseline_accuracy:.1%} on the {where} (chance {result.chance_accuracy:.1%}); "
            f"recipe: {res['recipe'].summary()}; feasibility report {res['report']}")


def _train_recipe(result, state, size, seed):
    """The data's recipe with the demo's overrides (recorded as such): on the embedded set, training with
    simulated rooms, noise and microphones (what the demo shows); the step cap of ``size`` on the embedded
    set and with --quick; ``epochs`` when given."""
    overrides: dict = {"seed": seed}
    if result.dataset == "synthetic":
        overrides["augment.condition"] = "all"
    if size.get("epochs"):
        overrides["epochs"] = size["epochs"]
    rec = state["recipe"]
    cap = size.get("max_steps") if (result.dataset == "synthetic" or size.get("quick")) else None
    if cap and cap < (rec.config.max_steps or cap + 1):
        overrides["max_steps"] = cap
    return rec.with_overrides(overrides)


def _step_train(result, state, *, size, seed, console) -> str:
    fit = _require("roomtone.train", "fit")
    rec = _train_recipe(result, state, size, seed)
    state["recipe"] = rec
    cfg = rec.config
    run_dir = result.out_dir / "run"
    if (run_dir / "config.yaml").exists() or (run_dir / "last.pt").exists():
        import shutil

        shutil.rmtree(run_dir)  # the demo's own earlier run: a rerun trains afresh
    t0 = time.perf_counter()
    summary = fit(cfg, data_dir=state["prepared"], out_dir=run_dir, progress=console is not None)
    rec.to_yaml(run_dir / "recipe.yaml")
    result.train_seconds = float(summary.get("train_seconds") or (time.perf_counter() - t0))
    result.run_dir = run_dir
    state["run"] = run_dir
    state["fit"] = summary
    return (f"{summary.get('global_step')} steps ({summary.get('epochs_run')} epochs), "
            f"best epoch {summary.get('best_epoch')}, "
            f"{result.train_seconds:.0f} s -> {run_dir}")


def _step_evaluate(result, state, *, size, seed) -> str:
    evaluate = _require("roomtone.train", "evaluate")
    out = result.out_dir / "run" / "eval"
    clean = evaluate(state["run"], data_dir=state["prepared"], split="test", seed=seed, out=out / "test_clean.json")
    result.test_accuracy = float(clean["accuracy"])
    result.test_macro_f1 = float(clean["macro_f1"])
    state["eval"] = {"clean": clean}
    for name in size["corruptions"]:
        m = evaluate(state["run"], data_dir=state["prepared"], split="test", corrupt=name, seed=seed,
                     out=out / f"test_{name}.json")
        result.corrupted_accuracy[name] = float(m["accuracy"])
        state["eval"][name] = m
    parts = [f"clean {result.test_accuracy:.1%}"] + [f"{k} {v:.1%}" for k, v in result.corrupted_accuracy.items()]
    return "test accuracy " + ", ".join(parts)


def _step_export(result, state) -> str:
    export_model = _require("roomtone.train", "export_model")
    info = export_model(state["run"], format="onnx", out=result.out_dir / "model.onnx", overwrite=True)
    result.onnx = Path(info["path"])
    diff = info.get("max_abs_diff")
    return f"{result.onnx}" + ("" if diff is None else f" (max |onnxruntime - torch| = {diff:.1e})")


def _robustness(result) -> dict | None:
    """The demo model's row of a robustness matrix (trained with ``all``; tested clean and corrupted)."""
    if result.test_accuracy is None:
        return None
    import numpy as np

    from roomtone.expect.robustness import summarise

    tests = ["clean", *result.corrupted_accuracy]
    acc = np.array([[result.test_accuracy, *result.corrupted_accuracy.values()]])
    rob = summarise(acc, train_conditions=["all"], test_conditions=tests, reference="all")
    rob["model"] = "CNN (VGG)"
    return rob


def _step_report(result, state) -> str:
    write_report = _require("roomtone.expect.report", "write_report")
    res = state.get("expect") or {}
    notes = []
    if result.test_accuracy is not None:
        verdict = {True: "beats", False: "does not beat", None: "cannot be compared with"}[result.beats_baseline]
        base = "n/a" if result.baseline_accuracy is None else f"{result.baseline_accuracy:.1%}"
        rec = state.get("recipe")
        cond = rec.config.augment.condition if rec is not None else None
        what = rec.summary() if rec is not None else "the recipe"
        notes.append(f"CNN ({what}; trained with simulated '{cond or 'clean'}' conditions) test accuracy "
                     f"{result.test_accuracy:.1%} clean; quick baseline {base}: the CNN {verdict} it. "
                     + "; ".join(f"under {k}: {v:.1%}" for k, v in result.corrupted_accuracy.items()))
    if result.train_seconds is not None:
        notes.append(f"training took {result.train_seconds:.0f} s; run folder {result.run_dir}")
    for s in result.steps:
        if s.status in ("missing", "failed", "skipped"):
            notes.append(f"step {s.name} {s.status}: {s.detail}")
    if res.get("report") and not res.get("examples"):
        notes.append(f"listening examples are in the feasibility report: {res['report']}")
    rec = state.get("recipe")
    table = None
    if rec is not None:
        from roomtone.recipe.report import recipe_html

        table = recipe_html(rec, out=str(result.out_dir / "run"))
    model = None
    if state.get("eval", {}).get("clean"):
        from roomtone.train import read_metrics

        model = {"name": "CNN (VGG)", "evaluations": state["eval"],
                 "history": read_metrics(state["run"]) if (Path(state["run"]) / "metrics.jsonl").exists() else []}
    path = write_report(result.out_dir / "report", title=f"roomtone demo: {result.dataset}", audit=res.get("audit"),
                        model=model,
                        baseline=res.get("baseline"), events=res.get("events"),
                        learning_curve=res.get("learning_curve"), robustness=_robustness(result),
                        examples=res.get("examples"), notes=notes, recipe_html=table,
                        frontend_settings=None if rec is None else rec.config.to_dict()["frontend"])
    result.report = Path(path)
    return str(path)
