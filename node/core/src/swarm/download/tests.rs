//! Scenarios for [`Download`]: a download in a known state, events in, the exact
//! requests out. Every input also runs `check_invariants` (test builds).

use std::collections::BTreeSet;

use fleetmesh_state::model::ids::ChunkHash;
use fleetmesh_state::model::revision::ChunkRef;
use proptest::prelude::*;

use super::*;

const MS: Duration = Duration::from_millis(1);

/// A revision of `pieces` pieces of `chunks_per_piece` chunks of 100 bytes each.
fn map(pieces: usize, chunks_per_piece: usize) -> Arc<PieceMap> {
    let chunks: Vec<ChunkRef> = (0..pieces * chunks_per_piece)
        .map(|index| ChunkRef(ChunkHash::of(&(index as u64).to_le_bytes()), 100))
        .collect();
    Arc::new(PieceMap::with_target(&chunks, 100 * chunks_per_piece as u64))
}

fn empty(map: &Arc<PieceMap>, params: DownloadParams) -> Download {
    Download::new(Arc::clone(map), |_| false, params, 7)
}

fn field(len: usize, members: impl IntoIterator<Item = usize>) -> Bitfield {
    let mut bits = Bitfield::new(len);
    for member in members {
        bits.set(member);
    }
    bits
}

fn one_at_a_time() -> DownloadParams {
    DownloadParams { requests_in_flight_max: 1, ..DownloadParams::default() }
}

#[test]
fn fetches_rarest_pieces_first_and_relays_before_the_seed() {
    // Peers A (seed: all 4 pieces), B {0,1,2}, C {0,1}, D {0}: piece 3 has one holder,
    // 2 two, 1 three, 0 four. With one request at a time and every answer Ok, the
    // pieces come in the order 3, 2, 1, 0, and only piece 3 (which nobody else holds)
    // is asked of the seed.
    let map = map(4, 2);
    let mut download = empty(&map, one_at_a_time());
    let (a, b, c, d) = (NodeId(1), NodeId(2), NodeId(3), NodeId(4));
    download.peer_bitfield(a, &Bitfield::full(4)).expect("valid");
    download.peer_bitfield(b, &field(4, [0, 1, 2])).expect("valid");
    download.peer_bitfield(c, &field(4, [0, 1])).expect("valid");
    download.peer_bitfield(d, &field(4, [0])).expect("valid");
    let mut order = Vec::new();
    for step in 0..4 {
        let requests = download.next_requests(step * MS);
        assert_eq!(requests.len(), 1, "one at a time");
        let request = &requests[0];
        assert_eq!(request.peer == a, request.piece == 3, "seed asked only for the piece only it has");
        order.push(request.piece);
        download.piece_received(request.peer, request.piece, Received::Ok, step * MS).expect("valid");
    }
    assert_eq!(order, vec![3, 2, 1, 0]);
    assert!(download.is_complete());
}

#[test]
fn respects_the_per_peer_and_total_caps() {
    // 20 pieces. One seed: exactly REQUESTS_PER_PEER_MAX requests go out. A second
    // seed takes the total to REQUESTS_IN_FLIGHT_MAX and a third gets nothing until an
    // answer frees a slot, after which exactly one more request goes out.
    let map = map(20, 1);
    let mut download = empty(&map, DownloadParams::default());
    download.peer_bitfield(NodeId(1), &Bitfield::full(20)).expect("valid");
    let first = download.next_requests(Duration::ZERO);
    assert_eq!(first.len(), REQUESTS_PER_PEER_MAX);
    assert!(first.iter().all(|request| request.peer == NodeId(1)));
    download.peer_bitfield(NodeId(2), &Bitfield::full(20)).expect("valid");
    let second = download.next_requests(Duration::ZERO);
    assert_eq!(second.len(), REQUESTS_IN_FLIGHT_MAX - REQUESTS_PER_PEER_MAX);
    download.peer_bitfield(NodeId(3), &Bitfield::full(20)).expect("valid");
    assert!(download.next_requests(Duration::ZERO).is_empty());
    assert_eq!(download.requests_in_flight(), REQUESTS_IN_FLIGHT_MAX);
    download.piece_received(first[0].peer, first[0].piece, Received::Ok, MS).expect("valid");
    let third = download.next_requests(MS);
    assert_eq!(third.len(), 1);
    let pieces: BTreeSet<usize> = first.iter().chain(&second).chain(&third).map(|request| request.piece).collect();
    assert_eq!(pieces.len(), REQUESTS_IN_FLIGHT_MAX + 1, "no piece requested twice outside the endgame");
}

#[test]
fn a_corrupt_peer_is_banned_and_the_piece_fetched_elsewhere() {
    // Two seeds and one piece, endgame duplicates off. Whoever is asked first answers
    // Corrupt: it is banned, the same piece goes to the other seed, and the banned peer
    // is never asked again even after it re-advertises everything.
    let map = map(1, 3);
    let params = DownloadParams { endgame_requests_per_piece_max: 1, ..DownloadParams::default() };
    let mut download = empty(&map, params);
    download.peer_bitfield(NodeId(1), &Bitfield::full(1)).expect("valid");
    download.peer_bitfield(NodeId(2), &Bitfield::full(1)).expect("valid");
    let first = download.next_requests(Duration::ZERO);
    assert_eq!(first.len(), 1);
    let liar = first[0].peer;
    let honest = if liar == NodeId(1) { NodeId(2) } else { NodeId(1) };
    let bad_chunk = first[0].chunks[1].hash();
    download.piece_received(liar, 0, Received::Corrupt { chunk: bad_chunk }, MS).expect("valid");
    assert!(download.is_banned(liar));
    download.peer_bitfield(liar, &Bitfield::full(1)).expect("valid");
    let second = download.next_requests(2 * MS);
    assert_eq!(second, vec![PieceRequest { peer: honest, piece: 0, chunks: map.piece(0).to_vec() }]);
    download.piece_received(honest, 0, Received::Ok, 3 * MS).expect("valid");
    assert!(download.is_complete());
}

#[test]
fn a_dead_peer_gives_its_pieces_back_to_the_queue() {
    // Peer A holds all 4 pieces and gets 4 requests. A dies; B (also holding all)
    // appears: the same 4 pieces are requested from B, and A's late answers change
    // nothing.
    let map = map(4, 1);
    let mut download = empty(&map, DownloadParams::default());
    download.peer_bitfield(NodeId(1), &Bitfield::full(4)).expect("valid");
    let to_a: BTreeSet<usize> = download.next_requests(Duration::ZERO).iter().map(|request| request.piece).collect();
    assert_eq!(to_a.len(), 4);
    download.peer_gone(NodeId(1));
    assert_eq!(download.requests_in_flight(), 0);
    download.peer_bitfield(NodeId(2), &Bitfield::full(4)).expect("valid");
    let to_b = download.next_requests(MS);
    assert!(to_b.iter().all(|request| request.peer == NodeId(2)));
    assert_eq!(to_b.iter().map(|request| request.piece).collect::<BTreeSet<_>>(), to_a);
    download.piece_received(NodeId(1), 0, Received::Failed, 2 * MS).expect("valid");
    assert_eq!(download.requests_in_flight(), 4);
}

#[test]
fn a_partly_held_piece_requests_only_its_missing_chunks() {
    // Two pieces of 4 chunks; chunks 0 and 2 of piece 0 are already in the store (an
    // earlier revision). The request for piece 0 names chunks 1 and 3 only; piece 1 is
    // requested whole; bytes held count the two chunks from the start.
    let map = map(2, 4);
    let held: BTreeSet<ChunkHash> = [0, 2].iter().map(|&index| map.chunks()[index].hash()).collect();
    let mut download = Download::new(Arc::clone(&map), |hash| held.contains(&hash), DownloadParams::default(), 1);
    assert_eq!(download.bytes_held(), 200);
    assert!(!download.have().get(0));
    assert_eq!(download.completion_rank(0), None);
    download.peer_bitfield(NodeId(9), &Bitfield::full(2)).expect("valid");
    let mut requests = download.next_requests(Duration::ZERO);
    requests.sort_by_key(|request| request.piece);
    assert_eq!(requests[0].chunks, vec![map.chunks()[1], map.chunks()[3]]);
    assert_eq!(requests[1].chunks, map.piece(1).to_vec());
}

#[test]
fn completes_when_every_piece_is_held() {
    // Six pieces from one seed, every answer Ok: the download ends complete with every
    // byte held, the full have-set and a distinct completion rank per piece, and asks
    // for nothing more.
    let map = map(6, 2);
    let mut download = empty(&map, DownloadParams::default());
    download.peer_bitfield(NodeId(1), &Bitfield::full(6)).expect("valid");
    let mut now = Duration::ZERO;
    for _ in 0..6 {
        for request in download.next_requests(now) {
            download.piece_received(request.peer, request.piece, Received::Ok, now).expect("valid");
        }
        now += MS;
    }
    assert!(download.is_complete());
    assert_eq!(download.bytes_held(), map.total_bytes());
    assert!(download.have().is_full());
    let ranks: BTreeSet<u32> = (0..6).filter_map(|piece| download.completion_rank(piece)).collect();
    assert_eq!(ranks, (1..=6).collect(), "every piece has its own completion rank");
    assert!(download.next_requests(now).is_empty());
    assert_eq!(download.next_deadline(now), None);
    assert_eq!(download.wanted_peers_hint(), 0);
}

#[test]
fn a_node_holding_99_percent_fetches_only_the_rest() {
    // 1000 chunks in 100 pieces; the store already holds all but 10 (every 97th chunk).
    // Across the whole download exactly those 10 chunks are requested (the last ones
    // possibly twice, as endgame duplicates) and nothing else.
    let map = map(100, 10);
    let missing: BTreeSet<usize> = (0..10).map(|step| step * 97).collect();
    let held: BTreeSet<ChunkHash> =
        (0..1000).filter(|index| !missing.contains(index)).map(|index| map.chunks()[index].hash()).collect();
    let mut download = Download::new(Arc::clone(&map), |hash| held.contains(&hash), DownloadParams::default(), 3);
    assert_eq!(download.bytes_held(), 990 * 100);
    download.peer_bitfield(NodeId(1), &Bitfield::full(100)).expect("valid");
    download.peer_bitfield(NodeId(2), &Bitfield::full(100)).expect("valid");
    let mut requested = Vec::new();
    let mut now = Duration::ZERO;
    while !download.is_complete() && now < Duration::from_secs(1) {
        for request in download.next_requests(now) {
            requested.extend(request.chunks.iter().copied());
            download.piece_received(request.peer, request.piece, Received::Ok, now).expect("valid");
        }
        now += MS;
    }
    // The endgame may ask a second peer for the last pieces, so compare sets and
    // bound the duplicates.
    let expected: BTreeSet<ChunkRef> = missing.iter().map(|&index| map.chunks()[index]).collect();
    assert!(requested.len() <= 2 * expected.len(), "{} chunk requests", requested.len());
    assert_eq!(requested.into_iter().collect::<BTreeSet<_>>(), expected);
    assert!(download.is_complete());
}

#[test]
fn busy_and_failed_peers_are_left_alone_for_a_while() {
    // One seed, one piece. Busy at t=0 keeps it unasked until busy_backoff, which
    // next_deadline reports; two failures in a row back off 50 then 100 ms.
    let map = map(1, 1);
    let params = DownloadParams::default();
    let mut download = empty(&map, params.clone());
    download.peer_bitfield(NodeId(1), &Bitfield::full(1)).expect("valid");
    assert_eq!(download.next_requests(Duration::ZERO).len(), 1);
    download.piece_received(NodeId(1), 0, Received::Busy, Duration::ZERO).expect("valid");
    assert!(download.next_requests(params.busy_backoff - MS).is_empty());
    assert_eq!(download.next_deadline(Duration::ZERO), Some(params.busy_backoff));
    let now = params.busy_backoff;
    assert_eq!(download.next_requests(now).len(), 1);
    download.piece_received(NodeId(1), 0, Received::Failed, now).expect("valid");
    assert_eq!(download.next_deadline(now), Some(now + params.failed_backoff));
    let now = now + params.failed_backoff;
    assert_eq!(download.next_requests(now).len(), 1);
    download.piece_received(NodeId(1), 0, Received::Failed, now).expect("valid");
    assert_eq!(download.next_deadline(now), Some(now + 2 * params.failed_backoff));
}

#[test]
fn endgame_duplicates_the_last_pieces_and_ignores_late_answers() {
    // Two pieces, two seeds, two requests per peer allowed. The first call sends one
    // piece to each seed, and since every missing piece is then in flight, one
    // duplicate of each to the other seed. The first Ok for a piece completes it; the
    // late duplicate Ok only frees its slot.
    let map = map(2, 1);
    let params = DownloadParams { requests_per_peer_max: 2, ..DownloadParams::default() };
    let mut download = empty(&map, params);
    download.peer_bitfield(NodeId(1), &Bitfield::full(2)).expect("valid");
    download.peer_bitfield(NodeId(2), &Bitfield::full(2)).expect("valid");
    let requests = download.next_requests(Duration::ZERO);
    let pairs: BTreeSet<(usize, NodeId)> = requests.iter().map(|request| (request.piece, request.peer)).collect();
    let all: BTreeSet<(usize, NodeId)> =
        [(0, NodeId(1)), (0, NodeId(2)), (1, NodeId(1)), (1, NodeId(2))].into_iter().collect();
    assert_eq!(pairs, all);
    download.piece_received(NodeId(1), 0, Received::Ok, MS).expect("valid");
    download.piece_received(NodeId(2), 0, Received::Ok, MS).expect("valid");
    assert_eq!(download.bytes_held(), 100);
    assert_eq!(download.requests_in_flight(), 2);
    assert!(download.next_requests(MS).is_empty(), "piece 1 already has two requests");
    download.piece_received(NodeId(2), 1, Received::Ok, 2 * MS).expect("valid");
    assert!(download.is_complete());
}

#[test]
fn refuses_malformed_input_without_changing_state() {
    // A have-set of the wrong length and a piece index past the end are errors naming
    // the peer; the download still has no peers afterwards.
    let map = map(3, 1);
    let mut download = empty(&map, DownloadParams::default());
    assert_eq!(
        download.peer_bitfield(NodeId(5), &Bitfield::full(4)),
        Err(DownloadError::BitfieldLength { peer: NodeId(5), got: 4, expected: 3 })
    );
    assert_eq!(
        download.peer_has(NodeId(5), 3),
        Err(DownloadError::PieceOutOfRange { peer: NodeId(5), piece: 3, pieces: 3 })
    );
    assert!(download.piece_received(NodeId(5), 9, Received::Ok, MS).is_err());
    assert!(download.next_requests(MS).is_empty());
    assert_eq!(download.wanted_peers_hint(), PEERS_WANTED_MIN);
}

#[test]
fn a_starved_download_acts_as_soon_as_a_peer_gains_a_wanted_piece() {
    // Three pieces, piece 0 already held; the only peer holds piece 0 alone, so there is
    // nothing to ask for (and the download remembers that). The peer then gains piece 0
    // again (no news) and piece 2 (news): only the latter produces a request.
    let map = map(3, 1);
    let held = map.piece(0)[0].hash();
    let mut download = Download::new(Arc::clone(&map), |hash| hash == held, DownloadParams::default(), 5);
    download.peer_bitfield(NodeId(1), &field(3, [0])).expect("valid");
    assert!(download.next_requests(Duration::ZERO).is_empty());
    assert!(!download.is_saturated());
    download.peer_has(NodeId(1), 0).expect("valid");
    assert!(download.next_requests(MS).is_empty());
    download.peer_has(NodeId(1), 2).expect("valid");
    let requests = download.next_requests(2 * MS);
    assert_eq!(requests.iter().map(|request| request.piece).collect::<Vec<_>>(), vec![2]);
}

#[test]
fn asks_for_more_peers_when_short_or_stalled() {
    // With no peers the hint is the full minimum; with four peers that hold nothing
    // the download is stalled and asks for one more; once one of them announces a
    // piece, the hint drops to zero.
    let map = map(2, 1);
    let mut download = empty(&map, DownloadParams::default());
    assert_eq!(download.wanted_peers_hint(), PEERS_WANTED_MIN);
    for peer in 1..=4 {
        download.peer_bitfield(NodeId(peer), &Bitfield::new(2)).expect("valid");
    }
    assert_eq!(download.wanted_peers_hint(), 1);
    download.peer_has(NodeId(3), 1).expect("valid");
    assert_eq!(download.wanted_peers_hint(), 0);
}

/// One input of the random-sequence property.
#[derive(Clone, Debug)]
enum Step {
    /// Drain requests at the current time.
    Pump,
    /// Answer the outstanding request at this position (modulo) with this outcome code.
    Answer(usize, u8),
    /// A non-honest peer (2..=4) advertises a random have-set.
    Advertise(u64, u32),
    /// A non-honest peer announces one piece.
    Announce(u64, usize),
    /// A non-honest peer goes away.
    Gone(u64),
    /// Time passes (milliseconds).
    Wait(u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => Just(Step::Pump),
        4 => (any::<usize>(), 0u8..4).prop_map(|(index, code)| Step::Answer(index, code)),
        1 => (2u64..=4, any::<u32>()).prop_map(|(peer, bits)| Step::Advertise(peer, bits)),
        1 => (2u64..=4, 0usize..12).prop_map(|(peer, piece)| Step::Announce(peer, piece)),
        1 => (2u64..=4).prop_map(Step::Gone),
        1 => (0u64..300).prop_map(Step::Wait),
    ]
}

proptest! {
    #[test]
    fn random_events_keep_invariants_and_an_honest_seed_finishes_the_job(
        steps in prop::collection::vec(step(), 0..200),
        held_mask in any::<u64>(),
        seed in any::<u64>(),
    ) {
        // 12 pieces of 3 chunks, a random subset of chunks already held. Peer 1 holds
        // everything, never lies and never leaves; peers 2..=4 come and go with random
        // have-sets and answer anything, Corrupt included. Every input re-checks the
        // invariants (test build). Afterwards, with only answers from peer 1 being Ok
        // and time moving past every back-off, the download must complete, never having
        // banned peer 1 and never having asked a banned peer.
        let map = map(12, 3);
        let held: BTreeSet<ChunkHash> =
            (0..36).filter(|index| held_mask & (1 << index) != 0).map(|index| map.chunks()[index].hash()).collect();
        let mut download = Download::new(Arc::clone(&map), |hash| held.contains(&hash), DownloadParams::default(), seed);
        let honest = NodeId(1);
        download.peer_bitfield(honest, &Bitfield::full(12)).expect("valid");
        let mut outstanding: Vec<PieceRequest> = Vec::new();
        let mut now = Duration::ZERO;
        for step in steps {
            match step {
                Step::Pump => {
                    for request in download.next_requests(now) {
                        prop_assert!(!download.is_banned(request.peer));
                        prop_assert!(!request.chunks.is_empty());
                        outstanding.push(request);
                    }
                }
                Step::Answer(index, code) => {
                    if outstanding.is_empty() {
                        continue;
                    }
                    let request = outstanding.remove(index % outstanding.len());
                    let outcome = match code {
                        0 => Received::Ok,
                        1 => Received::Busy,
                        2 => Received::Failed,
                        _ if request.peer == honest => Received::Ok,
                        _ => Received::Corrupt { chunk: request.chunks[0].hash() },
                    };
                    download.piece_received(request.peer, request.piece, outcome, now).expect("valid piece");
                    if download.is_banned(request.peer) {
                        outstanding.retain(|other| other.peer != request.peer);
                    }
                }
                Step::Advertise(peer, bits) => {
                    let bitfield = field(12, (0..12).filter(|piece| bits & (1 << piece) != 0));
                    download.peer_bitfield(NodeId(peer), &bitfield).expect("valid length");
                }
                Step::Announce(peer, piece) => download.peer_has(NodeId(peer), piece).expect("valid piece"),
                Step::Gone(peer) => {
                    download.peer_gone(NodeId(peer));
                    outstanding.retain(|request| request.peer != NodeId(peer));
                }
                Step::Wait(millis) => now += Duration::from_millis(millis),
            }
        }
        prop_assert!(!download.is_banned(honest));
        for _ in 0..100 {
            if download.is_complete() {
                break;
            }
            now += Duration::from_secs(3);
            outstanding.extend(download.next_requests(now));
            for request in std::mem::take(&mut outstanding) {
                prop_assert!(!download.is_banned(request.peer));
                let outcome = if request.peer == honest { Received::Ok } else { Received::Failed };
                download.piece_received(request.peer, request.piece, outcome, now).expect("valid piece");
            }
        }
        prop_assert!(download.is_complete());
        prop_assert_eq!(download.bytes_held(), map.total_bytes());
        prop_assert!(download.check_invariants().is_ok());
    }
}
