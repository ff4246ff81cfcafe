#!/usr/bin/env python3
"""Judges and reports a chaos soak (loadtest/chaos.sh): reads the run directory, evaluates every
check, writes OUT.md and OUT.jsonl (next to it), exits 1 when a check fails.

Usage: chaos_report.py RUN_DIR OUT.md
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter


def load(path, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def lines(path):
    out = []
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    try:
                        out.append(json.loads(line))
                    except ValueError:
                        pass
    except OSError:
        pass
    return out


def mb(kb):
    return f"{kb / 1024:.1f} MB"


def main() -> int:
    run, out_md = sys.argv[1], sys.argv[2]
    meta = load(f"{run}/meta.json", {})
    client = load(f"{run}/client.json", None)
    start = load(f"{run}/proc-start.json", {})
    end = load(f"{run}/proc-end.json", {})
    settled = load(f"{run}/proc-settled.json", None)
    usage = load(f"{run}/usage-end.json", None)
    health = load(f"{run}/health-end.json", None)
    workers = load(f"{run}/workers.json", None)
    sanity_end = load(f"{run}/sanity-end.json", None)
    events = lines(f"{run}/events.jsonl")
    samples = lines(f"{run}/samples.jsonl")
    mocks = lines(f"{run}/mock-stats.jsonl")

    checks = []

    def check(name, ok, value, bound):
        checks.append({"type": "check", "name": name, "ok": bool(ok), "value": value, "bound": bound})

    classes = (client or {}).get("classes", {})
    check("client finished and reported", client is not None and meta.get("client_exit") in (0, 1),
          f"exit {meta.get('client_exit')}", "a JSON summary")
    check("BAD requests", client is not None and classes.get("bad", 1) == 0, classes.get("bad"), "0")

    if usage:
        eps = usage.get("usage_counts", {})
        held = {f"{e} {m}": n for e, ms in eps.items() for m, n in ms.items() if n}
        queued = {m: d for m, d in usage.get("queue_depth", {}).items() if d}
        check("slots in use after", usage.get("total_in_flight") == 0 and not held,
              usage.get("total_in_flight") if not held else held, "0")
        check("queue places held after", usage.get("total_queued") == 0 and not queued,
              usage.get("total_queued") if not queued else queued, "0")
    else:
        check("slots in use after", False, "no /api/usage answer", "0")
        check("queue places held after", False, "no /api/usage answer", "0")

    if health:
        bad_eps = [e for e, v in health.get("endpoints", {}).items() if v.get("status") != "ok"]
        check("endpoints healthy after", health.get("status") == "ok" and not bad_eps,
              f"{len(health.get('endpoints', {})) - len(bad_eps)}/{len(health.get('endpoints', {}))} ok", "all")
    else:
        check("endpoints healthy after", False, "no /health answer", "all")

    if workers:
        check("every worker answers", workers.get("ok"),
              f"{workers.get('answered')}/{workers.get('connections')} fresh connections, slowest {workers.get('slowest_s')} s",
              f"all within 2 s ({meta.get('workers')} workers)")
    else:
        check("every worker answers", False, "no result", "all")
    check("every request kind completes after", bool(sanity_end and sanity_end.get("ok")),
          (sanity_end or {}).get("kinds") if not (sanity_end and sanity_end.get("ok")) else "12/12", "12/12")
    check("router alive, no panic", meta.get("router_alive_at_end") == 1 and meta.get("router_panics", 1) == 0,
          f"alive={meta.get('router_alive_at_end')}, panics in log={meta.get('router_panics')}", "alive, 0")

    peaks = (client or {}).get("peaks", {})
    s_fds, e_fds = start.get("fds", 0), end.get("fds", 0)
    s_up, e_up = start.get("upstream", 0), end.get("upstream", 0)
    check("descriptors after (idle upstream connections apart)", e_fds - e_up <= s_fds - s_up + 20,
          f"{e_fds - e_up} (start {s_fds - s_up}, peak total {peaks.get('fds')}; client sockets {end.get('client')})",
          f"<= {s_fds - s_up + 20}")
    bound_up = meta.get("total_slots", 32) * meta.get("workers", 1) + 10
    check("idle upstream connections after", e_up <= bound_up, f"{e_up} (start {s_up})",
          f"<= {bound_up} (slots x workers + discovery)")
    if settled is not None and meta.get("settle_s", 0) > 0:
        check("descriptors after the pools' idle expiry", settled.get("fds", 0) <= s_fds + 20,
              f"{settled.get('fds')} (upstream {settled.get('upstream')})", f"<= {s_fds + 20}")
    s_rss, e_rss = start.get("rss_kb", 0), end.get("rss_kb", 0)
    rss_bound = max(3 * s_rss, s_rss + 65536)
    check("RSS after", 0 < e_rss <= rss_bound, f"{mb(e_rss)} (start {mb(s_rss)}, peak {mb(peaks.get('rss_kb', 0))})",
          f"<= {mb(rss_bound)}")

    ok = all(c["ok"] for c in checks)

    # ---- markdown ----
    md = []
    md.append(f"# Chaos soak: {meta.get('date')} ({meta.get('git')})\n")
    md.append(f"**Result: {'PASS' if ok else 'FAIL'}**\n")
    md.append(f"- load: {meta.get('clients')} clients for {meta.get('seconds')} s "
              f"(requests in flight drained in {(client or {}).get('drain_s')} s; wall {meta.get('wall_s')} s), seed {meta.get('seed')}")
    md.append(f"- router: {meta.get('workers')} workers, {meta.get('total_slots')} slots in all (configuration below); "
              f"binaries {meta.get('bin')}")
    md.append("- backends: " + ", ".join(f"{k} ({v['args']})" for k, v in meta.get("backends", {}).items()))
    md.append(f"- machine: {meta.get('nproc')} CPUs ({meta.get('cpu')}), kernel {meta.get('kernel')}\n")

    md.append("## Requests\n")
    total = (client or {}).get("requests", 0) or 0
    md.append("| class | requests | share |")
    md.append("| --- | ---: | ---: |")
    for k in ("complete", "clean_error", "aborted_by_client", "bad"):
        v = classes.get(k, 0)
        md.append(f"| {k} | {v:,} | {100 * v / total:.1f} % |" if total else f"| {k} | {v} | |")
    md.append(f"| **total** | **{total:,}** | |")
    md.append("")
    reasons = (client or {}).get("reasons", {})
    for k in ("clean_error", "aborted_by_client"):
        if reasons.get(k):
            md.append(f"{k}: " + ", ".join(f"{r} {n:,}" for r, n in reasons[k].items()) + "  ")
    md.append("HTTP statuses: " + ", ".join(f"{s} {n:,}" for s, n in (client or {}).get("statuses", {}).items()) + "  ")
    md.append(f"Keep-alive connections found closed before a request (re-sent, as any HTTP client does): "
              f"{(client or {}).get('keepalive_retries')}; longest request {(client or {}).get('longest_request_s')} s "
              f"({(client or {}).get('longest_request_kind')})\n")
    md.append("| kind | complete | clean_error | aborted_by_client | bad |")
    md.append("| --- | ---: | ---: | ---: | ---: |")
    for kind, c in (client or {}).get("by_kind", {}).items():
        md.append(f"| {kind} | {c.get('complete', 0):,} | {c.get('clean_error', 0):,} | {c.get('aborted_by_client', 0):,} | {c.get('bad', 0):,} |")
    md.append("")

    msgs = (client or {}).get("error_messages", {})
    if msgs:
        md.append("Error messages of the clean errors (status or stream format: message; endpoints and numbers "
                  "replaced):\n")
        for m, n in list(msgs.items())[:20]:
            md.append(f"- {n:,} x `{m}`")
        md.append("")
    md.append("## Chaos\n")
    ev = Counter(e["event"] for e in events)
    md.append(f"{meta.get('disruptions')} disruptions: " + ", ".join(f"{k} {v}" for k, v in sorted(ev.items())) + "\n")
    md.append(f"Peaks (sampled every second): {peaks.get('total_in_flight')} slots in use, {peaks.get('total_queued')} queued, "
              f"{peaks.get('client_inflight')} client requests in flight, router RSS {mb(peaks.get('rss_kb', 0))}, {peaks.get('fds')} descriptors\n")

    rss_line = [s for s in samples if s.get("rss_kb")]
    if rss_line:
        marks = []
        for q in (0.1, 0.25, 0.5, 0.75, 1.0):
            s = rss_line[min(len(rss_line) - 1, int(q * (len(rss_line) - 1)))]
            marks.append(f"t={s['t']:.0f}s {mb(s['rss_kb'])} / {s.get('fds')} fds / {s.get('total_queued')} queued")
        md.append("Router over the run: " + "; ".join(marks) + "\n")
    md.append("## Checks\n")
    md.append("| check | value | bound | ok |")
    md.append("| --- | --- | --- | --- |")
    for c in checks:
        md.append(f"| {c['name']} | {c['value']} | {c['bound']} | {'yes' if c['ok'] else '**NO**'} |")
    md.append("")
    md.append(f"Router descriptors: start {start}, end {end}" + (f", after the idle expiry {settled}" if settled else "") + "  ")
    inflight = {m["backend"]: (m.get("stats") or {}).get("in_flight") for m in mocks}
    md.append(f"Backends' own in-flight count at the end (information): {inflight}\n")
    try:
        with open(f"{run}/router.yaml") as f:
            cfg = f.read()
        md.append("Router configuration:\n\n```yaml\n" + cfg.rstrip() + "\n```\n")
    except OSError:
        pass
    bads = (client or {}).get("bad_samples", [])
    if bads:
        md.append("## BAD samples\n")
        for b in bads[:20]:
            md.append(f"- `{b['kind']}`: {b['reason']} ({b['request']})")
        md.append("")
    text = "\n".join(md)
    with open(out_md, "w") as f:
        f.write(text)

    with open(out_md[:-3] + ".jsonl", "w") as f:
        f.write(json.dumps({"type": "meta", **meta, "ok": ok}) + "\n")
        f.write(json.dumps({"type": "summary", **(client or {})}) + "\n")
        for c in checks:
            f.write(json.dumps(c, default=str) + "\n")
        for when, p in (("start", start), ("end", end), ("settled", settled)):
            if p:
                f.write(json.dumps({"type": "proc", "when": when, **p}) + "\n")
        for e in events:
            f.write(json.dumps(e) + "\n")
        for s in samples:
            f.write(json.dumps({"type": "sample", **s}) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
