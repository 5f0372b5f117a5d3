"""`make exps`: the DVC experiments side by side, only what differs, within the terminal.

`dvc exp show` prints a column per param and dependency; at 120 columns it folds the changed
ones into `…` or cuts lines in its pager, and a queued experiment adds two more columns. This
reads `dvc exp show --json` instead and prints, for the workspace, the baseline and every
experiment (queued, running and failed ones included, with their state), each param and
metric whose value differs between them. When the table is wider than the terminal, its
columns go into several blocks, each starting with the experiment names, so no value is cut.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

from crypto_forecast.errors import PipelineError

log = logging.getLogger("crypto_forecast.exps")

GAP = 2  # spaces between columns


@dataclass
class Row:
    name: str
    state: str
    values: dict[str, str] = field(default_factory=dict)


def _cell(value: Any) -> str:
    """How a value prints: numbers to 5 significant digits (as `dvc exp show`), lists
    compact."""
    if isinstance(value, bool) or value is None:
        return str(value).lower() if value is not None else "null"
    if isinstance(value, float):
        return f"{value:.5g}" if math.isfinite(value) else str(value)
    if isinstance(value, list):
        return "[" + ",".join(_cell(v) for v in value) + "]"
    return str(value)


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out |= _flatten(value, f"{name}.")
        else:
            out[name] = _cell(value)
    return out


def _values(data: dict[str, Any] | None) -> dict[str, str]:
    """A revision's params (every params file) and metrics, flat: `train.epochs`,
    `skill_h1`, `ETH-USD.skill_h1`, `as_of` (live.yaml)."""
    if not data:
        return {}
    out: dict[str, str] = {}
    for group in ("params", "metrics"):
        for _file, content in (data.get(group) or {}).items():
            out |= _flatten((content or {}).get("data") or {})
    return out


def rows_of(shown: list[dict[str, Any]]) -> list[Row]:
    """The rows of `dvc exp show --json`: the workspace, each baseline, its experiments."""
    rows: list[Row] = []
    for baseline in shown:
        rev = baseline.get("rev", "")
        name = "workspace" if rev == "workspace" else (baseline.get("name") or rev[:7])
        rows.append(Row(name, "", _values(baseline.get("data"))))
        for exp in baseline.get("experiments") or []:
            executor = exp.get("executor") or {}
            state = str(executor.get("state") or "")
            for revision in exp.get("revs") or []:
                rows.append(Row(revision.get("name") or exp.get("name")
                                or str(revision.get("rev", ""))[:7],
                                "" if state == "success" else state,
                                _values(revision.get("data"))))
    return rows


def changed_columns(rows: list[Row]) -> list[str]:
    """Keys whose value differs between the rows, in first-seen order. A key one row has and
    another lacks differs too (a baseline run before dvc.lock was committed has no metrics);
    rows with a state (queued, running, failed) have no results yet and are left out of the
    comparison."""
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row.values if k not in keys]
    done = [r for r in rows if not r.state] or rows
    return [k for k in keys if len({r.values.get(k) for r in done}) > 1
            or len({r.values[k] for r in rows if k in r.values}) > 1]


def render(rows: list[Row], width: int) -> str:
    """The table, its columns split into blocks that fit `width`; every block starts with
    the experiment names (and states, when any row has one)."""
    columns = changed_columns(rows)
    lead = [("Experiment", [r.name for r in rows])]
    if any(r.state for r in rows):
        lead.append(("State", [r.state for r in rows]))
    body = [(c, [r.values.get(c, "-") for r in rows]) for c in columns]
    if not body:
        return "no params or metrics differ between " + ", ".join(r.name for r in rows)

    def wide(col: tuple[str, list[str]]) -> int:
        return max(len(col[0]), *(len(v) for v in col[1]))

    lead_width = sum(wide(c) + GAP for c in lead)
    blocks: list[list[tuple[str, list[str]]]] = [[]]
    used = lead_width
    for col in body:
        need = wide(col) + GAP
        if blocks[-1] and used + need > width:
            blocks.append([])
            used = lead_width
        blocks[-1].append(col)
        used += need
    out = []
    for block in blocks:
        cols = [*lead, *block]
        widths = [wide(c) for c in cols]
        numeric = [False] * len(lead) + [all(_is_number(v) for v in c[1] if v != "-")
                                         for c in block]
        lines = [(" " * GAP).join(h.ljust(w) if not n else h.rjust(w)
                                  for (h, _), w, n in zip(cols, widths, numeric, strict=True))]
        lines.append((" " * GAP).join("─" * w for w in widths))
        for i in range(len(rows)):
            lines.append((" " * GAP).join(
                c[1][i].rjust(w) if n else c[1][i].ljust(w)
                for c, w, n in zip(cols, widths, numeric, strict=True)).rstrip())
        out.append("\n".join(line.rstrip() for line in lines))
    return "\n\n".join(out)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def show(width: int | None = None) -> str:
    """`dvc exp show --json` in the working directory, rendered."""
    done = subprocess.run([sys.executable, "-m", "dvc", "exp", "show", "--json"],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise PipelineError(f"`dvc exp show` failed: {last} — run it inside the project, after "
                            "`make repro`")
    try:
        shown = json.loads(done.stdout)
    except json.JSONDecodeError as exc:
        raise PipelineError(f"`dvc exp show --json` printed no JSON ({exc})") from None
    return render(rows_of(shown), width or terminal_width())


def terminal_width() -> int:
    """COLUMNS when set (a test, a pipe), else the terminal's, else 120."""
    if os.environ.get("COLUMNS", "").isdigit():
        return int(os.environ["COLUMNS"])
    return shutil.get_terminal_size((120, 24)).columns


def main() -> None:
    sys.stdout.write(show() + "\n")
