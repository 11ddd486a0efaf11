"""Leak-free train/valid/test splits: stratified by label, grouped by ``group``.

Rules (in order):

1. A row whose ``split`` is already set keeps it (a given split column, or ``test_pattern``).
   Splits present in the given column receive no new rows: when some rows are given ``test``, the
   unassigned rows are shared between train and valid only (``valid`` stays a fraction of them).
2. ``test_groups`` / ``valid_groups`` (leave-groups-out) put every unassigned row of the named groups
   there; the remaining rows go to train (plus valid by fraction when ``valid_groups`` is None).
3. Otherwise unassigned rows are split by fraction. The unit that moves is the *group*
   (``group_split=True`` and a non-empty ``group``), else the file: segments of one file never
   straddle two splits. Units are visited largest first (ties in a seeded random order) and each goes
   to the split whose per-label counts fall furthest below their targets (greedy stratification).

Reproducible: the same rows and seed give the same splits. Warnings (:class:`SplitWarning`) are
issued when a class is missing from a split or a group lies on two sides of a given split.
"""

from __future__ import annotations

import warnings
from collections import Counter, defaultdict
from collections.abc import Iterator

import numpy as np

from roomtone.errors import DataError, ParameterError
from roomtone.prepare.manifest import ManifestRow, labels_of

SPLITS = ("train", "valid", "test")


class SplitWarning(UserWarning):
    """A split is missing a class, is empty, or shares a group with another split."""


def _unit(row: ManifestRow, group_split: bool) -> str:
    return f"g:{row.group}" if group_split and row.group else f"f:{row.path}"


def _check_fraction(name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ParameterError(f"{name}={value!r} must be a fraction in [0, 1)")


def assign_splits(
    rows: list[ManifestRow],
    *,
    valid: float = 0.1,
    test: float = 0.2,
    seed: int = 0,
    group_split: bool = True,
    test_groups: list[str] | None = None,
    valid_groups: list[str] | None = None,
    warn: bool = True,
) -> list[ManifestRow]:
    """Give every row a split in ``train``/``valid``/``test`` (see the module docstring for the rules).

    Args:
        rows: manifest rows; rows with a split set keep it.
        valid, test: fractions of the unassigned rows (in [0, 1), sum < 1).
        seed: orders groups of equal size; same seed -> same split.
        group_split: keep each ``group`` on one side (files with an empty group are their own unit).
        test_groups, valid_groups: leave-groups-out: these groups go to test / valid entirely.
        warn: issue :class:`SplitWarning` for missing classes and cross-split groups.

    Returns:
        New rows, same order, every ``split`` set.
    """
    _check_fraction("valid", valid)
    _check_fraction("test", test)
    if valid + test >= 1.0:
        raise ParameterError(f"valid={valid} + test={test} must be < 1 so that train is not empty")
    if not rows:
        raise DataError("no rows to split")
    given = {r.split for r in rows if r.split}
    bad = given - set(SPLITS)
    if bad:
        raise DataError(f"unknown split value(s) {sorted(bad)} in the manifest; allowed: {list(SPLITS)}")
    out = list(rows)
    todo = [i for i, r in enumerate(rows) if not r.split]
    groups_present = {r.group for r in rows if r.group}
    for name, gl in (("test_groups", test_groups), ("valid_groups", valid_groups)):
        missing = set(gl or ()) - groups_present
        if missing:
            raise ParameterError(f"{name}={sorted(gl)}: group(s) {sorted(missing)} not in the data; "
                                 f"groups are {sorted(groups_present)[:20]}")
    if test_groups is not None or valid_groups is not None:
        tg, vg = set(test_groups or ()), set(valid_groups or ())
        if tg & vg:
            raise ParameterError(f"group(s) {sorted(tg & vg)} are in both test_groups and valid_groups")
        rest = []
        for i in todo:
            g = rows[i].group
            if g in tg:
                out[i] = rows[i].with_split("test")
            elif g in vg:
                out[i] = rows[i].with_split("valid")
            else:
                rest.append(i)
        todo = rest
        given = given | ({"test"} if tg else set()) | ({"valid"} if vg else set())
    if todo:
        fracs = {"valid": 0.0 if "valid" in given else valid, "test": 0.0 if "test" in given else test}
        fracs["train"] = 1.0 - fracs["valid"] - fracs["test"]
        assignment = _greedy_stratified([rows[i] for i in todo], fracs=fracs, seed=seed, group_split=group_split)
        for i, s in zip(todo, assignment, strict=True):
            out[i] = rows[i].with_split(s)
    if warn:
        for msg in split_warnings(out, expect={s for s in SPLITS if s == "train" or (
                (valid if s == "valid" else test) > 0 or s in given)}):
            warnings.warn(msg, SplitWarning, stacklevel=2)
    return out


def _greedy_stratified(rows: list[ManifestRow], *, fracs: dict[str, float], seed: int,
                       group_split: bool) -> list[str]:
    labels = labels_of(rows)
    li = {lab: k for k, lab in enumerate(labels)}
    units: dict[str, np.ndarray] = {}
    members: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        u = _unit(r, group_split)
        if u not in units:
            units[u] = np.zeros(len(labels))
        units[u][li[r.label]] += 1
        members[u].append(i)
    names = sorted(units)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(names))
    # largest first; seeded random order among equal sizes (stable sort keeps the permutation)
    sizes = np.array([units[names[k]].sum() for k in order])
    order = order[np.argsort(-sizes, kind="stable")]
    splits = [s for s in SPLITS if fracs[s] > 0]
    totals = sum(units.values())
    target = {s: fracs[s] * totals for s in splits}
    count = {s: np.zeros(len(labels)) for s in splits}
    scale = 1.0 / np.maximum(totals, 1.0)
    # the overall size of each split counts as much as all labels together (keeps tiny splits non-empty)
    n_total, weight = float(totals.sum()), float(len(labels))
    result = [""] * len(rows)
    for k in order:
        vec = units[names[k]]
        size = float(vec.sum())
        best, best_cost = splits[0], None
        for s in splits:
            before = ((count[s] - target[s]) * scale) ** 2
            after = ((count[s] + vec - target[s]) * scale) ** 2
            tot, tgt = float(count[s].sum()), fracs[s] * n_total
            cost = float((after - before).sum()) + weight * (
                ((tot + size - tgt) / n_total) ** 2 - ((tot - tgt) / n_total) ** 2)
            if best_cost is None or cost < best_cost - 1e-12:
                best, best_cost = s, cost
        count[best] += vec
        for i in members[names[k]]:
            result[i] = best
    return result


def split_counts(rows: list[ManifestRow]) -> dict[str, dict[str, int]]:
    """``{split: {label: count}}`` for every split present, labels in class order (zeros included)."""
    labels = labels_of(rows)
    c: dict[str, Counter] = defaultdict(Counter)
    for r in rows:
        c[r.split or "unassigned"][r.label] += 1
    order = [s for s in (*SPLITS, "unassigned") if s in c]
    return {s: {lab: int(c[s][lab]) for lab in labels} for s in order}


MIN_EXAMPLES = {"train": 5, "valid": 2, "test": 2}  # fewer than this per class and split: warned about


def split_warnings(rows: list[ManifestRow], *, expect: set[str] | None = None,
                   min_examples: dict[str, int] | None = None) -> list[str]:
    """Human-readable problems: a class missing from a split or with fewer than ``min_examples[split]``
    examples there (default MIN_EXAMPLES), an expected split empty, a group on two sides."""
    msgs = []
    counts = split_counts(rows)
    least = MIN_EXAMPLES if min_examples is None else min_examples
    for s in sorted(expect or ()):
        if s not in counts:
            msgs.append(f"split {s!r} is empty (too few groups or files for the requested fraction)")
    for s, per in counts.items():
        missing = [lab for lab, n in per.items() if n == 0]
        if missing:
            msgs.append(f"split {s!r} has no example of class(es) {missing[:10]}{' ...' if len(missing) > 10 else ''}")
        few = [f"{lab} ({n})" for lab, n in per.items() if 0 < n < least.get(s, 0)]
        if few:
            msgs.append(f"split {s!r} has fewer than {least[s]} examples of class(es) {', '.join(few[:10])}"
                        f"{' ...' if len(few) > 10 else ''}: its numbers for them are noise")
    sides: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        if r.group:
            sides[r.group].add(r.split)
    shared = sorted(g for g, s in sides.items() if len(s) > 1)
    if shared:
        msgs.append(f"{len(shared)} group(s) lie on more than one split (given split column): {shared[:10]}")
    return msgs


def groups_overlap(rows: list[ManifestRow]) -> dict[str, list[str]]:
    """Groups found in more than one split: ``{group: [splits]}`` (empty when the split is leak-free)."""
    sides: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        if r.group:
            sides[r.group].add(r.split)
    return {g: sorted(s) for g, s in sorted(sides.items()) if len(s) > 1}


def leave_groups_out_folds(rows: list[ManifestRow], *, n_test_groups: int = 1, valid: float = 0.1,
                           seed: int = 0) -> Iterator[tuple[list[str], list[ManifestRow]]]:
    """Cross-validation by group: yields ``(test_groups, rows)`` for consecutive blocks of
    ``n_test_groups`` groups (sorted names), the rest split into train/valid by group.

    With one group per fold this is leave-one-group-out (e.g. leave-one-speaker-out on FSDD).
    """
    groups = sorted({r.group for r in rows if r.group})
    if n_test_groups < 1 or n_test_groups >= len(groups):
        raise ParameterError(f"n_test_groups={n_test_groups} must be in [1, {len(groups) - 1}] "
                             f"({len(groups)} groups)")
    base = [r.with_split("") for r in rows]
    for k in range(0, len(groups), n_test_groups):
        tg = groups[k:k + n_test_groups]
        yield tg, assign_splits(base, valid=valid, test=0.0, seed=seed, test_groups=tg, warn=False)


def format_split_table(rows: list[ManifestRow]):
    """A ``rich.table.Table`` of per-split class counts (rows: classes, columns: splits)."""
    from rich.table import Table

    counts = split_counts(rows)
    from rich.text import Text

    t = Table(title="examples per split and class")
    t.add_column("class")
    for s in counts:
        t.add_column(s, justify="right")
    labels = labels_of(rows)
    for lab in labels:
        cells = [str(counts[s][lab]) if counts[s][lab] else "[bold red]0[/]" for s in counts]
        t.add_row(Text(lab), *cells)
    t.add_row("[bold]total[/]", *(f"[bold]{sum(counts[s].values())}[/]" for s in counts))
    groups = {s: len({r.group for r in rows if (r.split or 'unassigned') == s and r.group}) for s in counts}
    if any(groups.values()):
        t.add_row("[dim]groups[/]", *(f"[dim]{groups[s]}[/]" for s in counts))
    return t
