//! The dashboard's HTTP side (docs/dashboard.md): `GET /` negotiates the page for a client whose
//! `Accept` names `text/html`, and everyone else (curl, the ollama CLI, no `Accept`, HEAD) keeps
//! `Ollama is running`; the page's files are served without the router key, the APIs it calls are
//! not.

mod common;

use std::time::Duration;

use common::*;

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self' data:; frame-ancestors 'none'";

fn keyed_router(m: &Mock) -> Router {
    Router::start(
        &config_for(&[m.url()], "nomyo-router-api-key: k1\n"),
        &["--log-level", "warn"],
    )
}

#[test]
fn root_answers_browsers_with_the_page_and_everyone_else_as_before() {
    let m = Mock::start(&["--models", "m"]);
    let router = keyed_router(&m);
    let accept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    let page = request("GET", &router.url("/"), "", &[("accept", accept)]);
    assert_eq!(page.status, 200);
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    assert!(page
        .header("content-security-policy")
        .unwrap()
        .starts_with(CSP));
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(page.header("vary"), Some("Accept"));
    assert!(page.body.contains("src=\"/dashboard/app.js\""));

    for accept in [
        "*/*",
        "text/*",
        "text/plain",
        "text/html;q=0",
        "application/json",
    ] {
        let r = request("GET", &router.url("/"), "", &[("accept", accept)]);
        assert_eq!(
            (r.status, r.body.as_str()),
            (200, "Ollama is running"),
            "{accept}"
        );
        assert_eq!(r.header("vary"), Some("Accept"));
        assert_eq!(r.header("content-security-policy"), None);
    }

    // No Accept at all (as the ollama CLI sends), GET and HEAD, on a raw socket.
    let get = raw(
        router.port,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    );
    assert_eq!(status_of(&get), 200);
    assert!(get.ends_with("\r\n\r\nOllama is running"), "{get}");
    assert!(get.to_ascii_lowercase().contains("\r\nvary: accept\r\n"));
    let head = raw(
        router.port,
        b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    );
    assert_eq!(status_of(&head), 200);
    assert!(head.ends_with("\r\n\r\n"), "HEAD has no body: {head}");
    assert!(head
        .to_ascii_lowercase()
        .contains("content-type: text/plain"));
}

#[test]
fn the_files_need_no_key_and_the_apis_do() {
    let m = Mock::start(&["--models", "m"]);
    let router = keyed_router(&m);
    for (name, ctype) in [
        ("app.js", "text/javascript"),
        ("usage_stream.js", "text/javascript"),
        ("style.css", "text/css"),
    ] {
        let r = get(&router.url(&format!("/dashboard/{name}")));
        assert_eq!(r.status, 200, "{name}");
        assert!(r.header("content-type").unwrap().starts_with(ctype));
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(r.header("cache-control"), Some("no-cache"));
        assert!(!r.body.is_empty());
    }
    for path in [
        "/dashboard/nope.js",
        "/dashboard/",
        "/dashboard/%2e%2e/api/usage",
        "/api/usage",
        "/api/usage-stream",
        "/api/ps_details",
    ] {
        assert_eq!(get(&router.url(path)).status, 401, "{path}");
    }
    let r = request(
        "GET",
        &router.url("/api/usage"),
        "",
        &[("authorization", "Bearer k1")],
    );
    assert_eq!(r.status, 200);
}
