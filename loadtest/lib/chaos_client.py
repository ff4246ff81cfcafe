#!/usr/bin/env python3
"""Chaos-soak client for loadtest/chaos.sh (Python stdlib only, asyncio on raw sockets).

Subcommands:

  run            N concurrent client loops against the router for --seconds, then waits for the
                 requests in flight (each bounded by --deadline). Prints one JSON summary on stdout;
                 exit status 1 when any request was BAD.
  check-workers  opens N fresh connections at once; each must answer GET /api/version with 200
                 within --timeout (the router's workers share the port through SO_REUSEPORT, so the
                 kernel spreads them over every worker). Prints JSON; exit 1 on a failure.
  sanity         one request of every ordinary kind, each must be complete (retried for up to
                 --wait seconds while discovery settles). Prints JSON; exit 1 on a failure.
  procstat       VmRSS and open descriptors of --pid, the descriptors split into sockets to the
                 backends (--backend-ports), client connections (local --router-port) and the rest.

The mix of `run` (Load.NORMAL and Load.HOSTILE): Ollama /api/chat and /api/generate, streamed and
whole; OpenAI /v1/chat/completions streamed (SSE) and whole, to Ollama backends (their /v1 API) and
to OpenAI-compatible backends; translated traffic (Ollama API to a model only OpenAI-compatible
backends serve). Ordinary requests ask the mock for a random number of tokens (x-mock-tokens), so
the exact answer text is known, at the backend's own pace, and some carry a per-request fault
(x-mock-fault: 500 | hang | die, x-mock-first-byte-ms, slow tokens with x-mock-delay-ms). Hostile
clients: abort mid-stream after k bytes (FIN or RST), abort while queued or waiting for the head,
trailing bytes after a request (CRLF or garbage), two pipelined requests, slowloris heads, slow
bodies (given up or finished late), slow readers with a tiny receive buffer. After a clean error a
loop pauses 0.2-1 s (as a client honouring Retry-After would).

Every request ends in exactly one class:

  complete           a full valid answer: a stream ending with done:true / data: [DONE] whose text is
                     exactly what the mock sent, or a whole JSON answer with the expected fields;
  clean_error        an HTTP 4xx/5xx with a JSON error body in the route's API format (Ollama
                     {"error": "..."}, OpenAI {"error": {"message", "type", ...}}), a stream that
                     ends with one error line / event in its own format after a valid prefix, a
                     slowloris head cut off (closed without an answer) once header_read_timeout has
                     passed, a whole (non-stream) answer whose HTTP framing was cut (the only signal
                     HTTP/1.1 has after a 200 head; never expected with this mix), or the second of
                     two pipelined requests left unanswered after a `connection: close`;
  aborted_by_client  the client left on purpose before the end;
  bad                anything else: a malformed or wrong-format answer, a wrong text, a stream cut
                     without an error line, an unexpected status for a valid request, no answer at
                     all, or no end within --deadline seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import json
import os
import random
import re
import socket
import struct
import sys
import time
from collections import Counter, defaultdict

COMPLETE = "complete"
CLEAN = "clean_error"
ABORTED = "aborted_by_client"
BAD = "bad"
CLASSES = (COMPLETE, CLEAN, ABORTED, BAD)

# Error statuses a valid request may get from the router under chaos: 408 (slow body), 429 (queue
# full), 500 (the backend's 500, relayed), 502 (upstream failure), 503 (queue timeout, no healthy
# backend), 504 (first-byte timeout).
ALLOWED_ERRORS = {408, 429, 500, 502, 503, 504}

HOST = "127.0.0.1"


class NoResponse(Exception):
    """The connection ended (EOF or reset) before any byte of the answer."""


class BudgetSpent(Exception):
    """The client read as many bytes as it meant to and leaves (hostile abort)."""


class Malformed(Exception):
    pass


# Error messages seen (clean errors), normalised: endpoints and numbers replaced.
ERROR_MESSAGES: Counter = Counter()


def note_error(where: str, message) -> None:
    text = message if isinstance(message, str) else json.dumps(message)
    text = re.sub(r"https?://[0-9.:]+(/v1)?", "<endpoint>", text)
    text = re.sub(r"\d+(\.\d+)?", "N", text)
    ERROR_MESSAGES[f"{where}: {text[:120]}"] += 1


def expected_text(n: int) -> str:
    return "".join(f"tok{i} " for i in range(n))


# ---------------------------------------------------------------------------------------------------
# HTTP/1.1 on asyncio streams


class Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.r = reader
        self.w = writer
        self.nread = 0
        self.budget: int | None = None
        self.requests = 0

    @classmethod
    async def open(cls, port: int, limit: int = 1 << 20, rcvbuf: int | None = None) -> "Conn":
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            await asyncio.get_running_loop().sock_connect(sock, (HOST, port))
        except BaseException:
            sock.close()
            raise
        r, w = await asyncio.open_connection(sock=sock, limit=limit)
        return cls(r, w)

    def close(self, rst: bool = False) -> None:
        try:
            if rst:
                sock = self.w.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.w.close()
        except Exception:
            pass

    async def send(self, data: bytes) -> None:
        self.w.write(data)
        await self.w.drain()

    def _count(self, n: int) -> None:
        self.nread += n
        if self.budget is not None and self.nread >= self.budget:
            raise BudgetSpent()

    async def readuntil(self, sep: bytes) -> bytes:
        d = await self.r.readuntil(sep)
        self._count(len(d))
        return d

    async def readexactly(self, n: int) -> bytes:
        d = await self.r.readexactly(n)
        self._count(len(d))
        return d

    async def read(self, n: int) -> bytes:
        d = await self.r.read(n)
        self._count(len(d))
        return d


class Response:
    __slots__ = ("status", "headers", "body", "cut", "head_raw")

    def __init__(self, status, headers, body, cut, head_raw=b""):
        self.status = status
        self.headers = headers
        self.body = body
        self.cut = cut  # None when the HTTP framing ended properly, else what was missing
        self.head_raw = head_raw

    @property
    def closes(self) -> bool:
        return "close" in self.headers.get("connection", "").lower()


def parse_head(raw: bytes):
    try:
        text = raw.decode("latin-1")
    except Exception as e:  # pragma: no cover
        raise Malformed(f"head not decodable: {e}")
    lines = text.split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise Malformed(f"bad status line {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        if ":" not in line:
            raise Malformed(f"bad header line {line[:80]!r}")
        k, v = line.split(":", 1)
        k = k.strip().lower()
        if k in headers:
            headers[k] += ", " + v.strip()
        else:
            headers[k] = v.strip()
    return int(parts[1]), headers


async def read_response(conn: Conn, head_method: str = "POST") -> Response:
    """Reads one answer. NoResponse when the connection ends before its first byte; a cut inside the
    head is Malformed; a cut inside the body is reported in Response.cut with what was read."""
    start = conn.nread
    try:
        raw = await conn.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as e:
        if not e.partial:
            raise NoResponse("eof before any byte")
        raise Malformed(f"connection ended inside the head after {len(e.partial)} bytes: {e.partial[:120]!r}")
    except (ConnectionResetError, BrokenPipeError) as e:
        if conn.nread == start:
            raise NoResponse(f"reset before any byte: {e}")
        raise Malformed(f"reset inside the head: {e}")
    except asyncio.LimitOverrunError:
        raise Malformed("response head over 1 MiB")
    status, headers = parse_head(raw[:-4])
    if 100 <= status < 200:
        # An interim answer (the router never sends one unasked): read the real one.
        return await read_response(conn, head_method)
    body = bytearray()
    cut = None
    te = headers.get("transfer-encoding", "").lower()
    try:
        if head_method == "HEAD" or status in (204, 304):
            pass
        elif "chunked" in te:
            while True:
                line = await conn.readuntil(b"\r\n")
                try:
                    size = int(line[:-2].split(b";")[0].strip(), 16)
                except ValueError:
                    raise Malformed(f"bad chunk size line {line[:40]!r}")
                if size == 0:
                    # trailers until an empty line
                    while (await conn.readuntil(b"\r\n")) != b"\r\n":
                        pass
                    break
                body += await conn.readexactly(size)
                if await conn.readexactly(2) != b"\r\n":
                    raise Malformed("chunk not followed by CRLF")
        elif "content-length" in headers:
            n = int(headers["content-length"])
            if n:
                body += await conn.readexactly(n)
        else:
            while True:
                d = await conn.read(65536)
                if not d:
                    break
                body += d
    except asyncio.IncompleteReadError as e:
        body += e.partial
        cut = "connection ended inside the body"
    except (ConnectionResetError, BrokenPipeError):
        cut = "connection reset inside the body"
    return Response(status, headers, bytes(body), cut, raw)


def build_request(method: str, path: str, body: bytes | None, headers: dict[str, str]) -> bytes:
    h = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    for k, v in headers.items():
        h.append(f"{k}: {v}")
    if body is not None:
        h.append("Content-Type: application/json")
        h.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(h) + "\r\n\r\n").encode() + (body or b"")


# ---------------------------------------------------------------------------------------------------
# What a request is and how its answer is judged


class Spec:
    """One inference request: API, route, streamed or not, the model, the tokens asked for."""

    __slots__ = ("kind", "api", "route", "stream", "model", "tokens", "delay_ms", "fault", "first_byte_ms", "rid")

    def __init__(self, kind, api, route, stream, model, tokens, delay_ms, fault=None, first_byte_ms=0, rid=""):
        self.kind = kind
        self.api = api  # "ollama" | "openai": the API the client speaks (and expects back)
        self.route = route  # "chat" | "generate"
        self.stream = stream
        self.model = model
        self.tokens = tokens
        self.delay_ms = delay_ms
        self.fault = fault
        self.first_byte_ms = first_byte_ms
        self.rid = rid

    def path(self) -> str:
        if self.api == "openai":
            return "/v1/chat/completions"
        return "/api/chat" if self.route == "chat" else "/api/generate"

    def body(self) -> bytes:
        if self.api == "openai":
            b = {"model": self.model, "messages": [{"role": "user", "content": "chaos"}], "stream": self.stream}
        elif self.route == "chat":
            b = {"model": self.model, "messages": [{"role": "user", "content": "chaos"}], "stream": self.stream}
        else:
            b = {"model": self.model, "prompt": "chaos", "stream": self.stream}
        return json.dumps(b).encode()

    def headers(self) -> dict[str, str]:
        h = {"x-mock-tokens": str(self.tokens), "x-request-id": self.rid}
        if self.delay_ms is not None:  # else the backend's own pace (--token-delay-ms)
            h["x-mock-delay-ms"] = str(self.delay_ms)
        if self.fault:
            h["x-mock-fault"] = self.fault
        if self.first_byte_ms:
            h["x-mock-first-byte-ms"] = str(self.first_byte_ms)
        return h

    def wire(self) -> bytes:
        return build_request("POST", self.path(), self.body(), self.headers())

    def describe(self) -> str:
        f = f" fault={self.fault}" if self.fault else ""
        return f"{self.kind} {self.path()} model={self.model} stream={self.stream} tokens={self.tokens}{f} id={self.rid}"


def error_format_ok(api: str, body: bytes) -> str | None:
    """None when `body` is an error object in `api`'s format, else what is wrong."""
    try:
        v = json.loads(body)
    except ValueError:
        return f"error body is not JSON: {body[:200]!r}"
    if not isinstance(v, dict) or "error" not in v:
        return f"error body without 'error': {body[:200]!r}"
    e = v["error"]
    if api == "ollama":
        if not isinstance(e, str) or not e:
            return f"Ollama error is not a non-empty string: {body[:200]!r}"
    else:
        if not isinstance(e, dict) or not isinstance(e.get("message"), str) or not e["message"] or "type" not in e:
            return f"OpenAI error is not {{message, type, ...}}: {body[:200]!r}"
    return None


def judge_error(api: str, r: Response, allowed=ALLOWED_ERRORS) -> tuple[str, str]:
    if r.cut:
        return BAD, f"error answer {r.status} cut: {r.cut}"
    why = error_format_ok(api, r.body)
    if why:
        return BAD, f"{r.status}: {why}"
    if r.status not in allowed:
        return BAD, f"unexpected status {r.status} for a valid request: {r.body[:200]!r}"
    e = json.loads(r.body)["error"]
    note_error(str(r.status), e if isinstance(e, str) else e.get("message"))
    return CLEAN, f"http_{r.status}"


def split_stream(body: bytes, sep: str, what: str) -> tuple[list[str] | None, str]:
    """The frames of a stream that must end with `sep` (NDJSON lines, SSE events), or why not."""
    text = body.decode("utf-8", errors="strict")
    if not text.endswith(sep):
        return None, f"{what} stream does not end with {sep!r}: {text[-200:]!r}"
    frames = text.split(sep)[:-1]
    if not frames:
        return None, f"empty {what} stream"
    return frames, ""


def ending_error(i: int, n: int, got: list[str], want: str, what: str) -> str:
    """Why an error frame at `i` of `n` after the text `got` is not a clean ending ("" when it is)."""
    if i != n - 1:
        return f"error {what} {i} is not the last of {n}"
    if not want.startswith("".join(got)):
        return f"text before the error {what} is not a prefix of the answer: {''.join(got)[:200]!r}"
    return ""


def judge_ndjson(spec: Spec, body: bytes) -> tuple[str, str]:
    lines, why = split_stream(body, "\n", "NDJSON")
    if lines is None:
        return BAD, why
    got = []
    want = expected_text(spec.tokens)
    for i, line in enumerate(lines):
        try:
            v = json.loads(line)
        except ValueError:
            return BAD, f"NDJSON line {i} is not JSON: {line[:200]!r}"
        if not isinstance(v, dict):
            return BAD, f"NDJSON line {i} is not an object: {line[:200]!r}"
        if "error" in v:
            why = ending_error(i, len(lines), got, want, "line")
            if why:
                return BAD, why
            if not isinstance(v["error"], str) or not v["error"]:
                return BAD, f"error line not in Ollama format: {line[:200]!r}"
            note_error("ndjson", v["error"])
            return CLEAN, "stream_error_line"
        if spec.route == "chat":
            msg = v.get("message")
            if not isinstance(msg, dict):
                return BAD, f"chat line {i} without message: {line[:200]!r}"
            piece = msg.get("content") or ""
        else:
            if "response" not in v:
                return BAD, f"generate line {i} without response: {line[:200]!r}"
            piece = v.get("response") or ""
        got.append(piece)
        if v.get("done") is True:
            if i != len(lines) - 1:
                return BAD, f"done:true on line {i} of {len(lines)}"
            text_got = "".join(got)
            if text_got != want:
                return BAD, f"stream text {text_got[:120]!r} != expected {want[:120]!r}"
            return COMPLETE, "stream"
        if v.get("done") is not False:
            return BAD, f"line {i} without done:false: {line[:200]!r}"
    return BAD, f"NDJSON stream ended without done:true or an error line ({len(lines)} lines)"


def judge_sse(spec: Spec, body: bytes) -> tuple[str, str]:
    events, why = split_stream(body, "\n\n", "SSE")
    if events is None:
        return BAD, why
    got = []
    want = expected_text(spec.tokens)
    finished = False
    for i, ev in enumerate(events):
        if not ev.startswith("data: ") or "\n" in ev:
            return BAD, f"SSE event {i} is not one data line: {ev[:200]!r}"
        data = ev[6:]
        last = i == len(events) - 1
        if data == "[DONE]":
            if not last:
                return BAD, f"[DONE] is event {i} of {len(events)}"
            text_got = "".join(got)
            if text_got != want:
                return BAD, f"SSE text {text_got[:120]!r} != expected {want[:120]!r}"
            if not finished:
                return BAD, "SSE stream without a finish_reason before [DONE]"
            return COMPLETE, "stream"
        try:
            v = json.loads(data)
        except ValueError:
            return BAD, f"SSE event {i} is not JSON: {data[:200]!r}"
        if not isinstance(v, dict):
            return BAD, f"SSE event {i} is not an object"
        if "error" in v:
            why = ending_error(i, len(events), got, want, "event")
            if why:
                return BAD, why
            e = v["error"]
            if not isinstance(e, dict) or not isinstance(e.get("message"), str) or "type" not in e:
                return BAD, f"error event not in OpenAI format: {data[:200]!r}"
            note_error("sse", e["message"])
            return CLEAN, "stream_error_event"
        if v.get("object") != "chat.completion.chunk":
            return BAD, f"SSE event {i} is not a chat.completion.chunk: {data[:200]!r}"
        for c in v.get("choices") or []:
            d = c.get("delta") or {}
            if isinstance(d.get("content"), str):
                got.append(d["content"])
            if c.get("finish_reason"):
                finished = True
    return BAD, f"SSE stream ended without [DONE] or an error event ({len(events)} events)"


def judge_whole(spec: Spec, body: bytes) -> tuple[str, str]:
    try:
        v = json.loads(body)
    except ValueError:
        return BAD, f"whole answer is not JSON: {body[:200]!r}"
    want = expected_text(spec.tokens)
    if not isinstance(v, dict):
        return BAD, "whole answer is not an object"
    if spec.api == "openai":
        if v.get("object") != "chat.completion":
            return BAD, f"not a chat.completion: {body[:200]!r}"
        try:
            text = v["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            return BAD, f"chat.completion without choices[0].message.content: {body[:200]!r}"
    else:
        if v.get("done") is not True:
            return BAD, f"Ollama answer without done:true: {body[:200]!r}"
        if spec.route == "chat":
            text = (v.get("message") or {}).get("content")
        else:
            text = v.get("response")
    if text != want:
        return BAD, f"answer text {str(text)[:120]!r} != expected {want[:120]!r}"
    return COMPLETE, "whole"


def judge(spec: Spec, r: Response) -> tuple[str, str]:
    if r.headers.get("x-request-id") != spec.rid:
        # The router echoes the client's X-Request-Id on every answer.
        return BAD, f"x-request-id {r.headers.get('x-request-id')!r} != {spec.rid!r}: an answer to another request?"
    ct = r.headers.get("content-type", "")
    if r.status >= 400:
        if not ct.startswith("application/json"):
            return BAD, f"error {r.status} with content-type {ct!r}: {r.body[:200]!r}"
        return judge_error(spec.api, r)
    if r.status != 200:
        return BAD, f"status {r.status}: {r.body[:200]!r}"
    if spec.stream:
        want_ct = "application/x-ndjson" if spec.api == "ollama" else "text/event-stream"
        if not ct.startswith(want_ct):
            return BAD, f"stream with content-type {ct!r}, want {want_ct}"
        if r.cut:
            # The router ends a failed stream with an error line and a proper end of the chunked body.
            cls, why = judge_ndjson(spec, r.body) if spec.api == "ollama" else judge_sse(spec, r.body)
            return BAD, f"stream cut ({r.cut}); the text read says {cls}: {why}"
        try:
            return judge_ndjson(spec, r.body) if spec.api == "ollama" else judge_sse(spec, r.body)
        except UnicodeDecodeError as e:
            return BAD, f"stream is not UTF-8: {e}"
    if r.cut:
        # After a 200 head of a whole answer, ending the connection is all HTTP/1.1 can say.
        return CLEAN, "whole_cut_by_framing"
    if not ct.startswith("application/json"):
        return BAD, f"whole answer with content-type {ct!r}"
    return judge_whole(spec, r.body)


# ---------------------------------------------------------------------------------------------------
# The load


# The classes of the current loop iteration's requests (a list per client task).
OUTCOMES: contextvars.ContextVar = contextvars.ContextVar("outcomes", default=None)


class Tally:
    def __init__(self):
        self.classes = Counter()
        self.by_kind = defaultdict(Counter)
        self.reasons = defaultdict(Counter)
        self.statuses = Counter()
        self.bad_samples: list[dict] = []
        self.keepalive_retries = 0
        self.latency_max = 0.0
        self.latency_max_kind = ""

    def add(self, kind: str, cls: str, reason: str, detail: str = "", status: int | None = None):
        box = OUTCOMES.get()
        if box is not None:
            box.append(cls)
        self.classes[cls] += 1
        self.by_kind[kind][cls] += 1
        # Reasons of BADs carry the detail in the samples; the counter keys stay short.
        self.reasons[cls][reason if cls != BAD else reason.split(":")[0][:80]] += 1
        if status is not None:
            self.statuses[status] += 1
        if cls == BAD and len(self.bad_samples) < 50:
            self.bad_samples.append({"t": round(time.time(), 3), "kind": kind, "reason": reason, "request": detail})
            print(f"[chaos-client] BAD {kind}: {reason} ({detail})", file=sys.stderr, flush=True)


class Load:
    def __init__(self, a):
        self.a = a
        self.port = a.port
        self.tally = Tally()
        self.seq = 0
        self.ollama_models = a.ollama_models.split(",")
        self.openai_models = a.openai_models.split(",")
        self.queued_model = a.queued_model
        self.stop_at = 0.0
        self.inflight = 0
        self.peaks = {"total_in_flight": 0, "total_queued": 0, "rss_kb": 0, "fds": 0, "client_inflight": 0}
        self.samples = []
        self.started = time.time()

    def rid(self, c: int) -> str:
        self.seq += 1
        return f"chaos-{c}-{self.seq}"

    # -- the request mix ----------------------------------------------------------------------------

    def spec(self, c: int, kind: str) -> Spec:
        rnd = random.random
        tokens = random.randint(1, 30)
        delay = None  # the backend's pace
        om = random.choice(self.ollama_models)
        xm = random.choice(self.openai_models)
        table = {
            "ollama_chat_stream": ("ollama", "chat", True, om),
            "ollama_chat_whole": ("ollama", "chat", False, om),
            "ollama_generate_stream": ("ollama", "generate", True, om),
            "ollama_generate_whole": ("ollama", "generate", False, om),
            "openai_chat_stream": ("openai", "chat", True, om),  # to Ollama backends, their /v1
            "openai_chat_whole": ("openai", "chat", False, om),
            "openai_native_stream": ("openai", "chat", True, xm),  # to OpenAI-compatible backends
            "openai_native_whole": ("openai", "chat", False, xm),
            "translated_chat_stream": ("ollama", "chat", True, xm),  # Ollama API, OpenAI backend
            "translated_chat_whole": ("ollama", "chat", False, xm),
            "translated_generate_stream": ("ollama", "generate", True, xm),
            "translated_generate_whole": ("ollama", "generate", False, xm),
        }
        api, route, stream, model = table[kind]
        s = Spec(kind, api, route, stream, model, tokens, delay, rid=self.rid(c))
        x = rnd()
        if x < 0.03:
            s.fault = "500"
        elif x < 0.035:
            s.fault = "hang"  # the router's first-byte timeout answers 504
        elif x < 0.075 and (stream or model in self.openai_models and api == "ollama"):
            # die mid-stream: streams end with an error line; a translated whole answer is a 502. A
            # whole passthrough answer is left out: the mock would stream it (never a real backend).
            s.fault = "die"
            s.tokens = max(s.tokens, 4)
        elif x < 0.20:
            s.tokens = random.randint(20, 40)
            s.delay_ms = random.choice((30, 50))  # slow tokens
        elif x < 0.23:
            s.first_byte_ms = random.randint(300, 3000)
        return s

    NORMAL = (
        ("ollama_chat_stream", 14), ("ollama_chat_whole", 10), ("ollama_generate_stream", 6),
        ("ollama_generate_whole", 5), ("openai_chat_stream", 8), ("openai_chat_whole", 6),
        ("openai_native_stream", 5), ("openai_native_whole", 4), ("translated_chat_stream", 7),
        ("translated_chat_whole", 5), ("translated_generate_stream", 3), ("translated_generate_whole", 2),
    )
    HOSTILE = (
        ("abort_mid_stream", 6), ("abort_queued", 4), ("trailing_bytes", 4), ("pipeline", 4),
        ("stall_head", 2), ("stall_body", 3), ("slow_reader", 2),
    )

    def pick(self) -> str:
        table = self.NORMAL + self.HOSTILE
        total = sum(w for _, w in table)
        x = random.uniform(0, total)
        for k, w in table:
            x -= w
            if x <= 0:
                return k
        return table[-1][0]

    # -- one ordinary request, on the loop's keep-alive connection ----------------------------------

    async def ordinary(self, c: int, kind: str, keep: list, spec: Spec | None = None) -> None:
        spec = spec or self.spec(c, kind)
        for attempt in (0, 1):
            conn = keep[0] if keep else None
            reused = conn is not None
            if conn is None:
                try:
                    conn = await Conn.open(self.port)
                except OSError as e:
                    self.tally.add(kind, BAD, f"connect to the router failed: {e}", spec.describe())
                    return
            keep.clear()
            try:
                await conn.send(spec.wire())
                conn.requests += 1
                r = await read_response(conn)
            except NoResponse as e:
                conn.close()
                if reused and attempt == 0:
                    # An idle keep-alive connection the server ended: any HTTP client sends again.
                    self.tally.keepalive_retries += 1
                    continue
                self.tally.add(kind, BAD, f"no answer on a fresh connection: {e}", spec.describe())
                return
            except (ConnectionResetError, BrokenPipeError) as e:
                conn.close()
                if reused and attempt == 0:
                    self.tally.keepalive_retries += 1
                    continue
                self.tally.add(kind, BAD, f"write failed on a fresh connection: {e}", spec.describe())
                return
            except Malformed as e:
                conn.close()
                self.tally.add(kind, BAD, f"malformed answer: {e}", spec.describe())
                return
            cls, why = judge(spec, r)
            self.tally.add(kind, cls, why, spec.describe() + f" status={r.status}", r.status)
            if r.cut or r.closes:
                conn.close()
            else:
                keep.append(conn)
            return

    # -- hostile clients ----------------------------------------------------------------------------

    def stream_spec(self, c: int, kind: str) -> Spec:
        base = random.choice(("ollama_chat_stream", "ollama_generate_stream", "openai_chat_stream",
                              "openai_native_stream", "translated_chat_stream"))
        s = self.spec(c, base)
        s.kind = kind
        s.fault = None
        s.first_byte_ms = 0
        return s

    async def abort_mid_stream(self, c: int, kind: str) -> None:
        spec = self.stream_spec(c, kind)
        spec.tokens = random.randint(20, 60)
        spec.delay_ms = random.choice((5, 10, 20))
        budget = random.randint(1, 3000)
        conn = await Conn.open(self.port)
        conn.budget = budget
        try:
            await conn.send(spec.wire())
            r = await read_response(conn)
        except BudgetSpent:
            conn.close(rst=random.random() < 0.5)
            self.tally.add(kind, ABORTED, "after_bytes")
            return
        except NoResponse as e:
            conn.close()
            self.tally.add(kind, BAD, f"no answer: {e}", spec.describe())
            return
        except Malformed as e:
            conn.close()
            self.tally.add(kind, BAD, f"malformed answer: {e}", spec.describe())
            return
        conn.close()
        cls, why = judge(spec, r)  # the whole answer came within the budget
        self.tally.add(kind, cls, why, spec.describe(), r.status)

    async def abort_queued(self, c: int, kind: str) -> None:
        """Asks for the busiest model and leaves before any answer byte: while queued or while the
        backend prepares the head."""
        spec = self.spec(c, random.choice(("ollama_chat_whole", "ollama_chat_stream", "openai_chat_whole")))
        spec.kind = kind
        spec.model = self.queued_model
        spec.fault = None
        spec.tokens = random.randint(10, 30)
        spec.delay_ms = 20
        spec.first_byte_ms = random.choice((0, 500))
        wait = random.uniform(0.05, 3.0)
        conn = await Conn.open(self.port)
        try:
            await conn.send(spec.wire())
            reading = asyncio.ensure_future(read_response(conn))
            done, _ = await asyncio.wait({reading}, timeout=wait)
            if not done:
                reading.cancel()
                try:
                    await reading
                except BaseException:
                    pass
                conn.close(rst=random.random() < 0.3)
                self.tally.add(kind, ABORTED, "before_the_end")
                return
            r = reading.result()
        except NoResponse as e:
            conn.close()
            self.tally.add(kind, BAD, f"no answer: {e}", spec.describe())
            return
        except Malformed as e:
            conn.close()
            self.tally.add(kind, BAD, f"malformed answer: {e}", spec.describe())
            return
        except (ConnectionResetError, BrokenPipeError) as e:
            conn.close()
            self.tally.add(kind, BAD, f"reset: {e}", spec.describe())
            return
        conn.close()
        cls, why = judge(spec, r)
        self.tally.add(kind, cls, why, spec.describe(), r.status)

    async def trailing_bytes(self, c: int, kind: str) -> None:
        base = random.choice([k for k, _ in self.NORMAL])
        spec = self.spec(c, base)
        spec.kind = kind
        spec.fault = None if random.random() < 0.7 else spec.fault
        trail = random.choice((b"\r\n", b"\r\n\r\n", b"\n", b"x", b"GARBAGE\r\n\r\n", b"\x00\xff\xfe", b"GET"))
        conn = await Conn.open(self.port)
        try:
            await conn.send(spec.wire() + trail)
            r = await read_response(conn)
        except (NoResponse, Malformed) as e:
            conn.close()
            self.tally.add(kind, BAD, f"no or malformed answer: {e}", spec.describe() + f" trail={trail!r}")
            return
        cls, why = judge(spec, r)
        self.tally.add(kind, cls, why, spec.describe() + f" trail={trail!r}", r.status)
        if r.cut or r.closes:
            conn.close()
            return
        # What follows (if anything) must be a well-formed refusal of the trailing bytes, or nothing.
        try:
            r2 = await asyncio.wait_for(read_response(conn, "POST"), 0.5)
        except (asyncio.TimeoutError, NoResponse, ConnectionResetError):
            r2 = None
        except Malformed as e:
            self.tally.add(kind + "_after", BAD, f"malformed answer to the trailing bytes: {e}", spec.describe() + f" trail={trail!r}")
            r2 = None
        if r2 is not None:
            if not (400 <= r2.status < 500) or error_format_ok("ollama", r2.body) is not None:
                self.tally.add(kind + "_after", BAD, f"answer to trailing bytes: {r2.status} {r2.body[:200]!r}", spec.describe() + f" trail={trail!r}")
        conn.close()

    async def pipeline(self, c: int, kind: str) -> None:
        specs = []
        for _ in range(2):
            s = self.spec(c, random.choice(("ollama_chat_whole", "ollama_generate_whole", "openai_chat_whole",
                                            "openai_native_whole", "translated_chat_whole", "ollama_chat_stream")))
            s.kind = kind
            if s.fault in ("hang", "die"):
                s.fault = None
            specs.append(s)
        conn = await Conn.open(self.port)
        try:
            await conn.send(specs[0].wire() + specs[1].wire())
        except (ConnectionResetError, BrokenPipeError) as e:
            conn.close()
            self.tally.add(kind, BAD, f"write failed: {e}", specs[0].describe())
            return
        closed = False
        for i, spec in enumerate(specs):
            if closed:
                self.tally.add(kind, CLEAN, "not_served_after_connection_close")
                continue
            try:
                r = await read_response(conn)
            except (NoResponse, Malformed) as e:
                self.tally.add(kind, BAD, f"pipelined request {i}: {e}", spec.describe())
                closed = True
                continue
            except (ConnectionResetError, BrokenPipeError) as e:
                self.tally.add(kind, BAD, f"pipelined request {i}: reset {e}", spec.describe())
                closed = True
                continue
            cls, why = judge(spec, r)
            self.tally.add(kind, cls, why, spec.describe() + f" (pipelined {i})", r.status)
            closed = bool(r.cut or r.closes)
        conn.close()

    async def stall_head(self, c: int, kind: str) -> None:
        """A slowloris head: a header line every 0.3-1 s, given up after 1-8 s. The router cuts a head
        that takes longer than header_read_timeout (closes without an answer)."""
        path = random.choice(("/api/chat", "/v1/chat/completions"))
        give_up = random.uniform(1.0, 8.0)
        conn = await Conn.open(self.port)
        t0 = time.monotonic()
        data = b""
        closed = False
        try:
            await conn.send(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode())
            reading = asyncio.ensure_future(conn.r.read(65536))
            i = 0
            while time.monotonic() - t0 < give_up:
                step = min(random.uniform(0.3, 1.0), max(0.01, give_up - (time.monotonic() - t0)))
                done, _ = await asyncio.wait({reading}, timeout=step)
                if done:
                    try:
                        data = reading.result()
                    except (ConnectionResetError, BrokenPipeError):
                        data = b""
                    closed = True
                    break
                i += 1
                try:
                    await conn.send(f"X-Slow-{i}: a\r\n".encode())
                except (ConnectionResetError, BrokenPipeError):
                    pass
            if not closed:
                reading.cancel()
                try:
                    await reading
                except BaseException:
                    pass
        finally:
            conn.close()
        elapsed = time.monotonic() - t0
        hrt = self.a.header_timeout
        if not closed:
            self.tally.add(kind, ABORTED, "gave_up")
        elif not data:
            if elapsed >= hrt - 0.3:
                self.tally.add(kind, CLEAN, "slow_head_cut_off")
            else:
                self.tally.add(kind, BAD, f"slow head closed after {elapsed:.2f}s < header_read_timeout {hrt}s", path)
        else:
            head = data.split(b"\r\n", 1)[0]
            if head.startswith(b"HTTP/1.1 408") or head.startswith(b"HTTP/1.1 400"):
                self.tally.add(kind, CLEAN, head[9:12].decode())
            else:
                self.tally.add(kind, BAD, f"answer to a slow head: {data[:200]!r}", path)

    async def stall_body(self, c: int, kind: str) -> None:
        """A slow body: half sent, then a byte every 0.3-1 s; finished late (within the limit) or
        given up after 1-8 s. Past header_read_timeout the router answers 408 in the route's format."""
        base = random.choice(("ollama_chat_whole", "openai_chat_whole", "ollama_chat_stream", "translated_chat_whole"))
        spec = self.spec(c, base)
        spec.kind = kind
        spec.fault = None
        wire = spec.wire()
        head_end = wire.index(b"\r\n\r\n") + 4
        body = wire[head_end:]
        half = len(body) // 2
        finish = random.random() < 0.4
        limit = random.uniform(0.5, max(0.6, self.a.header_timeout - 2.0)) if finish else random.uniform(1.0, 8.0)
        conn = await Conn.open(self.port)
        t0 = time.monotonic()
        sent = half
        try:
            await conn.send(wire[:head_end] + body[:half])
            reading = asyncio.ensure_future(read_response(conn))
            answered = False
            while time.monotonic() - t0 < limit and sent < len(body) - 1:
                done, _ = await asyncio.wait({reading}, timeout=random.uniform(0.3, 1.0))
                if done:
                    answered = True
                    break
                try:
                    await conn.send(body[sent:sent + 1])
                    sent += 1
                except (ConnectionResetError, BrokenPipeError):
                    break
            if not answered and finish:
                try:
                    await conn.send(body[sent:])
                    sent = len(body)
                except (ConnectionResetError, BrokenPipeError):
                    pass
            if not answered and not finish:
                done, _ = await asyncio.wait({reading}, timeout=0.05)
                if not done:
                    reading.cancel()
                    try:
                        await reading
                    except BaseException:
                        pass
                    conn.close(rst=random.random() < 0.3)
                    self.tally.add(kind, ABORTED, "gave_up")
                    return
            r = await reading
        except (NoResponse, Malformed) as e:
            conn.close()
            self.tally.add(kind, BAD, f"slow body: {e}", spec.describe())
            return
        except (ConnectionResetError, BrokenPipeError) as e:
            conn.close()
            self.tally.add(kind, BAD, f"slow body: reset {e}", spec.describe())
            return
        conn.close()
        if sent < len(body):
            # Refused before the body was whole: only a 408 in the route's format is right.
            if r.status != 408:
                self.tally.add(kind, BAD, f"slow body answered {r.status} before it was whole: {r.body[:200]!r}", spec.describe())
                return
            cls, why = judge(spec, r)
            self.tally.add(kind, cls, why, spec.describe(), r.status)
            return
        cls, why = judge(spec, r)
        self.tally.add(kind, cls, why, spec.describe() + " (slow body)", r.status)

    async def slow_reader(self, c: int, kind: str) -> None:
        """A long stream read through a tiny receive buffer, with pauses of 0.5-2 s."""
        spec = self.stream_spec(c, kind)
        spec.tokens = random.randint(200, 400)
        spec.delay_ms = 0
        conn = await Conn.open(self.port, limit=2048, rcvbuf=4096)
        try:
            await conn.send(spec.wire())
            await asyncio.sleep(random.uniform(0.5, 2.0))
            r = await read_response(conn)
        except (NoResponse, Malformed) as e:
            conn.close()
            self.tally.add(kind, BAD, f"slow reader: {e}", spec.describe())
            return
        except (ConnectionResetError, BrokenPipeError) as e:
            conn.close()
            self.tally.add(kind, BAD, f"slow reader: reset {e}", spec.describe())
            return
        conn.close()
        cls, why = judge(spec, r)
        self.tally.add(kind, cls, why, spec.describe(), r.status)

    # -- the loops ----------------------------------------------------------------------------------

    async def one(self, c: int, kind: str, keep: list) -> None:
        if kind in dict(self.NORMAL):
            await self.ordinary(c, kind, keep)
        else:
            await getattr(self, kind)(c, kind)

    async def client(self, c: int) -> None:
        keep: list = []
        # Starts spread over the first two seconds.
        await asyncio.sleep(random.uniform(0, 2.0))
        while time.monotonic() < self.stop_at:
            kind = self.pick()
            self.inflight += 1
            self.peaks["client_inflight"] = max(self.peaks["client_inflight"], self.inflight)
            t0 = time.monotonic()
            outcomes: list = []
            OUTCOMES.set(outcomes)
            try:
                await asyncio.wait_for(self.one(c, kind, keep), self.a.deadline)
            except asyncio.TimeoutError:
                self.tally.add(kind, BAD, f"no end within {self.a.deadline}s (hang)", kind)
                for k in keep:
                    k.close()
                keep.clear()
            except OSError as e:
                self.tally.add(kind, BAD, f"socket error: {e!r}", kind)
                for k in keep:
                    k.close()
                keep.clear()
            finally:
                self.inflight -= 1
            took = time.monotonic() - t0
            if took > self.tally.latency_max:
                self.tally.latency_max, self.tally.latency_max_kind = took, kind
            pause = random.uniform(0, self.a.think_ms / 1000)
            if CLEAN in outcomes:
                pause += random.uniform(0.2, 1.0)  # backs off after an error, as a real client would
            await asyncio.sleep(pause)
        for k in keep:
            k.close()

    async def monitor(self) -> None:
        bports = [int(p) for p in self.a.backend_ports.split(",") if p] if self.a.backend_ports else []
        while True:
            sample = {"t": round(time.time() - self.started, 1), "client_inflight": self.inflight}
            try:
                u = await get_json(self.port, "/api/usage", 2.0)
                sample["total_in_flight"] = u.get("total_in_flight")
                sample["total_queued"] = u.get("total_queued")
                for k in ("total_in_flight", "total_queued"):
                    self.peaks[k] = max(self.peaks[k], sample[k] or 0)
            except Exception as e:  # noqa: BLE001 - a sample, not a check
                sample["usage_error"] = repr(e)[:100]
            if self.a.router_pid:
                st = procstat(self.a.router_pid, bports, self.port)
                sample.update(rss_kb=st["rss_kb"], fds=st["fds"], upstream=st["upstream"], clients=st["client"])
                self.peaks["rss_kb"] = max(self.peaks["rss_kb"], st["rss_kb"])
                self.peaks["fds"] = max(self.peaks["fds"], st["fds"])
            self.samples.append(sample)
            await asyncio.sleep(1.0)

    async def run(self) -> dict:
        self.stop_at = time.monotonic() + self.a.seconds
        mon = asyncio.ensure_future(self.monitor())
        t0 = time.monotonic()
        await asyncio.gather(*(self.client(c) for c in range(self.a.clients)))
        drained = time.monotonic()
        mon.cancel()
        try:
            await mon
        except BaseException:
            pass
        t = self.tally
        return {
            "clients": self.a.clients,
            "seconds": self.a.seconds,
            "load_s": round(drained - t0, 1),
            "drain_s": round(drained - t0 - self.a.seconds, 1),
            "requests": sum(t.classes.values()),
            "classes": {k: t.classes.get(k, 0) for k in CLASSES},
            "by_kind": {k: dict(v) for k, v in sorted(t.by_kind.items())},
            "reasons": {k: dict(v.most_common()) for k, v in t.reasons.items()},
            "statuses": {str(k): v for k, v in sorted(t.statuses.items())},
            "error_messages": dict(ERROR_MESSAGES.most_common(40)),
            "keepalive_retries": t.keepalive_retries,
            "longest_request_s": round(t.latency_max, 1),
            "longest_request_kind": t.latency_max_kind,
            "peaks": self.peaks,
            "bad_samples": t.bad_samples,
        }


async def get_json(port: int, path: str, timeout: float) -> dict:
    async def go():
        conn = await Conn.open(port)
        try:
            await conn.send(build_request("GET", path, None, {"Connection": "close"}))
            r = await read_response(conn, "GET")
        finally:
            conn.close()
        if r.status != 200 or r.cut:
            raise RuntimeError(f"GET {path}: {r.status} {r.cut or ''}")
        return json.loads(r.body)

    return await asyncio.wait_for(go(), timeout)


# ---------------------------------------------------------------------------------------------------
# /proc


def procstat(pid: int, backend_ports: list[int], router_port: int) -> dict:
    """VmRSS and descriptors of `pid`; sockets split by /proc/PID/net/tcp{,6}: to a backend port
    (the upstream pools), from the router port (client connections, listeners apart), the rest."""
    out = {"rss_kb": 0, "fds": 0, "upstream": 0, "client": 0, "listen": 0, "other": 0}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    out["rss_kb"] = int(line.split()[1])
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return out
    out["fds"] = len(fds)
    inodes = {}
    for name in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{name}") as f:
                next(f)
                for line in f:
                    p = line.split()
                    lport = int(p[1].rsplit(":", 1)[1], 16)
                    rport = int(p[2].rsplit(":", 1)[1], 16)
                    inodes[p[9]] = (lport, rport, p[3])
        except OSError:
            pass
    bports = set(backend_ports)
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            info = inodes.get(target[8:-1])
            if info:
                lport, rport, state = info
                if state == "0A":
                    out["listen"] += 1
                    continue
                if rport in bports:
                    out["upstream"] += 1
                    continue
                if lport == router_port:
                    out["client"] += 1
                    continue
        out["other"] += 1
    return out


# ---------------------------------------------------------------------------------------------------
# Checks after the load


async def check_workers(port: int, n: int, timeout: float) -> dict:
    async def one(i):
        t0 = time.monotonic()
        try:
            conn = await asyncio.wait_for(Conn.open(port), timeout)
            try:
                await conn.send(build_request("GET", "/api/version", None, {"Connection": "close"}))
                r = await asyncio.wait_for(read_response(conn, "GET"), max(0.01, timeout - (time.monotonic() - t0)))
            finally:
                conn.close()
            ok = r.status == 200 and not r.cut and "version" in json.loads(r.body)
            return ok, round(time.monotonic() - t0, 3), f"{r.status}"
        except Exception as e:  # noqa: BLE001
            return False, round(time.monotonic() - t0, 3), repr(e)[:100]

    res = await asyncio.gather(*(one(i) for i in range(n)))
    failed = [{"i": i, "s": s, "why": w} for i, (ok, s, w) in enumerate(res) if not ok]
    return {"connections": n, "answered": n - len(failed), "slowest_s": max(s for _, s, _ in res),
            "failed": failed[:10], "ok": not failed}


async def sanity(a) -> dict:
    load = Load(a)
    results = {}
    deadline = time.monotonic() + a.wait
    for kind, _ in Load.NORMAL:
        while True:
            spec = load.spec(0, kind)
            spec.fault = None
            spec.first_byte_ms = 0
            spec.delay_ms = 1
            keep: list = []
            load.tally = Tally()
            try:
                await asyncio.wait_for(load.ordinary(0, kind, keep, spec), 15)
            except asyncio.TimeoutError:
                load.tally.add(kind, BAD, "no end within 15s")
            for k in keep:
                k.close()
            cls = next(iter(load.tally.classes))
            reason = next(iter(load.tally.reasons[cls]))
            if cls == COMPLETE or time.monotonic() > deadline:
                results[kind] = cls if cls == COMPLETE else f"{cls}: {reason}"
                break
            await asyncio.sleep(0.5)
    return {"kinds": results, "ok": all(v == COMPLETE for v in results.values())}


# ---------------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    def common(p):
        p.add_argument("--port", type=int, required=True, help="the router's port on 127.0.0.1")
        p.add_argument("--ollama-models", default="llama3:latest,qwen2:7b,mistral:7b")
        p.add_argument("--openai-models", default="gpt-4o-mini")
        p.add_argument("--queued-model", default="mistral:7b", help="the busiest model (abort while queued)")
        p.add_argument("--header-timeout", type=float, default=5.0, help="the router's limits.header_read_timeout")

    p = sub.add_parser("run")
    common(p)
    p.add_argument("--clients", type=int, default=500)
    p.add_argument("--seconds", type=float, default=600)
    p.add_argument("--deadline", type=float, default=60.0, help="longest a request may take (else BAD)")
    p.add_argument("--think-ms", type=float, default=100.0, help="random pause between a loop's requests")
    p.add_argument("--router-pid", type=int, default=0, help="sample its RSS and descriptors every second")
    p.add_argument("--backend-ports", default="", help="comma-separated, to tell upstream sockets apart")
    p.add_argument("--samples", default="", help="write the per-second samples here (JSON lines)")
    p.add_argument("--seed", type=int, default=None)

    p = sub.add_parser("check-workers")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--connections", type=int, required=True)
    p.add_argument("--timeout", type=float, default=2.0)

    p = sub.add_parser("sanity")
    common(p)
    p.add_argument("--wait", type=float, default=15.0)

    p = sub.add_parser("procstat")
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--backend-ports", default="")

    a = ap.parse_args()
    if a.cmd == "run":
        if a.seed is not None:
            random.seed(a.seed)
        load = Load(a)
        summary = asyncio.run(load.run())
        if a.samples:
            with open(a.samples, "w") as f:
                for s in load.samples:
                    f.write(json.dumps(s) + "\n")
        print(json.dumps(summary))
        return 1 if summary["classes"][BAD] else 0
    if a.cmd == "check-workers":
        res = asyncio.run(check_workers(a.port, a.connections, a.timeout))
        print(json.dumps(res))
        return 0 if res["ok"] else 1
    if a.cmd == "sanity":
        res = asyncio.run(sanity(a))
        print(json.dumps(res))
        return 0 if res["ok"] else 1
    if a.cmd == "procstat":
        ports = [int(p) for p in a.backend_ports.split(",") if p]
        print(json.dumps(procstat(a.pid, ports, a.port)))
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
