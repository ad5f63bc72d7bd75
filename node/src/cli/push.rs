//! `push` and `prefetch` (placeholder until the revision module lands).

use std::process::ExitCode;

use super::client::ApiClient;
use super::deploy::{PrefetchArgs, PushArgs};

pub(super) fn run(_client: &ApiClient, _args: &PushArgs) -> anyhow::Result<()> {
    anyhow::bail!("push is not available in this build")
}

pub(super) fn prefetch(_client: &ApiClient, _args: &PrefetchArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("prefetch is not available in this build")
}
