//! Client authentication with the router key (SPEC §5.1): `Authorization: Bearer <key>` or
//! `?api_key=<key>`; missing → 401, wrong → 403 on Ollama's routes (as the reference answers) and
//! 401 on OpenAI's (as OpenAI answers: its clients raise `AuthenticationError` for 401 only);
//! compared in constant time.
//!
//! Every byte here comes from the client: values are read as bytes, the query is decoded by
//! `form_urlencoded` (never sliced by hand), and nothing of the key reaches an error or a log.

use http::StatusCode;
use subtle::ConstantTimeEq;

use crate::api::errors::{ApiError, ApiFormat};
use crate::http::request_headers::RequestHeaders;

/// The query parameter that may carry the router key.
pub const QUERY_KEY: &str = "api_key";

/// Checks the request against `key`: its `Authorization` header (scheme `Bearer`, in any case), else
/// the `api_key` query parameter. Two `Authorization` headers or two `api_key` parameters are
/// refused as ambiguous rather than guessed between.
pub fn check(
    key: &str,
    headers: &RequestHeaders,
    query: Option<&str>,
    format: ApiFormat,
) -> Result<(), ApiError> {
    let mut auth = headers.get_all("authorization");
    let header = auth.next();
    if auth.next().is_some() {
        return Err(ApiError::bad_request("more than one Authorization header"));
    }
    let given: Vec<u8> = match header.and_then(bearer_token) {
        Some(token) => token.to_vec(),
        None => query_key(query)?.unwrap_or_default(),
    };
    if given.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing API key: send Authorization: Bearer <key> or ?api_key=<key>",
        ));
    }
    if bool::from(given.as_slice().ct_eq(key.as_bytes())) {
        Ok(())
    } else if format == ApiFormat::OpenAi {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "Incorrect API key provided",
        ))
    } else {
        Err(ApiError::new(StatusCode::FORBIDDEN, "invalid API key"))
    }
}

/// The token of a `Bearer` credential (RFC 9110 §11.1: the scheme is case-insensitive, and one or
/// more spaces separate it from the token); `None` for any other scheme.
fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let value = value.trim_ascii();
    let split = value.iter().position(|&b| b == b' ' || b == b'\t')?;
    let (scheme, token) = value.split_at(split);
    scheme
        .eq_ignore_ascii_case(b"bearer")
        .then(|| token.trim_ascii())
}

/// The decoded `api_key` parameter of the query, if there is exactly one.
fn query_key(query: Option<&str>) -> Result<Option<Vec<u8>>, ApiError> {
    let Some(query) = query else { return Ok(None) };
    let mut found = None;
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        if name == QUERY_KEY {
            if found.is_some() {
                return Err(ApiError::bad_request("more than one api_key parameter"));
            }
            found = Some(value.into_owned().into_bytes());
        }
    }
    Ok(found)
}

/// The query without the router key (in any encoding of its name), to forward or log; `None` when
/// nothing else is left.
pub fn query_without_key(query: Option<&str>) -> Option<String> {
    let q = query?;
    let kept: Vec<&str> = q
        .split('&')
        .filter(|pair| !pair.is_empty() && !names_key(pair))
        .collect();
    (!kept.is_empty()).then(|| kept.join("&"))
}

/// Whether one `name=value` pair of a query names the router key once decoded.
fn names_key(pair: &str) -> bool {
    form_urlencoded::parse(pair.as_bytes()).any(|(name, _)| name == QUERY_KEY)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> RequestHeaders {
        RequestHeaders::from_pairs(pairs)
    }

    fn status(key: &str, pairs: &[(&str, &str)], query: Option<&str>) -> u16 {
        match check(key, &headers(pairs), query, ApiFormat::Ollama) {
            Ok(()) => 200,
            Err(e) => e.status.as_u16(),
        }
    }

    #[test]
    fn header_query_missing_wrong() {
        assert_eq!(status("k1", &[], None), 401);
        assert_eq!(status("k1", &[], Some("a=1&api_key=k1")), 200);
        assert_eq!(status("k%2B1", &[], Some("api_key=k%252B1")), 200);
        assert_eq!(status("k 1", &[], Some("api_key=k+1")), 200);
        assert_eq!(status("k1", &[("Authorization", "Bearer k1")], None), 200);
        assert_eq!(
            status("k1", &[("Authorization", "Bearer k1")], Some("api_key=k2")),
            200
        );
        assert_eq!(status("k1", &[("Authorization", "Bearer k2")], None), 403);
        assert_eq!(status("k1", &[], Some("api_key=k10")), 403);
    }

    #[test]
    fn scheme_is_case_insensitive_and_spaces_are_optional_whitespace() {
        for v in [
            "BEARER k1",
            "bearer k1",
            "BeArEr   k1",
            " Bearer k1 ",
            "Bearer\tk1",
        ] {
            assert_eq!(status("k1", &[("Authorization", v)], None), 200, "{v:?}");
        }
        for v in ["Bearerk1", "Basic k1", "Bearer", "Bearer ", "k1"] {
            assert_eq!(status("k1", &[("Authorization", v)], None), 401, "{v:?}");
        }
    }

    #[test]
    fn empty_and_ambiguous_keys_are_refused() {
        assert_eq!(status("k1", &[], Some("api_key=")), 401);
        assert_eq!(status("k1", &[], Some("api_key")), 401);
        assert_eq!(status("k1", &[], Some("api_key=k1&api_key=k2")), 400);
        assert_eq!(status("k1", &[], Some("api_%6Bey=k1&api_key=k1")), 400);
        let two = [
            ("Authorization", "Bearer k1"),
            ("authorization", "Bearer k1"),
        ];
        assert_eq!(status("k1", &two, None), 400);
    }

    #[test]
    fn malformed_escapes_never_panic() {
        // Raw UTF-8 after '%' (this panicked a worker), truncated and invalid escapes, bad UTF-8.
        for q in [
            "api_key=%€x",
            "api_key=%",
            "api_key=%4",
            "api_key=%zz",
            "api_key=%ff%fe",
        ] {
            assert_eq!(status("k1", &[], Some(q)), 403, "{q:?}");
        }
        assert_eq!(status("k1", &[], Some("%€=1&%=%")), 401);
        assert_eq!(status("%€x", &[], Some("api_key=%€x")), 200);
        let bad = RequestHeaders::from_raw_pairs(&[(b"Authorization", b"Bearer \xff\xfe")]);
        assert_eq!(
            check("k1", &bad, None, ApiFormat::Ollama)
                .unwrap_err()
                .status,
            403
        );
        // OpenAI's clients raise AuthenticationError for 401 only.
        let wrong = headers(&[("authorization", "Bearer k2")]);
        let e = check("k1", &wrong, None, ApiFormat::OpenAi).unwrap_err();
        assert_eq!(e.status, 401);
    }

    #[test]
    fn the_key_is_stripped_in_any_encoding() {
        assert_eq!(query_without_key(Some("api_key=s3cret")), None);
        assert_eq!(
            query_without_key(Some("a=1&api_key=x&b=2&api%5Fkey=y&api_%6Bey=z&api_key")),
            Some("a=1&b=2".into())
        );
        assert_eq!(query_without_key(Some("x=%€")), Some("x=%€".into()));
        assert_eq!(query_without_key(None), None);
    }
}
