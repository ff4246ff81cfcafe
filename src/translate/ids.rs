//! Random identifiers for objects the other API requires and the source did not give (completion ids,
//! tool call ids).

/// `n` random ASCII letters and digits.
pub(crate) fn random_alnum(n: usize) -> String {
    (0..n).map(|_| fastrand::alphanumeric()).collect()
}

/// `chatcmpl-…` for chat completions.
pub(crate) fn chat_completion_id() -> String {
    format!("chatcmpl-{}", random_alnum(24))
}

/// `cmpl-…` for legacy text completions.
pub(crate) fn completion_id() -> String {
    format!("cmpl-{}", random_alnum(24))
}

/// `call_…` for a tool call that arrived without an id.
pub(crate) fn call_id() -> String {
    format!("call_{}", random_alnum(24))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let id = chat_completion_id();
        assert!(id.starts_with("chatcmpl-") && id.len() == 33);
        assert!(id[9..].chars().all(|c| c.is_ascii_alphanumeric()));
        assert!(completion_id().starts_with("cmpl-"));
        assert_ne!(call_id(), call_id());
    }
}
