"""The example output docs/rest.md shows is what the default offline pipeline gives: its first
two forecast rows (4 decimals), the LSTM's 1-day skill (3 decimals) and the LSTM forecast
beside the served one (2 decimals). Run by .ci/repro-check in its fresh copy, after `dvc repro`
with the committed params on the synthetic series.

    python .ci/check_doc_numbers.py docs/rest.md <project with reports/>
"""

from __future__ import annotations

import csv
import json
import re
import sys
from pathlib import Path


def main(page: Path, project: Path) -> int:
    text = page.read_text()
    with (project / "reports/ETH-USD/forecast.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    metrics = json.loads((project / "reports/metrics.json").read_text())
    problems = []
    shown = [json.loads(m) for m in re.findall(r'^\s*(\{"date": "[^"]+".*\}),?$', text, re.M)]
    if len(shown) < 2:
        problems.append("no example forecast rows found")
    for got, row in zip(shown, rows, strict=False):
        for key, value in got.items():
            want = row[key] if key == "date" else round(float(row[key]), 4)
            if value != want:
                problems.append(f"{got['date']} {key}: the page shows {value}, the run gives {want}")
    skill = re.search(r"1-day\s+skill was ([0-9.]+)", text)
    if not skill or float(skill.group(1)) != round(metrics["skill_h1"], 3):
        problems.append(f"1-day skill: the page shows {skill and skill.group(1)}, the run gives "
                        f"{round(metrics['skill_h1'], 3)}")
    lstm = re.search(r"LSTM's ([0-9,.]+) for (\d{4}-\d\d-\d\d)", text)
    if "lstm_forecast" in rows[0]:
        want = f"{float(rows[0]['lstm_forecast']):,.2f}"
        if not lstm or lstm.group(1) != want or lstm.group(2) != rows[0]["date"]:
            problems.append(f"LSTM forecast: the page shows {lstm and lstm.groups()}, the run "
                            f"gives {want} for {rows[0]['date']}")
    for problem in problems:
        sys.stderr.write(f"CI: {page}: {problem}\n")
    if not problems:
        sys.stdout.write(f"CI: {page}'s example numbers match the run\n")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
