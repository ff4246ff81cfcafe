"""The dashboard: content negotiation on `GET /`, its files served without the router key while the
APIs it calls need it, and the page itself in headless Chromium (Debian's, through Playwright)
against a keyed router with mock backends: the key form, endpoints and loaded models, a live slot
that appears and vanishes with a slow stream, `show` from the page, and a hostile model name that
stays text.

The browser tests skip when Chromium or Playwright is missing, naming what is missing; with
NOMYO_REQUIRE_BROWSER=1 they fail instead.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import threading
from pathlib import Path

import httpx
import pytest

from conftest import running_stack

KEY = "dash-test-key-6f1d"
HOSTILE = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=1">'
SLOW_MODEL = "slow:latest"
OUTPUT = Path(__file__).resolve().parent / "output"
CHROMIUM = os.environ.get("NOMYO_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; "
       "img-src 'self' data:; frame-ancestors 'none'")
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
ASSETS = {
    "app.js": "text/javascript", "api.js": "text/javascript", "dom.js": "text/javascript",
    "fleet.js": "text/javascript", "usage_stream.js": "text/javascript", "tokens.js": "text/javascript",
    "chart.js": "text/javascript", "actions.js": "text/javascript", "style.css": "text/css",
}


@pytest.fixture(scope="module")
def dash_stack(tmp_path_factory):
    """A keyed router (cache on, in memory) in front of three Ollama mocks: a plain one, one whose
    tokens come slowly, and one that advertises a model named like markup."""
    def config(mocks):
        return ("endpoints:\n" + "".join(f"  - {m.url}\n" for m in mocks)
                + "max_concurrent_connections: 2\n"
                + f"router_api_key: {KEY}\n"
                + "cache_enabled: true\ncache_backend: memory\n")

    specs = [
        ("mock-plain", ["--models", "llama3:latest,nomic-embed-text:latest"]),
        ("mock-slow", ["--models", SLOW_MODEL, "--tokens", "25", "--token-delay-ms", "120"]),
        ("mock-hostile", ["--models", HOSTILE, "--loaded", HOSTILE]),
    ]
    with running_stack(tmp_path_factory.mktemp("nomyo-dashboard"), specs, config) as s:
        yield s


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {KEY}"}


# --- content negotiation and the files, without a browser ---------------------------------------


def test_root_negotiates_html_for_browsers_only(dash_stack):
    base = dash_stack.base_url
    with httpx.Client(timeout=5, trust_env=False) as http:
        page = http.get(f"{base}/", headers={"Accept": BROWSER_ACCEPT})
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["content-security-policy"].startswith(CSP)
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["vary"] == "Accept"
        assert '<script type="module" src="/dashboard/app.js"></script>' in page.text
        assert "http://" not in page.text and "https://" not in page.text

        plain_accepts = [{"Accept": "*/*"}, {}, {"Accept": "text/*"}, {"Accept": "text/html;q=0"},
                         {"Accept": "application/json"}]
        for headers in plain_accepts:
            r = http.get(f"{base}/", headers=headers)
            assert (r.status_code, r.text) == (200, "Ollama is running"), headers
            assert r.headers["vary"] == "Accept"
            assert "content-security-policy" not in r.headers
        head = http.head(f"{base}/")
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-type"].startswith("text/plain")
        assert head.headers["vary"] == "Accept"
        head_html = http.head(f"{base}/", headers={"Accept": "text/html"})
        assert head_html.headers["content-type"].startswith("text/html") and head_html.content == b""


def test_files_are_public_and_the_apis_are_not(dash_stack):
    base = dash_stack.base_url
    with httpx.Client(timeout=5, trust_env=False) as http:
        for name, ctype in ASSETS.items():
            r = http.get(f"{base}/dashboard/{name}")
            assert r.status_code == 200, name
            assert r.headers["content-type"].startswith(ctype), name
            assert r.headers["x-content-type-options"] == "nosniff"
            assert r.headers["cache-control"] == "no-cache"
            assert "http://" not in r.text and "https://" not in r.text, name
            if name.endswith(".js"):
                # Server data reaches the page as text only.
                code = [ln for ln in r.text.splitlines() if not ln.lstrip().startswith("//")]
                for line in code:
                    assert "innerHTML" not in line and "insertAdjacentHTML" not in line, (name, line)
                    assert "localStorage" not in line and "sessionStorage" not in line, (name, line)
                    assert "document.cookie" not in line, (name, line)
        assert http.head(f"{base}/dashboard/app.js").status_code == 200
        # Another method is no file: refused like any route (the key first, then the method).
        assert http.post(f"{base}/dashboard/app.js").status_code == 401
        assert http.post(f"{base}/dashboard/app.js", headers=auth()).status_code == 405
        # Not a file of the dashboard: the key is needed like anywhere else.
        assert http.get(f"{base}/dashboard/nope.js").status_code == 401
        assert http.get(f"{base}/dashboard/../api/usage").status_code == 401
        assert http.get(f"{base}/api/usage").status_code == 401
        assert http.get(f"{base}/api/usage", headers={"Authorization": "Bearer wrong"}).status_code == 403
        assert http.get(f"{base}/api/usage", headers=auth()).status_code == 200
        assert http.get(f"{base}/health").status_code == 200


# --- the page in Chromium ---------------------------------------------------------------------------


def browser_or_skip():
    """The sync Playwright entry point, or a skip (a failure with NOMYO_REQUIRE_BROWSER=1) that names
    what is missing."""
    missing = []
    if importlib.util.find_spec("playwright") is None:
        missing.append("the Python package playwright (pip install -r tests/python/requirements.txt)")
    if not (os.access(CHROMIUM, os.X_OK) or shutil.which(CHROMIUM)):
        missing.append(f"Chromium at {CHROMIUM} (apt-get install chromium, or set NOMYO_CHROMIUM)")
    if missing:
        message = "dashboard browser test needs " + " and ".join(missing)
        if os.environ.get("NOMYO_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    return sync_playwright


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    sync_playwright = browser_or_skip()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


class PageWatch:
    """Errors the page raises and CSP reports it logs. (The page's CSP stays on in these tests, so
    `wait_for_function` gets functions, never expressions: Playwright evaluates those with eval.)"""

    def __init__(self, page):
        self.errors: list[str] = []
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        page.on("console", lambda m: self.errors.append(f"console: {m.text}")
                if m.type == "error" and "Content Security Policy" in m.text else None)


def enter_key(page, key: str):
    page.wait_for_selector("#key-form:not([hidden])", timeout=10_000)
    page.fill("#key-input", key)
    page.click("#key-submit")


def stream_slow_chat(base: str, done: threading.Event, result: dict):
    try:
        body = {"model": SLOW_MODEL, "messages": [{"role": "user", "content": "count slowly"}],
                "stream": True, "nomyo": {"cache": False}}
        with httpx.Client(timeout=30, trust_env=False) as http:
            with http.stream("POST", f"{base}/api/chat", json=body, headers=auth()) as r:
                result["status"] = r.status_code
                result["lines"] = [json.loads(line) for line in r.iter_lines() if line.strip()]
    except Exception as e:  # reported by the test
        result["error"] = repr(e)
    finally:
        done.set()


def test_dashboard_in_browser(dash_stack, browser):
    base = dash_stack.base_url
    plain, slow, hostile = dash_stack.mock_urls
    OUTPUT.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    watch = PageWatch(page)
    try:
        page.goto(f"{base}/")
        assert page.title() == "nomyo-router"

        # A wrong key is refused (403) and asked for again; then the right one.
        enter_key(page, "not-the-key")
        page.wait_for_selector("#key-form:not([hidden])", timeout=10_000)
        page.wait_for_function("() => document.getElementById('key-message').textContent.includes('403')")
        enter_key(page, KEY)
        page.wait_for_selector("#key-form[hidden]", state="attached")

        # Endpoints with their health, and loaded models with size, VRAM, context and countdown.
        for url in (plain, slow, hostile):
            page.wait_for_selector(f'#endpoints tr[data-endpoint="{url}"][data-status="ok"]', timeout=10_000)
        row = page.wait_for_selector(f'#loaded tr[data-endpoint="{plain}"][data-model="llama3:latest"]')
        cells = [c.text_content() for c in row.query_selector_all("td")]
        assert cells[:5] == [plain, "llama3:latest", "4.00 GB", "4.00 GB", "4,096"], cells
        assert cells[5] == "no expiry", cells  # the mock's expires_at is in 2099
        page.wait_for_selector(f'#loaded tr[data-endpoint="{slow}"][data-model="{SLOW_MODEL}"]')
        page.wait_for_selector('#conn-state[data-state="live"]', timeout=10_000)

        # A slow stream through the router: its slot shows in use, then free again.
        slot = f'#slots tr[data-endpoint="{slow}"][data-model="{SLOW_MODEL}"]'
        page.wait_for_selector(f'{slot}[data-inflight="0"]', timeout=10_000)
        done, result = threading.Event(), {}
        threading.Thread(target=stream_slow_chat, args=(base, done, result), daemon=True).start()
        page.wait_for_selector(f'{slot}[data-inflight="1"]', timeout=5_000)
        assert page.text_content(f"{slot} [data-slots]") == "1 / 2"
        assert page.text_content("#sum-inflight") == "1"
        assert not done.is_set(), "the stream ended before the page showed it: make the mock slower"
        page.screenshot(path=str(OUTPUT / "dashboard-busy.png"), full_page=True)
        assert done.wait(20), "the slow stream did not end"
        assert result.get("status") == 200, result
        assert result["lines"][-1]["done"] is True, result
        page.wait_for_selector(f'{slot}[data-inflight="0"]', timeout=5_000)
        assert page.text_content("#sum-inflight") == "0"

        # The tokens it counted reach the table and the chart's legend.
        page.wait_for_selector(f'#tokens tr[data-model="{SLOW_MODEL}"]', timeout=20_000)
        page.wait_for_selector(f'#tokens-legend li[data-model="{SLOW_MODEL}"]')

        # `show` from the page.
        page.click('#models button[data-action="show"][data-model="llama3:latest"]')
        page.wait_for_selector('#action-panel[data-action="show"][data-state="done"]', timeout=10_000)
        shown = json.loads(page.text_content("#action-output"))
        assert shown["modelfile"] == "FROM llama3:latest"
        assert shown["model_info"]["general.architecture"] == "llama"

        # The hostile name is text everywhere it appears, and nothing of it ran.
        for table in ("models", "loaded", "slots"):
            page.wait_for_function(
                "([table, name]) => [...document.querySelectorAll(`#${table} tbody td`)]"
                ".some((td) => td.textContent === name)", arg=[table, HOSTILE], timeout=10_000)
        assert page.evaluate("typeof window.__pwned") == "undefined"
        assert page.evaluate("document.querySelectorAll('main script, main img').length") == 0
        assert page.evaluate("document.scripts.length") == 1

        page.screenshot(path=str(OUTPUT / "dashboard.png"), full_page=True)

        # A narrow window: nothing wider than the viewport; rows stack.
        page.set_viewport_size({"width": 420, "height": 900})
        page.wait_for_timeout(300)
        assert page.evaluate("document.documentElement.scrollWidth") <= 420
        page.screenshot(path=str(OUTPUT / "dashboard-narrow.png"), full_page=True)

        assert page.evaluate("typeof window.__pwned") == "undefined"
        assert watch.errors == []
        assert page.evaluate("localStorage.length + sessionStorage.length") == 0
        assert context.cookies() == []
    finally:
        context.close()


def test_usage_stream_reconnects(dash_stack, browser):
    """The usage stream's connection fails (the first two attempts are cut off in the browser): the
    page says it is reconnecting, backs off, and goes live with the key it was given."""
    base = dash_stack.base_url
    context = browser.new_context(viewport={"width": 1000, "height": 700})
    page = context.new_page()
    attempts = []

    def cut_first_two(route):
        attempts.append(route.request.headers.get("authorization"))
        if len(attempts) <= 2:
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route("**/api/usage-stream", cut_first_two)
    try:
        page.goto(f"{base}/")
        page.wait_for_selector('#conn-state[data-state="retrying"]', timeout=10_000)
        assert "again in" in page.text_content("#conn-detail")
        enter_key(page, KEY)
        page.wait_for_selector('#conn-state[data-state="live"]', timeout=15_000)
        assert len(attempts) >= 3
        assert attempts[-1] == f"Bearer {KEY}"
    finally:
        context.close()


def test_model_actions_in_browser(dash_stack, browser):
    """Pull (progress lines), copy (asks the new name), delete and aggregation (each confirmed
    first; a dismissed confirmation sends nothing) from the page."""
    base = dash_stack.base_url
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    watch = PageWatch(page)
    sent = []
    page.on("request", lambda r: sent.append((r.method, r.url.removeprefix(base))) if "/api/" in r.url else None)
    answers = []  # what each next dialog gets: a string to type, True to accept, False to dismiss

    def dialog(d):
        answer = answers.pop(0)
        if answer is False:
            d.dismiss()
        elif answer is True:
            d.accept()
        else:
            d.accept(answer)

    page.on("dialog", dialog)
    panel = "#action-panel[data-action='{}'][data-model='{}'][data-state='done']"
    try:
        page.goto(f"{base}/")
        enter_key(page, KEY)
        page.wait_for_selector('#models button[data-action="show"][data-model="llama3:latest"]', timeout=10_000)

        page.fill("#pull-name", "llama3:latest")
        page.click("#pull-form button")
        page.wait_for_selector(panel.format("pull", "llama3:latest"), timeout=10_000)
        lines = page.text_content("#action-output").splitlines()
        assert "pulling manifest" in lines and "pulling abc 50.0 %" in lines and "success" in lines, lines

        answers.append("llama3-copy")
        page.click('#models button[data-action="copy"][data-model="llama3:latest"]')
        page.wait_for_selector(panel.format("copy", "llama3:latest"), timeout=10_000)
        assert "llama3-copy" in page.text_content("#action-output")

        answers.append(False)
        page.click('#models button[data-action="delete"][data-model="nomic-embed-text:latest"]')
        page.wait_for_timeout(300)
        assert not [s for s in sent if s[1] == "/api/delete"]
        answers.append(True)
        page.click('#models button[data-action="delete"][data-model="nomic-embed-text:latest"]')
        page.wait_for_selector(panel.format("delete", "nomic-embed-text:latest"), timeout=10_000)
        assert ("DELETE", "/api/delete") in sent

        answers.append(True)
        page.fill("#aggregate-days", "7")
        page.click("#aggregate-form button")
        page.wait_for_function(
            "() => document.getElementById('aggregate-result').textContent.includes('older than 7 days')")
        assert ("POST", "/api/aggregate_time_series_days") in sent
        assert answers == []
        assert watch.errors == []
    finally:
        context.close()


def test_event_parser_in_browser(dash_stack, browser):
    """The page's server-sent-event parser, fed a stream cut at every position: the same events
    (LF or CRLF line ends, comments, multi-line data, `retry:`)."""
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(f"{dash_stack.base_url}/")
        result = page.evaluate("""async () => {
            const { EventParser } = await import('/dashboard/usage_stream.js');
            const text = 'retry: 2000\\r\\ndata: {"a":1}\\r\\n\\r\\n: ping\\n\\ndata: x\\ndata:y\\n\\nevent: e\\ndata: {"b":2}\\r\\rdata: z\\n\\n';
            const outcomes = new Set();
            for (let cut = 0; cut <= text.length; cut++) {
                const got = [];
                const p = new EventParser((data, retry) => got.push(data === null ? ['retry', retry] : ['data', data]));
                p.push(text.slice(0, cut));
                p.push(text.slice(cut));
                outcomes.add(JSON.stringify(got));
            }
            return [...outcomes];
        }""")
        assert len(result) == 1, result
        assert json.loads(result[0]) == [["retry", 2000], ["data", '{"a":1}'], ["data", "x\ny"], ["data", '{"b":2}'], ["data", "z"]]
    finally:
        context.close()


def test_page_without_a_router_key(router_stack, browser):
    """A router without a key: the page never asks for one and shows the fleet at once."""
    context = browser.new_context()
    page = context.new_page()
    watch = PageWatch(page)
    try:
        page.goto(f"{router_stack.base_url}/")
        for url in router_stack.mock_urls:
            page.wait_for_selector(f'#endpoints tr[data-endpoint="{url}"][data-status="ok"]', timeout=10_000)
        page.wait_for_selector('#conn-state[data-state="live"]', timeout=10_000)
        page.wait_for_selector('#slots tr[data-model="qwen2:7b"][data-inflight="0"]')
        assert page.is_hidden("#key-form")
        assert watch.errors == []
    finally:
        context.close()
