#!/usr/bin/env python3
"""Paired, interleaved latency probe at concurrency 1 (Python stdlib only).

Why paired: separate `oha -c 1` rounds per target measure each target in a different time window, and
on a noisy VM the baseline's own p99 moves by 1-2 ms between windows (hypervisor hiccups), more than
the added latency to resolve. Here the targets take turns, one request each, over one keep-alive
connection per target, so all of them sample the same noise over the same window; the visiting order
rotates every iteration, so no target is always the first after the client's own pause. The added
latency per percentile is `target percentile - baseline percentile` (the first --target is the
baseline, e.g. direct-to-mock).

What is timed (time.perf_counter_ns, blocking sockets, TCP_NODELAY, request sent with one sendall):
  plain: from just before writing the request to the recv that completes the response (the last byte
         of a content-length or chunked body);
  ttft:  from just before writing the request to the recv that delivers the first byte of the first
         body chunk with data (the response head alone does not count); the stream is then read to its
         chunked terminator before the next request, untimed.
A broken connection counts an error and is reopened; a status other than 200 counts an error. Errors
are not sampled. Prints one JSON object; times in microseconds, nearest-rank percentiles.

  paired_latency.py --target direct=18081 --target nginx=18090 --target router=18100 \
      --requests 20000 --warmup 500 --mode plain --body '{"model":"llama3:latest",...}'
"""

import argparse
import gc
import json
import socket
import struct
import sys
import time

now_ns = time.perf_counter_ns


class Broken(Exception):
    pass


class Conn:
    """One keep-alive connection to one target; reads HTTP/1.1 responses off it."""

    def __init__(self, host, port, request, timeout_s):
        self.addr = (host, port)
        self.request = request
        self.timeout_s = timeout_s
        self.sock = None
        self.buf = bytearray()
        self.t_recv = 0  # perf_counter_ns right after the last recv returned

    def connect(self):
        self.close()
        s = socket.create_connection(self.addr, timeout=self.timeout_s)
        s.settimeout(None)  # truly blocking: one syscall per recv; SO_RCVTIMEO bounds a stuck read
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", int(self.timeout_s), 0))
        self.sock = s
        self.buf = bytearray()

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def recv(self):
        data = self.sock.recv(262144)
        self.t_recv = now_ns()
        if not data:
            raise Broken("connection closed by peer")
        self.buf += data

    def need(self, n):
        while len(self.buf) < n:
            self.recv()

    def find(self, sep, start=0):
        while True:
            i = self.buf.find(sep, start)
            if i >= 0:
                return i
            self.recv()

    def exchange(self):
        """Sends the request, reads the whole response. Returns (status, t_send, t_first_data, t_end)."""
        if self.sock is None:
            self.connect()
        t_send = now_ns()
        self.sock.sendall(self.request)
        buf = self.buf
        i = self.find(b"\r\n\r\n")
        head = bytes(buf[:i]).decode("latin-1").split("\r\n")
        del buf[:i + 4]
        parts = head[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise Broken(f"bad status line: {head[0]!r}")
        status = int(parts[1])
        hdrs = {}
        for line in head[1:]:
            k, _, v = line.partition(":")
            hdrs[k.strip().lower()] = v.strip().lower()
        t_first = None
        if "chunked" in hdrs.get("transfer-encoding", ""):
            while True:
                j = self.find(b"\r\n")
                size = int(bytes(buf[:j]).split(b";")[0], 16)
                if size == 0:
                    k = self.find(b"\r\n\r\n", j)  # optional trailers, then the empty line
                    del buf[:k + 4]
                    break
                if t_first is None:
                    self.need(j + 3)  # the first data byte of this chunk
                    t_first = self.t_recv
                self.need(j + 2 + size + 2)
                del buf[:j + 2 + size + 2]
        elif "content-length" in hdrs:
            n = int(hdrs["content-length"])
            if n:
                self.need(1)
                t_first = self.t_recv
                self.need(n)
            del buf[:n]
        else:  # no framing: the body ends with the connection
            try:
                while True:
                    self.recv()
            except Broken:
                pass
            t_first = self.t_recv
            self.close()
        if hdrs.get("connection") == "close" or parts[0] == "HTTP/1.0":
            self.close()
        return status, t_send, t_first, self.t_recv


def pct(sorted_vals, per_mille):
    """Nearest-rank percentile; per_mille 990 = p99."""
    if not sorted_vals:
        return None
    k = -(-len(sorted_vals) * per_mille // 1000) - 1
    return sorted_vals[max(0, min(len(sorted_vals) - 1, k))]


PCTS = (("p50", 500), ("p90", 900), ("p99", 990), ("p999", 999))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", action="append", required=True, metavar="NAME=PORT",
                    help="repeatable; the first one is the baseline")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--requests", type=int, default=10000, help="measured requests per target")
    ap.add_argument("--warmup", type=int, default=200, help="unmeasured iterations first")
    ap.add_argument("--mode", choices=["plain", "ttft"], default="plain")
    ap.add_argument("--body", default='{"model":"llama3:latest","messages":[{"role":"user","content":"hi"}],"stream":false}')
    ap.add_argument("--path", default="/api/chat")
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds, per connect and per read")
    args = ap.parse_args()

    body = args.body.encode()
    targets = []
    for spec in args.target:
        name, _, port = spec.partition("=")
        req = (f"POST {args.path} HTTP/1.1\r\nHost: {args.host}:{port}\r\nContent-Type: application/json\r\n"
               f"User-Agent: nomyo-loadtest-paired\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
        targets.append((name, Conn(args.host, int(port), req, args.timeout)))
    samples = {name: [] for name, _ in targets}
    errors = {name: {} for name, _ in targets}

    def one(name, conn, keep):
        try:
            status, t_send, t_first, t_end = conn.exchange()
        except (OSError, Broken, ValueError) as e:
            conn.close()  # reopened on the next request
            if keep:
                kind = f"{e.__class__.__name__}: {e}"
                errors[name][kind] = errors[name].get(kind, 0) + 1
            return
        if not keep:
            return
        if status != 200:
            errors[name][f"HTTP {status}"] = errors[name].get(f"HTTP {status}", 0) + 1
        elif args.mode == "ttft" and t_first is None:
            errors[name]["empty body"] = errors[name].get("empty body", 0) + 1
        else:
            samples[name].append((t_first if args.mode == "ttft" else t_end) - t_send)

    k = len(targets)
    gc.disable()  # no collector pauses inside a timed exchange
    t0 = time.perf_counter()
    for it in range(args.warmup + args.requests):
        r = it % k
        for name, conn in targets[r:] + targets[:r]:
            one(name, conn, it >= args.warmup)
    wall = time.perf_counter() - t0
    gc.enable()
    for _, conn in targets:
        conn.close()

    out = {"mode": args.mode, "path": args.path, "requests": args.requests, "warmup": args.warmup,
           "baseline": targets[0][0], "wall_s": round(wall, 2), "targets": {}}
    base = None
    for name, _ in targets:
        v = sorted(x / 1000.0 for x in samples[name])  # ns -> µs
        st = {"n": len(v), "errors": sum(errors[name].values()), "error_kinds": errors[name]}
        for key, pm in PCTS:
            st[key] = None if not v else round(pct(v, pm), 1)
        st["mean"] = round(sum(v) / len(v), 1) if v else None
        st["max"] = round(v[-1], 1) if v else None
        if base is None:
            base = st
        else:
            st["added"] = {key: (None if None in (st[key], base[key]) else round(st[key] - base[key], 1))
                           for key, _ in PCTS}
        out["targets"][name] = st
    print(json.dumps(out))
    return 0 if all(out["targets"][n]["n"] for n, _ in targets) else 1


if __name__ == "__main__":
    sys.exit(main())
