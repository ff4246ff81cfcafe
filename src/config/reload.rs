//! What a reload may change. Settings that shape the process itself — its sockets, threads, I/O
//! driver, files and the cache's store — stay as the process started; a reload that changes them
//! keeps the running values and names them, so the operator knows a restart is needed.

use super::Config;

/// Copies into `next` the settings of `running` that only a restart changes, and names those
/// `next` wanted to change.
pub fn keep_fixed(next: &mut Config, running: &Config) -> Vec<&'static str> {
    let mut kept = Vec::new();
    macro_rules! fixed {
        ($name:literal, $($field:tt)+) => {
            if next.$($field)+ != running.$($field)+ {
                kept.push($name);
                next.$($field)+ = running.$($field)+.clone();
            }
        };
    }
    fixed!("host", host);
    fixed!("port", port);
    fixed!("workers", workers);
    fixed!("io_driver", io_driver);
    fixed!("max_connections", limits.max_connections);
    fixed!("cache (cache_* keys)", cache);
    fixed!("db_path", db_path);
    fixed!("token_accounting", token_accounting);
    fixed!("metrics", metrics);
    fixed!("log_level", log_level);
    fixed!("log_format", log_format);
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_config;

    #[test]
    fn a_reload_keeps_what_needs_a_restart_and_takes_the_rest() {
        let running = load_config(None, &[]).unwrap();
        let mut next = running.clone();
        next.port = running.port + 1;
        next.cache.enabled = !running.cache.enabled;
        next.router_api_key = Some("new".into());
        next.timeouts.connect = running.timeouts.connect * 2;
        let kept = keep_fixed(&mut next, &running);
        assert_eq!(kept, ["port", "cache (cache_* keys)"]);
        assert_eq!(next.port, running.port);
        assert_eq!(next.cache, running.cache);
        assert_eq!(next.router_api_key.as_deref(), Some("new"));
        assert_eq!(next.timeouts.connect, running.timeouts.connect * 2);
    }

    #[test]
    fn an_unchanged_file_keeps_nothing() {
        let running = load_config(None, &[]).unwrap();
        let mut next = running.clone();
        assert!(keep_fixed(&mut next, &running).is_empty());
    }
}
