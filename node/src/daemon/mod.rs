//! A production node, assembled from the layers: bootstrap a new cluster, join one, or
//! resume from the data directory; then bind QUIC and the HTTP API, start the runtime,
//! the leader's duties, the revision store and the host agent, and run until shutdown.

mod address;
mod api_tls;
pub mod boot;
mod disk;
mod error;
mod node_cert;
mod recover;

pub use api_tls::{api_names, API_CERT_LIFETIME_DEFAULT_SECS};
pub use boot::{run, run_with, NodeConfig, Wiring, VOTERS_MAX};
pub use error::DaemonError;
pub use recover::Recovery;
