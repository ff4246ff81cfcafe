//! Endpoint URL parsing and normalisation: what the upstream client needs to connect and build paths.

/// A parsed endpoint URL. `base_path` has no trailing slash ("" or "/v1" or "/proxy/v1").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    pub base_path: String,
}

impl EndpointUrl {
    /// The `Host` header value.
    pub fn authority(&self) -> String {
        let default = if self.tls { 443 } else { 80 };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// Normalises a configured URL: trims spaces and trailing slashes.
pub fn normalise(url: &str) -> String {
    url.trim().trim_end_matches('/').to_string()
}

/// Parses `http(s)://host[:port][/path]`. Errors say what is wrong in words a user can act on.
pub fn parse(url: &str) -> Result<EndpointUrl, String> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else {
        return Err(format!("'{url}' must start with http:// or https://"));
    };
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if hostport.contains('@') || path.contains('?') || path.contains('#') {
        return Err(format!(
            "'{url}' must not contain credentials, a query or a fragment"
        ));
    }
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let end = v6
            .find(']')
            .ok_or_else(|| format!("'{url}' has an unclosed IPv6 bracket"))?;
        let port = v6[end + 1..].strip_prefix(':');
        (&v6[..end], port)
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(format!("'{url}' has no valid host"));
    }
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("'{url}' has an invalid port '{p}'"))?,
        None if tls => 443,
        None => 80,
    };
    Ok(EndpointUrl {
        tls,
        host: host.to_string(),
        port,
        base_path: path.trim_end_matches('/').to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        let u = parse("http://ollama0:11434").unwrap();
        assert_eq!(
            (u.tls, u.host.as_str(), u.port, u.base_path.as_str()),
            (false, "ollama0", 11434, "")
        );
        let u = parse("https://api.openai.com/v1").unwrap();
        assert_eq!(
            (u.tls, u.port, u.base_path.as_str(), u.authority().as_str()),
            (true, 443, "/v1", "api.openai.com")
        );
        let u = parse("http://[::1]:8080/v1/").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.authority().as_str()),
            ("::1", 8080, "[::1]:8080")
        );
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "ollama:11434",
            "http://",
            "http://host:abc",
            "http://host:0",
            "ftp://x",
            "http://u:p@h",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
