//! Text that comes from a server or a callback, made fit for an error or a log line.
//!
//! A server (or whoever forged a callback) chooses the bytes of an `error_description`, a
//! `Message` or an account name. Printed raw they could forge log lines (`\n[INFO] …`),
//! drive a terminal (`ESC`), hide text (`NUL`), flood a log, or echo back the token that
//! was refused. Every such text goes through [`untrusted`] before it reaches an
//! [`Error`](crate::Error) or a log field.

use crate::secret::REDACTED;
use std::fmt::Write as _;

/// The longest text, in bytes, that [`untrusted`] returns by default: an error description
/// is a sentence, not a document.
pub const MAX_UNTRUSTED_LEN: usize = 300;

/// What a text cut short ends with.
const ELLIPSIS: char = '…';

/// `text` made safe to print: token-like runs redacted, control characters (newlines, ESC,
/// NUL, …) and Unicode line separators escaped as `\u{…}`, and the result cut at
/// `max_len` bytes on a character boundary (ending with `…` when cut). The output is
/// always one line.
///
/// ```
/// use grantkit_core::provider::text::untrusted;
///
/// let shown = untrusted("bad\n[INFO] token 8xZ3kPq7Lm2Nc9Vb4Rt6Yw1Q\u{1b}[2J", 300);
/// assert_eq!(shown, r"bad\u{a}[INFO] token [redacted]\u{1b}[2J");
/// ```
pub fn untrusted(text: &str, max_len: usize) -> String {
    escape_controls(&redact_token_like(text), max_len)
}

/// `text` with control characters escaped and cut at `max_len` bytes, but nothing
/// redacted: for values that are not secret and must stay recognisable, such as the parts
/// of a [`TokenKey`](crate::TokenKey).
pub fn escape_controls(text: &str, max_len: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_len));
    let budget = max_len.saturating_sub(ELLIPSIS.len_utf8());
    // Where to cut if the whole text turns out not to fit: the last character boundary
    // that leaves room for the ellipsis.
    let mut cut_at = None;
    for c in text.chars() {
        let before = out.len();
        if needs_escape(c) {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
        if cut_at.is_none() && out.len() > budget {
            cut_at = Some(before);
        }
        if out.len() > max_len {
            out.truncate(cut_at.unwrap_or(0));
            out.push(ELLIPSIS);
            break;
        }
    }
    out
}

/// Characters that would break a line, move a cursor or hide text.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Replaces every run of 20 or more token-like characters that mixes letters and digits
/// with `[redacted]`: servers sometimes echo the token they refused in an error's
/// description.
pub fn redact_token_like(text: &str) -> String {
    fn token_char(c: char) -> bool {
        c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~' | '+' | '/' | '=')
    }
    fn flush(run: &mut String, out: &mut String) {
        let looks_like_token = run.len() >= 20
            && run.chars().any(|c| c.is_ascii_digit())
            && run.chars().any(|c| c.is_ascii_alphabetic());
        out.push_str(if looks_like_token { REDACTED } else { run });
        run.clear();
    }
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    for c in text.chars() {
        if token_char(c) {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_the_result_is_one_line() {
        let shown = untrusted("a\nb\r\u{1b}[31mc\0d\u{2028}e", 300);
        assert_eq!(shown, r"a\u{a}b\u{d}\u{1b}[31mc\u{0}d\u{2028}e");
        assert!(!shown.chars().any(char::is_control));
    }

    #[test]
    fn long_text_is_cut_on_a_character_boundary() {
        let long = "é".repeat(1000);
        let shown = untrusted(&long, 300);
        assert!(shown.len() <= 300, "{}", shown.len());
        assert!(shown.ends_with('…'));
        let escapes = "\n".repeat(1000);
        let shown = untrusted(&escapes, 300);
        assert!(shown.len() <= 300);
        assert!(shown.starts_with(r"\u{a}"));
        assert_eq!(untrusted("short", 5), "short", "what fits is never cut");
        assert_eq!(untrusted("", 5), "");
    }

    #[test]
    fn token_like_runs_are_redacted() {
        assert_eq!(
            redact_token_like("Invalid refresh token: 8xZ3kPq7Lm2Nc9Vb4Rt6Yw1Q"),
            "Invalid refresh token: [redacted]"
        );
        let plain = "the authorization_code grant is not allowed (ticket d685626822)";
        assert_eq!(redact_token_like(plain), plain);
    }

    #[test]
    fn keys_are_escaped_but_not_redacted() {
        assert_eq!(
            escape_controls("user8xZ3kPq7Lm2Nc9Vb4Rt6\n", 100),
            r"user8xZ3kPq7Lm2Nc9Vb4Rt6\u{a}"
        );
    }
}
