"""Compare two JSON result files (metrics.json, evaluation.json); exit 1 listing every
value that differs.

Tolerance: relative 1e-9. Training is seeded with TensorFlow's deterministic ops, so on
the same machine and libraries the numbers are bit-identical; the tolerance only absorbs
float formatting, and anything a real nondeterminism would cause is far larger.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

REL_TOL = 1e-9


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, dict | list):
        out: dict[str, Any] = {}
        items = obj.items() if isinstance(obj, dict) else enumerate(obj)
        for key, value in items:
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): obj}


def main(first: str, second: str) -> int:
    with open(first) as a, open(second) as b:
        left, right = flatten(json.load(a)), flatten(json.load(b))
    problems = [f"only in one file: {k}" for k in sorted(set(left) ^ set(right))]
    for key in sorted(set(left) & set(right)):
        x, y = left[key], right[key]
        if isinstance(x, float) and isinstance(y, float):
            if not math.isclose(x, y, rel_tol=REL_TOL, abs_tol=0.0):
                problems.append(f"{key}: {x!r} != {y!r}")
        elif x != y:
            problems.append(f"{key}: {x!r} != {y!r}")
    if problems:
        sys.stderr.write(f"CI: {second} differs after a forced rerun:\n  " + "\n  ".join(problems) + "\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
