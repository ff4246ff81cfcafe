//! Upstream host names to socket addresses, kept off the workers. Name lookup (`getaddrinfo`)
//! blocks, and a worker that blocks stalls every request it carries; so the discovery thread looks
//! up every endpoint's host on each poll and keeps the answer here, and a worker opening a
//! connection reads it. A worker looks a name up itself only when discovery has not yet (the first
//! connection before the first poll). IP literals need no lookup at all.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::{Arc, OnceLock, RwLock};

type Addresses = Arc<[SocketAddr]>;

fn cache() -> &'static RwLock<HashMap<(String, u16), Addresses>> {
    static CACHE: OnceLock<RwLock<HashMap<(String, u16), Addresses>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// The addresses of `host:port`, in the order the resolver gave them: from the cache, or looked up
/// now when the name was never looked up.
pub fn addresses(host: &str, port: u16) -> io::Result<Addresses> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(Arc::new([SocketAddr::new(ip, port)]));
    }
    let known = cache()
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(&(host.to_string(), port))
        .cloned();
    match known {
        Some(addrs) => Ok(addrs),
        None => refresh(host, port),
    }
}

/// Looks `host:port` up now (blocking) and keeps the answer. On failure the previous answer stays,
/// so a resolver that is briefly unreachable does not take a working endpoint down.
pub fn refresh(host: &str, port: u16) -> io::Result<Addresses> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(Arc::new([SocketAddr::new(ip, port)]));
    }
    let found: Addresses = (host, port).to_socket_addrs()?.collect();
    if found.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{host} has no address"),
        ));
    }
    cache()
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .insert((host.to_string(), port), found.clone());
    Ok(found)
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
    fn names_are_looked_up_once_and_then_served_from_the_cache() {
        let port = 40_123;
        let looked_up = refresh("localhost", port).unwrap();
        assert!(looked_up
            .iter()
            .all(|a| a.ip().is_loopback() && a.port() == port));
        let cached = addresses("localhost", port).unwrap();
        assert!(Arc::ptr_eq(&looked_up, &cached), "served from the cache");
    }

    #[test]
    fn a_failed_lookup_keeps_the_previous_answer() {
        let key = ("nomyo-router-test.invalid".to_string(), 9);
        let kept: Addresses = Arc::new(["127.0.0.1:9".parse().unwrap()]);
        cache().write().unwrap().insert(key.clone(), kept.clone());
        assert!(refresh(&key.0, key.1).is_err(), ".invalid never resolves");
        assert!(Arc::ptr_eq(&addresses(&key.0, key.1).unwrap(), &kept));
    }
}
