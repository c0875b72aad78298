//! Auto-resolve: unresolved groups with no event for `[errors]
//! auto_resolve_after` become resolved. A periodic job that sends the
//! change through the writer like any other, so it is ordered with the
//! events being counted (an event in the same commit keeps its group open).

use std::time::Duration;

use tokio::sync::watch;

use crate::model::errors::ErrorCommand;
use crate::model::now_unix_nano;
use crate::model::Batch;
use crate::storage::writer::WriterHandle;

/// How often the job looks: a tenth of the quiet period, between 1 s and
/// 5 s, so a group is resolved at most that long after it qualifies (each
/// look is one small writer job).
pub fn check_interval(quiet: Duration) -> Duration {
    (quiet / 10).clamp(Duration::from_secs(1), Duration::from_secs(5))
}

/// Runs until `stop` turns true.
pub async fn run(
    writer: WriterHandle,
    quiet: Duration,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let every = check_interval(quiet);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return Ok(()),
        }
        let now = now_unix_nano();
        let batch = Batch {
            error_commands: vec![ErrorCommand::AutoResolve {
                before_unix_nano: now.saturating_sub(quiet.as_nanos() as u64),
                at_unix_nano: now,
            }],
            ..Batch::default()
        };
        // A full queue or a failed commit only delays this to the next round.
        if let Err(e) = writer.write(batch).await {
            tracing::debug!(error = %e, "auto-resolve skipped this round");
        }
    }
}
