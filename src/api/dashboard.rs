//! The live dashboard: `GET /` for a browser (content negotiation in `accept.rs`) and its static
//! files under `/dashboard/`, embedded in the binary. The page and its files carry no data and are
//! served without the router key; every API the page calls needs the key (docs/dashboard.md).

use http::{header, HeaderValue, Response};

use super::accept::wants_html;
use crate::http::body::RouterBody;
use crate::http::request_headers::RequestHeaders;

/// The page's policy: its own scripts, styles and API only; no inline code, no framing.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; \
     form-action 'none'";

/// A file of the dashboard, served at `/dashboard/<name>`.
#[derive(PartialEq, Eq)]
pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

impl std::fmt::Debug for Asset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Asset({})", self.name)
    }
}

const JS: &str = "text/javascript; charset=utf-8";

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset {
            name: $name,
            content_type: $type,
            body: include_bytes!(concat!("../../assets/dashboard/", $name)),
        }
    };
}

/// Every file under `/dashboard/`.
pub static ASSETS: &[Asset] = &[
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("fleet.js", JS),
    asset!("usage_stream.js", JS),
    asset!("tokens.js", JS),
    asset!("chart.js", JS),
    asset!("actions.js", JS),
    asset!("style.css", "text/css; charset=utf-8"),
];

static INDEX: &[u8] = include_bytes!("../../assets/dashboard/index.html");

/// The asset called `name`, if there is one.
pub fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

/// `GET /`: the page for a client that asks for HTML, else `Ollama is running` as ever; both vary
/// by `Accept`.
pub fn root(headers: &RequestHeaders) -> Response<RouterBody> {
    let mut resp = if wants_html(headers.get_all("accept")) {
        let mut r = file(INDEX, "text/html; charset=utf-8");
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        r
    } else {
        super::own::root()
    };
    resp.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Accept"));
    resp
}

/// `GET /dashboard/<name>`.
pub fn asset(a: &Asset) -> Response<RouterBody> {
    file(a.body, a.content_type)
}

/// A static file: revalidated on every load (the names carry no version, and a new binary may
/// bring new files), never sniffed as another type.
fn file(body: &'static [u8], content_type: &'static str) -> Response<RouterBody> {
    let mut resp = Response::new(RouterBody::full(body));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_of(resp: &Response<RouterBody>) -> Vec<u8> {
        match resp.body() {
            RouterBody::Full(Some(b)) => b.to_vec(),
            _ => Vec::new(),
        }
    }

    #[test]
    fn negotiates_the_root() {
        let browser = RequestHeaders::from_pairs(&[("Accept", "text/html,*/*;q=0.8")]);
        let r = root(&browser);
        assert_eq!(r.headers()[header::CONTENT_SECURITY_POLICY], CSP);
        assert_eq!(r.headers()[header::VARY], "Accept");
        assert!(r.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        for headers in [
            RequestHeaders::from_pairs(&[("Accept", "*/*")]),
            RequestHeaders::from_pairs(&[]),
        ] {
            let r = root(&headers);
            assert_eq!(body_of(&r), b"Ollama is running");
            assert_eq!(r.headers()[header::VARY], "Accept");
            assert!(r.headers().get(header::CONTENT_SECURITY_POLICY).is_none());
        }
    }

    #[test]
    fn files_are_self_contained() {
        let all = ASSETS.iter().map(|a| a.body).chain([INDEX]);
        for body in all {
            let text = std::str::from_utf8(body).expect("UTF-8");
            assert!(!text.contains("http://") && !text.contains("https://"));
            assert!(!text.contains("style="), "no inline style");
        }
        let index = std::str::from_utf8(INDEX).unwrap();
        assert!(!index.contains("<script>"), "no inline script");
        assert!(index.contains("src=\"/dashboard/app.js\""));
        assert!(index.contains("href=\"/dashboard/style.css\""));
    }
}
