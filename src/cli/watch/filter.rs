//! Which records `qyl watch` shows. Whatever the server can decide is sent
//! as `/api/v1/live` query parameters, so records nobody will see are not
//! serialised or sent; the rest (`--grep`, `--genai`) is decided here.

use std::time::Duration;

use regex::Regex;

use super::record::{Kind, LiveRecord};

/// The filters of the command line.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub errors: bool,
    pub genai: bool,
    pub service: Option<String>,
    pub min_duration: Option<Duration>,
    pub grep: Option<Regex>,
}

impl Selection {
    /// The query parameters of `/api/v1/live` for this selection.
    ///
    /// `types` is always given: without it the server leaves out error and
    /// function events, and (when a span-only filter is set) logs.
    pub fn server_params(&self) -> Vec<(&'static str, String)> {
        // A duration, or GenAI calls, exist for spans only; errors are the
        // three kinds that can be one (function failures are left to the
        // plain view, where they stand out in red).
        let types = if self.genai || self.min_duration.is_some() {
            "span"
        } else if self.errors {
            "span,log,error"
        } else {
            "span,log,error,function"
        };
        let mut params = vec![("types", types.to_string())];
        if let Some(s) = &self.service {
            params.push(("service", s.clone()));
        }
        if let Some(d) = self.min_duration {
            params.push(("min_duration_ms", format_ms(d)));
        }
        if self.errors {
            // With `types` given each narrows its own signal only.
            params.push(("status", "error".into()));
            params.push(("severity_min", "ERROR".into()));
        }
        params
    }

    /// The client-side part: what the server was not asked to decide (and,
    /// for a server that ignored a parameter, what it was).
    pub fn keeps(&self, r: &LiveRecord) -> bool {
        if self.errors && !r.is_error() {
            return false;
        }
        if self.genai && (r.kind != Kind::Span || r.gen_ai.is_none()) {
            return false;
        }
        if let Some(re) = &self.grep {
            if !re.is_match(&r.text) && !re.is_match(&r.searchable_extra()) {
                return false;
            }
        }
        true
    }
}

/// Milliseconds as the server parses them: an integer when whole, else a
/// decimal (`0.5` for 500µs).
fn format_ms(d: Duration) -> String {
    let micros = d.as_micros();
    if micros % 1000 == 0 {
        (micros / 1000).to_string()
    } else {
        format!("{:.3}", micros as f64 / 1000.0)
    }
}

/// The screen's filter as you type: a regular expression when it is one
/// (case-insensitive), else the literal text, so `GET /a(` still filters.
pub fn typed_filter(text: &str) -> Option<Regex> {
    if text.is_empty() {
        return None;
    }
    regex::RegexBuilder::new(text)
        .case_insensitive(true)
        .build()
        .or_else(|_| {
            regex::RegexBuilder::new(&regex::escape(text))
                .case_insensitive(true)
                .build()
        })
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn filters_go_to_the_server_where_it_has_them() {
        let plain = Selection::default().server_params();
        assert_eq!(plain, [("types", "span,log,error,function".to_string())]);
        let errors = Selection {
            errors: true,
            service: Some("shop".into()),
            ..Default::default()
        }
        .server_params();
        assert_eq!(
            errors,
            [
                ("types", "span,log,error".to_string()),
                ("service", "shop".into()),
                ("status", "error".into()),
                ("severity_min", "ERROR".into())
            ]
        );
        let slow = Selection {
            min_duration: Some(Duration::from_micros(250_500)),
            ..Default::default()
        }
        .server_params();
        assert_eq!(
            slow,
            [
                ("types", "span".to_string()),
                ("min_duration_ms", "250.500".into())
            ]
        );
    }

    #[test]
    fn grep_searches_the_text_and_the_attributes() {
        let span = LiveRecord::new(
            1,
            Kind::Span,
            json!({"name": "GET /cart", "status_code": "OK", "attributes": {"user": "ann"}}),
        );
        let grep = |re: &str| Selection {
            grep: Some(Regex::new(re).unwrap()),
            ..Default::default()
        };
        assert!(grep("cart").keeps(&span));
        assert!(grep("\"user\":\"ann\"").keeps(&span));
        assert!(!grep("orders").keeps(&span));
        let genai = Selection {
            genai: true,
            ..Default::default()
        };
        assert!(!genai.keeps(&span));
    }

    #[test]
    fn typed_filters_fall_back_to_literal_text() {
        assert!(typed_filter("get /A(").unwrap().is_match("GET /a(1)"));
        assert!(typed_filter("c.rt").unwrap().is_match("cart"));
        assert!(typed_filter("").is_none());
    }
}
