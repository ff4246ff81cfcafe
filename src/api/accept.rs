//! Content negotiation for `GET /`: does the client's `Accept` name `text/html` explicitly with a
//! q-value above zero? Browsers do; curl (`*/*`), the ollama CLI (no `Accept`) and scripts do not,
//! and keep getting `Ollama is running`.
//!
//! Every byte here comes from the client: values are read as bytes, split only on `,` and `;`, and
//! trimmed of ASCII whitespace; nothing is sliced at an offset found in a string.

/// Whether any of the `Accept` values asks for `text/html` (wildcards such as `text/*` or `*/*` do
/// not count: only a client that names HTML gets it).
pub fn wants_html<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> bool {
    values
        .into_iter()
        .flat_map(|v| v.split(|&b| b == b','))
        .any(names_html)
}

/// One media range (`type/subtype *( ";" parameter )`): `text/html` with q > 0.
fn names_html(range: &[u8]) -> bool {
    let mut parts = range.split(|&b| b == b';');
    let media = parts.next().unwrap_or_default().trim_ascii();
    if !media.eq_ignore_ascii_case(b"text/html") {
        return false;
    }
    for param in parts {
        let mut kv = param.splitn(2, |&b| b == b'=');
        let name = kv.next().unwrap_or_default().trim_ascii();
        if name.eq_ignore_ascii_case(b"q") {
            let value = kv.next().unwrap_or_default().trim_ascii();
            return qvalue_above_zero(value);
        }
    }
    true
}

/// RFC 9110 §12.4.2: `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`. A value
/// outside that grammar is not acceptance: the client keeps the plain answer.
fn qvalue_above_zero(q: &[u8]) -> bool {
    let (int, frac) = match q.iter().position(|&b| b == b'.') {
        Some(dot) => {
            let (i, f) = q.split_at(dot);
            (i, f.get(1..).unwrap_or_default())
        }
        None => (q, &b""[..]),
    };
    if frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return false;
    }
    match int {
        b"0" => frac.iter().any(|&d| d != b'0'),
        b"1" => frac.iter().all(|&d| d == b'0'),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn html(accept: &str) -> bool {
        wants_html([accept.as_bytes()])
    }

    #[test]
    fn browsers_get_html() {
        assert!(html(
            "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
        ));
        assert!(html("text/html"));
        assert!(html("TEXT/HTML"));
        assert!(html("  text/html ; charset=utf-8 "));
        assert!(html("application/json, text/html;q=0.5"));
        assert!(html("text/html;q=1"));
        assert!(html("text/html;q=1.000"));
        assert!(html("text/html; Q=0.001"));
        assert!(html("text/html;level=1;q=0.2"));
    }

    #[test]
    fn others_keep_the_plain_answer() {
        assert!(!wants_html(std::iter::empty::<&[u8]>()));
        assert!(!html(""));
        assert!(!html("*/*"));
        assert!(!html("text/*"));
        assert!(!html("text/plain"));
        assert!(!html("application/json"));
        assert!(!html("text/htmlx"));
        assert!(!html("xtext/html"));
        assert!(!html("text/html;q=0"));
        assert!(!html("text/html;q=0.000"));
        assert!(!html("text/html; q = 0.0 "));
        assert!(!html("text/html;q="));
        assert!(!html("text/html;q=2"));
        assert!(!html("text/html;q=1.5"));
        assert!(!html("text/html;q=0.0001"));
        assert!(!html("text/html;q=abc"));
        assert!(!html("text/html;q=.5"));
        assert!(!html(",,,;;;==="));
    }

    #[test]
    fn several_headers_and_hostile_bytes() {
        assert!(wants_html([&b"*/*"[..], &b"text/html"[..]]));
        assert!(!wants_html([&b"*/*"[..], &b"text/plain"[..]]));
        // Not UTF-8, multi-byte characters around the separators: no panic, no match.
        assert!(!wants_html([&b"\xff\xfe;q=\xc3\xa9,\xe2\x82\xac/html"[..]]));
        assert!(!html("text/html;q=0.\u{e9}"));
        assert!(!html("text/html\u{a0}"));
        assert!(wants_html([&b"\xff, text/html"[..]]));
    }
}
