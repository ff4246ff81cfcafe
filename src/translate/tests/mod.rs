//! Golden and property tests of the translators on recorded-style wire examples (wire-formats.md).
