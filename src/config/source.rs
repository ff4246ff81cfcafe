//! Where each configuration value came from, so that every error can point at it (file and line, env var, flag).

use std::fmt;

#[derive(Clone, Debug)]
pub enum Origin {
    File { path: String, line: usize },
    Env(String),
    Flag(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { path, line } => write!(f, "{path}:{line}"),
            Origin::Env(name) => write!(f, "environment variable {name}"),
            Origin::Flag(flag) => write!(f, "command-line flag {flag}"),
        }
    }
}

/// A configuration error: where, which key, what is wrong, and what to do.
#[derive(Debug)]
pub struct ConfigError {
    pub origin: Option<Origin>,
    pub key: String,
    pub message: String,
    pub hint: Option<String>,
}

impl ConfigError {
    pub fn new(origin: Option<&Origin>, key: &str, message: impl Into<String>) -> Self {
        ConfigError {
            origin: origin.cloned(),
            key: key.to_string(),
            message: message.into(),
            hint: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(origin) = &self.origin {
            write!(f, "{origin}: ")?;
        }
        if !self.key.is_empty() {
            write!(f, "key '{}': ", self.key)?;
        }
        write!(f, "{}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " ({hint})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Finds the 1-based line of `key` in YAML text, searching after the line of its parent (0 for top level).
pub fn line_of_key(text: &str, key: &str, after_line: usize) -> usize {
    for (i, line) in text.lines().enumerate().skip(after_line) {
        let trimmed = line.trim_start().trim_start_matches("- ");
        let bare = trimmed
            .strip_prefix('"')
            .and_then(|t| t.strip_prefix(key))
            .and_then(|t| t.strip_prefix('"'))
            .or_else(|| {
                trimmed
                    .strip_prefix('\'')
                    .and_then(|t| t.strip_prefix(key))
                    .and_then(|t| t.strip_prefix('\''))
            })
            .or_else(|| trimmed.strip_prefix(key));
        if let Some(rest) = bare {
            if rest.trim_start().starts_with(':') {
                return i + 1;
            }
        }
    }
    after_line.max(1)
}

/// Levenshtein distance, for "did you mean" suggestions on unknown keys.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The closest known key, when it is close enough to be a likely typo.
pub fn suggest<'a>(unknown: &str, known: &[&'a str]) -> Option<&'a str> {
    let lower = unknown.to_ascii_lowercase().replace('-', "_");
    known
        .iter()
        .map(|k| (edit_distance(&lower, k), *k))
        .filter(|(d, k)| *d <= (k.len() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_key_after_parent() {
        let text = "port: 1\ntimeouts:\n  connect: 2\nqueue:\n  connect: 3\n";
        assert_eq!(line_of_key(text, "port", 0), 1);
        assert_eq!(line_of_key(text, "connect", 2), 3);
        assert_eq!(line_of_key(text, "connect", 4), 5);
    }

    #[test]
    fn suggests_close_keys_only() {
        let known = ["endpoints", "max_concurrent_connections", "port"];
        assert_eq!(suggest("endpoint", &known), Some("endpoints"));
        assert_eq!(
            suggest("max-concurent-connections", &known),
            Some("max_concurrent_connections")
        );
        assert_eq!(suggest("banana", &known), None);
    }
}
