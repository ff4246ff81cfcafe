#!/usr/bin/env python3
"""Concurrent streaming client for loadtest/run.sh (stdlib asyncio only; uses uvloop when importable).

Opens N keep-alive connections first (connection setup is not part of any measured time), then sends
one streaming chat request per connection, spread evenly over --ramp-ms, and measures per stream:

  * time to first token (TTFB): from writing the request to the first body bytes (the first token line
    or SSE event; the response head alone does not count),
  * the worst gap between two consecutive body arrivals,
  * completion: HTTP 200, the chunked body ended, the last event is the final one ("done": true for
    Ollama NDJSON, "data: [DONE]" for SSE), the expected number of token events, and no error event.

With --watch-pid it samples that process's VmRSS every 50 ms and reports the peak.
Prints one JSON object on stdout.
"""

import argparse
import asyncio
import json
import os
import sys
import time


def pct(sorted_vals, p):
    if not sorted_vals:
        return None
    k = min(len(sorted_vals) - 1, max(0, int(round(p / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class StreamProto(asyncio.Protocol):
    """One connection, one request. Body arrivals are timestamped as they come; parsing is left to the end."""

    __slots__ = ("transport", "connected", "done", "t_send", "t_first", "t_last", "max_gap", "buf",
                 "head_end", "arrivals", "error", "closed")

    def __init__(self, done_fut):
        self.transport = None
        self.done = done_fut
        self.t_send = None
        self.t_first = None
        self.t_last = None
        self.max_gap = 0.0
        self.buf = bytearray()
        self.head_end = -1
        self.arrivals = 0
        self.error = None
        self.closed = False

    def connection_made(self, transport):
        self.transport = transport

    def send(self, payload):
        self.t_send = time.perf_counter()
        self.transport.write(payload)

    def data_received(self, data):
        now = time.perf_counter()
        self.buf += data
        if self.head_end < 0:
            i = self.buf.find(b"\r\n\r\n")
            if i < 0:
                return
            self.head_end = i + 4
            if len(self.buf) == self.head_end:
                return  # head only: not a token yet
        if self.t_first is None:
            self.t_first = now
        else:
            gap = now - self.t_last
            if gap > self.max_gap:
                self.max_gap = gap
        self.t_last = now
        self.arrivals += 1
        if self.buf.endswith(b"0\r\n\r\n") and not self.done.done():
            self.done.set_result(True)

    def connection_lost(self, exc):
        self.closed = True
        if not self.done.done():
            self.error = f"connection lost: {exc!r}" if exc else "connection closed by peer"
            self.done.set_result(False)


def dechunk(raw):
    """Decodes a chunked body; returns (body, complete)."""
    out = bytearray()
    i = 0
    n = len(raw)
    while i < n:
        j = raw.find(b"\r\n", i)
        if j < 0:
            return bytes(out), False
        size = int(raw[i:j].split(b";")[0], 16)
        if size == 0:
            return bytes(out), True
        out += raw[j + 2:j + 2 + size]
        i = j + 2 + size + 2
    return bytes(out), False


def check(proto, fmt, tokens):
    """Returns None when the stream is complete and well-formed, else the reason."""
    if proto.error:
        return proto.error
    buf = bytes(proto.buf)
    if proto.head_end < 0:
        return "no response head"
    head = buf[:proto.head_end].decode("latin-1")
    status_line = head.split("\r\n", 1)[0]
    if " 200 " not in status_line + " ":
        return f"status: {status_line}"
    if "transfer-encoding: chunked" not in head.lower():
        return "response not chunked"
    body, complete = dechunk(buf[proto.head_end:])
    if not complete:
        return "body did not end"
    if fmt == "ndjson":
        lines = [ln for ln in body.split(b"\n") if ln.strip()]
        if any(b'"error"' in ln for ln in lines):
            return "error line in stream"
        if not lines or b'"done":true' not in lines[-1].replace(b" ", b""):
            return "no final done line"
        if len(lines) - 1 != tokens:
            return f"{len(lines) - 1} token lines, expected {tokens}"
    else:
        events = [e for e in body.split(b"\n\n") if e.strip()]
        if any(b'"error"' in e for e in events):
            return "error event in stream"
        if not events or events[-1].strip() != b"data: [DONE]":
            return "no [DONE]"
        content = sum(1 for e in events if b'"content":"tok' in e.replace(b" ", b""))
        if content != tokens:
            return f"{content} token events, expected {tokens}"
    return None


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", default="/api/chat")
    ap.add_argument("--model", default="llama3:latest")
    ap.add_argument("--format", choices=["ndjson", "sse"], default="ndjson",
                    help="response framing to expect (sse for OpenAI /v1/chat/completions)")
    ap.add_argument("--openai-body", action="store_true", help="send an OpenAI body with stream: true")
    ap.add_argument("--streams", type=int, default=1000)
    ap.add_argument("--tokens", type=int, default=100)
    ap.add_argument("--delay-ms", type=float, default=10.0)
    ap.add_argument("--ramp-ms", type=float, default=250.0, help="spread the request starts over this long")
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--watch-pid", type=int, default=0)
    args = ap.parse_args()

    loop = asyncio.get_running_loop()
    if args.openai_body:
        body = json.dumps({"model": args.model, "stream": True,
                           "messages": [{"role": "user", "content": "Write a story."}]}).encode()
    else:
        body = json.dumps({"model": args.model, "messages": [{"role": "user", "content": "Write a story."}]}).encode()
    req = (f"POST {args.path} HTTP/1.1\r\nHost: {args.host}:{args.port}\r\nContent-Type: application/json\r\n"
           f"Accept: */*\r\nUser-Agent: nomyo-loadtest\r\nx-mock-tokens: {args.tokens}\r\n"
           f"x-mock-delay-ms: {args.delay_ms}\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body

    # Connect everyone first (bounded parallelism so that the accept queue never overflows).
    sem = asyncio.Semaphore(128)
    protos = []
    connect_errors = []

    async def connect():
        async with sem:
            fut = loop.create_future()
            try:
                _, p = await asyncio.wait_for(
                    loop.create_connection(lambda: StreamProto(fut), args.host, args.port), 10)
                protos.append(p)
            except Exception as e:  # noqa: BLE001 - every failure is counted and reported
                connect_errors.append(repr(e))

    t_c = time.perf_counter()
    await asyncio.gather(*(connect() for _ in range(args.streams)))
    connect_s = time.perf_counter() - t_c

    peak = {"rss": rss_kb(args.watch_pid) if args.watch_pid else None}
    stop_watch = asyncio.Event()

    async def watch():
        while not stop_watch.is_set():
            r = rss_kb(args.watch_pid)
            if r is not None and (peak["rss"] is None or r > peak["rss"]):
                peak["rss"] = r
            try:
                await asyncio.wait_for(stop_watch.wait(), 0.05)
            except asyncio.TimeoutError:
                pass

    watcher = asyncio.create_task(watch()) if args.watch_pid else None

    t0 = loop.time() + 0.05
    n = max(1, len(protos))
    step = args.ramp_ms / 1000.0 / n
    for i, p in enumerate(protos):
        loop.call_at(t0 + i * step, p.send, req)
    t_start = time.perf_counter()
    futs = [p.done for p in protos]
    if futs:
        _, pending = await asyncio.wait(futs, timeout=args.timeout + args.ramp_ms / 1000.0)
    else:
        pending = set()
    wall = time.perf_counter() - t_start
    stop_watch.set()
    if watcher:
        await watcher

    fails = {}
    ttfb = []
    gaps = []
    completed = 0
    for p in protos:
        reason = "timed out" if p.done in pending else check(p, args.format, args.tokens)
        if reason is None:
            completed += 1
            ttfb.append(p.t_first - p.t_send)
            gaps.append(p.max_gap)
        else:
            fails[reason] = fails.get(reason, 0) + 1
        if p.transport is not None:
            p.transport.close()
    for e in connect_errors:
        key = f"connect: {e}"
        fails[key] = fails.get(key, 0) + 1
    ttfb.sort()
    gaps.sort()
    us = lambda v: None if v is None else round(v * 1e6, 1)  # noqa: E731
    ms = lambda v: None if v is None else round(v * 1e3, 2)  # noqa: E731
    out = {
        "streams": args.streams,
        "completed": completed,
        "errors": args.streams - completed,
        "error_kinds": fails,
        "connect_s": round(connect_s, 3),
        "wall_s": round(wall, 3),
        "ttfb_p50_us": us(pct(ttfb, 50)),
        "ttfb_p99_us": us(pct(ttfb, 99)),
        "ttfb_max_us": us(ttfb[-1] if ttfb else None),
        "worst_gap_p50_ms": ms(pct(gaps, 50)),
        "worst_gap_p99_ms": ms(pct(gaps, 99)),
        "worst_gap_max_ms": ms(gaps[-1] if gaps else None),
        "streams_gap_over_20ms": sum(1 for g in gaps if g > 0.020),
        "peak_rss_kb": peak["rss"],
        "loop": type(loop).__module__,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    try:
        import uvloop  # type: ignore

        uvloop.install()
    except ImportError:
        pass
    if hasattr(os, "sched_getaffinity"):
        pass
    sys.exit(asyncio.run(main()))
