//! The known keys: top-level, nested sections, and the aliases of the router key (SPEC §1.1, §1.5).

/// Top-level keys that hold one value.
pub const TOP_KEYS: &[&str] = &[
    "endpoints",
    "llama_server_endpoints",
    "max_concurrent_connections",
    "api_keys",
    "router_api_key",
    "cache_enabled",
    "cache_backend",
    "cache_similarity",
    "cache_ttl",
    "cache_history_weight",
    "cache_db_path",
    "cache_redis_url",
    "cache_opt_in",
    "cache_max_entries",
    "cache_max_bytes",
    "cache_max_entry_bytes",
    "cache_lookup_timeout",
    "cache_privacy_guard",
    "cache_mmap_path",
    "cache_embedding_model",
    "cache_embedding_core",
    "cache_semantic_budget",
    "db_path",
    "token_accounting",
    "metrics",
    "stream_usage",
    "moe_candidates",
    "context_trim",
    "host",
    "port",
    "workers",
    "io_driver",
    "cors_origins",
    "log_level",
    "log_format",
    "shutdown_grace",
];

/// Sections whose value is a mapping of their own keys.
pub const SECTIONS: &[(&str, &[&str])] = &[
    (
        "timeouts",
        &["connect", "first_byte", "first_byte_cold", "idle", "total"],
    ),
    ("queue", &["mode", "max_queue", "queue_timeout"]),
    (
        "discovery",
        &["loaded_interval", "models_interval", "poll_timeout"],
    ),
    (
        "limits",
        &[
            "max_body_bytes",
            "max_headers",
            "max_header_bytes",
            "header_read_timeout",
            "max_retries",
            "failures_before_down",
            "max_connections",
            "max_buffered_body_bytes",
        ],
    ),
];

/// Spellings of the router key accepted by the reference implementation.
pub const ROUTER_KEY_ALIASES: &[&str] = &[
    "router_api_key",
    "nomyo-router-api-key",
    "nomyo_router_api_key",
    "nomyo-router_api_key",
    "nomyo_router-api_key",
    "NOMYO-ROUTER_API_KEY",
    "NOMYO_ROUTER_API_KEY",
];

/// Every key a user may write at the top level, for suggestions.
pub fn all_top_level() -> Vec<&'static str> {
    let mut keys: Vec<&str> = TOP_KEYS.to_vec();
    keys.extend(SECTIONS.iter().map(|(s, _)| *s));
    keys.push("nomyo-router-api-key");
    keys
}

/// The canonical name of a top-level key, or None when unknown.
pub fn canonical_top(key: &str) -> Option<&'static str> {
    if ROUTER_KEY_ALIASES.contains(&key) {
        return Some("router_api_key");
    }
    TOP_KEYS
        .iter()
        .chain(SECTIONS.iter().map(|(s, _)| s))
        .find(|k| **k == key)
        .copied()
}

pub fn section_keys(section: &str) -> Option<&'static [&'static str]> {
    SECTIONS
        .iter()
        .find(|(s, _)| *s == section)
        .map(|(_, k)| *k)
}
