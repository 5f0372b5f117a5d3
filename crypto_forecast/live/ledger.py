"""The ledger: every served forecast, and the closes each refresh saw, in a real database.

SQLite (`ledger.db` beside `mlflow.db`) by default, the team PostgreSQL in team mode, through
the same SQLAlchemy code; `CRYPTO_FORECAST_LEDGER_URI` names another store. Like the MLflow
store it is a record, not a DVC output: append-only, never rewritten. The first forecast for
an origin is revision 0 for good; a later, different one for the same origin is revision 1,
2, ... Each refresh's write is one transaction, so a crash or Ctrl-C leaves it as it was.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import logging
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from crypto_forecast.errors import LedgerError
from crypto_forecast.io import paths

log = logging.getLogger("crypto_forecast.ledger")

LEDGER_URI_ENV = "CRYPTO_FORECAST_LEDGER_URI"
LEDGER_FILE = "ledger.db"
APPLICATION = "crypto-forecast ledger"
SCHEMA_VERSION = 1
# The bands the ledger keeps (evaluate.interval_levels' defaults); other levels are not kept.
BAND_LEVELS = ("80", "95")
EXPORT_COLUMNS = ("ticker", "origin", "target_date", "horizon", "forecast", "lower_80", "upper_80",
                  "lower_95", "upper_95", "served", "model_version", "run_id", "revision", "actual")

_IMMEDIATE = "ledger_write"

metadata = sa.MetaData()

info_table = sa.Table(
    "ledger_info", metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(256), nullable=False),
)

forecasts_table = sa.Table(
    "forecasts", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ticker", sa.String(32), nullable=False),
    sa.Column("origin", sa.Date, nullable=False),  # the last close the forecast saw
    sa.Column("revision", sa.Integer, nullable=False),  # 0: the first served for this origin
    sa.Column("target_date", sa.Date, nullable=False),
    sa.Column("horizon", sa.Integer, nullable=False),  # days after the origin
    sa.Column("forecast", sa.Float, nullable=False),
    *(sa.Column(f"{side}_{level}", sa.Float) for level in BAND_LEVELS for side in ("lower", "upper")),
    sa.Column("served", sa.String(16), nullable=False),  # lstm | naive
    sa.Column("model_name", sa.String(256), nullable=False),
    sa.Column("model_version", sa.String(32), nullable=False),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("data_sha256", sa.String(64), nullable=False),
    sa.Column("git_commit", sa.String(64), nullable=False),
    sa.Column("as_of", sa.Date, nullable=False),
    sa.Column("written_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("ticker", "origin", "revision", "horizon"),
)

closes_table = sa.Table(
    "closes", metadata,
    sa.Column("ticker", sa.String(32), primary_key=True),
    sa.Column("date", sa.Date, primary_key=True),
    sa.Column("close", sa.Float, nullable=False),
    sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
)

refreshes_table = sa.Table(
    "refreshes", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ticker", sa.String(32), nullable=False),
    sa.Column("as_of", sa.Date, nullable=False),
    sa.Column("origin", sa.Date, nullable=False),
    sa.Column("trained_through", sa.Date, nullable=False),
    sa.Column("retrained", sa.Boolean, nullable=False),
    sa.Column("reason", sa.String(256), nullable=False),
    sa.Column("params_digest", sa.String(64), nullable=False),
    sa.Column("stages", sa.String(256), nullable=False),  # the stages `dvc repro` ran
    sa.Column("revision", sa.Integer),  # the forecast revision written, NULL if none
    sa.Column("written_at", sa.DateTime(timezone=True), nullable=False),
)


alarms_table = sa.Table(
    "alarms", metadata,
    sa.Column("ticker", sa.String(32), primary_key=True),
    sa.Column("as_of", sa.Date, primary_key=True),  # the refresh that raised it
    sa.Column("reasons", sa.Text, nullable=False),
    sa.Column("written_at", sa.DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True)
class ForecastDay:
    """One served day: horizon h is the origin + h days."""

    target_date: dt.date
    horizon: int
    forecast: float
    bands: dict[str, tuple[float, float]] = field(default_factory=dict)  # "80" -> (lower, upper)


@dataclass(frozen=True)
class ServedForecast:
    """What one refresh served for one ticker, and where it came from."""

    ticker: str
    origin: dt.date
    as_of: dt.date
    days: Sequence[ForecastDay]
    served: str
    model_name: str
    model_version: str
    run_id: str
    data_sha256: str
    git_commit: str


@dataclass(frozen=True)
class RefreshFacts:
    """What a refresh did: the as-of day, the training cut, whether and why it retrained."""

    ticker: str
    as_of: dt.date
    origin: dt.date
    trained_through: dt.date
    retrained: bool
    reason: str
    params_digest: str
    stages: Sequence[str]


@dataclass(frozen=True)
class Written:
    """What `Ledger.record` wrote: the forecast revision (None: the same forecast was already
    there) and how many new closes."""

    revision: int | None
    new_closes: int

    @property
    def nothing(self) -> bool:
        return self.revision is None and self.new_closes == 0


def ledger_uri(path: str | Path | None = None) -> str:
    """The store: `path` (a SQLite file), else CRYPTO_FORECAST_LEDGER_URI, else ledger.db in
    the project root (beside mlflow.db)."""
    if path is not None:
        return f"sqlite:///{Path(path).expanduser().resolve()}"
    return os.environ.get(LEDGER_URI_ENV) or f"sqlite:///{paths.project_root() / LEDGER_FILE}"


def _shown(url: sa.URL) -> str:
    if url.get_backend_name() == "sqlite":
        return url.database or ":memory:"
    return url.render_as_string(hide_password=True)


def _engine(uri: str) -> sa.Engine:
    try:
        url = sa.make_url(uri)
    except sa_exc.ArgumentError:
        raise LedgerError(f"{LEDGER_URI_ENV}={uri!r} is not a database URL — use "
                          "sqlite:////path/ledger.db or postgresql+psycopg://user@host:port/db"
                          ) from None
    backend = url.get_backend_name()
    if backend == "sqlite":
        if url.database and url.database != ":memory:" and not Path(url.database).parent.is_dir():
            raise LedgerError(f"cannot create the ledger {url.database}: its folder does not "
                              "exist — create it or choose another --ledger path")
        engine = sa.create_engine(url, connect_args={"timeout": 30})

        # pysqlite opens transactions lazily and not for DDL; SQLAlchemy's recipe makes every
        # `begin()` a real BEGIN, so the schema and each refresh's rows commit as one.
        @sa.event.listens_for(engine, "connect")
        def _no_implicit_transactions(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None

        @sa.event.listens_for(engine, "begin")
        def _begin(conn: sa.Connection) -> None:
            # A writer takes the write lock up front: two refreshes never deadlock upgrading.
            immediate = conn.get_execution_options().get(_IMMEDIATE, False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    if backend == "postgresql":
        return sa.create_engine(url, connect_args={"connect_timeout": 5}, pool_pre_ping=True)
    raise LedgerError(f"{LEDGER_URI_ENV}: {backend} is not supported — use sqlite or postgresql")


@contextlib.contextmanager
def database_errors(where: str) -> Iterator[None]:
    """Turn a database failure into one LedgerError line that names the store and the fix."""
    try:
        yield
    except (UnicodeDecodeError, ValueError) as exc:
        # A damaged byte inside a stored value: sqlite3 cannot decode the text, or SQLAlchemy
        # cannot parse the date, while reading the rows (not a SQLAlchemyError).
        raise LedgerError(f"{where} holds a damaged value ({type(exc).__name__}: "
                          f"{str(exc)[:80]}) — restore it from a backup, or move it aside (a new "
                          "ledger starts empty)") from None
    except sa_exc.SQLAlchemyError as exc:
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        first = detail[0] if detail else type(exc).__name__
        lowered = first.lower()
        if "file is not a database" in lowered or "malformed" in lowered:
            raise LedgerError(f"{where} is not a readable SQLite ledger ({first}): damaged, or "
                              "another kind of file — move it aside (a new ledger starts empty) "
                              f"or point --ledger / {LEDGER_URI_ENV} at the right file") from None
        if "unable to open database" in lowered or "readonly" in lowered or "read-only" in lowered:
            raise LedgerError(f"cannot write the ledger {where} ({first}) — check the file and "
                              "its folder are writable") from None
        if isinstance(exc, sa_exc.OperationalError) and where.startswith("postgresql"):
            raise LedgerError(f"cannot reach the ledger database {where} ({first}) — start it "
                              f"(`make team-server`) or fix {LEDGER_URI_ENV}") from None
        raise LedgerError(f"ledger {where}: {first} — check {LEDGER_URI_ENV} and the database"
                          ) from None


class Ledger:
    """An open ledger. Open with `Ledger.open(uri)`; the schema is created on first use and its
    version checked on every open."""

    def __init__(self, engine: sa.Engine, where: str) -> None:
        self._engine = engine
        self.where = where

    @classmethod
    def open(cls, uri: str | None = None) -> Ledger:
        engine = _engine(uri or ledger_uri())
        ledger = cls(engine, _shown(engine.url))
        try:
            ledger._check_schema()
        except BaseException:
            engine.dispose()
            raise
        return ledger

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_schema(self) -> None:
        with database_errors(self.where), \
                self._engine.connect().execution_options(**{_IMMEDIATE: True}) as conn, \
                conn.begin():
            tables = set(sa.inspect(conn).get_table_names())
            if not tables:
                metadata.create_all(conn)
                conn.execute(sa.insert(info_table), [
                    {"key": "application", "value": APPLICATION},
                    {"key": "schema_version", "value": str(SCHEMA_VERSION)}])
                log.info("created the ledger %s (schema version %d)", self.where, SCHEMA_VERSION)
                return
            info: dict[str, str] = {}
            if info_table.name in tables:
                info = {str(k): str(v) for k, v in conn.execute(
                    sa.select(info_table.c.key, info_table.c.value))}
            if info.get("application") != APPLICATION:
                shown = ", ".join(sorted(tables)[:5])
                raise LedgerError(f"{self.where} is not a crypto-forecast ledger (it holds tables "
                                  f"{shown}) — point --ledger / {LEDGER_URI_ENV} at a ledger, "
                                  "or at a new file")
            version = info.get("schema_version", "?")
            if version != str(SCHEMA_VERSION):
                raise LedgerError(f"{self.where} has ledger schema version {version}; this code "
                                  f"reads version {SCHEMA_VERSION} — use the project version that "
                                  "wrote it, or start a new ledger")
            missing = {t.name for t in metadata.sorted_tables} - tables
            if missing:
                raise LedgerError(f"{self.where} lacks the table(s) {', '.join(sorted(missing))}: "
                                  "damaged — restore it from a backup or start a new ledger")

    # --- reading ---------------------------------------------------------------------------

    def last_refresh(self, ticker: str) -> RefreshFacts | None:
        """The latest refresh that wrote something for `ticker` (by as-of day)."""
        return self._one_refresh(ticker, retrained_only=False)

    def last_retrain(self, ticker: str) -> RefreshFacts | None:
        """The latest refresh that moved the training cut for `ticker`."""
        return self._one_refresh(ticker, retrained_only=True)

    def _one_refresh(self, ticker: str, *, retrained_only: bool) -> RefreshFacts | None:
        t = refreshes_table
        query = sa.select(t).where(t.c.ticker == ticker)
        if retrained_only:
            query = query.where(t.c.retrained.is_(True))
        query = query.order_by(t.c.as_of.desc(), t.c.id.desc()).limit(1)
        with database_errors(self.where), self._engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return None if row is None else _refresh_facts(row)

    def refreshes(self, ticker: str | None = None) -> list[RefreshFacts]:
        """Every refresh that wrote something, oldest first."""
        t = refreshes_table
        query = sa.select(t).order_by(t.c.as_of, t.c.id)
        if ticker is not None:
            query = query.where(t.c.ticker == ticker)
        with database_errors(self.where), self._engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [_refresh_facts(r) for r in rows]

    def closes(self, ticker: str) -> list[tuple[dt.date, float]]:
        """The closes the refreshes saw for `ticker` (the first value seen for each day)."""
        c = closes_table
        with database_errors(self.where), self._engine.connect() as conn:
            return [(row[0], float(row[1])) for row in conn.execute(
                sa.select(c.c.date, c.c.close).where(c.c.ticker == ticker).order_by(c.c.date))]

    def alarm_after(self, ticker: str, day: dt.date | None) -> str | None:
        """The reasons of the latest alarm raised for `ticker` after `day` (None: none)."""
        a = alarms_table
        query = sa.select(a.c.reasons).where(a.c.ticker == ticker)
        if day is not None:
            query = query.where(a.c.as_of > day)
        with database_errors(self.where), self._engine.connect() as conn:
            row = conn.execute(query.order_by(a.c.as_of.desc()).limit(1)).first()
        return None if row is None else str(row[0])

    def record_alarm(self, ticker: str, as_of: dt.date, reasons: Sequence[str]) -> bool:
        """Note that the refresh as of `as_of` raised the alarm (once per day); True if new."""
        a = alarms_table
        with database_errors(self.where), \
                self._engine.connect().execution_options(**{_IMMEDIATE: True}) as conn, \
                conn.begin():
            if conn.execute(sa.select(a.c.as_of).where(a.c.ticker == ticker,
                                                       a.c.as_of == as_of)).first():
                return False
            conn.execute(sa.insert(a).values(ticker=ticker, as_of=as_of,
                                             reasons="; ".join(reasons),
                                             written_at=dt.datetime.now(dt.UTC)))
        return True

    def export_rows(self, ticker: str | None = None) -> list[tuple[Any, ...]]:
        """The export's rows (EXPORT_COLUMNS), ordered by ticker, origin, revision, horizon;
        `actual` is the close seen for the target day, None until a refresh has seen it."""
        f, c = forecasts_table, closes_table
        query = (sa.select(f.c.ticker, f.c.origin, f.c.target_date, f.c.horizon, f.c.forecast,
                           f.c.lower_80, f.c.upper_80, f.c.lower_95, f.c.upper_95, f.c.served,
                           f.c.model_version, f.c.run_id, f.c.revision, c.c.close)
                 .select_from(f.outerjoin(c, sa.and_(c.c.ticker == f.c.ticker,
                                                     c.c.date == f.c.target_date)))
                 .order_by(f.c.ticker, f.c.origin, f.c.revision, f.c.horizon))
        if ticker is not None:
            query = query.where(f.c.ticker == ticker)
        with database_errors(self.where), self._engine.connect() as conn:
            return [tuple(row) for row in conn.execute(query)]

    def export_csv(self, ticker: str | None = None) -> str:
        """The export as CSV text, header first."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(EXPORT_COLUMNS)
        for row in self.export_rows(ticker):
            writer.writerow(["" if v is None else v.isoformat() if isinstance(v, dt.date)
                             else repr(v) if isinstance(v, float) else v for v in row])
        return out.getvalue()

    # --- writing ---------------------------------------------------------------------------

    def record(self, forecast: ServedForecast, closes: Sequence[tuple[dt.date, float]],
               refresh: RefreshFacts) -> Written:
        """Write one refresh in one transaction: the forecast (as revision 0, or as the next
        revision if it differs from the latest for its origin; not at all if it is the same),
        the closes not seen before, and the refresh itself. Nothing new: nothing written."""
        now = dt.datetime.now(dt.UTC)
        with database_errors(self.where), \
                self._engine.connect().execution_options(**{_IMMEDIATE: True}) as conn, \
                conn.begin():
            revision = self._next_revision(conn, forecast)
            new_closes = self._new_closes(conn, forecast.ticker, closes)
            if revision is None and not new_closes:
                return Written(None, 0)
            if revision is not None:
                conn.execute(sa.insert(forecasts_table), [
                    {"ticker": forecast.ticker, "origin": forecast.origin, "revision": revision,
                     "target_date": day.target_date, "horizon": day.horizon,
                     "forecast": day.forecast,
                     **{f"{side}_{level}": day.bands[level][i] if level in day.bands else None
                        for level in BAND_LEVELS for i, side in enumerate(("lower", "upper"))},
                     "served": forecast.served, "model_name": forecast.model_name,
                     "model_version": forecast.model_version, "run_id": forecast.run_id,
                     "data_sha256": forecast.data_sha256, "git_commit": forecast.git_commit,
                     "as_of": forecast.as_of, "written_at": now}
                    for day in forecast.days])
            if new_closes:
                conn.execute(sa.insert(closes_table), [
                    {"ticker": forecast.ticker, "date": day, "close": value, "seen_at": now}
                    for day, value in new_closes])
            conn.execute(sa.insert(refreshes_table).values(
                ticker=refresh.ticker, as_of=refresh.as_of, origin=refresh.origin,
                trained_through=refresh.trained_through, retrained=refresh.retrained,
                reason=refresh.reason[:256], params_digest=refresh.params_digest,
                stages=",".join(refresh.stages), revision=revision, written_at=now))
        return Written(revision, len(new_closes))

    def _next_revision(self, conn: sa.Connection, forecast: ServedForecast) -> int | None:
        f = forecasts_table
        rows = conn.execute(
            sa.select(f).where(f.c.ticker == forecast.ticker, f.c.origin == forecast.origin)
            .order_by(f.c.revision.desc(), f.c.horizon)).mappings().all()
        if not rows:
            return 0
        latest = rows[0]["revision"]
        kept = [r for r in rows if r["revision"] == latest]
        return None if _same(kept, forecast) else int(latest) + 1

    def _new_closes(self, conn: sa.Connection, ticker: str,
                    closes: Sequence[tuple[dt.date, float]]) -> list[tuple[dt.date, float]]:
        c = closes_table
        known: dict[dt.date, float] = {
            row[0]: row[1] for row in conn.execute(
                sa.select(c.c.date, c.c.close).where(c.c.ticker == ticker))}
        new = []
        for day, value in closes:
            seen = known.get(day)
            if seen is None:
                new.append((day, float(value)))
            elif not math.isclose(seen, value, rel_tol=1e-9):
                # The first close seen stays: it is what the forecasts were scored against.
                log.warning("%s %s: the source now says close %.10g, the ledger kept %.10g "
                            "(first seen)", ticker, day, value, seen)
        return new


def _refresh_facts(row: Any) -> RefreshFacts:
    """A `refreshes` row as RefreshFacts (the stages column is comma-separated)."""
    return RefreshFacts(ticker=row["ticker"], as_of=row["as_of"], origin=row["origin"],
                        trained_through=row["trained_through"], retrained=row["retrained"],
                        reason=row["reason"], params_digest=row["params_digest"],
                        stages=tuple(s for s in row["stages"].split(",") if s))


def _same(kept: Sequence[Any], forecast: ServedForecast) -> bool:
    """Whether the ledger's latest revision for an origin is this forecast."""
    if len(kept) != len(forecast.days):
        return False
    for row, day in zip(kept, forecast.days, strict=True):
        if (row["horizon"], row["target_date"]) != (day.horizon, day.target_date):
            return False
        if (row["served"], row["run_id"], row["model_version"]) != (
                forecast.served, forecast.run_id, forecast.model_version):
            return False
        pairs = [(row["forecast"], day.forecast)] + [
            (row[f"{side}_{level}"], day.bands[level][i] if level in day.bands else None)
            for level in BAND_LEVELS for i, side in enumerate(("lower", "upper"))]
        for old, new in pairs:
            if (old is None) != (new is None):
                return False
            if old is not None and new is not None and not math.isclose(old, new, rel_tol=1e-9):
                return False
    return True
