//! The host agent: what a host does for a deployment, in CodeDeploy's terms
//! (`codedeploy.md` §1, §2, §7, §8).
//!
//! This module holds the building blocks the lifecycle executor strings together, each
//! independent of the network and of Raft:
//! - [`appspec_file`] finds and reads the appspec of an unpacked revision;
//! - [`hooks`] runs one lifecycle event's scripts and reports CodeDeploy diagnostics;
//! - [`install`] is the Install step: cleanup of the previous install, copy, permissions,
//!   and the per-deployment-group records of what was installed;
//! - [`script_log`] is the per-deployment `logs/scripts.log`.
//!
//! Which events run in which order, and which revision's scripts each uses, is decided
//! by the executor, not here.

pub mod appspec_file;
pub mod hooks;
pub mod install;
pub mod script_log;
