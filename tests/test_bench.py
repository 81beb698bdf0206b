"""The benchmark still runs: `python -m bench.run` end to end on a tiny load, every phase.

Not a timed test (the figures are the benchmark's to print, on a machine set aside for it): this
checks that each phase completes and that its correctness checks hold, so the script cannot rot.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_phase_runs_and_nothing_is_lost_or_doubled(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLAWBACK_", "SHOPIFY_"))}
    argv = [sys.executable, "-m", "bench.run", "--count", "150", "--concurrency", "8", "--rounds", "1",
            "--sizes", "100,1000", "--e2e-timeout-s", "120", "--out", str(tmp_path),
            "--timelines", str(tmp_path / "timelines")]  # fmt: skip
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    (written,) = tmp_path.glob("results-*.json")
    results = json.loads(written.read_text())
    assert results["intake"]["errors"] == 0 and results["ceiling"]["errors"] == 0
    assert results["intake"]["sent"] == 150 and results["intake"]["ratio_to_ceiling"] > 0
    e2e = results["end_to_end"]
    assert (e2e["lost"], e2e["doubled"]) == (0, 0)
    assert e2e["by_status"] == {"processed": results["intake"]["unique"]}
    assert e2e["check"].startswith("ok:")
    assert set(results["data"]["ratios"]) == {"balance", "customer_history", "activity"}
    assert results["reconcile"]["orders_per_s"] > 0
    assert "intake / ceiling" in done.stdout and "every round" in done.stdout
    for phase in ("ceiling", "intake"):  # each answer's send and answer times, in order
        lines = (tmp_path / "timelines" / f"round-1-{phase}.txt").read_text().splitlines()
        times = [tuple(map(float, line.split())) for line in lines]
        assert len(times) == 150 and all(sent < answered for sent, answered in times)
