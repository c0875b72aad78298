//! `qyl healthcheck`: readiness as an exit code.

use clap::Args;

use super::client::RemoteArgs;

#[derive(Args, Debug)]
pub struct HealthcheckArgs {
    #[command(flatten)]
    pub remote: RemoteArgs,
}

pub fn run(args: HealthcheckArgs) -> i32 {
    let _ = args;
    1
}
