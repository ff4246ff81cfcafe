//! Header rules of a transparent proxy (SPEC §2.5): end-to-end headers pass, hop-by-hop ones do not,
//! `Host` and the client's `Authorization` are replaced.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn is_hop_by_hop(name: &HeaderName, connection_listed: &[String]) -> bool {
    HOP_BY_HOP.contains(&name.as_str()) || connection_listed.iter().any(|c| c == name.as_str())
}

/// Header names listed in `Connection:` are hop-by-hop too.
fn connection_listed(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Headers to send upstream: the client's end-to-end headers, our Host, the endpoint's key.
pub fn upstream_request(
    client: &HeaderMap,
    authority: &str,
    api_key: Option<&str>,
    body_len: usize,
) -> HeaderMap {
    let listed = connection_listed(client);
    let mut out = HeaderMap::with_capacity(client.len() + 3);
    for (name, value) in client {
        if is_hop_by_hop(name, &listed)
            || name == header::HOST
            || name == header::AUTHORIZATION
            || name == header::CONTENT_LENGTH
        {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    if let Ok(v) = HeaderValue::from_str(authority) {
        out.insert(header::HOST, v);
    }
    if let Some(key) = api_key {
        if let Ok(v) = HeaderValue::from_str(&format!("Bearer {key}")) {
            out.insert(header::AUTHORIZATION, v);
        }
    }
    out.insert(header::CONTENT_LENGTH, HeaderValue::from(body_len));
    out
}

/// Headers to send back to the client: the upstream's end-to-end headers (hop-by-hop ones removed in place).
pub fn client_response(mut upstream: HeaderMap) -> HeaderMap {
    for name in connection_listed(&upstream) {
        upstream.remove(name.as_str());
    }
    for name in HOP_BY_HOP {
        upstream.remove(*name);
    }
    upstream
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_hop_by_hop_and_replaces_auth() {
        let mut h = HeaderMap::new();
        h.insert("connection", "keep-alive, x-secret".parse().unwrap());
        h.insert("x-secret", "1".parse().unwrap());
        h.insert("authorization", "Bearer client".parse().unwrap());
        h.insert("host", "router:12434".parse().unwrap());
        h.insert("traceparent", "00-abc".parse().unwrap());
        h.insert("transfer-encoding", "chunked".parse().unwrap());
        let up = upstream_request(&h, "backend:11434", Some("k"), 5);
        assert_eq!(up.get("host").unwrap(), "backend:11434");
        assert_eq!(up.get("authorization").unwrap(), "Bearer k");
        assert_eq!(up.get("traceparent").unwrap(), "00-abc");
        assert_eq!(up.get("content-length").unwrap(), "5");
        assert!(
            up.get("x-secret").is_none()
                && up.get("transfer-encoding").is_none()
                && up.get("connection").is_none()
        );
        let up = upstream_request(&h, "b", None, 0);
        assert!(
            up.get("authorization").is_none(),
            "the client's key never goes upstream"
        );
    }
}
