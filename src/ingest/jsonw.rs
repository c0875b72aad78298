//! Writes OTLP attribute values straight into JSON text.
//!
//! Every span carries its attributes, resource, events and links as JSON
//! columns. Building `serde_json::Value` trees for each of them and then
//! serialising would allocate per value on the hottest path of ingest, so this
//! module writes the text directly. The output is plain JSON: ints stay exact
//! numbers, non-finite doubles become the strings `"NaN"`, `"Infinity"` and
//! `"-Infinity"`, bytes become base64 strings.

use base64::Engine;
use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};

/// Appends `s` as a JSON string literal.
pub fn push_str(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape: Option<&str> = match b {
            b'"' => Some("\\\""),
            b'\\' => Some("\\\\"),
            b'\n' => Some("\\n"),
            b'\r' => Some("\\r"),
            b'\t' => Some("\\t"),
            0..=0x1f => None,
            _ => continue,
        };
        out.push_str(&s[start..i]);
        match escape {
            Some(e) => out.push_str(e),
            None => {
                use std::fmt::Write;
                let _ = write!(out, "\\u{:04x}", b);
            }
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
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
        let mut buf = ryu_like(v);
        if buf.ends_with(".0") {
            buf.truncate(buf.len() - 2);
        }
        out.push_str(&buf);
    }
}

fn ryu_like(v: f64) -> String {
    // serde_json formats floats with ryu: shortest round-trip representation.
    serde_json::Number::from_f64(v)
        .map(|n| n.to_string())
        .unwrap_or_else(|| "null".to_string())
}

pub fn push_u64(out: &mut String, v: u64) {
    use std::fmt::Write;
    let _ = write!(out, "{v}");
}

pub fn push_i64(out: &mut String, v: i64) {
    use std::fmt::Write;
    let _ = write!(out, "{v}");
}

/// Appends one AnyValue; an empty AnyValue is `null`.
pub fn push_any(out: &mut String, v: Option<&AnyValue>) {
    match v.and_then(|v| v.value.as_ref()) {
        None | Some(Value::StringValueStrindex(_)) => out.push_str("null"),
        Some(Value::StringValue(s)) => push_str(out, s),
        Some(Value::BoolValue(b)) => out.push_str(if *b { "true" } else { "false" }),
        Some(Value::IntValue(i)) => push_i64(out, *i),
        Some(Value::DoubleValue(d)) => push_f64(out, *d),
        Some(Value::BytesValue(b)) => {
            push_str(out, &base64::engine::general_purpose::STANDARD.encode(b))
        }
        Some(Value::ArrayValue(a)) => {
            out.push('[');
            for (i, v) in a.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_any(out, Some(v));
            }
            out.push(']');
        }
        Some(Value::KvlistValue(kv)) => push_attrs(out, &kv.values),
    }
}

/// Appends a key/value list as a JSON object, in the order sent.
pub fn push_attrs(out: &mut String, attrs: &[KeyValue]) {
    out.push('{');
    for (i, kv) in attrs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_str(out, &kv.key);
        out.push(':');
        push_any(out, kv.value.as_ref());
    }
    out.push('}');
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
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};

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
}
