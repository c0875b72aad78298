//! The one-line form of a record, for the line mode (`--no-tui`, or stdout
//! not a terminal) and the rows of the interactive screen: time, kind,
//! service and duration in fixed columns so a scrolling log stays readable,
//! then the variable text, then the short trace id to look up.

use std::fmt::Write as _;

use super::record::{Kind, Level, LiveRecord};

/// Columns the service name gets; longer names are cut with `…`.
pub const SERVICE_WIDTH: usize = 16;

/// ANSI SGR codes; only written when colour is on.
mod sgr {
    pub const RESET: &str = "\x1b[0m";
    pub const DIM: &str = "\x1b[2m";
    pub const RED: &str = "\x1b[31m";
    pub const BOLD_RED: &str = "\x1b[1;31m";
    pub const GREEN: &str = "\x1b[32m";
    pub const YELLOW: &str = "\x1b[33m";
    pub const MAGENTA: &str = "\x1b[35m";
    pub const CYAN: &str = "\x1b[36m";
}

/// The cells of a line, uncoloured; `line` joins them and the screen lays
/// them out in its own columns.
#[derive(Debug, Clone, PartialEq)]
pub struct Cells {
    pub time: String,
    pub kind: &'static str,
    pub service: String,
    pub duration: String,
    pub status: String,
    pub text: String,
    pub trace: String,
}

pub fn cells(r: &LiveRecord, genai: bool) -> Cells {
    let kind = match r.kind {
        Kind::Span if genai => "genai",
        Kind::Span => "span",
        Kind::Log => "log",
        Kind::Error => "error",
        Kind::Function => "fn",
    };
    let text = match (&r.gen_ai, genai) {
        (Some(g), true) => {
            let mut t = g.model.clone().unwrap_or_else(|| "?".into());
            let tokens = |n: Option<i64>| n.map_or("?".to_string(), |n| n.to_string());
            let _ = write!(
                t,
                "  in {} out {}",
                tokens(g.input_tokens),
                tokens(g.output_tokens)
            );
            match g.cost_usd {
                Some(c) => {
                    let _ = write!(t, "  {}", format_cost(c));
                }
                None => t.push_str("  $?"),
            }
            let _ = write!(t, "  {}", r.text);
            t
        }
        _ => r.text.clone(),
    };
    Cells {
        time: local_time(r.time_ns),
        kind,
        service: fit(&r.service, SERVICE_WIDTH),
        duration: r.duration_ms.map(format_duration).unwrap_or_default(),
        status: r.status.clone(),
        // One record, one line: multi-line bodies (stack traces) are folded.
        text: text.replace(['\n', '\r'], " ⏎ "),
        trace: r
            .trace_id
            .as_deref()
            .map(|t| t.chars().take(8).collect())
            .unwrap_or_default(),
    }
}

/// The record as one line; with `color`, in ANSI colours by level.
pub fn line(r: &LiveRecord, genai: bool, color: bool) -> String {
    let c = cells(r, genai);
    let paint = |code: &str, s: &str| {
        if color && !s.is_empty() {
            format!("{code}{s}{}", sgr::RESET)
        } else {
            s.to_string()
        }
    };
    let level_code = match r.level {
        Level::Error => sgr::BOLD_RED,
        Level::Warn => sgr::YELLOW,
        Level::Ok => sgr::GREEN,
        Level::Quiet => sgr::DIM,
        Level::Normal => "",
    };
    let kind_code = match r.kind {
        Kind::Error => sgr::MAGENTA,
        Kind::Function => sgr::CYAN,
        _ => sgr::DIM,
    };
    let text_code = match r.level {
        Level::Error => sgr::RED,
        Level::Warn => sgr::YELLOW,
        Level::Quiet => sgr::DIM,
        _ => "",
    };
    let mut out = String::new();
    let _ = write!(
        out,
        "{} {} {} {:>9} {} {}",
        paint(sgr::DIM, &c.time),
        paint(kind_code, &format!("{:<5}", c.kind)),
        paint(sgr::CYAN, &pad(&c.service, SERVICE_WIDTH)),
        c.duration,
        paint(level_code, &format!("{:<5}", c.status)),
        paint(text_code, &c.text),
    );
    if !c.trace.is_empty() {
        let _ = write!(out, "  {}", paint(sgr::DIM, &format!("trace={}", c.trace)));
    }
    out
}

/// `182ms`, `1.52s`, `0.41ms`: three significant figures at most.
pub fn format_duration(ms: f64) -> String {
    if ms >= 10_000.0 {
        format!("{:.1}s", ms / 1000.0)
    } else if ms >= 1000.0 {
        format!("{:.2}s", ms / 1000.0)
    } else if ms >= 100.0 {
        format!("{ms:.0}ms")
    } else if ms >= 10.0 {
        format!("{ms:.1}ms")
    } else {
        format!("{ms:.2}ms")
    }
}

/// Dollars with enough decimals that a cheap call is not `$0.0000`.
pub fn format_cost(usd: f64) -> String {
    if usd >= 1.0 {
        format!("${usd:.2}")
    } else if usd >= 0.01 {
        format!("${usd:.4}")
    } else {
        format!("${usd:.6}")
    }
}

/// `s` cut to `width` characters, the last one `…` when cut.
pub fn fit(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_string();
    }
    let mut out: String = s.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn pad(s: &str, width: usize) -> String {
    let n = s.chars().count();
    format!("{s}{}", " ".repeat(width.saturating_sub(n)))
}

/// `HH:MM:SS.mmm` in the local time zone (as the clock on the developer's
/// wall shows it); `--:--:--.---` when the record has no time.
pub fn local_time(unix_nano: u64) -> String {
    if unix_nano == 0 {
        return "--:--:--.---".into();
    }
    let secs = (unix_nano / 1_000_000_000) as i64;
    let millis = (unix_nano / 1_000_000) % 1000;
    let (h, m, s) = local_hms(secs);
    format!("{h:02}:{m:02}:{s:02}.{millis:03}")
}

/// Hours, minutes and seconds of the local time at `secs` since the epoch.
fn local_hms(secs: i64) -> (i64, i64, i64) {
    #[cfg(unix)]
    {
        let t = secs as libc::time_t;
        // SAFETY: localtime_r writes only into `tm`, which is a plain C
        // struct that all-zero bytes represent validly; both pointers are
        // valid for the call.
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
        if ok {
            return (tm.tm_hour as i64, tm.tm_min as i64, tm.tm_sec as i64);
        }
    }
    // No time zone data: UTC.
    let day = secs.rem_euclid(86_400);
    (day / 3600, day % 3600 / 60, day % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn span() -> LiveRecord {
        LiveRecord::new(
            9,
            Kind::Span,
            json!({"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "name": "POST /chat", "service_name": "a-very-long-service-name",
                   "start_time_unix_nano": "1700000000123456789", "duration_ms": 182.34, "status_code": "ERROR",
                   "gen_ai": {"provider": "openai", "request_model": "gpt-4o", "input_tokens": 120, "output_tokens": 30}}),
        )
    }

    #[test]
    fn lines_have_aligned_columns_and_colour_only_when_asked() {
        let plain = line(&span(), false, false);
        assert!(!plain.contains('\x1b'));
        let (time, rest) = plain.split_at(12);
        assert!(time.ends_with(".123"), "{plain}");
        assert_eq!(
            rest,
            " span  a-very-long-ser…     182ms ERROR POST /chat  trace=4bf92f35"
        );
        let coloured = line(&span(), false, true);
        assert!(coloured.contains("\x1b[1;31mERROR"), "{coloured:?}");
    }

    #[test]
    fn genai_lines_show_model_tokens_and_cost() {
        let c = cells(&span(), true);
        assert_eq!(c.kind, "genai");
        assert_eq!(c.text, "gpt-4o  in 120 out 30  $?  POST /chat");
    }

    #[test]
    fn durations_keep_three_figures() {
        assert_eq!(format_duration(0.4123), "0.41ms");
        assert_eq!(format_duration(12.34), "12.3ms");
        assert_eq!(format_duration(1520.0), "1.52s");
        assert_eq!(local_time(0), "--:--:--.---");
        assert_eq!(format_cost(0.000036), "$0.000036");
        assert_eq!(format_cost(0.0123), "$0.0123");
    }
}
