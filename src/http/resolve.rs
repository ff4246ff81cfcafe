//! Upstream host names to socket addresses, kept off the workers. Name lookup (`getaddrinfo`)
//! blocks, and a worker that blocks stalls every request it carries; so only the discovery thread
//! looks names up ([`refresh`], before each poll, the first one before the router listens) and
//! keeps the answer here, and a connection reads it ([`addresses`]) without ever looking up itself.
//! IP literals need no lookup at all.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::{Arc, OnceLock, RwLock};

type Addresses = Arc<[SocketAddr]>;
/// The last good answer, or why the name has never resolved.
type Answer = Result<Addresses, Arc<str>>;

fn cache() -> &'static RwLock<HashMap<(String, u16), Answer>> {
    static CACHE: OnceLock<RwLock<HashMap<(String, u16), Answer>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

fn literal(host: &str, port: u16) -> Option<Addresses> {
    let ip = host.parse::<IpAddr>().ok()?;
    Some(Arc::new([SocketAddr::new(ip, port)]))
}

/// The addresses of `host:port` in the resolver's order, as discovery last found them. A name
/// discovery has not looked up, or never could, is an error at once: never a lookup here.
pub fn addresses(host: &str, port: u16) -> io::Result<Addresses> {
    if let Some(addrs) = literal(host, port) {
        return Ok(addrs);
    }
    let known = cache()
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(&(host.to_string(), port))
        .cloned();
    match known {
        Some(Ok(addrs)) => Ok(addrs),
        Some(Err(why)) => Err(io::Error::new(io::ErrorKind::NotFound, why.to_string())),
        None => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{host}: not looked up yet (discovery resolves endpoint names)"),
        )),
    }
}

/// Looks `host:port` up now (blocking: discovery only) and keeps the answer.
pub fn refresh(host: &str, port: u16) {
    if literal(host, port).is_some() {
        return;
    }
    let looked_up = match (host, port).to_socket_addrs() {
        Ok(found) => {
            let found: Addresses = found.collect();
            if found.is_empty() {
                Err(format!("{host} has no address"))
            } else {
                Ok(found)
            }
        }
        Err(e) => Err(format!("cannot resolve {host}: {e}")),
    };
    store(host, port, looked_up);
}

/// Keeps a lookup's result. A failure does not replace a good answer, so a resolver that is briefly
/// unreachable does not take a working endpoint down.
fn store(host: &str, port: u16, looked_up: Result<Addresses, String>) {
    let mut cache = cache().write().unwrap_or_else(|e| e.into_inner());
    let key = (host.to_string(), port);
    match looked_up {
        Ok(addrs) => {
            cache.insert(key, Ok(addrs));
        }
        Err(why) => {
            if !matches!(cache.get(&key), Some(Ok(_))) {
                cache.insert(key, Err(why.into()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_literals_need_no_lookup() {
        let v4 = addresses("127.0.0.1", 80).unwrap();
        assert_eq!(&v4[..], &["127.0.0.1:80".parse::<SocketAddr>().unwrap()]);
        let v6 = addresses("::1", 443).unwrap();
        assert_eq!(&v6[..], &["[::1]:443".parse::<SocketAddr>().unwrap()]);
    }

    #[test]
    fn a_name_is_served_from_what_discovery_looked_up() {
        let port = 40_123;
        let never = addresses("localhost", port).unwrap_err();
        assert!(never.to_string().contains("not looked up yet"), "{never}");
        refresh("localhost", port);
        let found = addresses("localhost", port).unwrap();
        assert!(!found.is_empty());
        assert!(found
            .iter()
            .all(|a| a.ip().is_loopback() && a.port() == port));
    }

    #[test]
    fn a_failed_lookup_keeps_a_good_answer_and_is_reported_otherwise() {
        let good: Addresses = Arc::new(["127.0.0.1:9".parse().unwrap()]);
        store("kept.test", 9, Ok(good.clone()));
        store("kept.test", 9, Err("resolver down".into()));
        assert!(Arc::ptr_eq(&addresses("kept.test", 9).unwrap(), &good));

        store(
            "never.test",
            9,
            Err("cannot resolve never.test: nope".into()),
        );
        let err = addresses("never.test", 9).unwrap_err();
        assert_eq!(err.to_string(), "cannot resolve never.test: nope");
    }
}
