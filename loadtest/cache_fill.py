#!/usr/bin/env python3
"""The response cache's memory bound under a fill: N distinct requests (each a miss that stores its
answer) through the router, with `cache_max_bytes` set; prints the router's RSS before, during and
after, and the cache's own count of entries and bytes.

Usage: python3 loadtest/cache_fill.py [--entries 100000] [--max-bytes 16777216] [--backend memory]
       [--bin target/release] [--threads 8]

Starts its own mock backend and router on free loopback ports (release binaries), stops both at the
end. Prints one JSON object; `rss_kb_end - rss_kb_start` against `max_bytes` is the check.
"""

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"process exited early ({proc.returncode})")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"port {port} not listening")


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def get_json(port: int, path: str) -> dict:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", path)
    return json.loads(c.getresponse().read())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=100_000)
    ap.add_argument("--max-bytes", type=int, default=16 << 20)
    ap.add_argument("--backend", default="memory")
    ap.add_argument("--bin", default=os.path.join(os.path.dirname(__file__), "..", "target", "release"))
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=40, help="tokens per answer (answer size)")
    a = ap.parse_args()

    work = tempfile.mkdtemp(prefix="nomyo-cache-fill-")
    mock_port, router_port = free_port(), free_port()
    procs = []
    try:
        mock = subprocess.Popen([f"{a.bin}/mock-backend", "--port", str(mock_port), "--tokens", str(a.tokens)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(mock)
        wait_port(mock_port, mock)
        cfg = os.path.join(work, "router.yaml")
        with open(cfg, "w") as f:
            f.write(f"endpoints:\n  - http://127.0.0.1:{mock_port}\nmax_concurrent_connections: 64\n"
                    f"cache_enabled: true\ncache_backend: {a.backend}\ncache_max_bytes: {a.max_bytes}\n"
                    f"cache_max_entries: {a.entries * 2}\ncache_mmap_path: {work}/cache.mmap\n"
                    f"cache_db_path: {work}/cache.db\ncache_privacy_guard: false\n")
        router = subprocess.Popen([f"{a.bin}/nomyo-router", "--config", cfg, "--host", "127.0.0.1",
                                   "--port", str(router_port), "--workers", "1", "--log-level", "warn"],
                                  stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "router.log"), "w"))
        procs.append(router)
        wait_port(router_port, router)
        time.sleep(0.5)
        rss_start = rss_kb(router.pid)
        samples = []
        counter = iter(range(a.entries))
        lock = threading.Lock()
        errors = [0]

        def worker() -> None:
            c = http.client.HTTPConnection("127.0.0.1", router_port, timeout=30)
            while True:
                with lock:
                    n = next(counter, None)
                if n is None:
                    return
                body = json.dumps({"model": "llama3", "stream": False,
                                   "messages": [{"role": "user", "content": f"distinct question number {n}"}]})
                try:
                    c.request("POST", "/api/chat", body, {"content-type": "application/json"})
                    r = c.getresponse()
                    r.read()
                    if r.status != 200:
                        errors[0] += 1
                except OSError:
                    errors[0] += 1
                    c = http.client.HTTPConnection("127.0.0.1", router_port, timeout=30)

        t0 = time.monotonic()
        threads = [threading.Thread(target=worker) for _ in range(a.threads)]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            time.sleep(1)
            samples.append(rss_kb(router.pid))
        wall = time.monotonic() - t0
        time.sleep(1)
        stats = get_json(router_port, "/api/cache/stats")
        out = {
            "entries_requested": a.entries, "backend": a.backend, "max_bytes": a.max_bytes,
            "answer_tokens": a.tokens, "wall_s": round(wall, 1), "req_per_s": round(a.entries / wall),
            "errors": errors[0], "rss_kb_start": rss_start, "rss_kb_peak": max(samples or [0]),
            "rss_kb_end": rss_kb(router.pid), "cache_entries": stats.get("entries"),
            "cache_bytes": stats.get("bytes"), "stores": stats.get("stores"),
        }
        out["rss_growth_kb"] = out["rss_kb_peak"] - rss_start
        out["growth_within_bound"] = out["rss_growth_kb"] * 1024 <= a.max_bytes * 1.5
        print(json.dumps(out))
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    main()
