"""The docs cannot drift: the site builds strictly, the README stays short, the params page
shows params.yaml's defaults, and every `make <target>` named exists in the Makefile."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.helpers import ROOT, committed_text

DOCS = sorted((ROOT / "docs").glob("*.md"))


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    mkdocs = Path(sys.executable).parent / "mkdocs"
    r = subprocess.run([str(mkdocs), "build", "--strict", "-d", str(tmp_path / "site")], cwd=ROOT,
                       capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "site" / "index.html").is_file()


def test_readme_at_most_300_lines() -> None:
    assert len((ROOT / "README.md").read_text().splitlines()) <= 300


def test_params_page_has_every_key_with_its_default() -> None:
    params = yaml.safe_load(committed_text("params.yaml"))  # not a variant `dvc exp run` left
    page = (ROOT / "docs" / "params.md").read_text()
    rows = dict(re.findall(r"^\| `([\w.]+)` \| `([^`]*)` \|", page, flags=re.M))
    expected = {f"{s}.{k}": v for s, sec in params.items() for k, v in sec.items()}
    assert set(rows) == set(expected)
    for key, value in expected.items():
        assert json.loads(rows[key]) == value, key


def test_every_named_make_target_exists() -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([\w-]+):", makefile, flags=re.M))
    named = set()
    for f in [ROOT / "README.md", *DOCS]:  # `make x` in text, or a code line starting `make x`
        named |= set(re.findall(r"(?:`|^\s*)make ([a-z][\w-]*)", f.read_text(), flags=re.M))
    missing = sorted(named - targets)
    assert not missing, missing


def test_params_page_defaults_are_the_pydantic_defaults() -> None:
    from crypto_forecast.params import Params

    page = (ROOT / "docs" / "params.md").read_text()
    rows = dict(re.findall(r"^\| `([\w.]+)` \| `([^`]*)` \|", page, flags=re.M))
    defaults = Params().model_dump(mode="json")
    expected = {f"{s}.{k}": v for s, sec in defaults.items() for k, v in sec.items()}
    assert set(rows) == set(expected)
    for key, value in expected.items():
        assert json.loads(rows[key]) == value, key


MAKE_WITH_VARS = re.compile(r"make ([a-z][\w-]*)((?: [A-Z_]+=[\w./:-]+)+)")


def test_every_make_variable_a_page_shows_reaches_the_command() -> None:
    """`make promote VERSION=3 MODEL=x` must pass MODEL on, not drop it silently: for every
    `make <target> VAR=value` in the README and docs, `make -n` prints a command holding
    each value."""
    shown: set[tuple[str, str]] = set()
    for f in [ROOT / "README.md", *DOCS]:
        for target, assignments in MAKE_WITH_VARS.findall(f.read_text()):
            shown.add((target, assignments.strip()))
    assert ("promote", "VERSION=3") in {(t, a.split()[0]) for t, a in shown}
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for target, assignments in sorted(shown):
        done = subprocess.run(["make", "-n", target, *assignments.split()], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, (target, assignments, done.stderr)
        for assignment in assignments.split():
            name, value = assignment.split("=", 1)
            # The value itself, or the shell reading the variable make exports to the recipe.
            used = value in done.stdout or re.search(rf"\$\{{?{name}\b", done.stdout)
            assert used, f"make {target} {assignment}: {value} is not passed on"
