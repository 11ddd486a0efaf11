"""The recipe as a console table (``roomtone train``) and as an HTML table (expect and demo reports)."""

from __future__ import annotations

import html

from roomtone.recipe.rules import Recipe

COLUMNS = ("setting", "value", "measured from", "why")


def _cells(row: dict) -> list[str]:
    return [str(row["setting"]), str(row["value"]), str(row["measured"]), str(row["reason"])]


def print_recipe(rec: Recipe, *, console=None) -> None:
    """Print the recipe table and the train line it stands for (user text printed literally, no markup)."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    con = console or Console()
    t = Table(title="recipe (measured on the data)", show_lines=False)
    for col in COLUMNS:
        t.add_column(col, overflow="fold")
    for row in rec.table():
        t.add_row(*(Text(c) for c in _cells(row)))
    con.print(t)


def recipe_html(rec: Recipe | dict, *, out: str = "RUN") -> str:
    """``<table>`` of the choices plus the exact ``roomtone train`` command (``rec`` or its ``to_dict()``)."""
    d = rec.to_dict() if isinstance(rec, Recipe) else rec
    cmd = rec.train_command(out=out) if isinstance(rec, Recipe) else d.get("train_command", "")
    left = ' style="text-align:left"'
    head = "".join(f"<th{left}>{html.escape(c)}</th>" for c in COLUMNS)
    body = "".join("<tr>" + "".join(f"<td{left}>{html.escape(c)}</td>" for c in _cells(r)) + "</tr>"
                   for r in d["choices"])
    return (f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
            f"<p>Train exactly this: <code>{html.escape(cmd)}</code></p>")
