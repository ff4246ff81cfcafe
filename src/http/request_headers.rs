//! A client's request headers as slices of the head it sent: names as sent, in order, no map.
//!
//! Routing reads a handful of them and forwards the rest as they came, so an `http::HeaderMap` (a
//! hash per name and two allocations per request) bought nothing on the proxy path. Routes that
//! want a map (management, `/api/show`, translated requests) build one with `to_map`.

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};

#[derive(Clone, Default, Debug)]
pub struct RequestHeaders {
    head: Bytes,
    /// Name start, name end, value start, value end, as offsets into `head`.
    spans: Vec<[u32; 4]>,
}

impl RequestHeaders {
    /// Headers whose names and values are the given spans of `head` (checked by the head parser).
    pub fn new(head: Bytes, spans: Vec<[u32; 4]>) -> Self {
        RequestHeaders { head, spans }
    }

    /// Headers from `(name, value)` pairs, laid out like a received head (tests, benchmarks).
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        let raw: Vec<(&[u8], &[u8])> = pairs
            .iter()
            .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
            .collect();
        Self::from_raw_pairs(&raw)
    }

    /// Headers from byte pairs, which need not be UTF-8 (tests of hostile input).
    pub fn from_raw_pairs(pairs: &[(&[u8], &[u8])]) -> Self {
        let mut head = Vec::new();
        let mut spans = Vec::with_capacity(pairs.len());
        for (name, value) in pairs {
            let ns = head.len() as u32;
            head.extend_from_slice(name);
            let ne = head.len() as u32;
            head.extend_from_slice(b": ");
            let vs = head.len() as u32;
            head.extend_from_slice(value);
            spans.push([ns, ne, vs, head.len() as u32]);
            head.extend_from_slice(b"\r\n");
        }
        RequestHeaders::new(Bytes::from(head), spans)
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Every `(name, value)` in the order received.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + Clone {
        self.spans.iter().map(|&[ns, ne, vs, ve]| {
            (
                &self.head[ns as usize..ne as usize],
                &self.head[vs as usize..ve as usize],
            )
        })
    }

    /// The values of every header called `name` (compared without regard to case).
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }

    /// The first value of `name` as a `HeaderValue` sharing the head's bytes.
    pub fn value(&self, name: &str) -> Option<HeaderValue> {
        let [_, _, vs, ve] = *self.spans.iter().find(|&&[ns, ne, _, _]| {
            self.head[ns as usize..ne as usize].eq_ignore_ascii_case(name.as_bytes())
        })?;
        HeaderValue::from_maybe_shared(self.head.slice(vs as usize..ve as usize)).ok()
    }

    /// The headers as a map, for the routes that want one.
    pub fn to_map(&self) -> HeaderMap {
        let mut map = HeaderMap::with_capacity(self.len());
        for &[ns, ne, vs, ve] in &self.spans {
            let name = HeaderName::from_bytes(&self.head[ns as usize..ne as usize]);
            let value = HeaderValue::from_maybe_shared(self.head.slice(vs as usize..ve as usize));
            if let (Ok(name), Ok(value)) = (name, value) {
                map.append(name, value);
            }
        }
        map
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_ignore_case_and_keep_order_and_spelling() {
        let h = RequestHeaders::from_pairs(&[
            ("Host", "r"),
            ("X-Tag", "a"),
            ("Content-Type", "application/json"),
            ("x-tag", "b"),
        ]);
        assert_eq!(h.len(), 4);
        assert_eq!(h.get("content-type"), Some(&b"application/json"[..]));
        assert_eq!(h.get_all("x-tag").collect::<Vec<_>>(), [&b"a"[..], b"b"]);
        assert_eq!(h.get("missing"), None);
        assert_eq!(h.value("HOST").unwrap(), "r");
        let names: Vec<&[u8]> = h.iter().map(|(n, _)| n).collect();
        assert_eq!(names, [&b"Host"[..], b"X-Tag", b"Content-Type", b"x-tag"]);
        let map = h.to_map();
        assert_eq!(map.get_all("x-tag").iter().count(), 2);
        assert_eq!(map["content-type"], "application/json");
    }
}
