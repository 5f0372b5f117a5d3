"""Start and stop the team server: a PostgreSQL 15 cluster in a project-local folder
(loopback only, generated password kept out of git) and `mlflow server` on it with served
artifacts. `python -m crypto_forecast.team.server start|stop|status [--dir DIR]`.

Everything lives in one git-ignored folder (default `<project>/.team`):
`pgdata/` (the cluster), `pgpass` (the generated password, libpq's PGPASSFILE format),
`artifacts/`, `server.json` (ports and the MLflow PID), and the logs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from crypto_forecast.errors import PipelineError
from crypto_forecast.io.paths import project_root
from crypto_forecast.team.dvc import TeamError

DB_USER = "team"
DATABASES = ("mlflow", "optuna", "ledger")
PG_OS_USER = "postgres"  # initdb/postgres refuse to run as root: root runs them as this user


@dataclass
class Server:
    """What `start` recorded in `server.json`."""

    dir: str
    pg_port: int
    mlflow_port: int
    mlflow_pid: int | None = None

    @property
    def tracking_uri(self) -> str:
        return f"http://127.0.0.1:{self.mlflow_port}"

    def db_url(self, database: str) -> str:
        """SQLAlchemy URL without the password: libpq reads it from PGPASSFILE."""
        return f"postgresql+psycopg://{DB_USER}@127.0.0.1:{self.pg_port}/{database}"

    @property
    def pgpass(self) -> Path:
        return Path(self.dir) / "pgpass"


def default_dir() -> Path:
    return Path(os.environ.get("TEAM_DIR") or project_root() / ".team")


def load(team_dir: Path) -> Server | None:
    """The recorded server of `team_dir`, if one was ever started there."""
    try:
        return Server(**json.loads((team_dir / "server.json").read_text()))
    except FileNotFoundError:
        return None


def _save(server: Server) -> None:
    path = Path(server.dir) / "server.json"
    path.with_suffix(".tmp").write_text(json.dumps(asdict(server), indent=2) + "\n")
    path.with_suffix(".tmp").replace(path)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pg_bin(name: str) -> str:
    try:
        bindir = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True,  # noqa: S607
                                check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        bindir = "/usr/lib/postgresql/15/bin"
    path = Path(bindir) / name
    if not path.exists():
        raise TeamError(f"PostgreSQL's {name} is not in {bindir} — install Debian's "
                        "postgresql package (apt-get install postgresql)")
    return str(path)


def _as_pg_user(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", PG_OS_USER, "--", *cmd] if os.geteuid() == 0 else cmd


def _give_to_pg_user(path: Path) -> None:
    if os.geteuid() == 0:
        entry = pwd.getpwnam(PG_OS_USER)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _check_reachable(team_dir: Path) -> None:
    """As root the cluster runs as `postgres`, which must be able to enter every parent."""
    if os.geteuid() != 0:
        return
    for parent in [team_dir, *team_dir.parents]:
        if parent.exists() and not os.stat(parent).st_mode & 0o001:
            raise TeamError(f"{parent} is closed to the `postgres` user that runs the cluster "
                            f"— chmod o+x {parent}, or put the team folder elsewhere (--dir)")


def _pg_ready(server: Server) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", server.pg_port), 1):
        return True
    return False


def _init_cluster(server: Server) -> None:
    team_dir = Path(server.dir)
    data = team_dir / "pgdata"
    password = secrets.token_urlsafe(24)
    pwfile = team_dir / "initdb.pw"
    pwfile.write_text(password + "\n")
    pwfile.chmod(0o600)
    _give_to_pg_user(pwfile)
    data.mkdir(mode=0o700)
    _give_to_pg_user(data)
    try:
        done = subprocess.run(_as_pg_user([_pg_bin("initdb"), "-D", str(data), "-U", DB_USER,  # noqa: S603
                                           "-A", "scram-sha-256", "--pwfile", str(pwfile),
                                           "-E", "UTF8", "--no-instructions"]),
                              capture_output=True, text=True)
    finally:
        pwfile.unlink()
    if done.returncode != 0:
        shutil.rmtree(data, ignore_errors=True)
        raise TeamError(f"initdb failed ({done.stderr.strip().splitlines()[-1:]}) — see "
                        "PostgreSQL's message; is Debian's postgresql 15 installed?")
    # libpq's password file: host:port:database:user:password, readable by us only.
    server.pgpass.write_text(f"127.0.0.1:{server.pg_port}:*:{DB_USER}:{password}\n")
    server.pgpass.chmod(0o600)


def _start_postgres(server: Server) -> None:
    if _pg_ready(server):
        return
    data = Path(server.dir) / "pgdata"
    log = Path(server.dir) / "postgres.log"
    if not log.exists():
        log.touch()
    _give_to_pg_user(log)
    opts = f"-p {server.pg_port} -k {data} -c listen_addresses=127.0.0.1"
    done = subprocess.run(_as_pg_user([_pg_bin("pg_ctl"), "-D", str(data), "-o", opts, "-l",  # noqa: S603
                                       str(log), "-w", "-t", "60", "start"]),
                          capture_output=True, text=True)
    if done.returncode != 0:
        tail = log.read_text().strip().splitlines()[-1:] if log.exists() else []
        raise TeamError(f"PostgreSQL did not start on 127.0.0.1:{server.pg_port} ({tail}) — "
                        f"see {log}; if another program holds the port, stop it")


def _connect(server: Server, database: str = "postgres"):  # type: ignore[no-untyped-def]
    import psycopg

    return psycopg.connect(host="127.0.0.1", port=server.pg_port, user=DB_USER, dbname=database,
                           passfile=str(server.pgpass), autocommit=True, connect_timeout=10)


def _create_databases(server: Server) -> None:
    with _connect(server) as conn:
        have = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
        for name in DATABASES:
            if name not in have:
                conn.execute(f'CREATE DATABASE "{name}"')


def _mlflow_alive(server: Server) -> bool:
    if not server.mlflow_pid:
        return False
    try:
        os.kill(server.mlflow_pid, 0)
    except ProcessLookupError:
        return False
    return True


def healthy(url: str, timeout: float = 2) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout) as resp:  # noqa: S310
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _start_mlflow(server: Server, timeout: float = 180) -> None:
    if _mlflow_alive(server) and healthy(server.tracking_uri):
        return
    team_dir = Path(server.dir)
    (team_dir / "artifacts").mkdir(exist_ok=True)
    mlflow = Path(sys.executable).with_name("mlflow")
    cmd = [str(mlflow if mlflow.exists() else "mlflow"), "server",
           "--backend-store-uri", server.db_url("mlflow"),
           "--serve-artifacts", "--artifacts-destination", str(team_dir / "artifacts"),
           "--host", "127.0.0.1", "--port", str(server.mlflow_port), "--workers", "2"]
    # The password comes from PGPASSFILE, never the command line; no GenAI job workers.
    env = {**os.environ, "PGPASSFILE": str(server.pgpass),
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with (team_dir / "mlflow.log").open("a") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=team_dir, env=env,  # noqa: S603
                                start_new_session=True)
    server.mlflow_pid = proc.pid
    _save(server)
    deadline = time.monotonic() + timeout
    while not healthy(server.tracking_uri):
        if proc.poll() is not None or time.monotonic() > deadline:
            _stop_mlflow(server)
            raise TeamError(f"mlflow server did not start on {server.tracking_uri} — see "
                            f"{team_dir / 'mlflow.log'} (port taken? pass --mlflow-port)")
        time.sleep(0.5)


def start(team_dir: Path, pg_port: int | None = None, mlflow_port: int | None = None) -> Server:
    """Start (or find running) the cluster and the MLflow server; idempotent."""
    team_dir = team_dir.resolve()
    _check_reachable(team_dir)
    team_dir.mkdir(parents=True, exist_ok=True)
    team_dir.chmod(0o711)  # postgres enters; only we read the password and the logs
    server = load(team_dir)
    if server is None:
        server = Server(dir=str(team_dir), pg_port=pg_port or free_port(),
                        mlflow_port=mlflow_port or 5000)
        _save(server)
    elif mlflow_port and mlflow_port != server.mlflow_port and not _mlflow_alive(server):
        server.mlflow_port = mlflow_port
        _save(server)
    if not (team_dir / "pgdata" / "PG_VERSION").exists():
        _init_cluster(server)
    _start_postgres(server)
    _create_databases(server)
    _start_mlflow(server)
    return server


def _stop_mlflow(server: Server) -> None:
    if server.mlflow_pid is None or not _mlflow_alive(server):
        server.mlflow_pid = None
        _save(server)
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.mlflow_pid, signal.SIGTERM)  # the server and its gunicorn workers
    deadline = time.monotonic() + 20
    while _mlflow_alive(server) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(server.mlflow_pid, os.WNOHANG)
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.mlflow_pid, signal.SIGKILL)
    server.mlflow_pid = None
    _save(server)


def stop_postgres(server: Server) -> None:
    data = Path(server.dir) / "pgdata"
    if (data / "postmaster.pid").exists():
        subprocess.run(_as_pg_user([_pg_bin("pg_ctl"), "-D", str(data), "-m", "fast", "-w",  # noqa: S603
                                    "stop"]), capture_output=True, text=True)


def stop(team_dir: Path) -> bool:
    """Stop what `start` started (the MLflow server by its PID, then the cluster)."""
    server = load(team_dir.resolve())
    if server is None:
        return False
    _stop_mlflow(server)
    stop_postgres(server)
    return True


def exports(server: Server) -> str:
    """The shell lines a worker on this machine evaluates to use the team server."""
    return (f"export MLFLOW_TRACKING_URI={server.tracking_uri}\n"
            f"export OPTUNA_STORAGE={server.db_url('optuna')}\n"
            f"export CRYPTO_FORECAST_LEDGER_URI={server.db_url('ledger')}\n"
            f"export PGPASSFILE={server.pgpass}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crypto_forecast.team.server",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["start", "stop", "status", "env"])
    parser.add_argument("--dir", type=Path, default=None, help="team folder (default .team)")
    parser.add_argument("--pg-port", type=int, default=None)
    parser.add_argument("--mlflow-port", type=int, default=None,
                        help="MLflow server port (default 5000, kept once chosen)")
    args = parser.parse_args(argv)
    team_dir = (args.dir or default_dir()).resolve()
    out = sys.stdout
    try:
        if args.action == "start":
            server = start(team_dir, args.pg_port, args.mlflow_port)
            out.write(f"team server up: PostgreSQL 127.0.0.1:{server.pg_port}, MLflow "
                      f"{server.tracking_uri} (artifacts in {team_dir / 'artifacts'})\n"
                      "export these in every shell that runs the pipeline:\n" + exports(server))
        elif args.action == "stop":
            out.write("team server stopped\n" if stop(team_dir) else
                      f"no team server recorded in {team_dir}\n")
        else:
            server_or_none = load(team_dir)
            if server_or_none is None:
                raise TeamError(f"no team server in {team_dir} — run `make team-server` first")
            if args.action == "env":
                out.write(exports(server_or_none))
            else:
                pg = "up" if _pg_ready(server_or_none) else "down"
                ml = "up" if healthy(server_or_none.tracking_uri) else "down"
                out.write(f"PostgreSQL 127.0.0.1:{server_or_none.pg_port} {pg}; MLflow "
                          f"{server_or_none.tracking_uri} {ml}\n")
    except PipelineError as exc:
        sys.stderr.write(f"ERROR: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
