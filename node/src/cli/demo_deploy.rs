//! The demo's deployment (placeholder until deployments land).

use super::demo::DemoCluster;

pub(super) fn run(_cluster: &DemoCluster) -> anyhow::Result<anyhow::Result<()>> {
    Ok(Ok(()))
}
