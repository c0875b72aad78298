//! The short texts tools answer with, for a model's context window: lists
//! capped at [`MAX_ITEMS`], long strings cut with a marker saying how much
//! was left out, and structured content held to the same string cap.

use std::fmt::Write;

use serde_json::Value;

/// The most items any list in an answer holds.
pub const MAX_ITEMS: usize = 50;
/// The longest string kept whole in a text line.
pub const LINE_CHARS: usize = 240;
/// The longest string kept whole in structured content (attribute values,
/// messages, stack traces).
pub const VALUE_CHARS: usize = 4000;

/// `text` whole when it has at most `max` characters, else its first `max`
/// and a marker like `…[cut 1234 chars]`.
pub fn cut(text: &str, max: usize) -> String {
    let total = text.chars().count();
    if total <= max {
        return text.to_string();
    }
    let kept: String = text.chars().take(max).collect();
    format!("{kept}…[cut {} chars]", total - max)
}

/// [`cut`] to one line: newlines become spaces, for list rows.
pub fn line(text: &str) -> String {
    cut(
        &text.split_whitespace().collect::<Vec<_>>().join(" "),
        LINE_CHARS,
    )
}

/// Cuts every string in `value` to [`VALUE_CHARS`] and every array to
/// [`MAX_ITEMS`] (a last string says how many were left out), for JSON
/// taken whole from storage (attributes, events, messages).
pub fn cap_json(value: &mut Value) {
    match value {
        Value::String(s) if s.chars().count() > VALUE_CHARS => *s = cut(s, VALUE_CHARS),
        Value::Array(items) => {
            if items.len() > MAX_ITEMS {
                let left = items.len() - MAX_ITEMS;
                items.truncate(MAX_ITEMS);
                items.push(Value::String(format!("…[cut {left} items]")));
            }
            items.iter_mut().for_each(cap_json);
        }
        Value::Object(map) => map.values_mut().for_each(cap_json),
        _ => {}
    }
}

/// A JSON value as a serde_json value with [`cap_json`] applied.
pub fn capped<T: serde::Serialize>(value: &T) -> Value {
    let mut v = serde_json::to_value(value).unwrap_or(Value::Null);
    cap_json(&mut v);
    v
}

/// A text answer built line by line.
#[derive(Default)]
pub struct Text(String);

impl Text {
    pub fn new() -> Text {
        Text::default()
    }

    pub fn line(&mut self, text: impl AsRef<str>) -> &mut Text {
        self.0.push_str(text.as_ref());
        self.0.push('\n');
        self
    }

    /// The closing lines: how to get more (if there is more) and where to
    /// look in the dashboard.
    pub fn more(&mut self, shown: usize, next_cursor: Option<&str>) -> &mut Text {
        if let Some(c) = next_cursor {
            let _ = writeln!(
                self.0,
                "({shown} shown; more: call again with cursor=\"{c}\")"
            );
        }
        self
    }

    pub fn link(&mut self, url: &str) -> &mut Text {
        let _ = writeln!(self.0, "Dashboard: {url}");
        self
    }

    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.0)
    }
}

/// `12.3 ms` / `4.56 s`.
pub fn ms(v: f64) -> String {
    if v >= 1000.0 {
        format!("{:.2} s", v / 1000.0)
    } else {
        format!("{v:.1} ms")
    }
}

/// `$0.0123`, or `n/a`.
pub fn usd(v: Option<f64>) -> String {
    match v {
        // Single calls cost fractions of a cent.
        Some(v) if v != 0.0 && v.abs() < 0.01 => format!("${v:.6}"),
        Some(v) => format!("${v:.4}"),
        None => "n/a".into(),
    }
}

/// `3.2%`.
pub fn pct(v: f64) -> String {
    format!("{:.1}%", v * 100.0)
}

/// `text` as one part of a URL path or query (`/` and spaces escaped).
pub fn url_part(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// An optional string, or `-`.
pub fn or_dash(v: Option<&str>) -> &str {
    v.unwrap_or("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_say_how_much_is_gone() {
        assert_eq!(cut("short", 10), "short");
        assert_eq!(cut("abcdefghij", 4), "abcd…[cut 6 chars]");
        assert_eq!(cut("ééééé", 2), "éé…[cut 3 chars]");
        assert_eq!(line("a\n  b"), "a b");
    }

    #[test]
    fn json_is_capped_inside() {
        let long = "x".repeat(VALUE_CHARS + 10);
        let mut v = serde_json::json!({"a": [long], "n": (0..60).collect::<Vec<_>>()});
        cap_json(&mut v);
        assert!(v["a"][0].as_str().unwrap().ends_with("…[cut 10 chars]"));
        let n = v["n"].as_array().unwrap();
        assert_eq!(n.len(), MAX_ITEMS + 1);
        assert_eq!(n[MAX_ITEMS], "…[cut 10 items]");
    }
}
