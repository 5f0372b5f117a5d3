"""Compare two runs' results: `compare_metrics.py FIRST_DIR SECOND_DIR` compares every file
in FILES (paths relative to each dir); exit 1 naming the first difference (file, key or
row and column, both values) and how many values differ in all.

- JSON (metrics.json, evaluation.json): every leaf, except the registry's state in
  evaluation.json (REGISTRY_KEYS, and gate reasons that name the champion): a rerun may meet
  the first run's model as champion, and what the registry holds is not a result.
- CSV (forecast.csv, the plot CSVs): the same header, the same number of rows, and every
  cell equal (numbers within the tolerance).

Tolerance: relative 1e-9. Training is seeded with deterministic ops, so on the same machine
and libraries the numbers are bit-identical; the tolerance only absorbs float formatting,
and anything a real nondeterminism would cause is far larger.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path
from typing import Any

REL_TOL = 1e-9
FILES = (
    "reports/metrics.json",
    "reports/ETH-USD/evaluation.json",
    "reports/ETH-USD/forecast.csv",
    "reports/ETH-USD/plots/training_history.csv",
    "reports/ETH-USD/plots/test_predictions.csv",
    "reports/ETH-USD/plots/backtest_by_horizon.csv",
    "reports/ETH-USD/plots/test_horizon_forecasts.csv",
)
# evaluation.json's registry state: which champion the gate met, and its score.
REGISTRY_KEYS = ("serving.champion", "serving.champion_skill_mean")


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, dict | list):
        out: dict[str, Any] = {}
        items = obj.items() if isinstance(obj, dict) else enumerate(obj)
        for key, value in items:
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): obj}


def without_registry(doc: Any) -> Any:
    """evaluation.json without the registry's state (a copy); other JSON as it is."""
    if not isinstance(doc, dict) or not isinstance(doc.get("serving"), dict):
        return doc
    serving = {k: v for k, v in doc["serving"].items()
               if f"serving.{k}" not in REGISTRY_KEYS}
    serving["reasons"] = [r for r in serving.get("reasons", []) if "champion" not in r]
    return {**doc, "serving": serving}


def same(x: Any, y: Any) -> bool:
    if isinstance(x, bool) or isinstance(y, bool):
        return x == y
    if isinstance(x, int | float) and isinstance(y, int | float):
        return x == y or math.isclose(x, y, rel_tol=REL_TOL, abs_tol=0.0)
    return bool(x == y)


def cell(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return text


def json_diffs(first: Path, second: Path) -> list[str]:
    left = flatten(without_registry(json.loads(first.read_text())))
    right = flatten(without_registry(json.loads(second.read_text())))
    problems = [f"{k}: only in one run" for k in sorted(set(left) ^ set(right))]
    problems += [f"{k}: {left[k]!r} != {right[k]!r}" for k in left
                 if k in right and not same(left[k], right[k])]
    return problems


def csv_diffs(first: Path, second: Path) -> list[str]:
    with first.open(newline="") as a, second.open(newline="") as b:
        left, right = list(csv.reader(a)), list(csv.reader(b))
    if not left or not right or left[0] != right[0]:
        return [f"header: {left[:1]!r} != {right[:1]!r}"]
    header = left[0]
    problems = []
    if len(left) != len(right):
        problems.append(f"rows: {len(left) - 1} != {len(right) - 1}")
    for row, (lr, rr) in enumerate(zip(left[1:], right[1:], strict=False), start=1):
        for col, (x, y) in enumerate(zip(lr, rr, strict=False)):
            if not same(cell(x), cell(y)):
                name = header[col] if col < len(header) else str(col)
                problems.append(f"row {row} ({lr[0]}), column {name}: {x!r} != {y!r}")
        if len(lr) != len(rr):
            problems.append(f"row {row}: {len(lr)} != {len(rr)} cells")
    return problems


def compare(first_dir: Path, second_dir: Path, files: tuple[str, ...] = FILES) -> list[str]:
    """Every difference, as 'file: where: first != second', file by file in `files` order."""
    problems: list[str] = []
    for rel in files:
        a, b = first_dir / rel, second_dir / rel
        missing = [str(p) for p in (a, b) if not p.is_file()]
        if missing:
            problems.append(f"{rel}: missing {', '.join(missing)}")
            continue
        diffs = json_diffs(a, b) if rel.endswith(".json") else csv_diffs(a, b)
        problems += [f"{rel}: {d}" for d in diffs]
    return problems


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write("usage: compare_metrics.py FIRST_DIR SECOND_DIR\n")
        return 2
    problems = compare(Path(argv[0]), Path(argv[1]))
    if problems:
        sys.stderr.write(f"CI: the forced rerun differs; first difference: {problems[0]}\n"
                         f"CI: {len(problems)} difference(s) in all:\n  "
                         + "\n  ".join(problems[:50]) + "\n")
        return 1
    sys.stdout.write(f"CI: {len(FILES)} files equal within {REL_TOL:g} relative: " + ", ".join(FILES) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
