//! What each event does: a request reaching its uploader, a piece leaving it, a
//! response reaching its requester, a piece announcement, a periodic pull.

use std::time::Duration;

use fleetmesh_core::swarm::{Download, Received, SendPriority, UploadDecision};
use fleetmesh_state::model::revision::ChunkRef;
use fleetmesh_transport::NodeId;
use rand::Rng;

use super::super::links::Transfer;
use super::super::payload::Verified;
use super::super::topology::SEED;
use super::{Event, FromIndex, Reply, Role, World};

impl World {
    pub(super) fn on_request(&mut self, requester: usize, uploader: usize, piece: usize, chunks: Vec<ChunkRef>) {
        // The request carries the requester's have-set; an uploader that is itself
        // downloading learns from it.
        if self.nodes[uploader].download.is_some() {
            self.learn_bitfield(uploader, requester);
            self.pump(uploader);
        }
        let latency = self.latency_ns();
        let role = self.nodes[uploader].role;
        let declined =
            self.nodes[uploader].advertisement.as_ref().is_some_and(|advertisement| !advertisement.accepts(piece));
        if declined || self.nodes[uploader].uploads.try_acquire(NodeId::from_index(requester)) == UploadDecision::Busy {
            self.busy_replies += 1;
            self.queue.push(self.now_ns + latency, Event::Response { requester, uploader, piece, reply: Reply::Busy });
            return;
        }
        if role != Role::Byzantine && !self.nodes[uploader].store.holds_piece(&self.map, piece) {
            // Asked for a piece it does not hold (a stale have-set): say so.
            self.nodes[uploader].uploads.release(NodeId::from_index(requester));
            self.queue
                .push(self.now_ns + latency, Event::Response { requester, uploader, piece, reply: Reply::Failed });
            return;
        }
        if let Some(advertisement) = self.nodes[uploader].advertisement.as_mut() {
            advertisement.sending(piece);
        }
        let mut transfer = Transfer::new(uploader, requester, piece, chunks, role == Role::Byzantine);
        if self.tuning.newest_first {
            transfer.priority = match &self.nodes[uploader].download {
                Some(download) => SendPriority::completed(download.completion_rank(piece).unwrap_or(0)),
                None => SendPriority::ORIGIN,
            };
        }
        if let Some(started) = self.links.enqueue(transfer) {
            self.schedule_sent(started);
        }
    }

    pub(super) fn on_sent(&mut self, transfer: Transfer) {
        for started in self.links.finish(transfer.uploader, transfer.requester) {
            self.schedule_sent(started);
        }
        self.nodes[transfer.uploader].uploads.release(NodeId::from_index(transfer.requester));
        self.bytes_sent[transfer.uploader] += transfer.bytes;
        if transfer.uploader == SEED && !self.seed_sent.get(transfer.piece) {
            self.seed_sent.set(transfer.piece);
            if self.seed_sent.is_full() {
                self.seed_all_sent_ns = Some(self.now_ns);
            }
        }
        let latency = self.latency_ns();
        let lost = self.params.loss > 0.0 && self.rng.gen_bool(self.params.loss.min(1.0));
        let Transfer { uploader, requester, piece, chunks, forged, .. } = transfer;
        if lost {
            // The uploader sees its stream fail; the requester notices only when its
            // idle timeout expires.
            if let Some(advertisement) = self.nodes[uploader].advertisement.as_mut() {
                advertisement.send_failed(piece);
            }
            let at = self.now_ns + latency + (self.tuning.loss_timeout_ms * 1e6) as u64;
            self.queue.push(at, Event::Response { requester, uploader, piece, reply: Reply::Failed });
        } else {
            let reply = Reply::Data { chunks, forged };
            self.queue.push(self.now_ns + latency, Event::Response { requester, uploader, piece, reply });
        }
    }

    pub(super) fn on_response(&mut self, requester: usize, uploader: usize, piece: usize, reply: Reply) {
        let now = Duration::from_nanos(self.now_ns);
        let node = &mut self.nodes[requester];
        let outcome = match reply {
            Reply::Data { chunks, forged } => match node.store.verify_and_store(&self.map, piece, &chunks, forged) {
                Verified::Stored => Received::Ok,
                Verified::Corrupt(chunk) => Received::Corrupt { chunk },
            },
            Reply::Busy => Received::Busy,
            Reply::Failed => Received::Failed,
        };
        let Some(download) = node.download.as_mut() else {
            return;
        };
        let had = download.have().get(piece);
        download
            .piece_received(NodeId::from_index(uploader), piece, outcome, now)
            .expect("simulated pieces are in range");
        let completed_piece = !had && download.have().get(piece);
        if let Received::Corrupt { .. } = outcome {
            self.corrupt_from.insert((requester, uploader));
        } else {
            // The response carries the uploader's have-set.
            self.learn_bitfield(requester, uploader);
        }
        if completed_piece && self.tuning.announce_pieces {
            let at = self.now_ns + self.latency_ns();
            self.queue.push(at, Event::Announce { node: requester, piece });
        }
        self.note_completion(requester);
        self.pump(requester);
    }

    pub(super) fn on_announce(&mut self, node: usize, piece: usize) {
        for index in 0..self.nodes[node].neighbours.len() {
            let neighbour = self.nodes[node].neighbours[index];
            let Some(download) = self.nodes[neighbour].download.as_mut() else {
                continue;
            };
            if !download.is_complete() {
                download.peer_has(NodeId::from_index(node), piece).expect("simulated pieces are in range");
                // A saturated download cannot act on the news before its next answer.
                if !download.is_saturated() {
                    self.pump(neighbour);
                }
            }
        }
    }

    pub(super) fn on_pull(&mut self, node: usize) {
        let complete = self.nodes[node].download.as_ref().is_none_or(Download::is_complete);
        if complete {
            return;
        }
        for index in 0..self.nodes[node].neighbours.len() {
            let neighbour = self.nodes[node].neighbours[index];
            self.learn_bitfield(node, neighbour);
        }
        // Like a real node, ask the tracker (the leader) for more peers at most once per
        // pull, not on every event.
        self.add_neighbours(node);
        self.pump(node);
        let interval = self.tuning.pull_interval_ms * 1e6;
        let next = self.now_ns + (interval * self.rng.gen_range(0.8..1.2)) as u64;
        self.queue.push(next, Event::Pull { node });
    }
}
