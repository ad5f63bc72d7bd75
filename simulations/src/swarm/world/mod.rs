//! The simulated swarm: nodes running the real [`Download`] and [`UploadSlots`], the
//! bandwidth model, and the handlers that turn one event into the next ones.
//!
//! ```text
//!  Download::next_requests ──Request (latency)──▶ uploader: UploadSlots ──Busy──▶ Response(Busy)
//!                                                              └─Accept──▶ Links (send priority, both ends free)
//!  Links: Sent (bytes / rate) ──Response(Data | lost ⇒ Failed after a timeout)──▶ requester:
//!  verify every chunk ──▶ Download::piece_received ──▶ next requests
//!  Pull (every pull interval): neighbours' have-sets ──▶ Download::peer_bitfield
//! ```
//!
//! Have-sets travel three ways, as they would between real nodes: piggybacked on every
//! request (the uploader learns the requester's set) and every response (the requester
//! learns the uploader's), announced to neighbours when a piece completes (if
//! `announce_pieces`), and pulled from every neighbour periodically.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use fleetmesh_core::swarm::{Bitfield, Download, PieceMap, SeedAdvertisement, UploadSlots, UPLOADS_PER_REQUESTER_MAX};
use fleetmesh_state::model::revision::ChunkRef;
use fleetmesh_transport::NodeId;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::links::{Links, Started, Transfer};
use super::payload::{self, PhantomStore};
use super::queue::{EventQueue, Trace, TraceKind};
use super::topology::{self, SEED};
use super::{SwarmParams, SwarmTuning};

mod handlers;
mod invariants;

/// What a node is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// Node 1: holds the whole revision from the start.
    Seed,
    /// Starts empty and must end with the whole revision.
    Receiver,
    /// Claims to hold everything and serves garbage.
    Byzantine,
}

/// One simulated node.
#[derive(Debug)]
struct SimNode {
    role: Role,
    /// `Some` for receivers.
    download: Option<Download>,
    /// `Some` for the seed when super-seeding is on.
    advertisement: Option<SeedAdvertisement>,
    store: PhantomStore,
    /// Sorted indices of the nodes it knows.
    neighbours: Vec<usize>,
    uploads: UploadSlots,
    completed_ns: Option<u64>,
    /// The wake-up already scheduled, if any.
    wake_ns: Option<u64>,
}

/// An answer on its way back.
#[derive(Debug)]
enum Reply {
    Data { chunks: Vec<ChunkRef>, forged: bool },
    Busy,
    Failed,
}

#[derive(Debug)]
enum Event {
    Request {
        requester: usize,
        uploader: usize,
        piece: usize,
        chunks: Vec<ChunkRef>,
    },
    Sent {
        transfer: Transfer,
    },
    Response {
        requester: usize,
        uploader: usize,
        piece: usize,
        reply: Reply,
    },
    Pull {
        node: usize,
    },
    Wake {
        node: usize,
    },
    /// `node`'s announcement that it completed `piece` reaches all its neighbours (one
    /// event for the whole fan-out: they share one latency draw, which keeps the event
    /// count at one per piece instead of one per piece and neighbour).
    Announce {
        node: usize,
        piece: usize,
    },
}

/// The whole simulated swarm.
pub(crate) struct World {
    params: SwarmParams,
    tuning: SwarmTuning,
    map: Arc<PieceMap>,
    full: Bitfield,
    nodes: Vec<SimNode>,
    links: Links,
    queue: EventQueue<Event>,
    trace: Trace,
    /// Network randomness (latency jitter, loss, tracker picks).
    rng: ChaCha8Rng,
    now_ns: u64,
    receivers_left: usize,
    /// Bytes each node sent (forged ones included).
    bytes_sent: Vec<u64>,
    busy_replies: u64,
    /// Per piece: the seed has sent it at least once (whatever it advertises).
    seed_sent: Bitfield,
    /// When the seed finished sending its first copy of every piece.
    seed_all_sent_ns: Option<u64>,
    /// (node, peer) pairs where the node received corrupt data from the peer.
    corrupt_from: BTreeSet<(usize, usize)>,
    /// First violation seen per invariant.
    violations: BTreeMap<&'static str, String>,
}

/// What a finished run measured, before it is turned into a report.
pub(crate) struct Outcome {
    pub(crate) completion_ns: Vec<Option<u64>>,
    pub(crate) end_ns: u64,
    pub(crate) seed_bytes_served: u64,
    pub(crate) seed_all_sent_ns: Option<u64>,
    pub(crate) bytes_moved: u64,
    pub(crate) busy_replies: u64,
    pub(crate) events: u64,
    pub(crate) trace_hash: String,
    pub(crate) pieces: usize,
    pub(crate) invariants: BTreeMap<String, String>,
}

impl World {
    /// Builds the swarm for `params`: the synthetic revision, roles, neighbour lists
    /// and the first events (every receiver pulls its neighbours' have-sets at t=0).
    pub(crate) fn new(params: &SwarmParams) -> Self {
        let tuning = params.tuning.clone();
        let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
        let manifest = payload::synthetic_manifest(params.revision_bytes, params.coarse_piece_bytes, &mut rng);
        let map = payload::piece_map(&manifest);
        let count = params.nodes.max(1);
        let mut byzantine: BTreeSet<usize> = BTreeSet::new();
        let corrupt_peers = params.corrupt_peers.min(count.saturating_sub(2));
        while byzantine.len() < corrupt_peers {
            byzantine.insert(rng.gen_range(1..count));
        }
        let lists = topology::neighbour_lists(count, tuning.neighbours, tuning.seed_in_every_view, &mut rng);
        let nodes: Vec<SimNode> = lists
            .into_iter()
            .enumerate()
            .map(|(index, neighbours)| {
                let role = match index {
                    SEED => Role::Seed,
                    _ if byzantine.contains(&index) => Role::Byzantine,
                    _ => Role::Receiver,
                };
                let download = (role == Role::Receiver)
                    .then(|| Download::new(Arc::clone(&map), |_| false, tuning.download.clone(), rng.gen()));
                let store = if role == Role::Seed { PhantomStore::full(&map) } else { PhantomStore::empty(&map) };
                let advertisement =
                    (role == Role::Seed && tuning.super_seeding).then(|| SeedAdvertisement::new(map.len()));
                SimNode {
                    role,
                    download,
                    advertisement,
                    store,
                    neighbours,
                    uploads: UploadSlots::new(
                        if role == Role::Seed {
                            tuning.seed_uploads_in_flight_max
                        } else {
                            tuning.uploads_in_flight_max
                        },
                        UPLOADS_PER_REQUESTER_MAX,
                    ),
                    completed_ns: None,
                    wake_ns: None,
                }
            })
            .collect();
        let receivers_left = nodes.iter().filter(|node| node.role == Role::Receiver).count();
        let mut world = Self {
            full: Bitfield::full(map.len()),
            links: Links::new(count, params.uplink_bps, params.downlink_bps),
            queue: EventQueue::new(),
            trace: Trace::new(),
            bytes_sent: vec![0; count],
            busy_replies: 0,
            corrupt_from: BTreeSet::new(),
            seed_sent: Bitfield::new(map.len()),
            seed_all_sent_ns: None,
            violations: BTreeMap::new(),
            now_ns: 0,
            receivers_left,
            params: params.clone(),
            tuning,
            map,
            nodes,
            rng,
        };
        for node in 0..count {
            if world.nodes[node].role == Role::Receiver {
                world.queue.push(0, Event::Pull { node });
            }
        }
        world
    }

    /// Processes events until every receiver is complete, nothing is left to do, or
    /// virtual time passes `limit_ns`.
    pub(crate) fn run(mut self, limit_ns: u64) -> Outcome {
        while self.receivers_left > 0 {
            let Some((at_ns, event)) = self.queue.pop() else {
                break;
            };
            if at_ns > limit_ns {
                break;
            }
            self.now_ns = at_ns;
            self.handle(event);
        }
        self.finish()
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Request { requester, uploader, piece, chunks } => {
                self.trace.record(self.now_ns, requester, uploader, TraceKind::Request, piece);
                self.on_request(requester, uploader, piece, chunks);
            }
            Event::Sent { transfer } => {
                self.trace.record(self.now_ns, transfer.uploader, transfer.requester, TraceKind::Sent, transfer.piece);
                self.on_sent(transfer);
            }
            Event::Response { requester, uploader, piece, reply } => {
                self.trace.record(self.now_ns, uploader, requester, TraceKind::Response, piece);
                self.on_response(requester, uploader, piece, reply);
            }
            Event::Pull { node } => {
                self.trace.record(self.now_ns, node, node, TraceKind::Pull, 0);
                self.on_pull(node);
            }
            Event::Wake { node } => {
                self.trace.record(self.now_ns, node, node, TraceKind::Wake, 0);
                if self.nodes[node].wake_ns == Some(self.now_ns) {
                    self.nodes[node].wake_ns = None;
                }
                self.pump(node);
            }
            Event::Announce { node, piece } => {
                self.trace.record(self.now_ns, node, node, TraceKind::Have, piece);
                self.on_announce(node, piece);
            }
        }
    }

    /// Drains the node's requests into the network and schedules its next wake-up.
    fn pump(&mut self, node: usize) {
        let now = Duration::from_nanos(self.now_ns);
        let Some(download) = self.nodes[node].download.as_mut() else {
            return;
        };
        let requests = download.next_requests(now);
        for request in requests {
            let peer = request.peer.0 as usize - 1;
            if self.corrupt_from.contains(&(node, peer)) {
                self.violate(
                    "corrupt_peers_banned",
                    format!("node {} asked peer {} again after it sent corrupt data", node + 1, peer + 1),
                );
            }
            let at = self.now_ns + self.latency_ns();
            self.queue.push(
                at,
                Event::Request { requester: node, uploader: peer, piece: request.piece, chunks: request.chunks },
            );
        }
        let Some(download) = self.nodes[node].download.as_ref() else {
            return;
        };
        let broken = self.tuning.check_every_event.then(|| download.check_invariants().err()).flatten();
        let deadline = download.next_deadline(now);
        if let Some(violation) = broken {
            self.violate("state_consistent", format!("node {}: {violation}", node + 1));
        }
        if let Some(deadline) = deadline {
            let deadline_ns = u64::try_from(deadline.as_nanos()).unwrap_or(u64::MAX);
            let scheduled = self.nodes[node].wake_ns;
            if scheduled.is_none_or(|at| at <= self.now_ns || deadline_ns < at) {
                self.nodes[node].wake_ns = Some(deadline_ns);
                self.queue.push(deadline_ns, Event::Wake { node });
            }
        }
    }

    /// The tracker answer to `wanted_peers_hint`: new random neighbours the node has not
    /// seen misbehave, with their have-sets.
    fn add_neighbours(&mut self, node: usize) {
        let wanted = self.nodes[node].download.as_ref().map_or(0, Download::wanted_peers_hint);
        for _ in 0..wanted {
            let refused = |candidate: usize| self.corrupt_from.contains(&(node, candidate));
            let count = self.nodes.len();
            let Some(extra) =
                topology::fresh_neighbour(node, &self.nodes[node].neighbours, refused, count, &mut self.rng)
            else {
                return;
            };
            let list = &mut self.nodes[node].neighbours;
            let position = list.binary_search(&extra).unwrap_or_else(|position| position);
            list.insert(position, extra);
            self.learn_bitfield(node, extra);
        }
    }

    /// `node` learns `peer`'s current have-set (what `peer` advertises: its download's
    /// have-set, the seed's advertisement, or everything for liars).
    fn learn_bitfield(&mut self, node: usize, peer: usize) {
        if node == peer {
            return;
        }
        // Borrow the learner mutably and the peer immutably at once: the peer's set is
        // read in place, not copied.
        let (learner, other) = if node < peer {
            let (low, high) = self.nodes.split_at_mut(peer);
            (&mut low[node], &high[0])
        } else {
            let (low, high) = self.nodes.split_at_mut(node);
            (&mut high[0], &low[peer])
        };
        let Some(download) = learner.download.as_mut() else {
            return;
        };
        let theirs = match (&other.download, &other.advertisement) {
            (Some(theirs), _) => theirs.have(),
            (None, Some(advertisement)) => advertisement.advertised(),
            (None, None) => &self.full,
        };
        download.peer_bitfield(NodeId::from_index(peer), theirs).expect("every node uses the same piece map");
    }

    fn note_completion(&mut self, node: usize) {
        let state = &mut self.nodes[node];
        if state.completed_ns.is_none() && state.download.as_ref().is_some_and(Download::is_complete) {
            state.completed_ns = Some(self.now_ns);
            self.receivers_left -= 1;
        }
    }

    fn schedule_sent(&mut self, started: Started) {
        let at = self.now_ns + started.duration_ns;
        self.queue.push(at, Event::Sent { transfer: started.transfer });
    }

    /// One message's one-way latency: the base plus up to `jitter_fraction` of it.
    fn latency_ns(&mut self) -> u64 {
        let base = self.params.latency_ms * 1e6;
        let jitter =
            if self.tuning.jitter_fraction > 0.0 { self.rng.gen_range(0.0..self.tuning.jitter_fraction) } else { 0.0 };
        (base * (1.0 + jitter)) as u64
    }

    fn violate(&mut self, invariant: &'static str, text: String) {
        self.violations.entry(invariant).or_insert(text);
    }
}

/// Node indices and ids: index `i` is node `i + 1` (the seed is node 1).
trait FromIndex {
    fn from_index(index: usize) -> Self;
}

impl FromIndex for NodeId {
    fn from_index(index: usize) -> Self {
        Self(index as u64 + 1)
    }
}
