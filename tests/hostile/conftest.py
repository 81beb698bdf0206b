"""The hostile-input sweep (tests/hostile/): many generated hostile requests against every public
door, checked by the harness in tests/hostile/world.py (the `world` fixture is in tests/conftest.py,
shared with the regression tests of the bugs the sweep found).

Endpoints: POST /webhooks/shopify (forged, badly addressed, and validly signed with hostile content
for every topic in `connectors.shopify.TOPICS`), POST /webhooks/<unknown>, GET /auth/shopify/install,
/auth/shopify/callback, /auth/shopify/patch-id-token, GET /app (session tokens), /healthz, /readyz,
/metrics (and the non-production overview pages), the JSON API under /api/v1 (shop, balance,
history, redeem, with every kind of token), POST /webhooks/woocommerce (signed and forged, hostile
headers and bodies), the WooCommerce key exchange (/auth/woocommerce/connect, /callback, /return)
and the plugin's /wordpress/launch, `app.domain.shop_settings.apply_changes` and `clawback settings set`.

Inputs tried per endpoint are printed (stderr and a warning in the summary), recorded as junit
properties, and merged across xdist workers into test-artifacts/hostile-inputs.txt (here: every test
of this folder is counted by `_count_inputs`). CLAWBACK_HOSTILE_SCALE scales the examples per sweep.
"""

from __future__ import annotations

import fcntl
import sys
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.hostile.world import KNOWN, OUTCOMES, TRIED

ARTIFACT = Path(__file__).resolve().parents[2] / "test-artifacts" / "hostile-inputs.txt"
_RUN = uuid.uuid4().hex  # one per process; under xdist the controller's testrunuid is used


def _run_id(config: pytest.Config) -> str:
    workerinput = getattr(config, "workerinput", None)
    return str(workerinput["testrunuid"]) if workerinput else _RUN


def _merge_into_artifact(run: str, tried: Counter[str], known: Counter[str]) -> None:
    """Add this test's counts to test-artifacts/hostile-inputs.txt: one section per pytest run (all
    xdist workers merge into it under a lock), so runs side by side in one checkout do not mix;
    sections older than a day are dropped."""
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    with ARTIFACT.open("a+", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        sections: dict[str, dict[str, Any]] = {}
        current: dict[str, Any] | None = None
        for line in fh.read().splitlines():
            if line.startswith("# hostile inputs, run "):
                run_id, _, started = line.removeprefix("# hostile inputs, run ").partition(" started ")
                current = sections[run_id] = {"started": float(started or 0), "tried": Counter(), "known": Counter()}
            elif current is not None and line.startswith(("tried ", "known-bug ")):
                kind, _, rest = line.partition(" ")
                name, _, count = rest.rpartition("=")
                current["tried" if kind == "tried" else "known"][name] += int(count)
        now = time.time()
        mine = sections.setdefault(run, {"started": now, "tried": Counter(), "known": Counter()})
        mine["tried"].update(tried)
        mine["known"].update(known)
        out = []
        for run_id, section in sorted(sections.items(), key=lambda item: item[1]["started"]):
            if now - section["started"] > 86_400:
                continue
            out += [f"# hostile inputs, run {run_id} started {section['started']:.0f}"]
            out += [f"tried {name}={count}" for name, count in sorted(section["tried"].items())]
            out += [f"total all={sum(section['tried'].values())}"]
            out += [f"known-bug {name}={count}" for name, count in sorted(section["known"].items())]
            out += [""]
        fh.seek(0)
        fh.truncate()
        fh.write("\n".join(out))


@pytest.fixture(autouse=True)
def _count_inputs(request: pytest.FixtureRequest, record_property: Callable[[str, object], None]) -> Iterator[None]:
    tried, known, outcomes, start = Counter(TRIED), Counter(KNOWN), Counter(OUTCOMES), time.monotonic()
    yield
    new_tried, new_known, new_outcomes = TRIED - tried, KNOWN - known, OUTCOMES - outcomes
    if not new_tried:
        return
    for name, count in sorted(new_tried.items()):
        record_property(f"hostile_inputs[{name}]", count)
    for name, count in sorted(new_known.items()):
        record_property(f"known_bug_hits[{name}]", count)
    line = ", ".join(f"{name}={count}" for name, count in sorted(new_tried.items()))
    if new_outcomes:
        line += "; stored deliveries ended " + ", ".join(f"{k}={v}" for k, v in sorted(new_outcomes.items()))
    if new_known:
        line += "; known bugs hit: " + ", ".join(f"{name}={count}" for name, count in sorted(new_known.items()))
    line += f" ({time.monotonic() - start:.1f}s)"
    print(f"hostile inputs tried: {line}", file=sys.stderr, flush=True)
    warnings.warn(f"hostile inputs tried: {request.node.name}: {line}", UserWarning, stacklevel=1)
    _merge_into_artifact(_run_id(request.config), new_tried, new_known)
