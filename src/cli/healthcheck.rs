//! `qyl healthcheck`: readiness as an exit code, for a container's
//! HEALTHCHECK (the runtime image has no curl) or a script. It asks a running
//! qyl's `/health/ready` (or `/health/live` with `--live`), which never
//! needs a token, and exits 0 when the answer is 200 and 1 otherwise,
//! printing the reason either way (Docker keeps it in `docker inspect`).

use std::time::Duration;

use clap::Args;

use super::client::{Remote, RemoteArgs};

#[derive(Args, Debug)]
pub struct HealthcheckArgs {
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// Check liveness (the writer runs and is not stuck) rather than
    /// readiness (also started, not stopping, commits succeeding).
    #[arg(long)]
    pub live: bool,
    /// Give up after this long, e.g. 3s or 500ms.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// The exit code: 0 healthy, 1 not (or not reachable, or misconfigured).
pub fn run(args: HealthcheckArgs) -> i32 {
    match check(&args) {
        Ok(status) => {
            println!("{status}");
            0
        }
        Err(e) => {
            eprintln!("qyl healthcheck: {e:#}");
            1
        }
    }
}

fn check(args: &HealthcheckArgs) -> anyhow::Result<String> {
    let remote = Remote::from_args(&args.remote)?;
    let path = if args.live {
        "/health/live"
    } else {
        "/health/ready"
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let answer = tokio::time::timeout(args.timeout, remote.get_json::<serde_json::Value>(path))
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "{} did not answer within {}",
                    remote.url(path),
                    humantime::format_duration(args.timeout)
                )
            })??;
        Ok(answer["status"].as_str().unwrap_or("ok").to_string())
    })
}
