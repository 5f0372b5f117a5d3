"""Run one worker's slice of a parameter grid as queued DVC experiments and push them.

    python -m crypto_forecast.team.sweep --grid "train.units=[32,32],[50,50] \
        train.learning_rate=0.001,0.003" --worker 2/3 [-j 2] [--no-push]

The grid is DVC's own `-S` sweep syntax (Hydra's: `key=a,b`, `choice(...)`, `range(...)`),
expanded by DVC's own code in a fixed order. Worker k of n takes points k-1, k-1+n, ...:
workers 1/n..n/n together run every point exactly once, on any machine or CI job that
has a clone. Each point is a named DVC experiment (`<name>-<point number>`), queued and run
with `-j` on this machine's cores, then pushed (`dvc exp push` + `dvc push`).
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import shlex
import sys
from pathlib import Path
from typing import Any

import yaml

from crypto_forecast.errors import ConfigError, PipelineError
from crypto_forecast.io.paths import project_root
from crypto_forecast.team import dvc

log = logging.getLogger("crypto_forecast.team.sweep")

Point = list[str]  # `-S` overrides, e.g. ["train.units=[32,32]", "train.learning_rate=0.001"]


def expand_grid(grid: str) -> list[Point]:
    """Every point of the grid, in DVC's order (the last key varies fastest)."""
    from dvc.exceptions import InvalidArgumentError  # type: ignore[import-untyped]
    from dvc.utils.hydra import get_hydra_sweeps  # type: ignore[import-untyped]
    from hydra.errors import HydraException

    overrides = shlex.split(grid)
    if not overrides:
        raise ConfigError('empty grid — give e.g. GRID="train.learning_rate=0.001,0.003"')
    try:
        sweeps = get_hydra_sweeps({"params.yaml": overrides})
    except (InvalidArgumentError, HydraException) as exc:
        raise ConfigError(f"cannot read the grid {grid!r} ({exc}) — use DVC's -S sweep "
                          'syntax: "section.key=a,b other.key=[1,2],[3,4]"') from None
    return [list(point["params.yaml"]) for point in sweeps]


def parse_worker(spec: str) -> tuple[int, int]:
    """`"2/3"` -> (2, 3)."""
    try:
        k, n = (int(part) for part in spec.split("/"))
    except ValueError:
        k = n = 0
    if not 1 <= k <= n:
        raise ConfigError(f"worker {spec!r} is not K/N with 1 <= K <= N — e.g. WORKER=2/3")
    return k, n


def worker_slice(points: list[Point], worker: int, workers: int) -> list[tuple[int, Point]]:
    """The (point number, point) pairs worker `worker` of `workers` runs."""
    return [(i, p) for i, p in enumerate(points) if i % workers == worker - 1]


def check_keys(points: list[Point], params: dict[str, Any]) -> None:
    """Every grid key must be an existing params.yaml key (a typo would sweep nothing)."""
    for override in points[0] if points else []:
        key = override.split("=", 1)[0].lstrip("+~")
        node: Any = params
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                raise ConfigError(f"grid key {key!r} is not in params.yaml — check its "
                                  "spelling (section.key, e.g. train.learning_rate)")
            node = node[part]


def sweep_name(grid: str) -> str:
    """A short name shared by every worker of the same grid."""
    return "sweep-" + hashlib.sha256(" ".join(shlex.split(grid)).encode()).hexdigest()[:6]


def run_slice(root: Path, grid: str, worker: int, workers: int, *, jobs: int, name: str,
              git_remote: str | None) -> list[str]:
    """Queue and run this worker's points, push what succeeded; return the names run.

    Raises `TeamError` naming the points that failed, after pushing the ones that did not."""
    points = expand_grid(grid)
    check_keys(points, yaml.safe_load((root / "params.yaml").read_text()) or {})
    mine = worker_slice(points, worker, workers)
    if git_remote is not None:
        dvc.check_remotes(root, git_remote)
    log.info("grid of %d points; worker %d/%d runs %d of them with -j %d", len(points),
             worker, workers, len(mine), jobs)
    if not mine:
        return []
    names = []
    for i, point in mine:
        exp = f"{name}-{i + 1}"
        dvc.run(["dvc", "exp", "run", "--queue", "-n", exp,
                 *[arg for o in point for arg in ("-S", o)]], root)
        log.info("queued %s: %s", exp, " ".join(point))
        names.append(exp)
    # DVC's queue runs them `jobs` at a time in temporary copies and waits for all.
    ran = dvc.run(["dvc", "exp", "run", "--run-all", "-j", str(jobs)], root, check=False,
                  capture=False)
    done = [n for n in names if n in dvc.experiment_names(root)]
    failed = [n for n in names if n not in done]
    if git_remote is not None:
        dvc.push(root, git_remote, done)
    if failed or ran.returncode != 0:
        raise dvc.TeamError(
            f"{len(failed)} of {len(names)} experiments failed: {', '.join(failed) or '?'} "
            f"({len(done)} done{' and pushed' if git_remote else ''}) — see `dvc queue logs "
            "<name>`, fix the cause and rerun the same command (`dvc queue remove --failed` first)")
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crypto_forecast.team.sweep",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--grid", required=True, help="DVC -S sweep syntax, space-separated")
    parser.add_argument("--worker", default="1/1", help="K/N: run slice K of N (default 1/1)")
    parser.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1,
                        help="experiments at a time on this machine (default: its cores)")
    parser.add_argument("--name", default=None, help="experiment name prefix (default from "
                        "the grid, the same on every worker)")
    parser.add_argument("--remote", default="origin", help="git remote to push to")
    parser.add_argument("--no-push", action="store_true", help="keep the results local")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s "
                        "%(message)s", datefmt="%H:%M:%S", stream=sys.stderr)
    try:
        worker, workers = parse_worker(args.worker)
        names = run_slice(project_root(), args.grid, worker, workers, jobs=max(1, args.jobs),
                          name=args.name or sweep_name(args.grid),
                          git_remote=None if args.no_push else args.remote)
    except PipelineError as exc:
        log.error("%s", exc)
        return exc.exit_code
    sys.stdout.write("".join(f"{n}\n" for n in names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
