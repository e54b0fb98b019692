//! Cross-crate end-to-end tests for grantkit; the tests live in `tests/tests/`.
