//! The configuration loader on arbitrary text: YAML parsing and key checks, `NOMYO_ROUTER_*` and
//! `${NAME}` from a fixed fake environment (the process's is never read), then validation into a
//! `Config`, whose limits must lie in the validated ranges.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nomyo_router::config::{build::build, load};

/// A fake environment: `FUZZ_*` names are set, plus one router variable.
fn env(name: &str) -> Option<String> {
    match name {
        "NOMYO_ROUTER_LIMITS_MAX_RETRIES" => Some("3".into()),
        n if n.starts_with("FUZZ_") => Some(format!("value-of-{n}")),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(mut layers) = load::parse_file(text, "fuzz.yaml") else {
        return;
    };
    load::apply_env(&mut layers, &env);
    if load::expand_all(&mut layers, &env).is_err() {
        return;
    }
    if let Ok(cfg) = build(&layers, "fuzz.yaml") {
        assert_eq!(cfg.limits.max_retries, 3);
        assert!((8..=10_000).contains(&cfg.limits.max_headers));
        assert!((1024..=16 << 20).contains(&cfg.limits.max_header_bytes));
        assert!(cfg.limits.max_body_bytes >= 1024);
        assert!(cfg.endpoints.iter().all(|e| e.max_concurrent >= 1));
    }
});
