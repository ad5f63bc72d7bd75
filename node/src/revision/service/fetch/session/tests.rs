//! Scenarios for the download session: a session in a known state, events in, the
//! exact actions out.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use fleetmesh_core::swarm::{Bitfield, Download, DownloadParams, PieceMap, Received};
use fleetmesh_state::model::ids::ChunkHash;
use fleetmesh_state::model::revision::ChunkRef;
use fleetmesh_transport::{NodeId, Peer};

use super::{Action, Session};
use crate::revision::service::fetch::{HAVE_REFRESH, STALL_TIMEOUT};
use crate::revision::service::FetchError;

const OWN: NodeId = NodeId(1);

fn peer(id: u64) -> Peer {
    Peer { id: NodeId(id), addr: SocketAddr::from(([127, 0, 0, id as u8], 7400)) }
}

/// A session for a revision of one piece of three small chunks, none held.
fn session() -> Session {
    let chunks: Vec<ChunkRef> = (0u8..3).map(|index| ChunkRef(ChunkHash::of(&[index]), 1000)).collect();
    let map = Arc::new(PieceMap::new(&chunks));
    assert_eq!(map.len(), 1, "the scenarios assume a single piece");
    let download = Download::new(map, |_| false, DownloadParams::default(), 7);
    Session::new(OWN, download, Duration::ZERO)
}

fn asked_have(actions: &[Action]) -> Vec<NodeId> {
    actions.iter().filter_map(|action| if let Action::AskHave(peer) = action { Some(peer.id) } else { None }).collect()
}

fn asked_pieces(actions: &[Action]) -> Vec<(NodeId, usize)> {
    actions
        .iter()
        .filter_map(
            |action| if let Action::AskPiece(peer, request) = action { Some((peer.id, request.piece)) } else { None },
        )
        .collect()
}

#[test]
fn every_listed_peer_but_this_node_is_asked_for_its_have_set_once_per_refresh() {
    let mut session = session();
    session.handle_members([peer(1), peer(2), peer(3)]);
    let actions = session.poll_actions(Duration::ZERO);
    assert_eq!(actions, vec![Action::AskHave(peer(2)), Action::AskHave(peer(3))]);
    // Answered, but not yet stale: nobody is asked again.
    session.handle_have(NodeId(2), None);
    session.handle_have(NodeId(3), None);
    assert!(session.poll_actions(HAVE_REFRESH / 2).is_empty());
    // Stale: both are asked again.
    assert_eq!(asked_have(&session.poll_actions(HAVE_REFRESH)), vec![NodeId(2), NodeId(3)]);
}

#[test]
fn a_peer_with_a_have_set_request_in_flight_is_not_asked_again() {
    let mut session = session();
    session.handle_members([peer(2)]);
    assert_eq!(asked_have(&session.poll_actions(Duration::ZERO)), vec![NodeId(2)]);
    assert!(session.poll_actions(HAVE_REFRESH * 3).is_empty(), "no answer yet: one request at a time");
    session.handle_have(NodeId(2), None);
    assert_eq!(asked_have(&session.poll_actions(HAVE_REFRESH * 3)), vec![NodeId(2)]);
}

#[test]
fn a_peer_holding_the_piece_is_asked_for_it_and_its_answer_completes_the_download() {
    let mut session = session();
    session.handle_members([peer(2)]);
    session.poll_actions(Duration::ZERO);
    session.handle_have(NodeId(2), Some(Bitfield::full(1)));
    let actions = session.poll_actions(Duration::from_millis(1));
    assert_eq!(asked_pieces(&actions), vec![(NodeId(2), 0)]);
    session.handle_piece(NodeId(2), 0, Received::Ok, None, Duration::from_millis(2));
    assert!(session.download().is_complete());
    assert_eq!(session.download().bytes_held(), 3000);
}

#[test]
fn a_have_set_of_the_wrong_length_is_ignored() {
    let mut session = session();
    session.handle_members([peer(2)]);
    session.poll_actions(Duration::ZERO);
    session.handle_have(NodeId(2), Some(Bitfield::full(5)));
    assert!(asked_pieces(&session.poll_actions(Duration::from_millis(1))).is_empty());
}

#[test]
fn a_peer_that_sent_a_corrupt_chunk_is_never_asked_again() {
    let mut session = session();
    session.handle_members([peer(2)]);
    session.poll_actions(Duration::ZERO);
    session.handle_have(NodeId(2), Some(Bitfield::full(1)));
    session.poll_actions(Duration::from_millis(1));
    let chunk = ChunkHash::of(&[0]);
    session.handle_piece(NodeId(2), 0, Received::Corrupt { chunk }, None, Duration::from_millis(2));
    let later = session.poll_actions(HAVE_REFRESH * 10);
    assert!(later.is_empty(), "a banned peer gets neither have-set nor piece requests: {later:?}");
}

#[test]
fn a_download_without_progress_for_the_stall_timeout_gives_up() {
    let mut session = session();
    session.handle_members([peer(2)]);
    assert!(session.check_progress(STALL_TIMEOUT).is_ok(), "exactly the timeout is not yet a stall");
    let stalled = session.check_progress(STALL_TIMEOUT + Duration::from_millis(1));
    assert!(matches!(stalled, Err(FetchError::Stalled { peers: 1, .. })), "{stalled:?}");
}

#[test]
fn progress_restarts_the_stall_clock() {
    let mut session = session();
    session.handle_members([peer(2)]);
    session.poll_actions(Duration::ZERO);
    session.handle_have(NodeId(2), Some(Bitfield::full(1)));
    session.poll_actions(Duration::from_secs(1));
    let late = STALL_TIMEOUT - Duration::from_secs(1);
    session.handle_piece(NodeId(2), 0, Received::Ok, None, late);
    assert!(session.check_progress(late).is_ok());
    assert!(session.check_progress(late + STALL_TIMEOUT).is_ok(), "the clock restarted at the progress");
}

#[test]
fn the_shell_wakes_at_least_every_have_refresh() {
    let session = session();
    assert!(session.next_wake(Duration::ZERO) <= HAVE_REFRESH);
}

#[test]
fn a_piece_no_live_peer_holds_fails_the_download_after_the_timeout_naming_the_chunks() {
    // Peer 2 holds piece 0 of 2 only and keeps answering; piece 1 has no holder. The
    // check passes until the timeout after the first count, then fails naming the
    // missing chunks. A full have-set from peer 3 in time resets the clock.
    let chunks: Vec<ChunkRef> = (0u8..4).map(|index| ChunkRef(ChunkHash::of(&[index]), 1000)).collect();
    let map = Arc::new(PieceMap::with_target(&chunks, 2 * 1024));
    assert_eq!(map.len(), 2, "the scenario assumes two pieces");
    let download = Download::new(map.clone(), |_| false, DownloadParams::default(), 1);
    let mut session = Session::new(OWN, download, Duration::ZERO).with_no_holder_timeout(Duration::from_secs(10));
    session.handle_members([peer(2), peer(3)]);
    let mut half = Bitfield::new(map.len());
    half.set(0);
    let answer = |session: &mut Session, at: u64, who: u64, bits: &Bitfield| {
        session.poll_actions(Duration::from_secs(at));
        session.handle_have(NodeId(who), Some(bits.clone()));
    };
    answer(&mut session, 0, 2, &half);
    assert!(session.check_holders(Duration::ZERO).is_ok());
    answer(&mut session, 9, 2, &half);
    assert!(session.check_holders(Duration::from_secs(9)).is_ok());
    answer(&mut session, 10, 2, &half);
    let error = session.check_holders(Duration::from_secs(10)).expect_err("no holder for 10 s");
    let message = error.to_string();
    let lacking = map.piece(1).len();
    assert!(
        message.starts_with(&format!("{lacking} of {} chunks have no live holder", map.chunk_count())),
        "{message}"
    );
    // A holder that turns up in time resets the clock.
    let download = Download::new(map.clone(), |_| false, DownloadParams::default(), 1);
    let mut session = Session::new(OWN, download, Duration::ZERO).with_no_holder_timeout(Duration::from_secs(10));
    session.handle_members([peer(2), peer(3)]);
    answer(&mut session, 0, 2, &half);
    session.handle_have(NodeId(3), None);
    assert!(session.check_holders(Duration::ZERO).is_ok());
    answer(&mut session, 8, 3, &Bitfield::full(map.len()));
    assert!(session.check_holders(Duration::from_secs(8)).is_ok());
    answer(&mut session, 12, 2, &half);
    assert!(session.check_holders(Duration::from_secs(12)).is_ok(), "the clock restarted at 12 s");
    assert!(session.check_holders(Duration::from_secs(21)).is_ok());
    assert!(session.check_holders(Duration::from_secs(22)).is_err(), "peer 3 went quiet 14 s ago");
}

#[test]
fn the_piece_timeout_follows_recent_answers_within_its_bounds() {
    // Asserts the full timeout until 8 answers came, then 8 × their median (a slow
    // outlier does not move it), never below 2 s, never above the full 30 s.
    let mut session = session();
    let full = crate::revision::service::fetch::PIECE_TIMEOUT;
    assert_eq!(session.piece_timeout(), full);
    for _ in 0..7 {
        session.note_piece_time(Duration::from_millis(500));
    }
    assert_eq!(session.piece_timeout(), full, "seven answers are too few to judge");
    session.note_piece_time(Duration::from_secs(20));
    assert_eq!(session.piece_timeout(), Duration::from_secs(4), "8 × the 500 ms median");
    for _ in 0..32 {
        session.note_piece_time(Duration::from_millis(10));
    }
    assert_eq!(session.piece_timeout(), Duration::from_secs(2), "the floor");
    for _ in 0..32 {
        session.note_piece_time(Duration::from_secs(10));
    }
    assert_eq!(session.piece_timeout(), full, "the ceiling");
}
