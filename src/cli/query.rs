//! `qyl query`: SQL and named shortcuts against a running qyl.

use clap::Args;

use super::client::RemoteArgs;

#[derive(Args, Debug)]
pub struct QueryArgs {
    #[command(flatten)]
    pub remote: RemoteArgs,
}

pub fn run(args: QueryArgs) -> anyhow::Result<i32> {
    let _ = args;
    anyhow::bail!("qyl query is being written")
}
