//! `${NAME}` and `${NAME:-default}` expansion inside configuration strings (SPEC §1.2).

/// Expands every `${NAME}` / `${NAME:-default}` in `input` using `lookup`.
/// `$$` is not special; a `$` not followed by `{` is kept as is.
/// Errors with the name of the first variable that is unset and has no default.
pub fn expand(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    if !input.contains("${") {
        return Ok(input.to_string());
    }
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(format!("unterminated '${{' in \"{input}\""));
        };
        let inner = &after[..end];
        let (name, default) = match inner.find(":-") {
            Some(i) => (&inner[..i], Some(&inner[i + 2..])),
            None => (inner, None),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("'${{{inner}}}' is not a valid variable reference"));
        }
        match (lookup(name), default) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => return Err(format!("environment variable {name} is not set")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "KEY" => Some("secret".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_whole_and_partial_references() {
        assert_eq!(expand("${KEY}", &env).unwrap(), "secret");
        assert_eq!(expand("Bearer ${KEY}!", &env).unwrap(), "Bearer secret!");
        assert_eq!(
            expand("http://${HOST:-127.0.0.1}:${PORT:-11434}", &env).unwrap(),
            "http://127.0.0.1:11434"
        );
        assert_eq!(expand("${EMPTY:-x}", &env).unwrap(), "");
        assert_eq!(expand("cost $5", &env).unwrap(), "cost $5");
    }

    #[test]
    fn unset_without_default_names_the_variable() {
        let err = expand("${OPENAI_KEY}", &env).unwrap_err();
        assert!(err.contains("OPENAI_KEY"), "{err}");
        assert!(expand("${BAD NAME}", &env).is_err());
        assert!(expand("${KEY", &env).is_err());
    }
}
