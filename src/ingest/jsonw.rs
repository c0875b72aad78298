//! Writes OTLP attribute values straight into JSON text.
//!
//! Every span carries its attributes, resource, events and links as JSON
//! columns. Building `serde_json::Value` trees for each of them and then
//! serialising would allocate per value on the hottest path of ingest, so this
//! module writes the text directly. The output is plain JSON: ints stay exact
//! numbers, non-finite doubles become the strings `"NaN"`, `"Infinity"` and
//! `"-Infinity"`, bytes become base64 strings.

use base64::Engine;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};

use super::view::{pair, AnyView, ValueRef};

/// Appends `s` as a JSON string literal.
pub fn push_str(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    // Most text needs no escaping: find where escaping starts, copy up to
    // there at once, and go byte by byte only from there.
    let bytes = s.as_bytes();
    let clean = plain_prefix(bytes);
    out.push_str(s.get(..clean).unwrap_or_default());
    let mut start = clean;
    for (i, &b) in bytes.iter().enumerate().skip(clean) {
        let escape: Option<&str> = match b {
            b'"' => Some("\\\""),
            b'\\' => Some("\\\\"),
            b'\n' => Some("\\n"),
            b'\r' => Some("\\r"),
            b'\t' => Some("\\t"),
            0..=0x1f => None,
            _ => continue,
        };
        // `start` and `i` sit on ASCII bytes (or the ends): char boundaries.
        out.push_str(s.get(start..i).unwrap_or_default());
        match escape {
            Some(e) => out.push_str(e),
            None => {
                use std::fmt::Write;
                let _ = write!(out, "\\u{:04x}", b);
            }
        }
        start = i + 1;
    }
    out.push_str(s.get(start..).unwrap_or_default());
    out.push('"');
}

/// How many leading bytes need no escaping: eight at a time, then one by
/// one.
fn plain_prefix(bytes: &[u8]) -> usize {
    let mut i = 0;
    while let Some(chunk) = bytes[i..].first_chunk::<8>() {
        if any_needs_escape(u64::from_le_bytes(*chunk)) {
            break;
        }
        i += 8;
    }
    while i < bytes.len() && !matches!(bytes[i], b'"' | b'\\' | 0..=0x1f) {
        i += 1;
    }
    i
}

/// Whether any of the eight bytes in `w` is a control character, `"` or
/// `\\` (the exact "has a byte less than / equal to" bit tricks).
fn any_needs_escape(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let quote = w ^ (ONES * b'"' as u64);
    let backslash = w ^ (ONES * b'\\' as u64);
    let control = w.wrapping_sub(ONES * 0x20) & !w;
    let quote = quote.wrapping_sub(ONES) & !quote;
    let backslash = backslash.wrapping_sub(ONES) & !backslash;
    (control | quote | backslash) & HIGH != 0
}

pub fn push_f64(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("\"NaN\"");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 {
            "\"Infinity\""
        } else {
            "\"-Infinity\""
        });
    } else {
        // serde_json's float text (ryu: the shortest representation that
        // reads back exactly), written to the stack instead of a
        // temporary String.
        let mut buf = [0u8; 40];
        let mut cursor = std::io::Cursor::new(&mut buf[..]);
        let text = match serde_json::to_writer(&mut cursor, &v) {
            Ok(()) => {
                let len = cursor.position() as usize;
                std::str::from_utf8(&buf[..len]).unwrap_or("null")
            }
            Err(_) => "null",
        };
        out.push_str(text.strip_suffix(".0").unwrap_or(text));
    }
}

/// Appends `v` in decimal (without `fmt`'s machinery: spans carry several).
pub fn push_u64(out: &mut String, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.reserve(digits.len() - at);
    for &d in &digits[at..] {
        out.push(char::from(d));
    }
}

pub fn push_i64(out: &mut String, v: i64) {
    if v < 0 {
        out.push('-');
    }
    push_u64(out, v.unsigned_abs());
}

/// Appends `bytes` as a JSON string of lowercase hex.
pub fn push_hex(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(bytes.len() * 2 + 2);
    out.push('"');
    for b in bytes {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 0xf) as usize] as char);
    }
    out.push('"');
}

/// Appends one value; an empty one is `null`.
pub fn push_value<'a, V: AnyView<'a>>(out: &mut String, v: V) {
    match v.view() {
        ValueRef::Empty => out.push_str("null"),
        ValueRef::Str(s) => push_str(out, s),
        ValueRef::Bool(b) => out.push_str(if b { "true" } else { "false" }),
        ValueRef::Int(i) => push_i64(out, i),
        ValueRef::Double(d) => push_f64(out, d),
        ValueRef::Bytes(b) => {
            // Base64 needs no escaping.
            out.push('"');
            base64::engine::general_purpose::STANDARD.encode_string(b, out);
            out.push('"');
        }
        ValueRef::Array(values) => {
            out.push('[');
            for (i, v) in values.enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_value(out, v);
            }
            out.push(']');
        }
        ValueRef::Kvlist(pairs) => push_object(out, pairs),
    }
}

/// Appends key/value pairs as a JSON object, in the order given.
pub fn push_object<'a, V: AnyView<'a>>(
    out: &mut String,
    pairs: impl Iterator<Item = (&'a str, V)>,
) {
    out.push('{');
    for (i, (key, v)) in pairs.enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_str(out, key);
        out.push(':');
        push_value(out, v);
    }
    out.push('}');
}

/// Appends one AnyValue; an empty AnyValue is `null`.
pub fn push_any(out: &mut String, v: Option<&AnyValue>) {
    push_value(out, v);
}

/// Appends a key/value list as a JSON object, in the order sent.
pub fn push_attrs(out: &mut String, attrs: &[KeyValue]) {
    push_object(out, attrs.iter().map(pair));
}

pub fn attrs_json(attrs: &[KeyValue]) -> String {
    let mut out = String::with_capacity(16 + attrs.len() * 48);
    push_attrs(&mut out, attrs);
    out
}

/// A single AnyValue as JSON text.
pub fn any_json(v: &AnyValue) -> String {
    let mut out = String::new();
    push_any(&mut out, Some(v));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{any_value::Value, ArrayValue, KeyValueList};

    fn kv(k: &str, v: Value) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        }
    }

    #[test]
    fn every_value_type_is_valid_json() {
        let attrs = vec![
            kv("s", Value::StringValue("a\"b\\c\n\u{1}é".into())),
            kv("b", Value::BoolValue(true)),
            kv("i", Value::IntValue(-9_007_199_254_740_993)),
            kv("d", Value::DoubleValue(1.5)),
            kv("whole", Value::DoubleValue(2.0)),
            kv("nan", Value::DoubleValue(f64::NAN)),
            kv("inf", Value::DoubleValue(f64::NEG_INFINITY)),
            kv("bytes", Value::BytesValue(vec![0, 1, 2, 255])),
            kv(
                "arr",
                Value::ArrayValue(ArrayValue {
                    values: vec![
                        AnyValue {
                            value: Some(Value::IntValue(1)),
                        },
                        AnyValue { value: None },
                    ],
                }),
            ),
            kv(
                "kv",
                Value::KvlistValue(KeyValueList {
                    values: vec![kv("nested", Value::StringValue("x".into()))],
                }),
            ),
            KeyValue {
                key: "empty".into(),
                value: None,
                ..Default::default()
            },
        ];
        let text = attrs_json(&attrs);
        let parsed: serde_json::Value = serde_json::from_str(&text).expect(&text);
        assert_eq!(parsed["s"], "a\"b\\c\n\u{1}é");
        assert_eq!(parsed["b"], true);
        assert_eq!(parsed["i"].as_i64(), Some(-9_007_199_254_740_993));
        assert_eq!(parsed["d"].as_f64(), Some(1.5));
        assert_eq!(parsed["whole"].as_f64(), Some(2.0));
        assert_eq!(parsed["nan"], "NaN");
        assert_eq!(parsed["inf"], "-Infinity");
        assert_eq!(parsed["bytes"], "AAEC/w==");
        assert_eq!(parsed["arr"], serde_json::json!([1, null]));
        assert_eq!(parsed["kv"]["nested"], "x");
        assert!(parsed["empty"].is_null());
    }

    /// The text doubles had before `push_f64` wrote them to the stack.
    fn old_f64(v: f64) -> String {
        let mut buf = serde_json::Number::from_f64(v)
            .map(|n| n.to_string())
            .unwrap_or_else(|| "null".to_string());
        if buf.ends_with(".0") {
            buf.truncate(buf.len() - 2);
        }
        buf
    }

    #[test]
    fn doubles_are_written_as_before() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut samples = vec![
            0.0,
            -0.0,
            1.0,
            -2.5,
            1e300,
            5e-324,
            f64::MAX,
            f64::MIN_POSITIVE,
        ];
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            samples.push(f64::from_bits(x));
            samples.push((x % 1_000_000) as f64 / 1000.0);
        }
        for v in samples.into_iter().filter(|v| v.is_finite()) {
            let mut out = String::new();
            push_f64(&mut out, v);
            assert_eq!(out, old_f64(v), "{v:e}");
        }
    }

    #[test]
    fn hex_strings() {
        let mut out = String::new();
        push_hex(&mut out, &[0, 0xab, 0x7f]);
        assert_eq!(out, "\"00ab7f\"");
    }

    /// `push_str` as it was, one byte at a time.
    fn old_push_str(out: &mut String, s: &str) {
        out.push('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
    }

    #[test]
    fn strings_escape_as_before() {
        let pieces = [
            "a", "é", "🚀", "\"", "\\", "\n", "\u{1}", "\u{1f}", " ", "\u{7f}", "xxxxxxx",
            "\u{2028}",
        ];
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        for _ in 0..5000 {
            let mut s = String::new();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            for k in 0..(x % 40) {
                s.push_str(pieces[((x >> (k % 50)) % pieces.len() as u64) as usize]);
            }
            let (mut new, mut old) = (String::new(), String::new());
            push_str(&mut new, &s);
            old_push_str(&mut old, &s);
            assert_eq!(new, old);
            assert_eq!(serde_json::from_str::<String>(&new).expect("valid JSON"), s);
        }
    }

    #[test]
    fn integers() {
        for v in [0i64, 7, -7, 10, 99, 1_000_000, i64::MAX, i64::MIN, -1] {
            let mut out = String::new();
            push_i64(&mut out, v);
            assert_eq!(out, v.to_string());
        }
        let mut out = String::new();
        push_u64(&mut out, u64::MAX);
        assert_eq!(out, u64::MAX.to_string());
    }
}
