//! Which group an error joins. The rule that decides is picked by what the
//! error carries, most specific first:
//!
//! 1. an explicit `qyl.fingerprint` attribute (`{{ default }}` in it stands
//!    for what the rules below would have produced);
//! 2. the in-app frames of the stack trace;
//! 3. all frames, when none is in-app;
//! 4. the exception type and message template;
//! 5. the span name and `error.type`.
//!
//! Both the in-app and the full-stack hash are kept, so an event whose
//! in-app verdicts changed (new include rules, a vendored library) still
//! finds its group through the other.
//!
//! Hashes are XXH3-128 (`xxhash-rust`): the algorithm's output is frozen by
//! its specification, so a stored hash stays valid across crate upgrades and
//! platforms, and it costs nanoseconds on the ingest path. Collisions are not
//! a security boundary here; 128 bits keep accidental ones out of reach.

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::Xxh3;

use super::message::parameterize_message;
use super::normalize::{normalize_frames, strip_generics};
use super::stacktrace::StackTrace;

pub use super::message::redact_secrets;

/// The version of the rules above. Stored with every group so that a later
/// change can compute old and new fingerprints side by side and migrate
/// groups instead of splitting all of them (`errors::regroup`). It is
/// deliberately not hashed.
///
/// - 1: frames keyed by module and function, without lines, closure and
///   lambda numbers, symbol hashes or hex bundle hashes.
/// - 2: nothing of where the code lives on disk: Python and JavaScript
///   files by name without bundle hashes of any alphabet, build markers,
///   chunk numbers or script extensions, index-like files with their
///   folder; JVM classes without loader and module prefixes or generated
///   proxy suffixes; in-app verdicts that know package-manager stores
///   wherever they are (`errors::paths`).
pub const FINGERPRINT_VERSION: u32 = 2;

/// The rule that produced a fingerprint, for the "why is this grouped
/// here" explanation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FingerprintRule {
    Explicit,
    InAppFrames,
    AllFrames,
    TypeMessage,
    SpanName,
}

impl FingerprintRule {
    pub fn as_str(self) -> &'static str {
        match self {
            FingerprintRule::Explicit => "explicit",
            FingerprintRule::InAppFrames => "in_app_frames",
            FingerprintRule::AllFrames => "all_frames",
            FingerprintRule::TypeMessage => "type_message",
            FingerprintRule::SpanName => "span_name",
        }
    }
}

/// Everything about one error occurrence that grouping may look at.
#[derive(Debug, Clone, Copy, Default)]
pub struct ErrorSignature<'a> {
    /// `exception.type`; wins over the type parsed from the trace header.
    pub exception_type: Option<&'a str>,
    /// `exception.message` (or the status message of an ERROR span).
    pub message: Option<&'a str>,
    pub stacktrace: Option<&'a StackTrace>,
    pub span_name: Option<&'a str>,
    /// `error.type` of the span or log.
    pub error_type: Option<&'a str>,
    /// The `qyl.fingerprint` attribute, see [`explicit_fingerprint`].
    pub explicit: Option<&'a [String]>,
}

/// The grouping decision for one error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub version: u32,
    pub rule: FingerprintRule,
    /// The hash of the winning rule's components: the group key.
    pub hash: String,
    /// Hash over in-app frames, when there are any.
    pub in_app_hash: Option<String>,
    /// Hash over all frames, when there are any.
    pub full_stack_hash: Option<String>,
    /// What went into `hash`, in order (`type:…`, `frame:module function`,
    /// `message:…`, `span:…`, `error.type:…`, `custom:…`).
    pub components: Vec<String>,
    /// The parameterised message, for display and the `errors` table.
    pub message_template: Option<String>,
}

impl Fingerprint {
    /// Every hash an existing group may be found by; a match on any joins it.
    /// An explicit fingerprint is the only key: the user split or merged on
    /// purpose, and a frame hash must not undo that.
    pub fn hashes(&self) -> impl Iterator<Item = &str> {
        let mut seen: Vec<&str> = Vec::with_capacity(3);
        let frame_hashes = if self.rule == FingerprintRule::Explicit {
            [None, None]
        } else {
            [self.in_app_hash.as_deref(), self.full_stack_hash.as_deref()]
        };
        for h in [Some(self.hash.as_str()), frame_hashes[0], frame_hashes[1]]
            .into_iter()
            .flatten()
        {
            if !seen.contains(&h) {
                seen.push(h);
            }
        }
        seen.into_iter()
    }
}

/// Reads a `qyl.fingerprint` attribute value: a string or a list of
/// strings (numbers and booleans are taken as their text). `None` when it
/// holds nothing usable, so the default rules apply.
pub fn explicit_fingerprint(value: &serde_json::Value) -> Option<Vec<String>> {
    use serde_json::Value;
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    let parts: Vec<String> = match value {
        Value::Array(items) => items.iter().filter_map(text).collect(),
        other => text(other).into_iter().collect(),
    };
    let parts: Vec<String> = parts.into_iter().filter(|p| !p.is_empty()).collect();
    (!parts.is_empty()).then_some(parts)
}

fn is_default_marker(part: &str) -> bool {
    let squeezed: String = part.chars().filter(|c| !c.is_whitespace()).collect();
    squeezed == "{{default}}"
}

/// Decides the group of one error. Pure: the same signature always gives
/// the same fingerprint.
pub fn fingerprint(sig: &ErrorSignature<'_>) -> Fingerprint {
    let template = sig
        .message
        .map(parameterize_message)
        .filter(|t| !t.is_empty());
    let top_type = sig
        .exception_type
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .or_else(|| {
            sig.stacktrace
                .and_then(|t| t.exceptions.first())
                .and_then(|e| e.type_name.clone())
        });

    let in_app = sig
        .stacktrace
        .and_then(|t| stack_components(t, top_type.as_deref(), true));
    let full = sig
        .stacktrace
        .and_then(|t| stack_components(t, top_type.as_deref(), false));
    let in_app_hash = in_app.as_deref().map(hash_components);
    let full_stack_hash = full.as_deref().map(hash_components);

    let (default_rule, default_components) = if let Some(c) = in_app {
        (FingerprintRule::InAppFrames, c)
    } else if let Some(c) = full {
        (FingerprintRule::AllFrames, c)
    } else if top_type.is_some() || template.is_some() {
        let mut c = Vec::new();
        if let Some(t) = &top_type {
            c.push(format!("type:{}", normalize_type(t)));
        }
        if let Some(m) = &template {
            c.push(format!("message:{m}"));
        }
        (FingerprintRule::TypeMessage, c)
    } else {
        let mut c = Vec::new();
        if let Some(s) = sig.span_name.map(str::trim).filter(|s| !s.is_empty()) {
            c.push(format!("span:{s}"));
        }
        if let Some(e) = sig.error_type.map(str::trim).filter(|e| !e.is_empty()) {
            c.push(format!("error.type:{e}"));
        }
        (FingerprintRule::SpanName, c)
    };

    let (rule, components) = match sig.explicit.filter(|parts| !parts.is_empty()) {
        Some(parts) => {
            let mut c = Vec::new();
            for part in parts {
                if is_default_marker(part) {
                    c.extend(default_components.iter().cloned());
                } else {
                    c.push(format!("custom:{}", part.trim()));
                }
            }
            (FingerprintRule::Explicit, c)
        }
        None => (default_rule, default_components),
    };

    Fingerprint {
        version: FINGERPRINT_VERSION,
        rule,
        hash: hash_components(&components),
        in_app_hash,
        full_stack_hash,
        components,
        message_template: template,
    }
}

/// `type:` and `frame:` components of every exception in the chain that
/// contributes frames. Exceptions without (in-app) frames are left out so a
/// wrapper exception thrown from library code does not decide the group.
fn stack_components(
    trace: &StackTrace,
    top_type: Option<&str>,
    in_app_only: bool,
) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for (i, exception) in trace.exceptions.iter().enumerate() {
        let frames = exception.frames.iter().filter(|f| !in_app_only || f.in_app);
        let keys = normalize_frames(trace.language, frames);
        if keys.is_empty() {
            continue;
        }
        let ty = if i == 0 {
            top_type
        } else {
            exception.type_name.as_deref()
        };
        if let Some(ty) = ty {
            out.push(format!("type:{}", normalize_type(ty)));
        }
        out.extend(keys.iter().map(|k| format!("frame:{}", k.component())));
    }
    (!out.is_empty()).then_some(out)
}

fn normalize_type(ty: &str) -> String {
    strip_generics(ty.trim())
}

/// XXH3-128 over the components, each length-prefixed so that no two
/// different lists can produce the same byte stream.
pub fn hash_components(components: &[String]) -> String {
    let mut h = Xxh3::new();
    for c in components {
        h.update(&(c.len() as u64).to_le_bytes());
        h.update(c.as_bytes());
    }
    format!("{:032x}", h.digest128())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::stacktrace::{parse_stacktrace, LanguageHint};
    use crate::errors::InAppRules;

    fn fp_of(trace_text: &str, ty: Option<&str>, msg: Option<&str>) -> Fingerprint {
        let trace = parse_stacktrace(trace_text, LanguageHint::default(), &InAppRules::default());
        fingerprint(&ErrorSignature {
            exception_type: ty,
            message: msg,
            stacktrace: trace.as_ref(),
            ..Default::default()
        })
    }

    const PY_A: &str = r#"Traceback (most recent call last):
  File "/srv/app/.venv/lib/python3.11/site-packages/flask/app.py", line 1484, in full_dispatch_request
    rv = self.dispatch_request()
  File "/srv/app/shop/views.py", line 88, in checkout
    total = compute_total(cart)
  File "/srv/app/shop/pricing.py", line 41, in compute_total
    return rates[item.sku] * item.qty
KeyError: 'SKU-20931'
"#;
    // Same bug a release later: lines moved, Flask upgraded, other SKU.
    const PY_B: &str = r#"Traceback (most recent call last):
  File "/srv/app/.venv/lib/python3.12/site-packages/flask/app.py", line 1511, in full_dispatch_request
    rv = self.dispatch_request()
  File "/srv/app/shop/views.py", line 93, in checkout
    total = compute_total(cart)
  File "/srv/app/shop/pricing.py", line 45, in compute_total
    return rates[item.sku] * item.qty
KeyError: 'SKU-11'
"#;
    // A different bug: the KeyError comes from another in-app function.
    const PY_C: &str = r#"Traceback (most recent call last):
  File "/srv/app/.venv/lib/python3.11/site-packages/flask/app.py", line 1484, in full_dispatch_request
    rv = self.dispatch_request()
  File "/srv/app/shop/views.py", line 88, in checkout
    total = compute_total(cart)
  File "/srv/app/shop/pricing.py", line 60, in apply_discount
    return codes[code]
KeyError: 'SUMMER'
"#;

    #[test]
    fn same_bug_across_releases_groups_together() {
        let a = fp_of(PY_A, Some("KeyError"), Some("'SKU-20931'"));
        let b = fp_of(PY_B, Some("KeyError"), Some("'SKU-11'"));
        assert_eq!(a.rule, FingerprintRule::InAppFrames);
        assert_eq!(a.hash, b.hash);
        assert_eq!(a.in_app_hash, b.in_app_hash);
        assert_eq!(
            a.full_stack_hash, b.full_stack_hash,
            "library line numbers do not count either"
        );
        assert_eq!(a.version, FINGERPRINT_VERSION);
        assert_eq!(
            a.components,
            [
                "type:KeyError",
                "frame:pricing.py compute_total",
                "frame:views.py checkout"
            ]
        );
    }

    #[test]
    fn different_culprit_splits() {
        let a = fp_of(PY_A, Some("KeyError"), None);
        let c = fp_of(PY_C, Some("KeyError"), None);
        assert_ne!(a.hash, c.hash);
        assert_ne!(a.full_stack_hash, c.full_stack_hash);
    }

    #[test]
    fn different_exception_type_at_same_place_splits() {
        let a = fp_of(PY_A, Some("KeyError"), None);
        let b = fp_of(PY_A, Some("TypeError"), None);
        assert_ne!(a.hash, b.hash);
    }

    #[test]
    fn library_frames_change_only_the_full_stack_hash() {
        let other_framework = PY_A.replace("full_dispatch_request", "handle_request");
        let a = fp_of(PY_A, None, None);
        let b = fp_of(&other_framework, None, None);
        assert_eq!(a.hash, b.hash);
        assert_eq!(a.in_app_hash, b.in_app_hash);
        assert_ne!(a.full_stack_hash, b.full_stack_hash);
        assert_eq!(a.hashes().count(), 2);
    }

    #[test]
    fn all_library_frames_fall_back_to_all_frames() {
        let text = "TypeError: x is not a function
    at run (/srv/api/node_modules/lib/a.js:1:1)
    at next (/srv/api/node_modules/lib/b.js:2:2)
";
        let f = fp_of(text, None, None);
        assert_eq!(f.rule, FingerprintRule::AllFrames);
        assert!(f.in_app_hash.is_none());
        assert_eq!(f.full_stack_hash.as_deref(), Some(f.hash.as_str()));
    }

    #[test]
    fn recursion_depth_does_not_split() {
        let frame = "  File \"/srv/app/tree.py\", line 12, in walk\n    walk(child)\n";
        let deep = |n: usize| {
            format!(
                "Traceback (most recent call last):\n  File \"/srv/app/main.py\", line 3, in main\n{}RecursionError: maximum recursion depth exceeded\n",
                frame.repeat(n)
            )
        };
        assert_eq!(
            fp_of(&deep(5), None, None).hash,
            fp_of(&deep(900), None, None).hash
        );
    }

    #[test]
    fn without_a_trace_type_and_template_decide() {
        let sig = |msg| ErrorSignature {
            exception_type: Some("TimeoutError"),
            message: Some(msg),
            ..Default::default()
        };
        let a = fingerprint(&sig("upstream 10.0.0.7 timed out after 30s"));
        let b = fingerprint(&sig("upstream 10.0.0.9 timed out after 45s"));
        let c = fingerprint(&sig("pool exhausted"));
        assert_eq!(a.rule, FingerprintRule::TypeMessage);
        assert_eq!(a.hash, b.hash);
        assert_ne!(a.hash, c.hash);
        assert_eq!(
            a.message_template.as_deref(),
            Some("upstream <ip> timed out after <duration>")
        );
        assert!(a.in_app_hash.is_none() && a.full_stack_hash.is_none());
    }

    #[test]
    fn span_name_and_error_type_are_last() {
        let sig = ErrorSignature {
            span_name: Some("GET /orders/{id}"),
            error_type: Some("500"),
            ..Default::default()
        };
        let f = fingerprint(&sig);
        assert_eq!(f.rule, FingerprintRule::SpanName);
        assert_eq!(f.components, ["span:GET /orders/{id}", "error.type:500"]);
        let other = fingerprint(&ErrorSignature {
            error_type: Some("504"),
            ..sig
        });
        assert_ne!(f.hash, other.hash);
        // Nothing at all still yields a stable fingerprint.
        assert_eq!(
            fingerprint(&ErrorSignature::default()).hash,
            fingerprint(&ErrorSignature::default()).hash
        );
    }

    #[test]
    fn explicit_fingerprint_overrides_and_extends() {
        let trace = parse_stacktrace(PY_A, LanguageHint::default(), &InAppRules::default());
        let base = ErrorSignature {
            stacktrace: trace.as_ref(),
            ..Default::default()
        };
        let default = fingerprint(&base);

        let only_default = vec!["{{ default }}".to_string()];
        let f = fingerprint(&ErrorSignature {
            explicit: Some(&only_default),
            ..base
        });
        assert_eq!(f.rule, FingerprintRule::Explicit);
        assert_eq!(f.hash, default.hash, "{{ default }} alone changes nothing");

        let per_tenant_a = vec!["{{default}}".to_string(), "tenant-a".to_string()];
        let per_tenant_b = vec!["{{default}}".to_string(), "tenant-b".to_string()];
        let a = fingerprint(&ErrorSignature {
            explicit: Some(&per_tenant_a),
            ..base
        });
        let b = fingerprint(&ErrorSignature {
            explicit: Some(&per_tenant_b),
            ..base
        });
        assert_ne!(a.hash, b.hash);
        assert_ne!(a.hash, default.hash);
        assert_eq!(
            a.in_app_hash, default.in_app_hash,
            "frame hashes are kept for the explanation"
        );
        assert!(
            !a.hashes().any(|h| b.hashes().any(|g| g == h)),
            "tenants stay apart"
        );
        assert_eq!(a.hashes().count(), 1);
        assert_eq!(
            a.components.last().map(String::as_str),
            Some("custom:tenant-a")
        );

        let fixed = vec!["payments-outage".to_string()];
        let x = fingerprint(&ErrorSignature {
            explicit: Some(&fixed),
            ..base
        });
        let y = fingerprint(&ErrorSignature {
            explicit: Some(&fixed),
            ..Default::default()
        });
        assert_eq!(x.hash, y.hash, "a fixed fingerprint ignores the trace");
    }

    #[test]
    fn explicit_attribute_shapes() {
        use serde_json::json;
        assert_eq!(
            explicit_fingerprint(&json!("checkout")),
            Some(vec!["checkout".to_string()])
        );
        assert_eq!(
            explicit_fingerprint(&json!(["{{ default }}", 42, "", null])),
            Some(vec!["{{ default }}".to_string(), "42".to_string()])
        );
        assert_eq!(explicit_fingerprint(&json!([])), None);
        assert_eq!(explicit_fingerprint(&json!("  ")), None);
        assert_eq!(explicit_fingerprint(&json!({"a": 1})), None);
    }

    #[test]
    fn hash_is_stable_and_unambiguous() {
        // Pinned: a change here splits every stored group.
        assert_eq!(
            hash_components(&["type:KeyError".into(), "frame:views.py checkout".into()]),
            "239c0a14b74ef9cbaf484b1f89648c5a"
        );
        assert_eq!(hash_components(&[]).len(), 32);
        assert_ne!(
            hash_components(&["ab".into(), "c".into()]),
            hash_components(&["a".into(), "bc".into()])
        );
    }
}
