"""The chaos soak, 60 s version: loadtest/chaos.sh with 200 clients against the binaries of
$NOMYO_BIN_DIR (default target/debug), backends killed, stopped, slowed and failing meanwhile.

It asserts what chaos.sh checks (docs/reliability.md, "Chaos soak"): no BAD request, 0 slots and 0
queue places held afterwards, every endpoint healthy, every worker answering fresh connections,
every request kind completing again, the router alive without a panic, descriptors and RSS back
near their start. chaos.sh stops everything it starts (trap on EXIT); this test runs it in its own
process group and ends that group, by its id, if it is still there (a timeout or an interrupt).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from conftest import BIN_DIR, MOCK_BIN, REPO, ROUTER_BIN, child_env

SECONDS = 60
CLIENTS = 200
TIMEOUT = 150  # the whole script: 60 s of load, the drain, the checks


def _end_group(proc: subprocess.Popen) -> None:
    """TERM the script's process group (its trap stops its children), then KILL what is left."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the group outlives its leader only through strays
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def test_chaos_soak_60s(tmp_path):
    for b in (ROUTER_BIN, MOCK_BIN):
        if not b.is_file():
            pytest.fail(f"binary {b} not found: build it, or set NOMYO_BIN_DIR")
    results = tmp_path / "results"
    log = tmp_path / "chaos.log"
    args = ["bash", str(REPO / "loadtest" / "chaos.sh"), "--seconds", str(SECONDS), "--clients", str(CLIENTS),
            "--no-build", "--bin-dir", str(BIN_DIR), "--results-dir", str(results), "--base-port", "auto",
            "--settle", "0"]
    started = time.monotonic()
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                env=child_env(), cwd=tmp_path, start_new_session=True)
        try:
            rc = proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            rc = None
        finally:
            _end_group(proc)
    text = log.read_text(errors="replace")
    assert rc is not None, f"chaos.sh did not finish within {TIMEOUT}s:\n{text[-6000:]}"

    reports = sorted(results.glob("*-chaos*.jsonl"))
    assert reports, f"chaos.sh wrote no results (exit {rc}):\n{text[-6000:]}"
    records = [json.loads(line) for line in reports[-1].read_text().splitlines() if line.strip()]
    summary = next(r for r in records if r["type"] == "summary")
    checks = [r for r in records if r["type"] == "check"]
    classes = summary["classes"]

    assert classes["bad"] == 0, f"BAD requests: {json.dumps(summary.get('bad_samples'), indent=1)[:6000]}"
    # The mix really ran: many requests, every class of outcome, hostile clients included.
    assert summary["requests"] > 1000, summary
    assert classes["complete"] > summary["requests"] // 4, classes
    assert classes["clean_error"] > 0 and classes["aborted_by_client"] > 0, classes
    assert summary["peaks"]["total_queued"] > 0, "no request ever queued"
    failed = [c for c in checks if not c["ok"]]
    assert not failed, f"failed checks: {json.dumps(failed, indent=1)}\n{text[-4000:]}"
    names = {c["name"] for c in checks}
    for name in ("slots in use after", "queue places held after", "every worker answers", "RSS after",
                 "descriptors after (idle upstream connections apart)", "router alive, no panic",
                 "every request kind completes after", "endpoints healthy after"):
        assert name in names, f"check {name!r} missing"
    assert rc == 0, f"chaos.sh exit {rc}:\n{text[-4000:]}"
    assert time.monotonic() - started < TIMEOUT
