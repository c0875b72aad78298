//! Following `/api/v1/live` for as long as `qyl watch` runs: qyl may restart
//! or the network drop, and a developer leaves the watch open across that.
//!
//! When the stream ends or fails, it is opened again with backoff, sending
//! `Last-Event-ID` = the newest id seen, so the server replays what was
//! committed meanwhile (or says with a `gap` event how much it no longer
//! has). qyl numbers records on from the newest stored one after a restart,
//! so the ids stay comparable across restarts; a record at or below the
//! newest id seen is a repeat and is dropped.
//!
//! Failures the user must fix (401, 400 and other 4xx) end the watch with
//! the server's message instead of retrying forever.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use reqwest::StatusCode;
use tokio::sync::mpsc;

use super::record::{Kind, LiveRecord};
use crate::cli::client::{server_error, Remote};

/// What the stream tells the views.
#[derive(Debug)]
pub enum Update {
    Record(Box<LiveRecord>),
    Notice(Notice),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// The stream is open; `resumed_after` is the id it resumed after when
    /// this is a reconnection.
    Connected {
        url: String,
        resumed_after: Option<u64>,
        reconnected: bool,
    },
    /// The stream could not be opened or was lost; trying again after
    /// `retry_in`.
    Disconnected { reason: String, retry_in: Duration },
    /// Records after the resume point that the server no longer had.
    Gap { missed: u64 },
    /// The watch fell a whole buffer behind; the server skipped records and
    /// closed the stream (the watch reconnects).
    Lagged { skipped: u64 },
}

impl std::fmt::Display for Notice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Notice::Connected {
                url,
                resumed_after,
                reconnected,
            } => {
                let verb = if *reconnected {
                    "reconnected"
                } else {
                    "connected"
                };
                write!(f, "{verb} to {url}")?;
                match resumed_after {
                    Some(seq) => write!(f, " (resumed after #{seq})"),
                    None => Ok(()),
                }
            }
            Notice::Disconnected { reason, retry_in } => {
                write!(f, "{reason}; retrying in {:.1}s", retry_in.as_secs_f64())
            }
            Notice::Gap { missed } => write!(
                f,
                "missed up to {missed} records while disconnected (no longer in qyl's live buffer; they are stored, see qyl query)"
            ),
            Notice::Lagged { skipped } => write!(
                f,
                "fell behind: qyl skipped {skipped} records for this watch"
            ),
        }
    }
}

/// Backoff between attempts: doubles from the first to the last.
const FIRST_RETRY: Duration = Duration::from_millis(500);
const LAST_RETRY: Duration = Duration::from_secs(5);

/// qyl sends a heartbeat every `stream.heartbeat_secs` (15 s by default) on
/// an idle stream; silence for this long means the connection is dead
/// without having been closed (a suspended laptop, a dropped network).
const SILENCE: Duration = Duration::from_secs(60);

/// How a connection ended.
enum Ended {
    /// Retry, after telling the user why.
    Retry(String),
    /// Give up: the user must change something.
    Fatal(anyhow::Error),
    /// Nobody is listening any more.
    Closed,
}

/// Follows the live stream with `params`, sending records and notices to
/// `tx`, until `tx` closes (Ok) or the server refuses the request (Err).
pub async fn follow(
    remote: Remote,
    params: Vec<(&'static str, String)>,
    tx: mpsc::Sender<Update>,
) -> anyhow::Result<()> {
    let client = remote.streaming()?;
    let url = reqwest::Url::parse_with_params(&remote.url("/api/v1/live"), &params)
        .context("building the live stream's URL")?;
    let mut last_seen: Option<u64> = None;
    let mut delay = FIRST_RETRY;
    let mut connections = 0u64;
    loop {
        let opened = Instant::now();
        let ended = connect_once(
            &client,
            &url,
            &remote.base,
            &mut last_seen,
            &mut connections,
            &tx,
        )
        .await;
        let reason = match ended {
            Ended::Closed => return Ok(()),
            Ended::Fatal(e) => return Err(e),
            Ended::Retry(reason) => reason,
        };
        // A connection that lived a while was healthy: start over from the
        // short delay, so a restart of qyl is bridged quickly.
        if opened.elapsed() > LAST_RETRY * 2 {
            delay = FIRST_RETRY;
        }
        let notice = Notice::Disconnected {
            reason,
            retry_in: delay,
        };
        if tx.send(Update::Notice(notice)).await.is_err() {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = tx.closed() => return Ok(()),
        }
        delay = (delay * 2).min(LAST_RETRY);
    }
}

async fn connect_once(
    client: &reqwest::Client,
    url: &reqwest::Url,
    base: &str,
    last_seen: &mut Option<u64>,
    connections: &mut u64,
    tx: &mpsc::Sender<Update>,
) -> Ended {
    let mut request = client
        .get(url.clone())
        .header(reqwest::header::ACCEPT, "text/event-stream");
    if let Some(seq) = *last_seen {
        request = request.header("Last-Event-ID", seq.to_string());
    }
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) => return Ended::Retry(format!("cannot reach qyl at {base} ({})", root_cause(&e))),
    };
    let status = response.status();
    if !status.is_success() {
        let body = response.bytes().await.unwrap_or_default();
        let error = server_error(status, &body);
        // Too many streams (503) and server errors may pass; a bad token
        // or a bad filter will not.
        return if status.is_client_error() && status != StatusCode::TOO_MANY_REQUESTS {
            Ended::Fatal(error)
        } else {
            Ended::Retry(error.to_string())
        };
    }
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("text/event-stream") {
        // Another server at that address (a proxy's page, the OTLP port):
        // retrying will not turn it into qyl.
        return Ended::Fatal(anyhow::anyhow!(
            "{base} answered /api/v1/live with {content_type:?}, not an event stream: is --url qyl's HTTP port?"
        ));
    }
    *connections += 1;
    let notice = Notice::Connected {
        url: base.to_string(),
        resumed_after: last_seen.filter(|_| *connections > 1),
        reconnected: *connections > 1,
    };
    if tx.send(Update::Notice(notice)).await.is_err() {
        return Ended::Closed;
    }

    // Heartbeats are SSE comments, which the parser swallows; watch the
    // bytes instead to tell a quiet stream from a dead one.
    let heard = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let heard_in_body = heard.clone();
    let bytes = response.bytes_stream().inspect(move |_| {
        heard_in_body.store(started.elapsed().as_millis() as u64, Ordering::Relaxed)
    });
    let mut events = std::pin::pin!(bytes.eventsource());
    let mut check = tokio::time::interval(Duration::from_secs(5));
    loop {
        let event = tokio::select! {
            e = events.next() => e,
            _ = check.tick() => {
                let quiet = started.elapsed().saturating_sub(Duration::from_millis(heard.load(Ordering::Relaxed)));
                if quiet > SILENCE {
                    return Ended::Retry(format!("nothing from qyl at {base} for {}s", quiet.as_secs()));
                }
                continue;
            }
            _ = tx.closed() => return Ended::Closed,
        };
        let event = match event {
            None => return Ended::Retry(format!("qyl at {base} closed the stream")),
            Some(Err(e)) => return Ended::Retry(format!("the stream from {base} broke ({e})")),
            Some(Ok(e)) => e,
        };
        let update = match event.event.as_str() {
            "gap" => {
                let missed = field_u64(&event.data, "missed");
                Update::Notice(Notice::Gap { missed })
            }
            "lagged" => {
                let skipped = field_u64(&event.data, "skipped");
                Update::Notice(Notice::Lagged { skipped })
            }
            name => {
                let Some(kind) = Kind::from_event(name) else {
                    continue;
                };
                let Ok(seq) = event.id.trim().parse::<u64>() else {
                    continue;
                };
                if last_seen.is_some_and(|last| seq <= last) {
                    continue;
                }
                *last_seen = Some(seq);
                let Ok(data) = serde_json::from_str(&event.data) else {
                    continue;
                };
                Update::Record(Box::new(LiveRecord::new(seq, kind, data)))
            }
        };
        if tx.send(update).await.is_err() {
            return Ended::Closed;
        }
    }
}

fn field_u64(data: &str, key: &str) -> u64 {
    serde_json::from_str::<serde_json::Value>(data)
        .ok()
        .and_then(|v| v.get(key)?.as_u64())
        .unwrap_or(0)
}

/// The innermost cause, which says what happened ("Connection refused")
/// where reqwest's own message only says that the request failed.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_read_as_sentences() {
        let n = Notice::Connected {
            url: "http://127.0.0.1:5100".into(),
            resumed_after: Some(1234),
            reconnected: true,
        };
        assert_eq!(
            n.to_string(),
            "reconnected to http://127.0.0.1:5100 (resumed after #1234)"
        );
        let n = Notice::Disconnected {
            reason: "qyl at x closed the stream".into(),
            retry_in: Duration::from_millis(500),
        };
        assert_eq!(
            n.to_string(),
            "qyl at x closed the stream; retrying in 0.5s"
        );
        assert!(Notice::Gap { missed: 3 }.to_string().contains("3 records"));
    }
}
