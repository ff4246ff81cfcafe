#!/usr/bin/env python3
"""Result bookkeeping for loadtest/run.sh (stdlib only).

  results.py oha FILE.json KEY=VALUE...      one oha --output-format json run -> one JSONL record on stdout
  results.py stream FILE.json KEY=VALUE...   one stream_client.py run -> one JSONL record on stdout
  results.py paired FILE.json KEY=VALUE...   one paired_latency.py run -> one JSONL record per target
  results.py record KEY=VALUE...             a free-form record (numbers are parsed)
  results.py report RESULTS.jsonl META.json  the markdown report (table, target checks, details)

Records carry `phase` (pinned | unpinned), `scenario` and `target` (direct | nginx | router | litellm).
"""

import json
import statistics
import sys


def kv(args):
    out = {}
    for a in args:
        k, _, v = a.partition("=")
        if v == "":
            out[k] = None
            continue
        try:
            out[k] = int(v)
        except ValueError:
            try:
                out[k] = float(v)
            except ValueError:
                out[k] = v
    return out


def oha_record(path, extra):
    with open(path) as f:
        d = json.load(f)
    s = d["summary"]
    lat = d.get("latencyPercentiles", {})
    codes = d.get("statusCodeDistribution", {}) or {}
    errs = d.get("errorDistribution", {}) or {}
    ok = codes.get("200", 0)
    total_s = s.get("total") or 0.0
    rec = {
        "tool": "oha",
        "ok": ok,
        "non_200": sum(v for k, v in codes.items() if k != "200"),
        "errors": sum(errs.values()),
        "error_kinds": errs,
        "status": codes,
        "duration_s": round(total_s, 3),
        "rps": round(ok / total_s, 1) if total_s else 0.0,
        "p50_us": round(lat.get("p50", 0) * 1e6, 1) if lat.get("p50") is not None else None,
        "p90_us": round(lat.get("p90", 0) * 1e6, 1) if lat.get("p90") is not None else None,
        "p99_us": round(lat.get("p99", 0) * 1e6, 1) if lat.get("p99") is not None else None,
        "p999_us": round(lat.get("p99.9", 0) * 1e6, 1) if lat.get("p99.9") is not None else None,
        "max_us": round((s.get("slowest") or 0) * 1e6, 1),
        "rps_1s_min": round(d.get("rps", {}).get("min") or 0, 1),
        "rps_1s_max": round(d.get("rps", {}).get("max") or 0, 1),
    }
    rec.update(extra)
    clk = rec.get("clk_tck")
    if clk and ok:
        if rec.get("proxy_ticks") is not None:
            rec["proxy_cpu_us_per_req"] = round(rec["proxy_ticks"] * 1e6 / clk / ok, 1)
        if rec.get("mock_ticks") is not None:
            rec["mock_cpu_us_per_req"] = round(rec["mock_ticks"] * 1e6 / clk / ok, 1)
    if rec.get("all_ticks"):
        rec["steal_pct"] = round(100.0 * rec.get("steal_ticks", 0) / rec["all_ticks"], 1)
    return rec


def perf_groups(path):
    """Self time of a `perf report --no-children --sort dso,symbol` listing, grouped by component."""
    import collections
    import re
    groups = collections.Counter()
    for line in open(path, errors="replace"):
        m = re.match(r"\s*([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(.*)", line)
        if not m:
            continue
        pct_, dso, kind, sym = float(m.group(1)), m.group(2), m.group(3), m.group(4).strip()
        if kind == "k" or dso.startswith("[kernel"):
            k = "kernel (TCP/loopback, syscalls, scheduler)"
        elif any(x in sym for x in ("malloc", "free", "unlink_chunk", "memalign", "consolidate", "realloc")):
            k = "malloc/free (glibc)"
        elif any(x in sym for x in ("memmove", "memcpy", "memset")):
            k = "memcpy/memmove"
        elif "hyper" in sym or "httparse" in sym:
            k = "hyper + httparse (HTTP/1 server and client)"
        elif "monoio" in sym:
            k = "monoio (+compat)"
        elif any(x in sym for x in ("tokio", "want::", "futures")):
            k = "channels (hyper client dispatch, futures)"
        elif "http::" in sym or "bytes::" in sym:
            k = "http/bytes types (HeaderMap, HeaderName, Bytes)"
        elif "nomyo" in sym or "serde" in sym:
            k = "nomyo_router code (+serde sniffing)"
        elif "libc" in dso:
            k = "libc other"
        else:
            k = "other"
        groups[k] += pct_
    for k, v in groups.most_common():
        print(f"{v:6.1f}%  {k}")


def paired_records(path, extra):
    """paired_latency.py output -> one record per target (times in µs; added_* = target − baseline)."""
    with open(path) as f:
        d = json.loads(f.read().strip().splitlines()[-1])
    out = []
    for target, st in d["targets"].items():
        rec = {"tool": "paired", "target": target, "mode": d["mode"], "path": d["path"], "baseline": d["baseline"],
               "requests": d["requests"], "warmup": d["warmup"], "wall_s": d["wall_s"],
               "n": st["n"], "errors": st["errors"], "error_kinds": st["error_kinds"]}
        for k in ("p50", "p90", "p99", "p999", "mean", "max"):
            rec[f"{k}_us"] = st[k]
        for k, v in (st.get("added") or {}).items():
            rec[f"added_{k}_us"] = v
        rec.update(extra)
        out.append(rec)
    return out


def stream_record(path, extra):
    with open(path) as f:
        d = json.loads(f.read().strip().splitlines()[-1])
    d["tool"] = "stream_client"
    d.update(extra)
    return d


# ---------------------------------------------------------------------------------------------------
# Report

TARGETS = ["direct", "nginx", "router"]


def fmt_num(v, digits=0):
    if v is None:
        return "—"
    if isinstance(v, str):
        return v
    if digits == 0:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def us_or_ms(v):
    """Microseconds as µs below 10 ms, else ms."""
    if v is None:
        return "—"
    if abs(v) < 10_000:
        return f"{v:,.0f} µs"
    return f"{v / 1000:,.1f} ms"


def signed_us(v):
    if v is None:
        return "—"
    return ("+" if v >= 0 else "−") + us_or_ms(abs(v))


def mb(kb):
    return "—" if kb is None else f"{kb / 1024:.1f} MB"


def mark(ok):
    if ok is None:
        return "n/a"
    if ok == "noise":
        return "⚠️ not resolved"
    return "✅ met" if ok else "❌ missed"


# A round pair is the nginx round and the router round of the same round number: run back to back,
# so they saw the same host, unless the hypervisor took time from one of them (steal).
QUIET_STEAL_PCT = 3.0


def round_pairs(nginx_recs, router_recs):
    by_round = {str(r.get("round")): r for r in nginx_recs if r.get("rps")}
    return [(by_round[str(r.get("round"))], r) for r in router_recs if str(r.get("round")) in by_round]


def judge_pairs(pairs):
    """router/nginx req/s as the median of per-round ratios over the quiet pairs (both rounds under
    QUIET_STEAL_PCT steal). With fewer than two quiet pairs the verdict is "not resolved": the
    median over all pairs is still shown, but steal that hits one proxy's rounds more than the
    other's decides it more than the proxies do."""
    def median_ratio(ps):
        return statistics.median(r["rps"] / n["rps"] for n, r in ps) if ps else None

    def quiet(rec):
        return rec.get("steal_pct") is not None and rec["steal_pct"] < QUIET_STEAL_PCT
    quiet_pairs = [(n, r) for n, r in pairs if quiet(n) and quiet(r)]
    all_ratio = median_ratio(pairs)
    quiet_ratio = median_ratio(quiet_pairs)
    use_quiet = len(quiet_pairs) >= 2
    ratio = quiet_ratio if use_quiet else all_ratio
    all_text = f"{all_ratio:.2f}× ({len(pairs)})"
    quiet_text = f"{quiet_ratio:.2f}× ({len(quiet_pairs)})" if quiet_pairs else "none"
    if use_quiet:
        text = (f"median of per-round ratios over the {len(quiet_pairs)} of {len(pairs)} round pairs with "
                f"< {QUIET_STEAL_PCT:g} % host steal in both rounds: {ratio:.2f}× (all pairs {all_text})")
    else:
        text = (f"median of per-round ratios over all {len(pairs)} round pairs: {ratio:.2f}×, not resolved: "
                f"fewer than two pairs had < {QUIET_STEAL_PCT:g} % host steal in both rounds ({quiet_text})")
    return {"ratio": ratio, "ok": (ratio >= 1.0) if use_quiet else "noise", "text": text, "quiet_text": quiet_text, "all_text": all_text}


class Results:
    def __init__(self, recs):
        self.recs = recs

    def get(self, **kw):
        return [r for r in self.recs if all(r.get(k) == v for k, v in kw.items())]

    def one(self, **kw):
        rs = self.get(**kw)
        return rs[-1] if rs else None

    def median(self, field, **kw):
        vals = [r[field] for r in self.get(**kw) if r.get(field) is not None]
        return statistics.median(vals) if vals else None


def report(jsonl, meta_path):
    recs = [json.loads(line) for line in open(jsonl) if line.strip()]
    meta = json.load(open(meta_path))
    R = Results(recs)
    has_litellm = bool(R.get(target="litellm"))
    cols = TARGETS + (["litellm"] if has_litellm else [])
    rows = []
    checks = []

    def row(scenario, metric, vals, verdict=""):
        rows.append([scenario, metric] + [vals.get(c, "—") for c in cols] + [verdict])

    # -- non-streaming, concurrency 1 (median over interleaved rounds) ------------------------------
    p = "pinned"
    c1 = {t: (R.median("p50_us", phase=p, scenario="c1", target=t), R.median("p99_us", phase=p, scenario="c1", target=t)) for t in TARGETS}
    rounds = len(R.get(phase=p, scenario="c1", target="router"))
    if rounds:
        d50, d99 = c1["direct"]
        r50, r99 = c1["router"]
        add50 = None if None in (d50, r50) else r50 - d50
        add99 = None if None in (d99, r99) else r99 - d99
        n50, n99 = c1["nginx"]
        nadd99 = None if None in (d99, n99) else n99 - d99
        # Round-to-round spread of direct's own p99: an added p99 smaller than that is not resolved.
        dp99 = [r["p99_us"] for r in R.get(phase=p, scenario="c1", target="direct") if r.get("p99_us") is not None]
        noise = (max(dp99) - min(dp99)) if len(dp99) > 1 else None
        ok = None if add99 is None else add99 <= 150
        note = f"; direct's own p99 varied by {us_or_ms(noise)} between rounds" if noise is not None else ""
        if ok is not None and noise is not None and noise > 150:
            # The test cannot resolve 150 µs at p99 on this machine: say so rather than pass or fail.
            note += f", more than the 150 µs to resolve (router {'below' if ok else 'above'} the target in this run)"
            ok = "noise"
        # The paired probe (targets in turn over the same window) resolves what separate rounds cannot:
        # when it ran, it decides, and the rounds are reported next to it.
        pr, pn = R.one(phase=p, scenario="paired_c1", target="router"), R.one(phase=p, scenario="paired_c1", target="nginx")
        if pr and pr.get("added_p99_us") is not None:
            checks.append(("added p99 latency at concurrency 1 ≤ 150 µs",
                           f"paired probe: router {signed_us(pr['added_p99_us'])}"
                           + (f" (nginx {signed_us(pn.get('added_p99_us'))})" if pn else "")
                           + f"; separate oha rounds: router {signed_us(add99)} (nginx {signed_us(nadd99)}){note}",
                           pr["added_p99_us"] <= 150))
        else:
            checks.append(("added p99 latency at concurrency 1 ≤ 150 µs", f"router {signed_us(add99)} (nginx {signed_us(nadd99)}){note}", ok))
        row(f"non-stream c=1 (median of {rounds} rounds)", "latency p50 / p99",
            {t: f"{us_or_ms(c1[t][0])} / {us_or_ms(c1[t][1])}" for t in TARGETS})
        row("non-stream c=1", "added vs direct p50 / p99",
            {"direct": "—",
             "nginx": f"{signed_us(None if None in (d50, n50) else n50 - d50)} / {signed_us(nadd99)}",
             "router": f"{signed_us(add50)} / {signed_us(add99)}"},
            f"p99 ≤ +150 µs: {mark(ok)}")
        if noise is not None:
            row("non-stream c=1", "p99 range over rounds", {t: (lambda v: f"{us_or_ms(min(v))} – {us_or_ms(max(v))}" if v else "—")(
                [r["p99_us"] for r in R.get(phase=p, scenario="c1", target=t) if r.get("p99_us") is not None]) for t in TARGETS})
        c1_err = {t: sum(r["errors"] + r["non_200"] for r in R.get(phase=p, scenario="c1", target=t)) for t in TARGETS}
        if any(c1_err.values()):
            row("non-stream c=1", "errors", {t: fmt_num(c1_err[t]) for t in TARGETS})

    # -- paired c=1: the targets in turn, one request each, over the same time window ------------------
    for sc, what in (("paired_c1", "non-stream latency"), ("paired_ttft", "stream TTFT")):
        pr = {t: R.one(phase=p, scenario=sc, target=t) for t in TARGETS}
        if not any(pr.values()):
            continue
        if sc == "paired_ttft" and pr.get("router") and pr["router"].get("added_p99_us") is not None:
            ng = pr.get("nginx") or {}
            checks.append(("added time-to-first-token p99 ≤ 250 µs (paired c=1 stream)",
                           f"router {signed_us(pr['router']['added_p99_us'])} (nginx {signed_us(ng.get('added_p99_us'))})",
                           pr["router"]["added_p99_us"] <= 250))
        first = next(r for r in pr.values() if r)
        label = f"paired c=1 {what} ({first['requests']:,} per target, interleaved)"
        row(label, "p50 / p99", {t: f"{us_or_ms(r['p50_us'])} / {us_or_ms(r['p99_us'])}" for t, r in pr.items() if r})
        row(label, f"added vs {first['baseline']} p50 / p99",
            {t: ("—" if t == r["baseline"] else f"{signed_us(r.get('added_p50_us'))} / {signed_us(r.get('added_p99_us'))}")
             for t, r in pr.items() if r}, "(info)")
        if any(r["errors"] for r in pr.values() if r):
            row(label, "errors", {t: fmt_num(r["errors"]) for t, r in pr.items() if r})
        # --compare-drivers: the same router on the other I/O driver, a fourth target of the same probe.
        for other in sorted({r["target"] for r in R.get(phase=p, scenario=sc)} - set(TARGETS)):
            x = R.one(phase=p, scenario=sc, target=other)
            row(label, f"the router on {other.removeprefix('router_')} (--compare-drivers): p50 / p99 · added p50 / p99",
                {"router": f"{us_or_ms(x['p50_us'])} / {us_or_ms(x['p99_us'])} · "
                           f"{signed_us(x.get('added_p50_us'))} / {signed_us(x.get('added_p99_us'))}"}, "(info)")

    # -- throughput (median over interleaved rounds) ---------------------------------------------------
    throughput = [("pinned", 64, "c64", ""), ("pinned", 512, "c512", ""),
                  ("pinned", 64, "c64_tls", ", HTTPS upstream"),
                  ("unpinned", 64, "c64", ""), ("unpinned", 512, "c512", "")]
    for phase, c, sc, upstream in throughput:
        recs_c = {t: R.get(phase=phase, scenario=sc, target=t) for t in TARGETS}
        if not any(recs_c.values()):
            continue
        nr = max(len(v) for v in recs_c.values())
        label = f"non-stream c={c}{upstream}" + (" (unpinned)" if phase == "unpinned" else "") + (f" (median of {nr} rounds)" if nr > 1 else "")
        rps = {t: R.median("rps", phase=phase, scenario=sc, target=t) for t in TARGETS}
        verdict = ""
        pairs = round_pairs(recs_c["nginx"], recs_c["router"])
        if pairs:
            judged = judge_pairs(pairs)
            verdict = f"router/nginx {judged['ratio']:.2f}: {mark(judged['ok'])}"
            if phase == "pinned" and not upstream:
                checks.append((f"router req/s ≥ nginx req/s at concurrency {c}",
                               f"{judged['text']}; medians of all rounds {fmt_num(rps['router'])} vs "
                               f"{fmt_num(rps['nginx'])}"
                               + (f" ({rps['router'] / rps['nginx']:.2f}×)" if rps["router"] and rps["nginx"] else ""),
                               judged["ok"]))
            else:
                verdict = f"router/nginx {judged['ratio']:.2f} (info)"

        def rng(t):
            v = [r["rps"] for r in recs_c[t]]
            if not v:
                return "—"
            return fmt_num(rps[t]) + (f" ({min(v):,.0f}–{max(v):,.0f})" if len(v) > 1 else "")
        row(label, "req/s" + (" (range)" if nr > 1 else ""), {t: rng(t) for t in TARGETS}, verdict)
        row(label, "p50 / p99", {t: (f"{us_or_ms(R.median('p50_us', phase=phase, scenario=sc, target=t))} / "
                                     f"{us_or_ms(R.median('p99_us', phase=phase, scenario=sc, target=t))}" if recs_c[t] else "—") for t in TARGETS})
        errs = {t: (sum(r["errors"] + r["non_200"] for r in recs_c[t]) if recs_c[t] else None) for t in TARGETS}
        row(label, "errors", {t: fmt_num(errs[t]) for t in TARGETS})
        cpu = {t: R.median("proxy_cpu_us_per_req", phase=phase, scenario=sc, target=t) for t in TARGETS}
        if any(v is not None for v in cpu.values()):
            mock = {t: R.median("mock_cpu_us_per_req", phase=phase, scenario=sc, target=t) for t in TARGETS}
            row(label, "CPU µs per request: proxy (+ mock)",
                {"direct": f"— (+ {fmt_num(mock['direct'], 1)})",
                 "nginx": f"{fmt_num(cpu['nginx'], 1)} (+ {fmt_num(mock['nginx'], 1)})",
                 "router": f"{fmt_num(cpu['router'], 1)} (+ {fmt_num(mock['router'], 1)})"})

        # The hypervisor's share of the machine during each target's rounds: req/s is only
        # comparable between targets whose rounds saw about the same.
        def steal(t):
            v = sorted(r["steal_pct"] for r in recs_c[t] if r.get("steal_pct") is not None)
            if not v:
                return "—"
            return f"{v[len(v) // 2]:.1f} %" + (f" (max {v[-1]:.1f} %)" if len(v) > 1 else "")
        row(label, "host steal during the rounds, median", {t: steal(t) for t in TARGETS})
        if len(pairs) > 1:
            row(label, "router/nginx per round, median (pairs): quiet rounds · all rounds",
                {"router": f"{judged['quiet_text']} · {judged['all_text']}"})

    # -- streaming -------------------------------------------------------------------------------------
    def streaming(scenario, judge, title=None):
        st = {t: R.one(phase=p, scenario=scenario, target=t) for t in cols}
        if not any(st.values()):
            return
        first = next(r for r in st.values() if r)
        n = first["streams"]
        label = (title or f"{n} streams × {first.get('tokens', 100)} tok @{first.get('delay_ms', 10):g} ms") + ("" if judge else " (info)")
        errs = {t: r["errors"] for t, r in st.items() if r}
        ok0 = errs.get("router") == 0 if "router" in errs else None
        if judge:
            checks.append((f"{n} concurrent streams: 0 errors", f"router {errs.get('router')} errors (direct {errs.get('direct')}, nginx {errs.get('nginx')})", ok0))
        row(label, "completed / errors", {t: f"{r['completed']} / {r['errors']}" for t, r in st.items() if r}, f"0 errors: {mark(ok0)}" if judge else "")
        row(label, "TTFT p50 / p99", {t: f"{us_or_ms(r['ttfb_p50_us'])} / {us_or_ms(r['ttfb_p99_us'])}" for t, r in st.items() if r})
        d, rr, ng = st["direct"], st["router"], st["nginx"]
        if d and rr and d["ttfb_p99_us"] is not None and rr["ttfb_p99_us"] is not None:
            def added(r):
                if not r or r["ttfb_p50_us"] is None or r["ttfb_p99_us"] is None:
                    return (None, None)
                return (r["ttfb_p50_us"] - d["ttfb_p50_us"], r["ttfb_p99_us"] - d["ttfb_p99_us"])
            a50, a99 = added(rr)
            n50, n99 = added(ng)
            okt = a99 <= 250
            if judge:
                checks.append(("added time-to-first-token p99 ≤ 250 µs", f"router {signed_us(a99)} (nginx {signed_us(n99)}) at {n} streams", okt))
            row(label, "added TTFT vs direct p50 / p99",
                {t: ("—" if t == "direct" else "{} / {}".format(*map(signed_us, added(st[t])))) for t in cols if st.get(t)},
                f"p99 ≤ +250 µs: {mark(okt)}" if judge else "")
        row(label, "worst inter-chunk gap p50 / p99 / max", {t: f"{fmt_num(r['worst_gap_p50_ms'], 1)} / {fmt_num(r['worst_gap_p99_ms'], 1)} / {fmt_num(r['worst_gap_max_ms'], 1)} ms" for t, r in st.items() if r})
        gap20 = {t: r["streams_gap_over_20ms"] for t, r in st.items() if r}
        okg = None
        if "router" in gap20 and "direct" in gap20:
            okg = gap20["router"] <= gap20["direct"]
            if judge:
                checks.append(("no inter-chunk gap > 20 ms that direct does not also show",
                               f"streams with a gap > 20 ms at {n} streams: router {gap20['router']}, direct {gap20['direct']}, nginx {gap20.get('nginx')}", okg))
        row(label, "streams with a gap > 20 ms", {t: fmt_num(v) for t, v in gap20.items()}, f"≤ direct: {mark(okg)}" if judge else "")
        row(label, "stream duration (ideal 1.0 s): wall − ramp", {t: f"{r['wall_s'] - r.get('ramp_ms', 250) / 1000:.2f} s" for t, r in st.items() if r})
        rss = {t: r for t, r in st.items() if r and r.get("rss_before_kb") is not None}
        if rss:
            row(label, "RSS before → peak → after (direct: the mock)",
                {t: f"{mb(r['rss_before_kb'])} → {mb(r.get('peak_rss_kb'))} → {mb(r['rss_after_kb'])}" for t, r in rss.items()})
            if "router" in rss and judge:
                peak = rss["router"].get("peak_rss_kb") or rss["router"]["rss_after_kb"]
                okr = peak < 64 * 1024
                checks.append((f"{n} streams: router RSS < 64 MB", f"peak {mb(peak)}", okr))
                rows[-1][-1] = f"router < 64 MB: {mark(okr)}"
            row(label, "CPU seconds (direct: the mock; nginx: master+worker)", {t: fmt_num(r.get("cpu_s"), 2) for t, r in rss.items()})

    streaming("stream1000", True)
    streaming("stream1000_warm", False, "1000 streams again, upstream pools warm")
    streaming("stream100", False)
    streaming("oai_stream", False, "100 OpenAI SSE streams (1st event undelayed)")

    tr = R.one(scenario="translated_stream")
    if tr:
        if tr.get("status") == "skipped":
            row("translated stream (Ollama client → OpenAI mock)", "—", {"router": tr.get("reason", "n/a")}, "n/a")
        else:
            td = R.one(scenario="translated_stream", target="direct")
            trr = R.one(scenario="translated_stream", target="router")
            vals = {}
            for t, r in (("direct", td), ("router", trr)):
                if r:
                    vals[t] = f"{r['completed']}/{r['streams']} ok, TTFT p99 {us_or_ms(r['ttfb_p99_us'])}, gap max {fmt_num(r['worst_gap_max_ms'], 1)} ms"
            row(f"translated stream ({trr['streams'] if trr else '?'} streams)", "completed, TTFT p99, worst gap", vals)
    row("exact / semantic cache hits", "—", {"router": "not in this release"}, "n/a")

    # -- soak ------------------------------------------------------------------------------------------
    soak = {t: sorted(R.get(phase=p, scenario="soak", target=t), key=lambda r: r["window"]) for t in TARGETS}
    if any(soak.values()):
        w = next(v for v in soak.values() if v)
        total = sum(r["duration_s"] for r in w)
        label = f"soak c=512, {total:.0f} s ({len(w)} windows)"
        def rps_stats(ws):
            if not ws:
                return "—"
            v = [r["rps"] for r in ws]
            return f"{min(v):,.0f} / {statistics.mean(v):,.0f} / {max(v):,.0f}"
        row(label, "req/s per window min / mean / max", {t: rps_stats(v) for t, v in soak.items()})
        def spread(ws):
            v = [r["rps"] for r in ws]
            return (max(v) - min(v)) / statistics.mean(v) * 100 if v and statistics.mean(v) else None
        row(label, "window spread (max−min)/mean", {t: (f"{spread(v):.1f} %" if v else "—") for t, v in soak.items()})
        row(label, "errors", {t: fmt_num(sum(r["errors"] + r["non_200"] for r in v)) if v else "—" for t, v in soak.items()})
        rs = soak["router"]
        if rs:
            start = rs[0].get("rss_start_kb")
            first = rs[0].get("rss_end_kb")
            end = rs[-1].get("rss_end_kb")
            growth = None if None in (first, end) else end - first
            okf = None if growth is None else growth <= max(2048, 0.05 * first)
            ng = soak["nginx"]
            vals = {"router": f"{mb(start)} → {mb(first)} → {mb(end)}"}
            if ng and ng[0].get("rss_start_kb") is not None:
                vals["nginx"] = f"{mb(ng[0]['rss_start_kb'])} → {mb(ng[0]['rss_end_kb'])} → {mb(ng[-1]['rss_end_kb'])}"
            row(label, "RSS start → after 1st window → end", vals, f"flat: {mark(okf)}")
            checks.append(("router RSS flat over the soak (≤ 2 MB or 5 % growth after the first window)",
                           f"{mb(start)} → {mb(first)} → {mb(end)} ({'+' if (growth or 0) >= 0 else ''}{(growth or 0) / 1024:.1f} MB)", okf))
            soak_errs = sum(r["errors"] + r["non_200"] for r in rs)
            checks.append(("soak: 0 router errors", f"{soak_errs}", soak_errs == 0))

    # -- cache hits: the caching router's hits against nginx proxying the same request --------------------
    for sc, label in (("cache_c1", "cache hits, non-stream c=1"), ("cache_c64", "cache hits, non-stream c=64"),
                      ("cache_ndjson_c64", "cache hits, NDJSON stream c=64"),
                      ("cache_sse_c64", "cache hits, SSE stream c=64")):
        rs = {t: R.get(phase="pinned", scenario=sc, target=t) for t in ("nginx", "router_cache")}
        if not rs["router_cache"]:
            continue
        rps = {t: R.median("rps", phase="pinned", scenario=sc, target=t) for t in rs}
        p50 = {t: R.median("p50_us", phase="pinned", scenario=sc, target=t) for t in rs}
        p99 = {t: R.median("p99_us", phase="pinned", scenario=sc, target=t) for t in rs}
        errs = sum(r["errors"] + r["non_200"] for r in rs["router_cache"])
        verdict = ""
        if sc == "cache_c1" and p50["router_cache"] is not None:
            ok = p50["router_cache"] <= 200 and errs == 0
            verdict = f"p50 {us_or_ms(p50['router_cache'])}: {mark(ok)}"
            checks.append(("cache hit p50 ≤ 200 µs at c=1", f"{us_or_ms(p50['router_cache'])}, {errs} errors", ok))
        elif rps["nginx"] and rps["router_cache"]:
            ratio = rps["router_cache"] / rps["nginx"]
            ok = ratio >= 2 and errs == 0
            verdict = f"hits/proxied {ratio:.2f}: {mark(ok)}"
            checks.append((f"{label}: hit req/s ≥ 2× nginx proxied",
                           f"{fmt_num(rps['router_cache'])} vs {fmt_num(rps['nginx'])} ({ratio:.2f}×), {errs} errors", ok))
        row(label, "req/s (router: hits; nginx: proxied)", {"nginx": fmt_num(rps["nginx"]), "router": fmt_num(rps["router_cache"])}, verdict)
        row(label, "p50 / p99", {t2: f"{us_or_ms(p50[t])} / {us_or_ms(p99[t])}" for t, t2 in (("nginx", "nginx"), ("router_cache", "router"))})

    # -- LiteLLM ---------------------------------------------------------------------------------------
    for sc, label in (("oai_c1", "OpenAI chat non-stream c=1"), ("oai_c64", "OpenAI chat non-stream c=64")):
        rs = {t: R.one(phase=p, scenario=sc, target=t) for t in cols}
        if not any(rs.values()):
            continue
        row(label, "req/s", {t: fmt_num(r["rps"]) for t, r in rs.items() if r})
        row(label, "p50 / p99", {t: f"{us_or_ms(r['p50_us'])} / {us_or_ms(r['p99_us'])}" for t, r in rs.items() if r})
        row(label, "errors", {t: fmt_num(r["errors"] + r["non_200"]) for t, r in rs.items() if r})
    lit = R.one(scenario="litellm", target="litellm")
    if lit and lit.get("status") == "skipped":
        row("LiteLLM proxy comparison", "—", {"litellm": lit.get("reason", "skipped")}, "n/a")

    # -- print -----------------------------------------------------------------------------------------
    out = []
    out.append(f"# nomyo-router load test — {meta.get('date')} — {meta.get('git')}")
    out.append("")
    out.append(f"- mode: {meta.get('mode')}; pinning: {meta.get('pinning')}")
    out.append(f"- machine: {meta.get('nproc')} CPUs, {meta.get('cpu')}, {meta.get('mem')}, kernel {meta.get('kernel')}")
    out.append(f"- versions: {meta.get('rustc')}; {meta.get('oha')}; {meta.get('nginx')}; {meta.get('python')}" + (f"; litellm {meta['litellm']}" if meta.get("litellm") else ""))
    out.append(f"- router: `{meta.get('router_cmd')}` (max_concurrent_connections {meta.get('slots')}: it never queues)")
    out.append(f"- load: {meta.get('load_desc')}")
    out.append("")
    header = ["Scenario", "Metric"] + cols + ["Target"]
    out.append("| " + " | ".join(header) + " |")
    out.append("|" + "|".join(["---"] * len(header)) + "|")
    for r in rows:
        out.append("| " + " | ".join(str(x) for x in r) + " |")
    out.append("")
    out.append("## Targets")
    out.append("")
    for name, val, ok in checks:
        out.append(f"- {mark(ok)} — {name}: {val}")
    out.append("")
    out.append("## Details")
    out.append("")
    for t in TARGETS:
        ws = soak.get(t) if any(soak.values()) else None
        if ws:
            out.append(f"- soak {t}: " + ", ".join(f"{r['rps']:,.0f}" for r in ws) + " req/s per window"
                       + (f"; RSS per window end: " + ", ".join(mb(r.get('rss_end_kb')) for r in ws) if ws[0].get("rss_end_kb") is not None else ""))
    for r in recs:
        kinds = r.get("error_kinds")
        if kinds:
            out.append(f"- errors {r.get('phase')}/{r.get('scenario')}/{r.get('target')}: {json.dumps(kinds)}")
    for r in R.get(tool="paired"):
        added = "" if r["target"] == r["baseline"] else (
            f" (added p90 {signed_us(r.get('added_p90_us'))}, p99.9 {signed_us(r.get('added_p999_us'))})")
        out.append(f"- {r['scenario']} {r['target']}: p90 {us_or_ms(r['p90_us'])}, p99.9 {us_or_ms(r['p999_us'])}, "
                   f"mean {us_or_ms(r['mean_us'])}, max {us_or_ms(r['max_us'])}{added}; {r['n']:,} ok, {r['errors']} errors, "
                   f"{r['wall_s']} s for all targets")
    for r in R.get(tool="stream_client"):
        out.append(f"- {r['scenario']} {r['target']}: connect {r['connect_s']} s, wall {r['wall_s']} s, TTFT max {us_or_ms(r['ttfb_max_us'])}, "
                   f"client CPU {r.get('client_cpu_s')} s")
    print("\n".join(out))


def main():
    cmd = sys.argv[1]
    if cmd == "oha":
        print(json.dumps(oha_record(sys.argv[2], kv(sys.argv[3:]))))
    elif cmd == "stream":
        print(json.dumps(stream_record(sys.argv[2], kv(sys.argv[3:]))))
    elif cmd == "paired":
        for rec in paired_records(sys.argv[2], kv(sys.argv[3:])):
            print(json.dumps(rec))
    elif cmd == "record":
        print(json.dumps(kv(sys.argv[2:])))
    elif cmd == "perfgroups":
        perf_groups(sys.argv[2])
    elif cmd == "last":
        lines = open(sys.argv[2]).read().splitlines()
        r = json.loads(lines[-1])
        if r.get("tool") == "paired":
            # The trailing records of the same paired run, one per target.
            group = []
            for x in reversed(lines):
                g = json.loads(x)
                if g.get("tool") != "paired" or g.get("scenario") != r.get("scenario") or any(
                        g["target"] == h["target"] for h in group):
                    break
                group.insert(0, g)
            print(f"{r['scenario']}: " + "; ".join(
                f"{g['target']} p50/p99 {g['p50_us']}/{g['p99_us']} us"
                + (f" (added {g['added_p50_us']:+}/{g['added_p99_us']:+})" if g.get("added_p99_us") is not None else "")
                + (f", errors {g['errors']}" if g["errors"] else "") for g in group))
        elif r.get("tool") == "stream_client":
            print(f"{r['target']}: {r['completed']}/{r['streams']} ok, TTFT p50/p99 {r['ttfb_p50_us']}/{r['ttfb_p99_us']} us, "
                  f"worst gap p50/p99/max {r['worst_gap_p50_ms']}/{r['worst_gap_p99_ms']}/{r['worst_gap_max_ms']} ms, "
                  f"wall {r['wall_s']} s, cpu {r.get('cpu_s')} s, RSS {r.get('rss_before_kb')} -> peak {r.get('peak_rss_kb')} -> {r.get('rss_after_kb')} kB"
                  + (f", errors {r['error_kinds']}" if r.get("error_kinds") else ""))
        elif r.get("tool") == "oha":
            print(f"{r['rps']} req/s, p50 {r['p50_us']} us, p99 {r['p99_us']} us, errors {r['errors'] + r['non_200']}"
                  + (f" {r['error_kinds']}" if r.get("error_kinds") else "")
                  + (f", steal {r['steal_pct']} %" if r.get("steal_pct") is not None else ""))
        else:
            print(json.dumps(r))
    elif cmd == "report":
        report(sys.argv[2], sys.argv[3])
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
