//! Turns the layered values into a validated `Config`: types, ranges, endpoint list, defaults.

use std::collections::HashSet;
use std::time::Duration;

use yaml_serde::Value;

use super::load::Layered;
use super::source::{ConfigError, Origin};
use super::types::*;
use super::url;

/// The longest duration any setting takes (a year).
const MAX_DURATION_SECS: f64 = 365.0 * 86_400.0;

/// Reads typed values out of the layers; every error names the key and where it was set.
struct Reader<'a> {
    layers: &'a Layered,
}

impl Reader<'_> {
    fn get(&self, key: &str) -> Option<(&Value, &Origin)> {
        self.layers
            .get(key)
            .map(|(v, o)| (v, o))
            .filter(|(v, _)| !v.is_null())
    }

    fn err(&self, key: &str, msg: impl Into<String>) -> ConfigError {
        ConfigError::new(self.layers.get(key).map(|(_, o)| o), key, msg)
    }

    fn string(&self, key: &str, default: &str) -> Result<String, ConfigError> {
        match self.get(key) {
            None => Ok(default.to_string()),
            Some((Value::String(s), _)) => Ok(s.clone()),
            Some((Value::Number(n), _)) => Ok(n.to_string()),
            Some((Value::Bool(b), _)) => Ok(b.to_string()),
            Some(_) => Err(self.err(key, "expected a string")),
        }
    }

    fn uint(&self, key: &str, default: u64, min: u64, max: u64) -> Result<u64, ConfigError> {
        let v = match self.get(key) {
            None => return Ok(default),
            Some((Value::Number(n), _)) => n.as_u64(),
            Some((Value::String(s), _)) => s.trim().parse().ok(),
            Some(_) => None,
        };
        match v {
            Some(v) if (min..=max).contains(&v) => Ok(v),
            _ => Err(self.err(key, format!("expected a whole number from {min} to {max}"))),
        }
    }

    fn float(&self, key: &str, default: f64, min: f64, max: f64) -> Result<f64, ConfigError> {
        let v = match self.get(key) {
            None => return Ok(default),
            Some((Value::Number(n), _)) => n.as_f64(),
            Some((Value::String(s), _)) => s.trim().parse().ok(),
            Some(_) => None,
        };
        match v {
            Some(v) if v >= min && v <= max => Ok(v),
            _ => Err(self.err(key, format!("expected a number from {min} to {max}"))),
        }
    }

    fn boolean(&self, key: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(key) {
            None => Ok(default),
            Some((Value::Bool(b), _)) => Ok(*b),
            Some((Value::String(s), _)) => match s.to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" | "1" => Ok(true),
                "false" | "no" | "off" | "0" | "" => Ok(false),
                _ => Err(self.err(key, "expected true or false")),
            },
            Some(_) => Err(self.err(key, "expected true or false")),
        }
    }

    /// Seconds as a number, or a string with a unit: `500ms`, `30s`, `5m`, `2h`.
    fn duration(&self, key: &str, default_secs: f64) -> Result<Duration, ConfigError> {
        let secs = match self.get(key) {
            None => Some(default_secs),
            Some((Value::Number(n), _)) => n.as_f64(),
            Some((Value::String(s), _)) => parse_duration(s),
            Some(_) => None,
        };
        match secs {
            // A year at most: longer is a mistake, and far longer overflows a `Duration`.
            Some(s) if s.is_finite() && (0.0..=MAX_DURATION_SECS).contains(&s) => {
                Ok(Duration::from_secs_f64(s))
            }
            _ => Err(self.err(
                key,
                "expected a duration of at most a year: seconds as a number, or e.g. \"500ms\", \"30s\", \"5m\"",
            )),
        }
    }

    fn choice(&self, key: &str, default: &str, allowed: &[&str]) -> Result<String, ConfigError> {
        let v = self.string(key, default)?.to_ascii_lowercase();
        if allowed.contains(&v.as_str()) {
            Ok(v)
        } else {
            Err(self.err(key, format!("'{v}' is not one of: {}", allowed.join(", "))))
        }
    }

    fn string_list(&self, key: &str) -> Result<Vec<(Value, Option<Origin>)>, ConfigError> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some((Value::Sequence(items), o)) => {
                Ok(items.iter().map(|v| (v.clone(), Some(o.clone()))).collect())
            }
            Some((Value::String(s), o)) => Ok(vec![(Value::String(s.clone()), Some(o.clone()))]),
            Some(_) => Err(self.err(key, "expected a list")),
        }
    }
}

fn parse_duration(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.trim().parse().ok()?;
    let factor = match unit.trim() {
        "" | "s" => 1.0,
        "ms" => 0.001,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return None,
    };
    Some(n * factor)
}

/// Builds the final configuration. `source` names where it came from.
pub fn build(layers: &Layered, source: &str) -> Result<Config, ConfigError> {
    let r = Reader { layers };
    let mut warnings = Vec::new();
    let default_slots = r.uint("max_concurrent_connections", 1, 1, 1_000_000)? as u32;
    let mut endpoints = read_endpoints(&r, "endpoints", default_slots, None)?;
    endpoints.extend(read_endpoints(
        &r,
        "llama_server_endpoints",
        default_slots,
        Some(EndpointKind::LlamaServer),
    )?);
    reject_duplicates(&r, &endpoints)?;
    apply_api_keys(&r, &mut endpoints, &mut warnings)?;
    // Keys go into the upstream request head as they are.
    if let Some(ep) = endpoints.iter().find(|e| {
        e.api_key
            .as_deref()
            .is_some_and(|k| k.bytes().any(|b| !(b' '..=b'~').contains(&b)))
    }) {
        return Err(r.err(
            "api_keys",
            format!(
                "the key for '{}' contains control or non-ASCII characters",
                ep.url
            ),
        ));
    }

    let router_api_key = Some(r.string("router_api_key", "")?).filter(|k| !k.is_empty());
    let io_driver = match r
        .choice(
            "io_driver",
            "auto",
            &["auto", "io_uring", "iouring", "epoll"],
        )?
        .as_str()
    {
        "auto" => IoDriver::Auto,
        "epoll" => IoDriver::Epoll,
        _ => IoDriver::IoUring,
    };
    let mode = match r
        .choice("queue.mode", "queue", &["queue", "overflow", "reject"])?
        .as_str()
    {
        "overflow" => SaturationMode::Overflow,
        "reject" => SaturationMode::Reject,
        _ => SaturationMode::Queue,
    };
    let log_format = match r.choice("log_format", "text", &["text", "json"])?.as_str() {
        "json" => LogFormat::Json,
        _ => LogFormat::Text,
    };
    let log_level = r.choice(
        "log_level",
        "info",
        &["trace", "debug", "info", "warn", "error", "off"],
    )?;
    let cors_origins = match r.string_list("cors_origins")? {
        v if v.is_empty() && r.get("cors_origins").is_none() => vec!["*".to_string()],
        v => v
            .into_iter()
            .map(|(v, _)| v.as_str().unwrap_or_default().to_string())
            .collect(),
    };
    let ttl = match r.get("cache_ttl") {
        None => None,
        // A century: past it, expiry times overflow clocks.
        Some(_) => Some(r.uint("cache_ttl", 3600, 0, 100 * 365 * 86_400)?),
    };
    let ttl = if r.layers.contains_key("cache_ttl") {
        ttl
    } else {
        Some(3600)
    };

    let config = Config {
        source: source.to_string(),
        host: r.string("host", "0.0.0.0")?,
        port: r.uint("port", 12434, 0, 65535)? as u16,
        workers: r.uint("workers", 0, 0, 1024)? as usize,
        io_driver,
        endpoints,
        router_api_key,
        cors_origins,
        timeouts: Timeouts {
            connect: r.duration("timeouts.connect", 5.0)?,
            first_byte: r.duration("timeouts.first_byte", 120.0)?,
            first_byte_cold: r.duration("timeouts.first_byte_cold", 600.0)?,
            idle: r.duration("timeouts.idle", 300.0)?,
            total: r.duration("timeouts.total", 0.0)?,
        },
        queue: QueueConfig {
            mode,
            max_queue: r.uint("queue.max_queue", 1024, 0, 10_000_000)? as usize,
            queue_timeout: r.duration("queue.queue_timeout", 300.0)?,
        },
        discovery: DiscoveryConfig {
            loaded_interval: r
                .duration("discovery.loaded_interval", 2.0)?
                .max(Duration::from_millis(50)),
            models_interval: r
                .duration("discovery.models_interval", 30.0)?
                .max(Duration::from_millis(50)),
            poll_timeout: r
                .duration("discovery.poll_timeout", 2.0)?
                .max(Duration::from_millis(10)),
        },
        limits: Limits {
            max_body_bytes: r.uint("limits.max_body_bytes", 64 << 20, 1024, 1 << 34)? as usize,
            max_headers: r.uint("limits.max_headers", 100, 8, 10_000)? as usize,
            max_header_bytes: r.uint("limits.max_header_bytes", 64 << 10, 1024, 16 << 20)? as usize,
            header_read_timeout: r.duration("limits.header_read_timeout", 30.0)?,
            max_retries: r.uint("limits.max_retries", 2, 0, 100)? as u32,
            failures_before_down: r.uint("limits.failures_before_down", 3, 1, 1000)? as u32,
            max_connections: r.uint("limits.max_connections", 8192, 16, 1 << 24)? as usize,
            max_buffered_body_bytes: r.uint(
                "limits.max_buffered_body_bytes",
                1 << 30,
                1 << 20,
                1 << 40,
            )? as usize,
        },
        cache: CacheConfig {
            enabled: r.boolean("cache_enabled", false)?,
            backend: match r
                .choice(
                    "cache_backend",
                    "mmap",
                    &["memory", "mmap", "sqlite", "redis"],
                )?
                .as_str()
            {
                "memory" => CacheBackend::Memory,
                "sqlite" => CacheBackend::Sqlite,
                "redis" => CacheBackend::Redis,
                _ => CacheBackend::Mmap,
            },
            similarity: r.float("cache_similarity", 1.0, 0.0, 1.0)?,
            ttl,
            history_weight: r.float("cache_history_weight", 0.3, 0.0, 1.0)?,
            db_path: r.string("cache_db_path", "llm_cache.db")?,
            mmap_path: r.string("cache_mmap_path", "llm_cache.mmap")?,
            redis_url: r.string("cache_redis_url", "redis://localhost:6379/0")?,
            opt_in: r.boolean("cache_opt_in", false)?,
            max_entries: r.uint("cache_max_entries", 100_000, 1, 1 << 32)? as usize,
            max_bytes: r.uint("cache_max_bytes", 256 << 20, 1 << 16, 1 << 40)? as usize,
            max_entry_bytes: r.uint("cache_max_entry_bytes", 4 << 20, 1 << 10, 1 << 32)? as usize,
            lookup_timeout: r.duration("cache_lookup_timeout", 0.005)?,
            privacy_guard: r.boolean("cache_privacy_guard", true)?,
            embedding_model: match r.string("cache_embedding_model", "")? {
                p if p.is_empty() => default_model_dir(),
                p => p.into(),
            },
            embedding_core: match r.get("cache_embedding_core") {
                None => None,
                Some(_) => Some(r.uint("cache_embedding_core", 0, 0, 4095)? as usize),
            },
            semantic_budget: r.duration("cache_semantic_budget", 0.02)?,
        },
        db_path: r.string("db_path", "token_counts.db")?,
        token_accounting: r.boolean("token_accounting", true)?,
        metrics: r.boolean("metrics", true)?,
        stream_usage: r.boolean("stream_usage", true)?,
        moe_candidates: r.uint("moe_candidates", 3, 1, 16)? as usize,
        context_trim: r.boolean("context_trim", true)?,
        log_level,
        log_format,
        shutdown_grace: r.duration("shutdown_grace", 30.0)?,
        warnings,
    };
    if config.cache.semantic() {
        semantic_ready(&r, &config.cache)?;
    }
    // SQLite reads "" and ":memory:" as a private in-memory database: every count would be lost at
    // the exit, quietly.
    let db = config.db_path.trim();
    if config.token_accounting && (db.is_empty() || db == ":memory:" || db.starts_with("file:")) {
        return Err(r.err(
            "db_path",
            "must name a file (token counts kept in memory would be lost at the exit); \
             token_accounting: false turns accounting off",
        ));
    }
    if config.limits.max_buffered_body_bytes < config.limits.max_body_bytes {
        return Err(r.err(
            "limits.max_buffered_body_bytes",
            "must be at least limits.max_body_bytes (one largest body must fit)",
        ));
    }
    Ok(config)
}

/// Semantic matching needs the model stack in the build and the model on disk: say so at start
/// (and in `--check-config`), with the command that fetches it.
fn semantic_ready(r: &Reader, cache: &CacheConfig) -> Result<(), ConfigError> {
    if !cfg!(feature = "semantic") {
        return Err(r.err(
            "cache_similarity",
            "this build has no semantic matching (cargo feature `semantic`): set cache_similarity to 1.0",
        ));
    }
    let dir = &cache.embedding_model;
    if let Some(missing) = missing_model_file(dir) {
        return Err(r.err(
            "cache_similarity",
            format!(
                "semantic matching needs the embedding model, and {} is missing: run `bash scripts/fetch-embedding-model.sh{}`",
                missing.display(),
                if *dir == default_model_dir() { String::new() } else { format!(" {}", dir.display()) }
            ),
        ));
    }
    if let Some(cpu) = cache.embedding_core {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        if cpu >= cpus {
            return Err(r.err(
                "cache_embedding_core",
                format!("this machine has CPUs 0 to {}", cpus - 1),
            ));
        }
    }
    Ok(())
}

fn read_endpoints(
    r: &Reader,
    key: &str,
    default_slots: u32,
    forced: Option<EndpointKind>,
) -> Result<Vec<EndpointConfig>, ConfigError> {
    let mut out = Vec::new();
    for (item, origin) in r.string_list(key)? {
        let err = |msg: String| ConfigError::new(origin.as_ref(), key, msg);
        let (url_text, kind, slots, api_key, weight) = match &item {
            Value::String(s) => (s.clone(), None, None, None, 1),
            Value::Mapping(m) => {
                for k in m.keys() {
                    let k = k.as_str().unwrap_or_default();
                    if ![
                        "url",
                        "kind",
                        "max_concurrent_connections",
                        "api_key",
                        "weight",
                    ]
                    .contains(&k)
                    {
                        return Err(err(format!("unknown endpoint field '{k}'")).hint(
                            "fields: url, kind, max_concurrent_connections, api_key, weight",
                        ));
                    }
                }
                let url = m
                    .get("url")
                    .and_then(Value::as_str)
                    .ok_or_else(|| err("an endpoint mapping needs 'url'".into()))?;
                let kind = match m.get("kind").and_then(Value::as_str) {
                    None => None,
                    Some("ollama") => Some(EndpointKind::Ollama),
                    Some("openai") => Some(EndpointKind::OpenAi),
                    Some("llama-server") | Some("llama_server") => Some(EndpointKind::LlamaServer),
                    Some(other) => {
                        return Err(err(format!(
                            "kind '{other}' is not one of: ollama, openai, llama-server"
                        )))
                    }
                };
                let slots = match m.get("max_concurrent_connections") {
                    None => None,
                    Some(v) => Some(
                        v.as_u64()
                            .filter(|n| (1..=1_000_000).contains(n))
                            .ok_or_else(|| {
                                err("max_concurrent_connections must be a whole number from 1 to 1000000".into())
                            })? as u32,
                    ),
                };
                let api_key = m.get("api_key").and_then(Value::as_str).map(str::to_string);
                let weight = m.get("weight").and_then(Value::as_u64).unwrap_or(1) as u32;
                (url.to_string(), kind, slots, api_key, weight)
            }
            _ => {
                return Err(err(
                    "each endpoint must be a URL string or a mapping with 'url'".into(),
                ))
            }
        };
        let url = url::normalise(&url_text);
        url::parse(&url).map_err(|e| err(format!("malformed URL: {e}")))?;
        let kind = forced.or(kind).unwrap_or(if url.contains("/v1") {
            EndpointKind::OpenAi
        } else {
            EndpointKind::Ollama
        });
        out.push(EndpointConfig {
            url,
            kind,
            max_concurrent: slots.unwrap_or(default_slots),
            api_key,
            weight,
        });
    }
    Ok(out)
}

/// The same URL twice would double its slots: refuse it. A llama-server also listed under `endpoints`
/// (the reference allows that) is kept once, as llama-server.
fn reject_duplicates(r: &Reader, endpoints: &[EndpointConfig]) -> Result<(), ConfigError> {
    let mut seen = HashSet::new();
    for (i, ep) in endpoints.iter().enumerate() {
        if !seen.insert(ep.url.as_str()) {
            let later_is_llama = ep.kind == EndpointKind::LlamaServer
                && endpoints[..i]
                    .iter()
                    .any(|e| e.url == ep.url && e.kind != EndpointKind::LlamaServer);
            if !later_is_llama {
                let key = if ep.kind == EndpointKind::LlamaServer {
                    "llama_server_endpoints"
                } else {
                    "endpoints"
                };
                return Err(r
                    .err(key, format!("duplicate endpoint '{}'", ep.url))
                    .hint("list each backend once"));
            }
        }
    }
    Ok(())
}

fn apply_api_keys(
    r: &Reader,
    endpoints: &mut Vec<EndpointConfig>,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    // Merge an endpoint listed both as plain and as llama-server into the llama-server entry.
    let llama: HashSet<String> = endpoints
        .iter()
        .filter(|e| e.kind == EndpointKind::LlamaServer)
        .map(|e| e.url.clone())
        .collect();
    endpoints.retain(|e| e.kind == EndpointKind::LlamaServer || !llama.contains(&e.url));
    let Some((value, _)) = r.get("api_keys") else {
        return Ok(());
    };
    let Value::Mapping(map) = value else {
        return Err(r.err("api_keys", "expected a mapping of endpoint URL to key"));
    };
    let mut unknown = Vec::new();
    for (k, v) in map {
        let url = url::normalise(k.as_str().unwrap_or_default());
        let key = match v {
            Value::String(s) => s.clone(),
            Value::Null => continue,
            _ => return Err(r.err("api_keys", format!("the key for '{url}' must be a string"))),
        };
        match endpoints.iter_mut().find(|e| e.url == url) {
            Some(ep) if ep.api_key.is_none() => ep.api_key = Some(key).filter(|k| !k.is_empty()),
            Some(_) => {}
            None => unknown.push(url),
        }
    }
    if !unknown.is_empty() {
        warnings.push(format!(
            "api_keys names endpoints that are not configured (ignored): {}",
            unknown.join(", ")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::load::parse_file;
    use super::*;

    fn cfg(text: &str) -> Result<Config, ConfigError> {
        build(&parse_file(text, "c.yaml")?, "c.yaml")
    }

    #[test]
    fn endpoint_slots_cannot_wrap_to_zero() {
        // 2^32 once became 0 slots through `as u32`.
        let e = cfg("endpoints:\n  - {url: http://a:1, max_concurrent_connections: 4294967296}\n")
            .unwrap_err();
        assert!(e.to_string().contains("from 1 to 1000000"), "{e}");
    }

    #[test]
    fn endpoint_kinds_follow_the_rules() {
        let c = cfg("endpoints:\n  - http://a:11434/\n  - https://api.openai.com/v1\n  - {url: http://c:8080, kind: openai, max_concurrent_connections: 4}\nllama_server_endpoints:\n  - http://l:8889/v1\n").unwrap();
        let kinds: Vec<_> = c
            .endpoints
            .iter()
            .map(|e| (e.url.as_str(), e.kind, e.max_concurrent))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("http://a:11434", EndpointKind::Ollama, 1),
                ("https://api.openai.com/v1", EndpointKind::OpenAi, 1),
                ("http://c:8080", EndpointKind::OpenAi, 4),
                ("http://l:8889/v1", EndpointKind::LlamaServer, 1),
            ]
        );
    }

    #[test]
    fn wrong_types_and_bad_urls_are_located() {
        let e = cfg("endpoints: []\nport: banana\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("c.yaml:2: key 'port'"), "{e}");
        let e = cfg("endpoints:\n  - ollama:11434\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("malformed URL") && e.starts_with("c.yaml:1"),
            "{e}"
        );
        let e = cfg("endpoints:\n  - http://a:1\n  - http://a:1/\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("duplicate endpoint"), "{e}");
        let e = cfg("queue:\n  mode: sometimes\n").unwrap_err().to_string();
        assert!(e.starts_with("c.yaml:2: key 'queue.mode'"), "{e}");
        for db in ["\"\"", "\":memory:\""] {
            let e = cfg(&format!("db_path: {db}\n")).unwrap_err().to_string();
            assert!(
                e.contains("key 'db_path'") && e.contains("must name a file"),
                "{e}"
            );
            assert!(cfg(&format!("db_path: {db}\ntoken_accounting: false\n")).is_ok());
        }
    }

    #[test]
    fn durations_accept_units() {
        let c = cfg("timeouts:\n  connect: 250ms\n  idle: 2m\n  first_byte: 7\n").unwrap();
        assert_eq!(c.timeouts.connect, Duration::from_millis(250));
        assert_eq!(c.timeouts.idle, Duration::from_secs(120));
        assert_eq!(c.timeouts.first_byte, Duration::from_secs(7));
    }

    #[test]
    fn api_keys_for_unknown_endpoints_warn() {
        let c = cfg(
            "endpoints:\n  - http://a:1\napi_keys:\n  \"http://a:1\": k1\n  \"http://zzz:1\": k2\n",
        )
        .unwrap();
        assert_eq!(c.endpoints[0].api_key.as_deref(), Some("k1"));
        assert!(c.warnings[0].contains("http://zzz:1"));
    }
}
