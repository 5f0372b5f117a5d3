"""An Optuna study whose trials are real DVC experiments (and so MLflow runs), shared by
any number of worker processes through Optuna's RDB storage.

    python -m crypto_forecast.team.tune --trials 20 [--study NAME] [--storage URL]

Storage: `--storage`, else `OPTUNA_STORAGE` (the team Postgres: `make team-server` prints
it), else this clone's running team server, else a local SQLite file `.team/optuna.db`.
Each trial runs `dvc exp run -n <study>-t<number> -S ...` in this clone, reads its
objective from the experiment's `reports/metrics.json` and pushes the experiment. A trial
that fails is recorded FAIL and the study goes on; one whose worker was killed stops
sending heartbeats and is marked FAIL by the next worker after the grace period.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from crypto_forecast.errors import PipelineError
from crypto_forecast.io import paths
from crypto_forecast.io.paths import project_root
from crypto_forecast.team import dvc, server

if TYPE_CHECKING:
    import optuna

log = logging.getLogger("crypto_forecast.team.tune")

# The headline metric the study minimises (model RMSE / persistence RMSE, one day ahead,
# below 1 beats persistence). Its key in reports/metrics.json is read here and nowhere else.
OBJECTIVE_KEY = "skill_h1"
DIRECTION: Final = "minimize"


def objective_from_metrics(metrics: dict[str, Any]) -> float:
    """The study's objective out of a `reports/metrics.json` document."""
    value = metrics.get(OBJECTIVE_KEY)
    if not isinstance(value, int | float):
        raise dvc.TeamError(f"reports/metrics.json has no number {OBJECTIVE_KEY!r} — the "
                            "metrics file changed: update OBJECTIVE_KEY in crypto_forecast/team/tune.py")
    return float(value)


def suggest(trial: optuna.Trial) -> list[str]:
    """The search space, as `-S` overrides for `dvc exp run`."""
    lr = trial.suggest_float("train.learning_rate", 1e-4, 1e-2, log=True)
    units = trial.suggest_categorical("train.units", ["32,32", "50,50", "64,64"])
    batch = trial.suggest_categorical("train.batch_size", [16, 32, 64])
    return [f"train.learning_rate={lr:.6g}", f"train.units=[{units}]", f"train.batch_size={batch}"]


def resolve_storage(given: str | None, root: Path) -> str:
    """The study's storage URL (see the module's docstring for the order)."""
    if given or os.environ.get("OPTUNA_STORAGE"):
        return str(given or os.environ["OPTUNA_STORAGE"])
    team = server.load(server.default_dir())
    if team is not None:
        os.environ.setdefault("PGPASSFILE", str(team.pgpass))
        return team.db_url("optuna")
    (root / ".team").mkdir(exist_ok=True)
    return f"sqlite:///{root / '.team' / 'optuna.db'}"


def mark_mlflow_run_killed(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """A killed worker's trial: end its MLflow run (found by the DVC experiment tag) KILLED."""
    name = trial.user_attrs.get("dvc_exp_name")
    log.warning("trial %d (%s) stopped sending heartbeats: recorded FAIL", trial.number, name)
    if not name:
        return
    try:
        import mlflow

        from crypto_forecast.tracking.store import tracking_uri

        client = mlflow.MlflowClient(tracking_uri())
        ids = [e.experiment_id for e in client.search_experiments()]
        for found in client.search_runs(ids, f"tags.dvc_exp_name = '{name}' and status = 'RUNNING'"):
            client.set_terminated(found.info.run_id, "KILLED")
            log.warning("MLflow run %s of %s ended KILLED", found.info.run_id, name)
    except Exception as exc:  # the trial is failed either way; the run can be ended later
        log.warning("could not end the MLflow run of %s (%s)", name, exc)


def open_study(name: str, url: str, *, heartbeat: int, grace: int) -> optuna.Study:
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    try:
        storage = optuna.storages.RDBStorage(url, heartbeat_interval=heartbeat, grace_period=grace,
                                             heartbeat_stale_trial_callback=mark_mlflow_run_killed,
                                             engine_kwargs={"pool_pre_ping": True})
        return optuna.create_study(study_name=name, storage=storage, direction=DIRECTION,
                                   load_if_exists=True)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        why = str(exc).strip().splitlines()[0][:200]
        raise dvc.TeamError(f"cannot open the Optuna storage {url} ({why}) — start the team "
                            "server (`make team-server`), fix OPTUNA_STORAGE/PGPASSFILE, or "
                            "unset OPTUNA_STORAGE for a local SQLite study") from None


class TrialFailed(Exception):
    """One trial's experiment failed; the study records it FAIL and goes on."""


def run_trial(trial: optuna.Trial, root: Path, study: str, git_remote: str | None) -> float:
    overrides = suggest(trial)
    name = f"{study}-t{trial.number}"
    trial.set_user_attr("dvc_exp_name", name)
    log.info("trial %d: dvc exp run -n %s %s", trial.number, name, " ".join(overrides))
    done = dvc.run(["dvc", "exp", "run", "-n", name, *[a for o in overrides for a in ("-S", o)]],
                   root, check=False, capture=False)
    if done.returncode != 0:
        raise TrialFailed(f"trial {trial.number}: experiment {name} failed (exit "
                          f"{done.returncode}); its log is above")
    # Each ticker's own headline; with several, the objective is their mean.
    from crypto_forecast.params import load_params

    tickers = load_params(root / paths.PARAMS).download.tickers
    values = [objective_from_metrics(json.loads(
        (root / paths.for_ticker(t).headline).read_text())) for t in tickers]
    value = sum(values) / len(values)
    info = json.loads((root / paths.for_ticker(tickers[0]).train_info).read_text())
    trial.set_user_attr("mlflow_run_id", info.get("run_id"))
    if git_remote is not None:
        try:
            dvc.push(root, git_remote, [name])
        except dvc.TeamError as exc:  # the experiment is kept here; push it later
            log.error("%s — the experiment stays in this clone: `dvc exp push %s %s`", exc,
                      git_remote, name)
    log.info("trial %d: %s = %.6g", trial.number, OBJECTIVE_KEY, value)
    return value


def tune(root: Path, *, trials: int, study_name: str, storage: str | None, heartbeat: int,
         grace: int, git_remote: str | None) -> optuna.Study:
    url = resolve_storage(storage, root)
    if git_remote is not None:
        dvc.check_remotes(root, git_remote)
    study = open_study(study_name, url, heartbeat=heartbeat, grace=grace)
    log.info("study %s in %s: %d trials so far; running %d more", study_name,
             url.split("@")[-1], len(study.trials), trials)
    study.optimize(lambda t: run_trial(t, root, study_name, git_remote), n_trials=trials,
                   catch=(TrialFailed,))
    import optuna

    optuna.storages.fail_stale_trials(study)
    return study


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crypto_forecast.team.tune",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--study", default="crypto-forecast")
    parser.add_argument("--storage", default=None, help="Optuna RDB URL (default: see module doc)")
    parser.add_argument("--heartbeat", type=int, default=10, help="seconds between heartbeats")
    parser.add_argument("--grace", type=int, default=60,
                        help="seconds without a heartbeat before a trial counts as killed")
    parser.add_argument("--remote", default="origin", help="git remote to push experiments to")
    parser.add_argument("--no-push", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s "
                        "%(message)s", datefmt="%H:%M:%S", stream=sys.stderr)
    try:
        study = tune(project_root(), trials=args.trials, study_name=args.study,
                     storage=args.storage, heartbeat=args.heartbeat, grace=args.grace,
                     git_remote=None if args.no_push else args.remote)
    except PipelineError as exc:
        log.error("%s", exc)
        return exc.exit_code
    import optuna

    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if complete:
        best = study.best_trial
        sys.stdout.write(f"best: trial {best.number} {OBJECTIVE_KEY}={best.value:.6g} "
                         f"`dvc exp apply {best.user_attrs.get('dvc_exp_name')}`\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
