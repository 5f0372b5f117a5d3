"""`atomic.write_all`: a stage's outputs are replaced together or not at all."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from crypto_forecast.errors import StorageError
from crypto_forecast.io import atomic


def test_writes_text_and_bytes(tmp_path: Path) -> None:
    atomic.write_all({tmp_path / "a.json": "{}\n", tmp_path / "sub" / "b.png": b"\x89PNG"})
    assert (tmp_path / "a.json").read_text() == "{}\n"
    assert (tmp_path / "sub" / "b.png").read_bytes() == b"\x89PNG"


def test_a_full_disk_on_the_second_file_keeps_both_old_files(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    first, second = tmp_path / "metrics.json", tmp_path / "evaluation.json"
    first.write_text("old 1")
    second.write_text("old 2")
    real = os.fsync
    calls: list[int] = []

    def full_on_second(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd)

    monkeypatch.setattr(atomic.os, "fsync", full_on_second)
    with pytest.raises(StorageError, match=r"cannot write .*evaluation\.json \(No space left"):
        atomic.write_all({first: "new 1", second: "new 2"})
    assert (first.read_text(), second.read_text()) == ("old 1", "old 2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evaluation.json", "metrics.json"]
