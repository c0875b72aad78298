//! Auto-resolve: unresolved groups with no event for `[errors]
//! auto_resolve_after`, and (`auto_resolve_after_deploy`) those with no
//! event since the latest deploy of their service once that release has
//! run for the quiet time, become resolved. A periodic job that sends the
//! changes through the writer like any other, so they are ordered with the
//! events being counted (an event in the same commit keeps its group open).

use std::time::Duration;

use tokio::sync::watch;

use crate::model::errors::ErrorCommand;
use crate::model::now_unix_nano;
use crate::model::Batch;
use crate::storage::writer::WriterHandle;

/// How long a group must stay quiet before the job resolves it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuietTimes {
    /// Without any event (`auto_resolve_after`).
    pub since_last_event: Option<Duration>,
    /// Without any event since a deploy (`auto_resolve_after_deploy`).
    pub since_deploy: Option<Duration>,
}

impl QuietTimes {
    pub fn from_config(c: &crate::config::ErrorsConfig) -> QuietTimes {
        QuietTimes {
            since_last_event: c.auto_resolve_after(),
            since_deploy: c.auto_resolve_after_deploy(),
        }
    }

    /// Whether the job has anything to do.
    pub fn any(&self) -> bool {
        self.since_last_event.is_some() || self.since_deploy.is_some()
    }

    /// One round's commands, at `now`.
    pub fn commands(&self, now: u64) -> Vec<ErrorCommand> {
        let mut out = Vec::new();
        if let Some(quiet) = self.since_last_event {
            out.push(ErrorCommand::AutoResolve {
                before_unix_nano: now.saturating_sub(quiet.as_nanos() as u64),
                at_unix_nano: now,
            });
        }
        if let Some(quiet) = self.since_deploy {
            out.push(ErrorCommand::ResolveQuietAfterDeploy {
                quiet_ns: quiet.as_nanos() as u64,
                at_unix_nano: now,
            });
        }
        out
    }
}

/// How often the job looks: a tenth of the shortest quiet period, between
/// 1 s and 5 s, so a group is resolved at most that long after it qualifies
/// (each look is one small writer job).
pub fn check_interval(quiet: Duration) -> Duration {
    (quiet / 10).clamp(Duration::from_secs(1), Duration::from_secs(5))
}

/// Runs until `stop` turns true.
pub async fn run(
    writer: WriterHandle,
    quiet: QuietTimes,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let shortest = [quiet.since_last_event, quiet.since_deploy]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(Duration::from_secs(50));
    let every = check_interval(shortest);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return Ok(()),
        }
        let batch = Batch {
            error_commands: quiet.commands(now_unix_nano()),
            ..Batch::default()
        };
        // A full queue or a failed commit only delays this to the next round.
        if let Err(e) = writer.write(batch).await {
            tracing::debug!(error = %e, "auto-resolve skipped this round");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_round_sends_what_is_configured() {
        let s = Duration::from_secs;
        let q = QuietTimes {
            since_last_event: Some(s(100)),
            since_deploy: Some(s(7)),
        };
        assert_eq!(
            q.commands(1_000_000_000_000),
            vec![
                ErrorCommand::AutoResolve {
                    before_unix_nano: 900_000_000_000,
                    at_unix_nano: 1_000_000_000_000
                },
                ErrorCommand::ResolveQuietAfterDeploy {
                    quiet_ns: 7_000_000_000,
                    at_unix_nano: 1_000_000_000_000
                },
            ]
        );
        assert!(!QuietTimes::default().any());
        assert_eq!(check_interval(s(7)), s(1));
        assert_eq!(check_interval(s(14 * 86_400)), s(5));
    }
}
