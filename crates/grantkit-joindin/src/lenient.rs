//! Lenient reading of Joind.in's JSON.
//!
//! The API's JSON view turns every numeric-looking string into a number (a talk titled
//! `1984`, a tag `2024`, ids and flags), and without that coercion it sends database
//! columns as strings (`"1"`). Empty PHP arrays come out as `[]` where a map was meant.
//! These helpers accept every shape the spec lists and never fail a whole page over one
//! odd optional field: a value of an unexpected type reads as absent.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// Text that may arrive as a string, a number or a boolean.
pub(crate) fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number_text(number)),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// A number as PHP would have printed the string it came from: integral floats without
/// a fraction (`1984.0` → `1984`).
fn number_text(number: &serde_json::Number) -> String {
    if let Some(float) = number.as_f64()
        && number.is_f64()
        && float.fract() == 0.0
        && float.abs() < 1e15
    {
        return format!("{}", float as i64);
    }
    number.to_string()
}

/// A non-negative integer from a number (integral float too) or a numeric string.
pub(crate) fn u64_of(value: &Value) -> Option<u64> {
    match value {
        Value::Number(number) => number.as_u64().or_else(|| {
            number
                .as_f64()
                .filter(|f| f.fract() == 0.0 && (0.0..1.8e19).contains(f))
                .map(|f| f as u64)
        }),
        Value::String(text) => {
            let text = text.trim();
            text.parse::<u64>().ok().or_else(|| {
                text.parse::<f64>()
                    .ok()
                    .filter(|f| f.fract() == 0.0 && (0.0..1.8e19).contains(f))
                    .map(|f| f as u64)
            })
        }
        _ => None,
    }
}

/// A float from a number or a numeric string.
pub(crate) fn f64_of(value: &Value) -> Option<f64> {
    match value {
        Value::Number(number) => number.as_f64(),
        Value::String(text) => text.trim().parse().ok().filter(|f: &f64| f.is_finite()),
        _ => None,
    }
}

/// A flag from a boolean, `0`/`1` (number or string), or `"true"`/`"false"`.
pub(crate) fn bool_of(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(flag) => Some(*flag),
        Value::Number(number) => number.as_f64().map(|n| n != 0.0),
        Value::String(text) => match text.trim() {
            "1" | "true" => Some(true),
            "0" | "false" | "" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// The last path segment of a URI as an id: Joind.in's resources (but talks) carry no
/// `id` field.
pub(crate) fn id_from_uri(uri: &str) -> Option<u64> {
    let path = uri.split(['?', '#']).next()?;
    path.trim_end_matches('/').rsplit('/').next()?.parse().ok()
}

fn optional<'de, D, T>(
    deserializer: D,
    read: fn(&Value) -> Option<T>,
) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(Option::<Value>::deserialize(deserializer)?
        .as_ref()
        .and_then(read))
}

/// `deserialize_with` for `Option<String>`.
pub(crate) fn opt_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    optional(d, text_of)
}

/// `deserialize_with` for `Option<u64>`.
pub(crate) fn opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    optional(d, u64_of)
}

/// `deserialize_with` for `Option<f64>`.
pub(crate) fn opt_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    optional(d, f64_of)
}

/// `deserialize_with` for `Option<bool>`.
pub(crate) fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    optional(d, bool_of)
}

/// `deserialize_with` for a required text field (a missing one is an error; a number is
/// text).
pub(crate) fn text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let value = Value::deserialize(d)?;
    text_of(&value).ok_or_else(|| serde::de::Error::custom("expected text"))
}

/// `deserialize_with` for a list of texts (tags): numbers become text, other items are
/// dropped, anything but a list is empty.
pub(crate) fn text_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Array(items)) => items.iter().filter_map(text_of).collect(),
        _ => Vec::new(),
    })
}

/// `deserialize_with` for a list of records where PHP may send `null`, `[]` or a map
/// keyed by position: items that do not decode are skipped.
pub(crate) fn record_list<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let items = match Option::<Value>::deserialize(d)? {
        Some(Value::Array(items)) => items,
        Some(Value::Object(map)) => map.into_iter().map(|(_, v)| v).collect(),
        _ => Vec::new(),
    };
    Ok(items
        .into_iter()
        .filter_map(|item| serde_json::from_value(item).ok())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scalars_are_read_in_every_shape() {
        assert_eq!(text_of(&json!("1984")).as_deref(), Some("1984"));
        assert_eq!(text_of(&json!(1984)).as_deref(), Some("1984"));
        assert_eq!(text_of(&json!(1984.0)).as_deref(), Some("1984"));
        assert_eq!(text_of(&json!(2.5)).as_deref(), Some("2.5"));
        assert_eq!(text_of(&json!(null)), None);
        assert_eq!(u64_of(&json!(7)), Some(7));
        assert_eq!(u64_of(&json!(7.0)), Some(7));
        assert_eq!(u64_of(&json!("7")), Some(7));
        assert_eq!(u64_of(&json!(" 7 ")), Some(7));
        assert_eq!(u64_of(&json!(-1)), None);
        assert_eq!(u64_of(&json!("x")), None);
        assert_eq!(f64_of(&json!("4.5")), Some(4.5));
        assert_eq!(f64_of(&json!(4)), Some(4.0));
        assert_eq!(bool_of(&json!(1)), Some(true));
        assert_eq!(bool_of(&json!("0")), Some(false));
        assert_eq!(bool_of(&json!(false)), Some(false));
        assert_eq!(bool_of(&json!([])), None);
    }

    #[test]
    fn ids_come_from_the_last_uri_segment() {
        assert_eq!(id_from_uri("https://api.joind.in/v2.1/events/42"), Some(42));
        assert_eq!(id_from_uri("https://api.joind.in/v2.1/users/7/"), Some(7));
        assert_eq!(
            id_from_uri("https://api.joind.in/v2.1/users/7?verbose=yes"),
            Some(7)
        );
        assert_eq!(id_from_uri("https://api.joind.in/v2.1/users/me"), None);
    }
}
