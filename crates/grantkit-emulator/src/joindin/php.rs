//! PHP semantics the Joind.in API leaks into its wire format: `$_GET` parsing,
//! `http_build_query`, `is_numeric`, `empty()`, and `json_encode` with the API's
//! numeric coercion (`JsonView::numericCheck`).

use std::fmt::Write as _;

/// A PHP value as the API's views see it: ordered maps, lists and scalars.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum PVal {
    Null,
    Bool(bool),
    Int(i64),
    Str(String),
    List(Vec<PVal>),
    Map(Vec<(String, PVal)>),
}

impl PVal {
    pub(crate) fn str(s: impl Into<String>) -> PVal {
        PVal::Str(s.into())
    }

    /// A database column: PDO hands every column to PHP as a string.
    pub(crate) fn col(v: impl ToString) -> PVal {
        PVal::Str(v.to_string())
    }

    pub(crate) fn opt_str(s: Option<&str>) -> PVal {
        s.map_or(PVal::Null, PVal::str)
    }
}

/// Builder for ordered maps.
#[derive(Debug, Default)]
pub(crate) struct MapBuilder(Vec<(String, PVal)>);

impl MapBuilder {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn put(mut self, key: &str, value: PVal) -> Self {
        self.0.push((key.to_owned(), value));
        self
    }

    pub(crate) fn push(&mut self, key: &str, value: PVal) {
        self.0.push((key.to_owned(), value));
    }

    pub(crate) fn build(self) -> PVal {
        PVal::Map(self.0)
    }
}

/// A `$_GET` value: a string or a nested array.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum QVal {
    Str(String),
    Arr(Vec<(String, QVal)>),
}

/// Percent-decoding as PHP's `urldecode`: `+` is a space, bad escapes stay literal.
pub(crate) fn urldecode(input: &str) -> String {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Inserts `value` at `path` (the bracket segments after the base name) into `target`.
fn insert_path(target: &mut Vec<(String, QVal)>, key: String, path: &[String], value: String) {
    let Some((first, rest)) = path.split_first() else {
        match target.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = QVal::Str(value),
            None => target.push((key, QVal::Str(value))),
        }
        return;
    };
    let position = match target.iter().position(|(k, _)| *k == key) {
        Some(p) => {
            if !matches!(target[p].1, QVal::Arr(_)) {
                target[p].1 = QVal::Arr(Vec::new());
            }
            p
        }
        None => {
            target.push((key, QVal::Arr(Vec::new())));
            target.len() - 1
        }
    };
    let QVal::Arr(children) = &mut target[position].1 else {
        return;
    };
    let child_key = if first.is_empty() {
        // `a[]`: next integer index, as PHP appends.
        let next = children
            .iter()
            .filter_map(|(k, _)| k.parse::<i64>().ok())
            .max()
            .map_or(0, |m| m + 1);
        next.to_string()
    } else {
        first.clone()
    };
    insert_path(children, child_key, rest, value);
}

/// Parses a query string as PHP fills `$_GET`: ordered, last duplicate wins in the first
/// position, `a[]`/`a[k]` build arrays, `.` and space in the base name become `_`.
pub(crate) fn parse_query(query: &str) -> Vec<(String, QVal)> {
    let mut out = Vec::new();
    for pair in query.split('&') {
        if pair.is_empty() {
            continue;
        }
        let (raw_key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = urldecode(raw_key);
        let value = urldecode(raw_value);
        let key = key.trim_start_matches(' ');
        let (base, brackets) = match key.find('[') {
            Some(open) if key[open..].contains(']') => (&key[..open], Some(&key[open..])),
            _ => (key, None),
        };
        if base.is_empty() {
            continue;
        }
        let base: String = base
            .chars()
            .map(|c| if c == '.' || c == ' ' { '_' } else { c })
            .collect();
        let mut path = Vec::new();
        if let Some(mut rest) = brackets {
            // Each `[...]` is one level; anything after the last `]` is ignored, as in PHP.
            while let Some(stripped) = rest.strip_prefix('[') {
                match stripped.find(']') {
                    Some(close) => {
                        path.push(stripped[..close].to_owned());
                        rest = &stripped[close + 1..];
                    }
                    None => break,
                }
            }
        }
        insert_path(&mut out, base, &path, value);
    }
    out
}

/// PHP's `urlencode`: letters, digits and `-_.` stay, space is `+`, the rest is `%XX`.
pub(crate) fn urlencode(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    for b in input.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => out.push(char::from(b)),
            b' ' => out.push('+'),
            b => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// PHP's `http_build_query` for `$_GET`-shaped data.
pub(crate) fn http_build_query(params: &[(String, QVal)]) -> String {
    fn walk(prefix: &str, value: &QVal, parts: &mut Vec<String>) {
        match value {
            QVal::Str(s) => parts.push(format!("{}={}", urlencode(prefix), urlencode(s))),
            QVal::Arr(children) => {
                for (k, v) in children {
                    walk(&format!("{prefix}[{k}]"), v, parts);
                }
            }
        }
    }
    let mut parts = Vec::new();
    for (k, v) in params {
        walk(k, v, &mut parts);
    }
    parts.join("&")
}

/// PHP 8 `is_numeric` for strings: optional surrounding whitespace, optional sign, a
/// decimal number with optional fraction and exponent. Returns the value as PHP's
/// `(float)` cast sees it.
pub(crate) fn numeric_value(s: &str) -> Option<f64> {
    let ws = |c: char| matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c');
    let leading = s.trim_start_matches(ws);
    let t = leading.trim_end_matches(ws);
    let b = t.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let int_digits = i - int_start;
    let mut frac_digits = 0;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        frac_digits = i - start;
    }
    if int_digits + frac_digits == 0 {
        return None;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        if matches!(b.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        let exp_start = j;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        if j == exp_start {
            return None;
        }
        i = j;
    }
    if i != b.len() {
        return None;
    }
    t.parse::<f64>().ok()
}

/// PHP's `empty()` on a request parameter.
pub(crate) fn is_empty(value: Option<&serde_json::Value>) -> bool {
    use serde_json::Value;
    match value {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => !b,
        Some(Value::Number(n)) => n.as_f64() == Some(0.0),
        Some(Value::String(s)) => s.is_empty() || s == "0",
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Object(o)) => o.is_empty(),
    }
}

/// A parameter as PHP's string conversion sees it (`None` for arrays and objects).
pub(crate) fn as_php_string(value: Option<&serde_json::Value>) -> Option<String> {
    use serde_json::Value;
    match value {
        None | Some(Value::Null) => Some(String::new()),
        Some(Value::Bool(true)) => Some("1".into()),
        Some(Value::Bool(false)) => Some(String::new()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Array(_) | Value::Object(_)) => None,
    }
}

/// PHP's `(int)` cast of a parameter (leading integer digits, else 0).
pub(crate) fn as_php_int(value: Option<&serde_json::Value>) -> i64 {
    use serde_json::Value;
    match value {
        Some(Value::Number(n)) => n
            .as_i64()
            .unwrap_or_else(|| n.as_f64().map_or(0, |f| f as i64)),
        Some(Value::Bool(true)) => 1,
        Some(Value::String(s)) => {
            let t = s.trim_start();
            let (sign, digits) = match t.strip_prefix('-') {
                Some(rest) => (-1, rest),
                None => (1, t.strip_prefix('+').unwrap_or(t)),
            };
            let end = digits.bytes().take_while(u8::is_ascii_digit).count();
            digits[..end].parse::<i64>().map_or(0, |n| sign * n)
        }
        _ => 0,
    }
}

/// `json_encode` of a float with `serialize_precision = -1` (PHP's `php_gcvt`, mode 0,
/// 17 digits), without `JSON_PRESERVE_ZERO_FRACTION`.
pub(crate) fn php_float(f: f64) -> String {
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut decpt = exp + 1;
    let mut out = String::new();
    if f < 0.0 {
        out.push('-');
    }
    if if decpt < 0 { decpt < -3 } else { decpt > 17 } {
        decpt -= 1;
        let (sign, e) = if decpt < 0 {
            ('-', -decpt)
        } else {
            ('+', decpt)
        };
        out.push_str(&digits[..1]);
        out.push('.');
        if digits.len() == 1 {
            out.push('0');
        } else {
            out.push_str(&digits[1..]);
        }
        let _ = write!(out, "e{sign}{e}");
    } else if decpt < 0 {
        out.push_str("0.");
        for _ in decpt..0 {
            out.push('0');
        }
        out.push_str(&digits);
    } else {
        let decpt = decpt as usize;
        if decpt == 0 {
            out.push('0');
        }
        for i in 0..decpt {
            out.push(digits.as_bytes().get(i).map_or('0', |b| char::from(*b)));
        }
        if digits.len() > decpt {
            out.push('.');
            out.push_str(&digits[decpt..]);
        }
    }
    out
}

/// Keys that `numericCheck` never converts.
const STRING_FIELDS: [&str; 4] = ["stub", "track_name", "comment", "username"];

/// `PHP_INT_MAX` as PHP compares it with a float.
const PHP_INT_MAX_F: f64 = 9_223_372_036_854_775_807.0;

/// Why `json_encode` gave up (it then returns `false`, and PHP echoes an empty body).
#[derive(Debug)]
pub(crate) struct NotEncodable;

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' => out.push_str("\\/"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn write_number(out: &mut String, f: f64) -> Result<(), NotEncodable> {
    if !f.is_finite() {
        return Err(NotEncodable);
    }
    out.push_str(&php_float(f));
    Ok(())
}

fn encode_into(
    out: &mut String,
    key: Option<&str>,
    value: &PVal,
    coerce: bool,
) -> Result<(), NotEncodable> {
    let exempt = key.is_some_and(|k| STRING_FIELDS.contains(&k));
    match value {
        PVal::Null => out.push_str("null"),
        PVal::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        PVal::Int(i) if coerce && !exempt => write_number(out, *i as f64)?,
        PVal::Int(i) => {
            let _ = write!(out, "{i}");
        }
        PVal::Str(s) => match numeric_value(s) {
            Some(f) if coerce && !exempt && f < PHP_INT_MAX_F => write_number(out, f)?,
            _ => write_string(out, s),
        },
        PVal::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                encode_into(out, None, item, coerce)?;
            }
            out.push(']');
        }
        PVal::Map(entries) => {
            out.push('{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, k);
                out.push(':');
                encode_into(out, Some(k), v, coerce)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

/// The API's JSON output: `json_encode(numericCheck($content))` when `coerce`, plain
/// `json_encode` otherwise. `None` when PHP's encoder would fail (an infinite number).
pub(crate) fn encode(value: &PVal, coerce: bool) -> Option<String> {
    let mut out = String::new();
    encode_into(&mut out, None, value, coerce).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_like_php() {
        for (s, v) in [
            ("1984", 1984.0),
            (" 12 ", 12.0),
            ("-1.5", -1.5),
            (".5", 0.5),
            ("1e3", 1000.0),
            ("007", 7.0),
        ] {
            assert_eq!(numeric_value(s), Some(v), "{s}");
        }
        for s in [
            "", " ", ".", "1e", "0x1A", "abc", "12abc", "1.2.3", "inf", "--1",
        ] {
            assert_eq!(numeric_value(s), None, "{s}");
        }
    }

    #[test]
    fn floats_like_php() {
        assert_eq!(php_float(1.0), "1");
        assert_eq!(php_float(4.5), "4.5");
        assert_eq!(php_float(0.1), "0.1");
        assert_eq!(php_float(0.0001), "0.0001");
        assert_eq!(php_float(0.00001), "1.0e-5");
        assert_eq!(php_float(1e15), "1000000000000000");
        assert_eq!(php_float(1.5e20), "1.5e+20");
        assert_eq!(php_float(-2.0), "-2");
        assert_eq!(php_float(1234567890123456.0), "1234567890123456");
    }

    #[test]
    fn coercion_respects_exempt_keys_and_lists() {
        let v = MapBuilder::new()
            .put("talk_title", PVal::str("1984"))
            .put("stub", PVal::str("0123"))
            .put(
                "tags",
                PVal::List(vec![PVal::str("2024"), PVal::str("php")]),
            )
            .put("username", PVal::str("42"))
            .put("url", PVal::str("https://x/é"))
            .put("n", PVal::Int(3))
            .build();
        assert_eq!(
            encode(&v, true).as_deref(),
            Some(
                r#"{"talk_title":1984,"stub":"0123","tags":[2024,"php"],"username":"42","url":"https:\/\/x\/\u00e9","n":3}"#
            )
        );
        assert_eq!(
            encode(&v, false).as_deref(),
            Some(
                r#"{"talk_title":"1984","stub":"0123","tags":["2024","php"],"username":"42","url":"https:\/\/x\/\u00e9","n":3}"#
            )
        );
        assert_eq!(encode(&PVal::str("-1e999"), true), None);
        assert_eq!(
            encode(&PVal::str("1e999"), true).as_deref(),
            Some("\"1e999\"")
        );
    }

    #[test]
    fn query_like_php() {
        let q = parse_query("filter=hot&tags[]=a+b&tags[]=c&x.y=1&filter=past&bad=%zz&&=v");
        assert_eq!(
            q,
            vec![
                ("filter".into(), QVal::Str("past".into())),
                (
                    "tags".into(),
                    QVal::Arr(vec![
                        ("0".into(), QVal::Str("a b".into())),
                        ("1".into(), QVal::Str("c".into()))
                    ])
                ),
                ("x_y".into(), QVal::Str("1".into())),
                ("bad".into(), QVal::Str("%zz".into())),
            ]
        );
        assert_eq!(
            http_build_query(&q),
            "filter=past&tags%5B0%5D=a+b&tags%5B1%5D=c&x_y=1&bad=%25zz"
        );
    }

    #[test]
    fn php_casts() {
        use serde_json::json;
        assert!(is_empty(Some(&json!("0"))));
        assert!(is_empty(Some(&json!(0))));
        assert!(!is_empty(Some(&json!("password"))));
        assert_eq!(as_php_int(Some(&json!("12abc"))), 12);
        assert_eq!(as_php_int(Some(&json!("-5"))), -5);
        assert_eq!(as_php_int(Some(&json!("abc"))), 0);
        assert_eq!(as_php_string(Some(&json!(["x"]))), None);
    }
}
