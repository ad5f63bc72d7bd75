//! The end-of-run checks: what must hold once the event loop stops, and the report of
//! which invariants held.
//!
//! Checked here: every receiver completed; every completed receiver stored exactly
//! the manifest's chunks (its fingerprint of the hashes of the bytes it stored equals
//! the manifest's, so a single forged chunk that slipped past verification shows);
//! every node that received garbage banned the sender (asking it again is caught as
//! it happens, in the pump); the seed uploaded at most twice the revision; and every
//! download's and upload slot table's own bookkeeping is consistent.

use fleetmesh_transport::NodeId;

use super::super::payload;
use super::super::topology::SEED;
use super::{FromIndex, Outcome, World};

/// Names of the invariants a run checks, as they appear in the report.
pub(crate) const INVARIANTS: [&str; 5] =
    ["receivers_complete", "stored_chunks_verified", "corrupt_peers_banned", "seed_upload_bound", "state_consistent"];

impl World {
    /// Checks the end-of-run invariants and packs the figures.
    pub(super) fn finish(mut self) -> Outcome {
        let expected = payload::expected_fingerprint(&self.map);
        let chunk_count = self.map.chunk_count();
        let mut completion_ns = Vec::new();
        for index in 0..self.nodes.len() {
            let node = &self.nodes[index];
            let Some(download) = node.download.as_ref() else {
                continue;
            };
            completion_ns.push(node.completed_ns);
            let id = index + 1;
            let mut found: Vec<(&'static str, String)> = Vec::new();
            if node.completed_ns.is_none() {
                found.push((
                    "receivers_complete",
                    format!("node {id} holds {} of {} bytes at the end", download.bytes_held(), self.map.total_bytes()),
                ));
            } else if node.store.chunk_count() != chunk_count || node.store.fingerprint() != expected {
                found.push(("stored_chunks_verified", format!("node {id} stored chunks that are not the manifest's")));
            }
            if download.bytes_held() != node.store.bytes(&self.map) {
                found.push(("state_consistent", format!("node {id}: download and store disagree on bytes held")));
            }
            if let Err(violation) = download.check_invariants() {
                found.push(("state_consistent", format!("node {id}: {violation}")));
            }
            if let Err(violation) = node.uploads.check_invariants() {
                found.push(("state_consistent", format!("node {id}: {violation}")));
            }
            for (invariant, text) in found {
                self.violate(invariant, text);
            }
        }
        let unbanned: Vec<String> = self
            .corrupt_from
            .iter()
            .filter(|(node, peer)| {
                !self.nodes[*node]
                    .download
                    .as_ref()
                    .is_some_and(|download| download.is_banned(NodeId::from_index(*peer)))
            })
            .map(|(node, peer)| format!("node {} still trusts {}", node + 1, peer + 1))
            .collect();
        if let Some(first) = unbanned.first() {
            self.violate("corrupt_peers_banned", first.clone());
        }
        let seed_bytes_served = self.bytes_sent[SEED];
        let bound = self.params.revision_bytes.saturating_mul(2);
        if seed_bytes_served > bound {
            self.violate(
                "seed_upload_bound",
                format!("the seed served {seed_bytes_served} bytes, more than 2 x the revision ({bound})"),
            );
        }
        let invariants = INVARIANTS
            .iter()
            .map(|name| {
                (
                    name.to_string(),
                    self.violations.get(name).map_or_else(|| "ok".to_string(), |text| format!("violated: {text}")),
                )
            })
            .collect();
        Outcome {
            completion_ns,
            end_ns: self.now_ns,
            seed_bytes_served,
            seed_all_sent_ns: self.seed_all_sent_ns,
            bytes_moved: self.bytes_sent.iter().sum(),
            busy_replies: self.busy_replies,
            events: self.trace.events(),
            trace_hash: self.trace.hash_hex(),
            pieces: self.map.len(),
            invariants,
        }
    }
}
