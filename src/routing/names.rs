//! Model-name equivalences: `name` ⇄ `name:latest`, and llama-server's `org/name-GGUF:QUANT` short names.

/// The name without a trailing `:latest`.
pub fn strip_latest(name: &str) -> &str {
    name.strip_suffix(":latest").unwrap_or(name)
}

/// A model name as Ollama lists it: with a tag, `:latest` when it has none.
pub fn with_tag(name: &str) -> std::borrow::Cow<'_, str> {
    match name.contains(':') {
        true => name.into(),
        false => format!("{name}:latest").into(),
    }
}

/// llama-server's normalised name: drop the `org/` prefix and everything from the first `:`.
/// `unsloth/gpt-oss-20b-GGUF:F16` → `gpt-oss-20b-GGUF`.
pub fn llama_short(name: &str) -> &str {
    let after_org = name.rsplit('/').next().unwrap_or(name);
    after_org.split(':').next().unwrap_or(after_org)
}

/// Whether an Ollama endpoint accepts `requested` for its model `advertised` without rewriting.
pub fn ollama_equivalent(requested: &str, advertised: &str) -> bool {
    strip_latest(requested) == strip_latest(advertised)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equivalences() {
        assert_eq!(strip_latest("llama3:latest"), "llama3");
        assert_eq!(strip_latest("llama3:8b"), "llama3:8b");
        assert_eq!(
            llama_short("unsloth/gpt-oss-20b-GGUF:F16"),
            "gpt-oss-20b-GGUF"
        );
        assert_eq!(llama_short("a/b/c-GGUF:Q4_K_M:latest"), "c-GGUF");
        assert_eq!(llama_short("plain"), "plain");
        assert!(ollama_equivalent("llama3", "llama3:latest"));
        assert!(!ollama_equivalent("llama3", "llama3:8b"));
    }
}
