//! Client authentication with the router key (SPEC §5.1): `Authorization: Bearer <key>` or
//! `?api_key=<key>`; missing → 401, wrong → 403; compared in constant time.

use http::StatusCode;

use crate::api::errors::ApiError;

/// Checks the request against `key`: its `Authorization` value, or `query`, the raw query string.
pub fn check(key: &str, authorization: Option<&[u8]>, query: Option<&str>) -> Result<(), ApiError> {
    let from_header = authorization
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let from_query = query.and_then(|q| q.split('&').find_map(|p| p.strip_prefix("api_key=")));
    let given = match (from_header, from_query) {
        (Some(h), _) => h.to_string(),
        (None, Some(q)) => percent_decode(q),
        (None, None) => {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing API key: send Authorization: Bearer <key> or ?api_key=<key>",
            ))
        }
    };
    if constant_time_eq(given.as_bytes(), key.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::new(StatusCode::FORBIDDEN, "invalid API key"))
    }
}

/// Equal-time comparison: the time depends on the lengths only, never on where the bytes differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u8 | u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= x ^ y;
    }
    diff == 0
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                Ok(b) => {
                    out.push(b);
                    i += 3;
                    continue;
                }
                Err(_) => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_query_missing_wrong() {
        assert_eq!(
            check("k1", None, None).unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );
        assert!(check("k1", None, Some("a=1&api_key=k1")).is_ok());
        assert!(check("k%2B1", None, Some("api_key=k%252B1")).is_ok());
        assert!(check("k1", Some(b"Bearer k1"), None).is_ok());
        assert!(check("k1", Some(b"Bearer k1"), Some("api_key=k2")).is_ok());
        assert_eq!(
            check("k1", Some(b"Bearer k2"), None).unwrap_err().status,
            StatusCode::FORBIDDEN
        );
        assert!(!constant_time_eq(b"k1", b"k10"));
        assert!(constant_time_eq(b"", b""));
    }
}
