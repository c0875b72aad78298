//! `qyl watch`: a live terminal view of what a running qyl receives.

use clap::Args;

use super::client::RemoteArgs;

#[derive(Args, Debug)]
pub struct WatchArgs {
    #[command(flatten)]
    pub remote: RemoteArgs,
}

pub fn run(args: WatchArgs) -> anyhow::Result<()> {
    let _ = args;
    anyhow::bail!("qyl watch is being written")
}
