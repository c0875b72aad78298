//! `qyl watch`: a live terminal view of what a running qyl receives, for a
//! developer with their application in one terminal and qyl in another.
//!
//! It is a client of `GET /api/v1/live` like the dashboard (not a second
//! receiver), so it works against a qyl in a container or elsewhere.
//!
//! - `stream`: the SSE connection, kept across qyl restarts by resuming
//!   after the last id seen;
//! - `record`: the fields of each event the views show;
//! - `filter`: the command line's filters, pushed to the server where it
//!   has them;
//! - `line`: one coloured line per record, for pipes and `--no-tui`;
//! - `tui` and `waterfall`: the interactive screen and its trace view.

mod filter;
mod line;
mod record;
mod stream;
mod tui;
mod waterfall;

use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use regex::Regex;
use tokio::sync::mpsc;

use super::client::{Remote, RemoteArgs};
use filter::Selection;
use stream::{Notice, Update};

#[derive(Args, Debug)]
#[command(
    after_help = "On the interactive screen: space or p pauses and resumes, / filters as you \
type (a regular expression or plain text), Esc clears the filter, ↑ ↓ PgUp PgDn select, Enter \
opens the selected row's trace as a waterfall (Esc goes back), q or Ctrl-C quits.\n\n\
When the stream breaks (qyl restarted), the watch reconnects and resumes after the last record \
it showed, so nothing is repeated; records qyl no longer holds are reported as missed."
)]
pub struct WatchArgs {
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// One line per record even when stdout is a terminal, instead of the
    /// interactive screen.
    #[arg(long = "no-tui", visible_alias = "lines")]
    pub no_tui: bool,
    /// NDJSON for scripts: one object per record with its `type` (span,
    /// log, error, function), `seq` (the event id) and `record` (the row as
    /// the REST API returns it); objects of type gap and lagged say when
    /// records were lost. Notices go to stderr.
    #[arg(long)]
    pub json: bool,
    /// Only errors: spans with status ERROR, logs at ERROR or above, and
    /// error groups that became new, regressed or escalating.
    #[arg(long)]
    pub errors: bool,
    /// Only GenAI calls: model, input and output tokens, cost and latency
    /// of each.
    #[arg(long)]
    pub genai: bool,
    /// Only this service (`service.name`, exactly).
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
    /// Only spans at least this long, e.g. 250ms, 1.5s (a bare number is
    /// milliseconds).
    #[arg(long, value_name = "DURATION", value_parser = parse_min_duration)]
    pub min_duration: Option<Duration>,
    /// Only records whose name, body or attributes match this regular
    /// expression.
    #[arg(long, value_name = "REGEX")]
    pub grep: Option<Regex>,
    /// Colour the lines: auto (when stdout is a terminal and NO_COLOR is
    /// not set), always or never.
    #[arg(long, value_enum, default_value_t = ColorWhen::Auto, value_name = "WHEN")]
    pub color: ColorWhen,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorWhen {
    Auto,
    Always,
    Never,
}

fn parse_min_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(ms) = s.parse::<f64>() {
        if ms.is_finite() && ms >= 0.0 {
            return Ok(Duration::from_secs_f64(ms / 1000.0));
        }
    }
    // humantime has no fractions ("1.5s"), which people type.
    for (unit, secs) in [
        ("ms", 1e-3),
        ("us", 1e-6),
        ("µs", 1e-6),
        ("s", 1.0),
        ("m", 60.0),
        ("h", 3600.0),
    ] {
        if let Some(n) = s
            .strip_suffix(unit)
            .and_then(|n| n.trim().parse::<f64>().ok())
        {
            if n.is_finite() && n >= 0.0 {
                return Ok(Duration::from_secs_f64(n * secs));
            }
        }
    }
    humantime::parse_duration(s).map_err(|e| format!("{e} (e.g. 250ms, 1.5s)"))
}

/// What the watch prints to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Screen,
    Lines { color: bool },
    Json,
}

pub fn run(args: WatchArgs) -> anyhow::Result<()> {
    let remote = Remote::from_args(&args.remote)?;
    let selection = Selection {
        errors: args.errors,
        genai: args.genai,
        service: args.service.clone(),
        min_duration: args.min_duration,
        grep: args.grep.clone(),
    };
    let stdout_is_terminal = std::io::stdout().is_terminal();
    let mode = if args.json {
        Mode::Json
    } else if args.no_tui || !stdout_is_terminal {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Mode::Lines {
            color: match args.color {
                ColorWhen::Always => true,
                ColorWhen::Never => false,
                ColorWhen::Auto => stdout_is_terminal && !no_color,
            },
        }
    } else {
        Mode::Screen
    };
    // One worker for the stream; the screen's loop runs on this thread.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match mode {
        Mode::Screen => tui::run(&runtime, remote, selection),
        Mode::Lines { .. } | Mode::Json => runtime.block_on(print(remote, selection, mode)),
    }
}

/// The line and NDJSON modes: print until interrupted (exit 0) or until
/// the server refuses the watch (the error, exit 1).
async fn print(remote: Remote, selection: Selection, mode: Mode) -> anyhow::Result<()> {
    let (tx, mut rx) = mpsc::channel(1024);
    let follower = tokio::spawn(stream::follow(remote, selection.server_params(), tx));
    let quit = quit_requested();
    tokio::pin!(quit);
    // Flushed when nothing more is waiting, not per line (stdout's own
    // line buffering would write each record separately).
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    loop {
        let update = tokio::select! {
            u = rx.recv() => u,
            _ = &mut quit => return Ok(()),
        };
        let Some(update) = update else { break };
        let written = match update {
            Update::Record(r) if selection.keeps(&r) => match mode {
                Mode::Json => {
                    // Written by hand so `type` and `seq` come first, where
                    // a reader's eye (and `head -c`) finds them.
                    writeln!(
                        out,
                        r#"{{"type":"{}","seq":{},"record":{}}}"#,
                        r.kind.as_str(),
                        r.seq,
                        r.data
                    )
                }
                Mode::Lines { color } => {
                    writeln!(out, "{}", line::line(&r, selection.genai, color))
                }
                Mode::Screen => Ok(()),
            },
            Update::Record(_) => Ok(()),
            Update::Notice(n) => {
                // People read stderr; scripts reading the NDJSON also learn
                // that records were lost, in line with the records.
                eprintln!("qyl watch: {n}");
                let lost = match &n {
                    Notice::Gap { missed } => {
                        Some(format!(r#"{{"type":"gap","missed":{missed}}}"#))
                    }
                    Notice::Lagged { skipped } => {
                        Some(format!(r#"{{"type":"lagged","skipped":{skipped}}}"#))
                    }
                    _ => None,
                };
                match (mode, lost) {
                    (Mode::Json, Some(obj)) => writeln!(out, "{obj}"),
                    _ => Ok(()),
                }
            }
        };
        let flushed = written.and_then(|()| match rx.is_empty() {
            true => out.flush(),
            false => Ok(()),
        });
        match flushed {
            Ok(()) => {}
            // `qyl watch | head`: the reader has what it wanted.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(e).context("writing to stdout"),
        }
    }
    follower.await.context("the live stream's task failed")?
}

/// Resolves when the user asks the line mode to stop: Ctrl-C (SIGINT),
/// SIGTERM, or `q` + Enter typed in the terminal.
async fn quit_requested() {
    let (typed_q, mut typed) = mpsc::channel::<()>(1);
    if std::io::stdin().is_terminal() {
        // A thread, not a blocking task: the runtime would wait for it at
        // exit, and a read of the terminal does not end by itself.
        std::thread::spawn(move || {
            for line in std::io::stdin().lines() {
                match line {
                    Ok(l) if l.trim() == "q" => {
                        let _ = typed_q.blocking_send(());
                        return;
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        });
    }
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
        Some(()) = typed.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_duration_takes_units_or_milliseconds() {
        assert_eq!(parse_min_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(
            parse_min_duration("1.5s").ok(),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_min_duration("40"), Ok(Duration::from_millis(40)));
        assert!(parse_min_duration("soon").is_err());
    }
}
