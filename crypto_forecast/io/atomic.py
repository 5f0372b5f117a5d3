"""Atomic file output: write beside the target, fsync, then rename over it.

A stage that fails or is killed mid-write leaves either the old file or the new one,
never half of one, so DVC can never cache a truncated output.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from crypto_forecast.errors import StorageError

# Write failures the user fixes outside the pipeline, and the fix for each cause.
_FREE_SPACE = "free disk space (or raise the quota / file-size limit) and rerun"
_STORAGE_FIXES = {
    errno.ENOSPC: _FREE_SPACE, errno.EDQUOT: _FREE_SPACE, errno.EFBIG: _FREE_SPACE,
    errno.EROFS: "the file system is mounted read-only: remount it writable, or run the "
                 "project from a writable copy",
    errno.EACCES: "make the folder writable (`chmod u+w`, or `chattr -i` if it is immutable) "
                  "and rerun",
    errno.EPERM: "make the folder writable (`chmod u+w`, or `chattr -i` if it is immutable) "
                 "and rerun",
    errno.ENOTDIR: "a file stands where a folder should be: move it aside and rerun",
    errno.EISDIR: "a folder stands where the file should be: move it aside and rerun",
    errno.ENAMETOOLONG: "use a shorter path (move the project, or shorten the ticker)",
    errno.EMFILE: "close other programs or raise `ulimit -n`, then rerun",
}


def _storage_error(exc: OSError, target: Path | None, kept: str) -> OSError | StorageError:
    """The one-line `StorageError` for a write failure the user fixes (the original error
    when it is not one of those: a bug keeps its traceback)."""
    fix = _STORAGE_FIXES.get(exc.errno or 0)
    if fix is None:
        return exc
    return StorageError(f"cannot write {target} ({os.strerror(exc.errno or 0)}) — {fix}; {kept} "
                        "untouched")


def _file_mode() -> int:
    # mkstemp creates 0600 files; outputs get the usual 0666 & ~umask like any other file.
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path next to `target`; on success it replaces `target`.

    The temporary name keeps the target's suffix (Keras insists on `.keras`).
    On any error the temporary file is removed and `target` is untouched; a full disk
    (or quota, file-size limit, read-only file system) becomes one `StorageError` line.
    """
    tmp: Path | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.stem}.", suffix=f".tmp{target.suffix}"
        )
        os.close(fd)
        tmp = Path(tmp_name)
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, _file_mode())
        os.replace(tmp, target)
    except OSError as exc:
        raise _storage_error(exc, target, f"the previous {target.name}, if any, is") from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def write_all(files: Mapping[Path, str | bytes]) -> None:
    """Write several outputs as one step: every temporary file is written and fsynced
    before any target is replaced, so a full disk leaves all the previous files as they
    were, not some old and some new."""
    staged: list[tuple[Path, Path]] = []
    target: Path | None = None
    try:
        for target, content in files.items():
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(
                dir=target.parent, prefix=f".{target.stem}.", suffix=f".tmp{target.suffix}")
            staged.append((Path(tmp_name), target))
            with os.fdopen(fd, "wb") as fh:
                fh.write(content.encode("utf-8") if isinstance(content, str) else content)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp_name, _file_mode())
        for tmp, target in staged:
            os.replace(tmp, target)
    except OSError as exc:
        raise _storage_error(exc, target, "the previous outputs, if any, are") from None
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def artifact_errors(stage: str) -> Iterator[None]:
    """Logging a stage's results to a tracking artifact folder that cannot be written
    (read-only, full) is one clear line; the stage has written nothing yet."""
    try:
        yield
    except OSError as exc:
        raise StorageError(
            f"cannot log {stage}'s results to the MLflow run's artifact folder ({exc}) — make it "
            "writable (or set MLFLOW_TRACKING_URI to a writable store) and rerun; no output "
            "was written") from None


def write_bytes(target: Path, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text(target: Path, text: str) -> None:
    write_bytes(target, text.encode("utf-8"))


def write_json(target: Path, obj: Any) -> None:
    write_text(target, json_text(obj))


def json_text(obj: Any) -> str:
    """How the pipeline writes JSON: indented, in the given key order, ending in a newline."""
    return json.dumps(obj, indent=2, sort_keys=False) + "\n"
