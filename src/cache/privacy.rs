//! The privacy guard (SPEC §6.1, as the reference has it): an answer that looks personal — an
//! e-mail address, a UUID, a number of eight digits or more — is kept only when the system prompt,
//! which is part of the entry's scope, is itself personal (names an e-mail address or an id), so that
//! the answer can only come back to the same person. Otherwise it is not stored. Everything is read
//! as bytes: no slicing of text at byte offsets.

/// Whether `text` has an e-mail address, a UUID or a number of eight or more digits (written in
/// one run, or in groups joined by single spaces or dashes, as card, phone and account
/// numbers are).
pub fn looks_personal(text: &str) -> bool {
    let b = text.as_bytes();
    has_long_number(b, 8) || has_email(b) || has_uuid(b)
}

/// Whether a system prompt names someone: an e-mail address, or an id (`id`, `id:`, `id=` then at
/// least four digits).
pub fn personal_scope(system: &str) -> bool {
    let b = system.as_bytes();
    has_email(b) || has_id(b)
}

fn has_long_number(b: &[u8], min: usize) -> bool {
    let mut digits = 0;
    for (i, &c) in b.iter().enumerate() {
        if c.is_ascii_digit() {
            digits += 1;
            if digits >= min {
                return true;
            }
            continue;
        }
        // One separator between digit groups keeps the number going; anything else ends it.
        let joins = matches!(c, b' ' | b'-')
            && i > 0
            && b[i - 1].is_ascii_digit()
            && b.get(i + 1).is_some_and(u8::is_ascii_digit);
        if !joins {
            digits = 0;
        }
    }
    false
}

fn is_local(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"._%+-".contains(&c)
}

fn is_domain(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'.' || c == b'-'
}

fn has_email(b: &[u8]) -> bool {
    b.iter()
        .enumerate()
        .filter(|(_, &c)| c == b'@')
        .any(|(at, _)| {
            let local = b[..at].iter().rev().take_while(|&&c| is_local(c)).count();
            let domain: &[u8] = {
                let rest = &b[at + 1..];
                &rest[..rest.iter().take_while(|&&c| is_domain(c)).count()]
            };
            let domain = domain.strip_suffix(b".").unwrap_or(domain);
            // A top-level domain: letters, or an internationalised one (`xn--...`).
            local > 0
                && domain.contains(&b'.')
                && domain.rsplit(|&c| c == b'.').next().is_some_and(|tld| {
                    tld.len() >= 2
                        && (tld.iter().all(u8::is_ascii_alphabetic)
                            || (tld.starts_with(b"xn--")
                                && tld.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')))
                })
        })
}

fn has_uuid(b: &[u8]) -> bool {
    const GROUPS: [usize; 5] = [8, 4, 4, 4, 12];
    b.windows(36).any(|w| {
        let mut at = 0;
        GROUPS.iter().enumerate().all(|(i, &len)| {
            let group = &w[at..at + len];
            at += len;
            let dash = i == 4 || w[at] == b'-';
            at += 1;
            dash && group.iter().all(u8::is_ascii_hexdigit)
        })
    })
}

fn has_id(b: &[u8]) -> bool {
    (0..b.len().saturating_sub(1)).any(|i| {
        let word_start = i == 0 || !b[i - 1].is_ascii_alphanumeric();
        if !word_start || !b[i..i + 2].eq_ignore_ascii_case(b"id") {
            return false;
        }
        let mut j = i + 2;
        while j < b.len() && matches!(b[j], b':' | b'=' | b' ' | b'#') {
            j += 1;
        }
        b[j..].iter().take_while(|c| c.is_ascii_digit()).count() >= 4
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personal_answers() {
        for text in [
            "write to jane.doe@example.com today",
            "your ticket is 4f9c2a1e-0b7d-4c3e-9a55-1e2f3a4b5c6d.",
            "account 123456789",
            "card 4111-1111-1111-1111",
            "card 4111 1111 1111 1111",
            "IBAN DE89 3704 0044 0532 0130 00",
            "call +49-170-1234567",
            "mail bob@example.xn--p1ai",
        ] {
            assert!(looks_personal(text), "{text}");
        }
        for text in [
            "Paris is the capital of France.",
            "use @decorators in python",
            "a@b",
            "version 1.2.3, year 2024, 1234567",
            "in 1999 and 2024, 12 of 31",
            "pi is 3.1415926",
            "ünïcödé — fine",
            "",
        ] {
            assert!(!looks_personal(text), "{text}");
        }
    }

    #[test]
    fn personal_system_prompts() {
        assert!(personal_scope("You help user id: 12345."));
        assert!(personal_scope("Customer ID=98765"));
        assert!(personal_scope("Answer jane@corp.io only"));
        assert!(!personal_scope("You are a helpful assistant."));
        assert!(!personal_scope("valid 12345"), "id must start a word");
        assert!(!personal_scope("id 12"));
        assert!(!personal_scope("i"));
    }
}
