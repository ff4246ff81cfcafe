#!/usr/bin/env python3
"""Concurrent streaming client for loadtest/run.sh (Python stdlib only, Linux).

Opens N keep-alive connections first (connection setup is not part of any measured time), then sends
one streaming chat request per connection, the starts spread evenly over --ramp-ms, and measures per
stream:

  * time to first token (TTFT): from writing the request to the first body bytes (the first token
    line or SSE event; the response head alone does not count),
  * the worst gap between two consecutive body arrivals,
  * completion: HTTP 200, the chunked body ended, the last event is the final one ("done": true for
    Ollama NDJSON, "data: [DONE]" for SSE), the expected number of token events, and no error event.

With --watch-pid it samples that process's VmRSS every 50 ms and reports the peak.
Prints one JSON object on stdout.

Why a bare epoll loop and not asyncio: 1,000 streams x 100 tokens/s is 100,000 socket reads a
second. asyncio's Protocol callbacks cost ~17 us each here, which saturates the load generator's
core and inflates every measured gap and TTFT; a bare `select.epoll` loop costs a few us per read.
Timestamps are taken right after epoll returns, before any parsing, and parsing is left to the end.
"""

import argparse
import json
import os
import select
import socket
import sys
import time

perf = time.perf_counter


def pct(sorted_vals, p):
    """Nearest-rank percentile."""
    if not sorted_vals:
        return None
    k = max(0, min(len(sorted_vals) - 1, -(-len(sorted_vals) * p // 100) - 1))
    return sorted_vals[int(k)]


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class Conn:
    __slots__ = ("sock", "t_send", "t_first", "t_last", "max_gap", "buf", "head_end", "done", "error")

    def __init__(self, sock):
        self.sock = sock
        self.t_send = None
        self.t_first = None
        self.t_last = None
        self.max_gap = 0.0
        self.buf = bytearray()
        self.head_end = -1
        self.done = False
        self.error = None


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


def check(c, fmt, tokens):
    """None when the stream is complete and well-formed, else the reason."""
    if c.error:
        return c.error
    if not c.done:
        return "timed out"
    buf = bytes(c.buf)
    if c.head_end < 0:
        return "no response head"
    head = buf[:c.head_end].decode("latin-1")
    status_line = head.split("\r\n", 1)[0]
    if " 200 " not in status_line + " ":
        return f"status: {status_line}"
    if "transfer-encoding: chunked" not in head.lower():
        return "response not chunked"
    body, complete = dechunk(buf[c.head_end:])
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


def main():
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
    ap.add_argument("--header", action="append", default=[], help="extra request header 'Name: value' (repeatable)")
    args = ap.parse_args()

    msgs = [{"role": "user", "content": "Write a story."}]
    body = {"model": args.model, "messages": msgs}
    if args.openai_body:
        body["stream"] = True
    body = json.dumps(body).encode()
    req = (f"POST {args.path} HTTP/1.1\r\nHost: {args.host}:{args.port}\r\nContent-Type: application/json\r\n"
           f"Accept: */*\r\nUser-Agent: nomyo-loadtest\r\nx-mock-tokens: {args.tokens}\r\n"
           f"x-mock-delay-ms: {args.delay_ms}\r\n" + "".join(h + "\r\n" for h in args.header) +
           f"Content-Length: {len(body)}\r\n\r\n").encode() + body

    # Connect everyone first.
    t_c = perf()
    conns = []
    connect_errors = {}
    for _ in range(args.streams):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            s.settimeout(10)
            s.connect((args.host, args.port))
            s.setblocking(False)
            conns.append(Conn(s))
        except OSError as e:
            s.close()
            k = f"connect: {e.__class__.__name__}: {e}"
            connect_errors[k] = connect_errors.get(k, 0) + 1
    connect_s = perf() - t_c

    ep = select.epoll(len(conns) + 1)
    by_fd = {}
    for c in conns:
        fd = c.sock.fileno()
        by_fd[fd] = c
        ep.register(fd, select.EPOLLIN | select.EPOLLRDHUP)

    peak = rss_kb(args.watch_pid) if args.watch_pid else None
    next_watch = 0.0
    n = len(conns)
    step = args.ramp_ms / 1000.0 / max(1, n)
    t0 = perf() + 0.02
    deadline = t0 + args.ramp_ms / 1000.0 + args.timeout
    sent = 0
    remaining = n
    while remaining and perf() < deadline:
        now = perf()
        # Send the requests that are due.
        while sent < n and t0 + sent * step <= now:
            c = conns[sent]
            c.t_send = perf()
            try:
                c.sock.send(req)
            except OSError as e:
                c.error = f"send: {e}"
                c.done = True
                remaining -= 1
            sent += 1
        timeout = 0.05
        if sent < n:
            timeout = max(0.0, min(timeout, t0 + sent * step - perf()))
        events = ep.poll(timeout)
        now = perf()
        for fd, _ev in events:
            c = by_fd[fd]
            if c.done:
                continue
            try:
                data = c.sock.recv(262144)
            except BlockingIOError:
                continue
            except OSError as e:
                c.error = f"recv: {e.__class__.__name__}"
                c.done = True
                remaining -= 1
                ep.unregister(fd)
                continue
            if not data:
                c.error = "connection closed by peer"
                c.done = True
                remaining -= 1
                ep.unregister(fd)
                continue
            buf = c.buf
            buf += data
            if c.head_end < 0:
                i = buf.find(b"\r\n\r\n")
                if i < 0:
                    continue
                c.head_end = i + 4
                if len(buf) == c.head_end:
                    continue  # the head alone is not a token
            if c.t_first is None:
                c.t_first = now
            else:
                gap = now - c.t_last
                if gap > c.max_gap:
                    c.max_gap = gap
            c.t_last = now
            if buf.endswith(b"0\r\n\r\n"):
                c.done = True
                remaining -= 1
                ep.unregister(fd)
        if args.watch_pid and now >= next_watch:
            r = rss_kb(args.watch_pid)
            if r is not None and (peak is None or r > peak):
                peak = r
            next_watch = now + 0.05
    wall = perf() - t0

    fails = dict(connect_errors)
    ttfb = []
    gaps = []
    completed = 0
    for c in conns:
        reason = check(c, args.format, args.tokens)
        if reason is None:
            completed += 1
            ttfb.append(c.t_first - c.t_send)
            gaps.append(c.max_gap)
        else:
            fails[reason] = fails.get(reason, 0) + 1
        c.sock.close()
    ep.close()
    ttfb.sort()
    gaps.sort()

    def us(v):
        return None if v is None else round(v * 1e6, 1)

    def ms(v):
        return None if v is None else round(v * 1e3, 2)

    cpu = os.times()
    print(json.dumps({
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
        "peak_rss_kb": peak,
        "client_cpu_s": round(cpu.user + cpu.system, 2),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
