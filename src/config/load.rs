//! Loading: find the file, parse YAML, reject unknown keys, layer env and flags on top, expand `${ENV}`.
//! The result is a flat map `key or section.key → (value, origin)` that `build` turns into a `Config`.

use std::collections::BTreeMap;

use yaml_serde::Value;

use super::env_expand::expand;
use super::schema::{all_top_level, canonical_top, section_keys, SECTIONS, TOP_KEYS};
use super::source::{line_of_key, suggest, ConfigError, Origin};

/// The configuration used when no file is found: one Ollama on this machine.
pub const EMBEDDED_DEFAULT: &str =
    "endpoints:\n  - http://127.0.0.1:11434\nmax_concurrent_connections: 1\n";

/// Values keyed by flat key (`port`, `timeouts.connect`), each with where it came from.
pub type Layered = BTreeMap<String, (Value, Origin)>;

/// Which file to read: `--config`, else `NOMYO_ROUTER_CONFIG_PATH`, else `./config.yaml` or
/// `./config/config.yaml` if present.
pub fn resolve_path(flag: Option<&str>, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    if let Some(p) = flag {
        return Some(p.to_string());
    }
    if let Some(p) = env("NOMYO_ROUTER_CONFIG_PATH").or_else(|| env("CONFIG_PATH")) {
        if !p.is_empty() {
            return Some(expand_home(&p, env));
        }
    }
    ["config.yaml", "config/config.yaml"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .map(str::to_string)
}

fn expand_home(path: &str, env: &dyn Fn(&str) -> Option<String>) -> String {
    match (path.strip_prefix("~/"), env("HOME")) {
        (Some(rest), Some(home)) => format!("{home}/{rest}"),
        _ => path.to_string(),
    }
}

/// Parses YAML text into the flat map. `path` names the file in errors.
pub fn parse_file(text: &str, path: &str) -> Result<Layered, ConfigError> {
    let doc: Value = yaml_serde::from_str(text).map_err(|e| {
        let origin = e.location().map(|l| Origin::File {
            path: path.to_string(),
            line: l.line(),
        });
        ConfigError::new(origin.as_ref(), "", format!("invalid YAML: {e}"))
    })?;
    let mut out = Layered::new();
    let map = match doc {
        Value::Null => return Ok(out),
        Value::Mapping(m) => m,
        _ => {
            let origin = Origin::File {
                path: path.to_string(),
                line: 1,
            };
            return Err(ConfigError::new(
                Some(&origin),
                "",
                "the file must be a mapping of keys to values",
            ));
        }
    };
    for (k, v) in map {
        let key = key_string(&k);
        let line = line_of_key(text, &key, 0);
        let origin = Origin::File {
            path: path.to_string(),
            line,
        };
        let Some(canon) = canonical_top(&key) else {
            let mut err = ConfigError::new(Some(&origin), &key, "unknown key");
            if let Some(s) = suggest(&key, &all_top_level()) {
                err = err.hint(format!("did you mean '{s}'?"));
            }
            return Err(err);
        };
        match section_keys(canon) {
            Some(keys) => flatten_section(text, path, canon, keys, v, line, &mut out)?,
            None => {
                out.insert(canon.to_string(), (v, origin));
            }
        }
    }
    Ok(out)
}

fn flatten_section(
    text: &str,
    path: &str,
    section: &str,
    keys: &[&str],
    value: Value,
    line: usize,
    out: &mut Layered,
) -> Result<(), ConfigError> {
    let origin = Origin::File {
        path: path.to_string(),
        line,
    };
    let map = match value {
        Value::Null => return Ok(()),
        Value::Mapping(m) => m,
        _ => {
            return Err(ConfigError::new(
                Some(&origin),
                section,
                "expected a mapping of keys",
            ))
        }
    };
    for (k, v) in map {
        let key = key_string(&k);
        let sub_origin = Origin::File {
            path: path.to_string(),
            line: line_of_key(text, &key, line),
        };
        let flat = format!("{section}.{key}");
        if !keys.contains(&key.as_str()) {
            let mut err = ConfigError::new(Some(&sub_origin), &flat, "unknown key");
            if let Some(s) = suggest(&key, keys) {
                err = err.hint(format!("did you mean '{section}.{s}'?"));
            }
            return Err(err);
        }
        out.insert(flat, (v, sub_origin));
    }
    Ok(())
}

fn key_string(k: &Value) -> String {
    match k {
        Value::String(s) => s.clone(),
        other => yaml_serde::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_string(),
    }
}

/// The environment variable that overrides a flat key.
pub fn env_name(flat: &str) -> String {
    if flat == "router_api_key" {
        return "NOMYO_ROUTER_API_KEY".into();
    }
    format!(
        "NOMYO_ROUTER_{}",
        flat.replace('.', "_").to_ascii_uppercase()
    )
}

/// Every flat key that can be set.
pub fn all_flat_keys() -> Vec<String> {
    let mut keys: Vec<String> = TOP_KEYS.iter().map(|k| k.to_string()).collect();
    for (section, sub) in SECTIONS {
        keys.extend(sub.iter().map(|k| format!("{section}.{k}")));
    }
    keys
}

/// A scalar given as text (env var or flag) read as YAML, so `8` is a number and `[a, b]` a list.
pub fn scalar_from_text(text: &str) -> Value {
    match yaml_serde::from_str::<Value>(text) {
        Ok(Value::Mapping(_)) | Err(_) => Value::String(text.to_string()),
        Ok(v) => v,
    }
}

/// Applies `NOMYO_ROUTER_<KEY>` variables over the file's values.
pub fn apply_env(layers: &mut Layered, env: &dyn Fn(&str) -> Option<String>) {
    for key in all_flat_keys() {
        let name = env_name(&key);
        let value = env(&name).or_else(|| {
            (key == "router_api_key")
                .then(|| env("NOMYO_ROUTER_ROUTER_API_KEY"))
                .flatten()
        });
        if let Some(text) = value {
            // An empty router key in the environment does not erase one from the file.
            if text.is_empty() && key == "router_api_key" {
                continue;
            }
            let value = if key.ends_with("endpoints") || key == "cors_origins" {
                list_from_text(&text)
            } else {
                scalar_from_text(&text)
            };
            layers.insert(key, (value, Origin::Env(name)));
        }
    }
}

/// `a,b` or `[a, b]` as a list.
fn list_from_text(text: &str) -> Value {
    match yaml_serde::from_str::<Value>(text) {
        Ok(v @ Value::Sequence(_)) => v,
        _ => Value::Sequence(
            text.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_string()))
                .collect(),
        ),
    }
}

/// Applies command-line flags, the strongest layer.
pub fn apply_flags(layers: &mut Layered, flags: &[(&str, String, &str)]) {
    for (key, text, flag) in flags {
        layers.insert(
            key.to_string(),
            (scalar_from_text(text), Origin::Flag(flag.to_string())),
        );
    }
}

/// Expands `${NAME}` in every string, recursively. An unset variable is an error naming it and the key.
pub fn expand_all(
    layers: &mut Layered,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    for (key, (value, origin)) in layers.iter_mut() {
        expand_value(value, env).map_err(|e| ConfigError::new(Some(origin), key, e))?;
    }
    Ok(())
}

fn expand_value(value: &mut Value, env: &dyn Fn(&str) -> Option<String>) -> Result<(), String> {
    match value {
        Value::String(s) => *s = expand(s, env)?,
        Value::Sequence(items) => {
            for item in items {
                expand_value(item, env)?;
            }
        }
        Value::Mapping(map) => {
            for (_, v) in map.iter_mut() {
                expand_value(v, env)?;
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_names_line_and_suggestion() {
        let err =
            parse_file("endpoints: []\nmax_concurent_connections: 2\n", "c.yaml").unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("c.yaml:2: key 'max_concurent_connections'"),
            "{text}"
        );
        assert!(
            text.contains("did you mean 'max_concurrent_connections'"),
            "{text}"
        );
    }

    #[test]
    fn nested_unknown_key_is_located() {
        let err = parse_file("port: 1\ntimeouts:\n  conect: 3\n", "c.yaml").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("c.yaml:3: key 'timeouts.conect'"),
            "{err}"
        );
    }

    #[test]
    fn aliases_of_the_router_key_are_accepted() {
        let l = parse_file("nomyo-router-api-key: abc\n", "c.yaml").unwrap();
        assert_eq!(l["router_api_key"].0, Value::String("abc".into()));
    }

    #[test]
    fn env_overrides_file_and_flags_override_env() {
        let mut l = parse_file("port: 1000\n", "c.yaml").unwrap();
        apply_env(&mut l, &|n| {
            (n == "NOMYO_ROUTER_PORT").then(|| "2000".to_string())
        });
        assert_eq!(l["port"].0, Value::Number(2000.into()));
        apply_flags(&mut l, &[("port", "3000".into(), "--port")]);
        assert_eq!(l["port"].0, Value::Number(3000.into()));
    }

    #[test]
    fn endpoints_from_env_accept_comma_lists() {
        let mut l = Layered::new();
        apply_env(&mut l, &|n| {
            (n == "NOMYO_ROUTER_ENDPOINTS").then(|| "http://a:1, http://b:2".to_string())
        });
        assert_eq!(l["endpoints"].0.as_sequence().unwrap().len(), 2);
    }

    #[test]
    fn expansion_error_names_key_and_variable() {
        let mut l =
            parse_file("api_keys:\n  \"https://x/v1\": \"${NOPE_KEY}\"\n", "c.yaml").unwrap();
        let err = expand_all(&mut l, &|_| None).unwrap_err().to_string();
        assert!(
            err.contains("api_keys") && err.contains("NOPE_KEY"),
            "{err}"
        );
    }
}
