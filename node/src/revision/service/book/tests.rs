//! Scenarios for the revision service's core: a book in a known state, events in, the
//! exact decisions out.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;

use fleetmesh_core::swarm::{Bitfield, PieceMap, UploadSlots};
use fleetmesh_state::model::ids::{ChunkHash, RevisionId};
use fleetmesh_state::model::revision::{ChunkRef, ChunkingParams, EntryKind, Manifest, ManifestEntry, MANIFEST_FORMAT};
use fleetmesh_transport::NodeId;

use super::{Book, FetchStart, PieceAnswer, Tracked, Wake};
use crate::revision::service::fetch::REQUESTS_PER_PEER;
use crate::revision::service::serve::{upload_slots, UPLOADS_IN_FLIGHT_MAX};
use crate::revision::service::UploadError;
use crate::runtime::protocol::MemberAddress;

/// Bytes of each test chunk: two never fit one piece, so a revision has one piece per
/// chunk.
const CHUNK_BYTES: u32 = 600 * 1024;

/// A manifest of one file of `pieces` chunks, distinct per `seed`.
fn manifest(seed: u8, pieces: u8) -> Manifest {
    let chunks: Vec<ChunkRef> = (0..pieces).map(|index| ChunkRef(ChunkHash::of(&[seed, index]), CHUNK_BYTES)).collect();
    let size = chunks.iter().map(|chunk| u64::from(chunk.len())).sum();
    Manifest {
        format: MANIFEST_FORMAT,
        chunking: ChunkingParams {
            algorithm: "fastcdc-v2020".to_string(),
            min_bytes: 16 * 1024,
            avg_bytes: 64 * 1024,
            max_bytes: 1024 * 1024,
        },
        entries: vec![ManifestEntry { path: "file".to_string(), mode: 0o644, kind: EntryKind::File { size, chunks } }],
    }
}

fn map_of(manifest: &Manifest) -> Arc<PieceMap> {
    let map = Arc::new(PieceMap::new(&manifest.unique_chunks()));
    assert_eq!(map.len(), manifest.unique_chunks().len(), "the scenarios assume one piece per chunk");
    map
}

/// Tracks `manifest` with the first `held` of its chunks in the store; returns its id.
fn track(book: &mut Book, manifest: &Manifest, held: usize) -> RevisionId {
    let map = map_of(manifest);
    let held: BTreeSet<ChunkHash> = map.chunks().iter().take(held).map(|chunk| chunk.hash()).collect();
    let revision = manifest.revision_id();
    book.handle_tracked(revision, Tracked::from_held(map, &held));
    revision
}

fn book() -> Book {
    Book::new(upload_slots())
}

fn member(id: u64) -> MemberAddress {
    let addr = SocketAddr::from(([127, 0, 0, id as u8], 7400));
    MemberAddress { id: NodeId(id), listen: addr, api: addr }
}

fn complete(book: &mut Book, revision: RevisionId) {
    let pieces = book.tracked(revision).expect("tracked").map.len();
    let bytes = book.tracked(revision).expect("tracked").map.total_bytes();
    assert_eq!(book.handle_progress(revision, &Bitfield::full(pieces), bytes, true), Wake::Waiters);
}

#[test]
fn assignments_for_a_new_revision_start_exactly_one_fetch() {
    let mut book = book();
    let revision = manifest(1, 2).revision_id();
    assert_eq!(book.handle_assignments([revision], &BTreeMap::new()), vec![revision]);
    // The next poll answer lists it again while its download runs: nothing starts.
    assert!(book.handle_assignments([revision], &BTreeMap::new()).is_empty());
    assert_eq!(book.handle_fetch_wanted(revision), FetchStart::Running);
    // The download stopped before completion: the next assignment restarts it.
    assert_eq!(book.handle_fetch_ended(revision), Wake::Waiters);
    assert_eq!(book.handle_assignments([revision], &BTreeMap::new()), vec![revision]);
}

#[test]
fn assignments_start_no_fetch_for_a_complete_revision() {
    let mut book = book();
    let done = track(&mut book, &manifest(1, 2), 2);
    let missing = manifest(2, 2).revision_id();
    assert!(book.is_complete(done));
    assert_eq!(book.handle_assignments([done, missing], &BTreeMap::new()), vec![missing]);
    assert_eq!(book.handle_fetch_wanted(done), FetchStart::Complete);
}

#[test]
fn assignments_replace_the_peer_list_of_the_revisions_they_name() {
    let mut book = book();
    let (first, second) = (manifest(1, 1).revision_id(), manifest(2, 1).revision_id());
    let _ =
        book.handle_assignments([], &BTreeMap::from([(first, vec![member(2), member(3)]), (second, vec![member(4)])]));
    let _ = book.handle_assignments([], &BTreeMap::from([(first, vec![member(5)])]));
    assert_eq!(book.peers_of(first), vec![member(5)]);
    assert_eq!(book.peers_of(second), vec![member(4)], "a revision the answer does not name keeps its list");
    assert!(book.peers_of(manifest(3, 1).revision_id()).is_empty());
}

#[test]
fn tracking_counts_what_the_store_holds_and_the_first_scan_wins() {
    let mut book = book();
    let manifest = manifest(1, 3);
    let revision = track(&mut book, &manifest, 2);
    let tracked = book.tracked(revision).expect("tracked");
    assert_eq!(tracked.have.iter().collect::<Vec<_>>(), vec![0, 1]);
    assert_eq!(tracked.bytes_held, 2 * u64::from(CHUNK_BYTES));
    assert!(!tracked.complete);
    // A second scan, racing the first, does not replace what is tracked.
    let again = Tracked::from_held(map_of(&manifest), &BTreeSet::new());
    assert_eq!(book.handle_tracked(revision, again).bytes_held, 2 * u64::from(CHUNK_BYTES));
    assert_eq!(book.bytes_held(revision), 2 * u64::from(CHUNK_BYTES));
}

#[test]
fn progress_to_complete_marks_it_complete_and_advertises_every_piece() {
    let mut book = book();
    let revision = track(&mut book, &manifest(1, 3), 0);
    assert_eq!(book.advertised(revision).expect("tracked").count(), 0);
    let mut have = Bitfield::new(3);
    have.set(1);
    assert_eq!(book.handle_progress(revision, &have, u64::from(CHUNK_BYTES), false), Wake::Waiters);
    assert_eq!(book.advertised(revision), Some(have));
    assert!(!book.is_complete(revision));
    complete(&mut book, revision);
    assert!(book.is_complete(revision));
    assert!(book.advertised(revision).expect("tracked").is_full());
    let progress = book.progress();
    assert_eq!(progress.len(), 1);
    assert!(progress[0].complete);
    assert_eq!(progress[0].bytes_held, 3 * u64::from(CHUNK_BYTES));
}

#[test]
fn progress_of_an_untracked_revision_or_of_another_length_changes_no_have_set() {
    let mut book = book();
    let untracked = manifest(9, 2).revision_id();
    assert_eq!(book.handle_progress(untracked, &Bitfield::full(2), 1, true), Wake::Waiters, "waiters still wake");
    assert!(book.progress().is_empty());
    let revision = track(&mut book, &manifest(1, 3), 0);
    let _ = book.handle_progress(revision, &Bitfield::full(5), 7, false);
    let tracked = book.tracked(revision).expect("tracked");
    assert_eq!(tracked.have.count(), 0);
    assert_eq!(tracked.bytes_held, 7);
}

#[test]
fn vanished_content_is_tracked_again_and_fetched() {
    let mut book = book();
    let revision = track(&mut book, &manifest(1, 2), 2);
    book.handle_content_vanished(revision);
    assert!(!book.is_complete(revision));
    assert!(book.tracked(revision).is_none());
    assert_eq!(book.handle_fetch_wanted(revision), FetchStart::Start);
}

#[test]
fn garbage_collection_never_drops_a_kept_pushed_unfinished_or_fetching_revision() {
    let mut book = book();
    let kept = track(&mut book, &manifest(1, 1), 1);
    let unfinished = track(&mut book, &manifest(2, 2), 1);
    // Complete, but its download task has not ended yet.
    let fetching = track(&mut book, &manifest(4, 2), 0);
    assert_eq!(book.handle_fetch_wanted(fetching), FetchStart::Start);
    complete(&mut book, fetching);
    let stale = track(&mut book, &manifest(5, 1), 1);
    let pushed = manifest(6, 1).revision_id();

    let plan = book.handle_collect_garbage(&BTreeSet::from([kept]), [pushed]);
    assert_eq!(plan.revisions, BTreeSet::from([kept, unfinished, fetching, pushed]));

    // Tracked after the plan was made, while the store was being swept: kept too.
    let late = track(&mut book, &manifest(7, 1), 0);
    book.handle_garbage_collected(&plan.revisions);
    for revision in [kept, unfinished, fetching, late] {
        assert!(book.tracked(revision).is_some(), "{revision} is still tracked");
    }
    assert!(book.tracked(stale).is_none(), "complete, idle and not kept: no longer tracked");
}

#[test]
fn a_garbage_plan_carries_the_manifests_already_known() {
    let mut book = book();
    let known = manifest(1, 1);
    let revision = book.remember(Arc::new(known.clone())).revision_id();
    let unknown = manifest(2, 1).revision_id();
    let plan = book.handle_collect_garbage(&BTreeSet::from([revision, unknown]), []);
    assert_eq!(plan.manifests.keys().copied().collect::<Vec<_>>(), vec![revision]);
    assert_eq!(*plan.manifests[&revision], known);
    assert_eq!(book.manifest(revision).as_deref(), Some(&known));
}

#[test]
fn upload_slots_are_bounded_per_requester_and_in_total_and_released() {
    // Slots of its own, the total not a multiple of the per-requester cap, so that each
    // bound is met on its own (the node's 8 and 8 would meet both at once).
    let (total, per_requester) = (5, 2);
    let mut book = Book::new(UploadSlots::new(total, per_requester));
    let revision = track(&mut book, &manifest(1, 2), 2);
    for requester in 1..=2 {
        for _ in 0..per_requester {
            assert_eq!(book.handle_piece_request(NodeId(requester), revision, 0), PieceAnswer::Serve);
        }
        assert_eq!(book.handle_piece_request(NodeId(requester), revision, 0), PieceAnswer::Busy, "per requester");
    }
    assert_eq!(book.handle_piece_request(NodeId(3), revision, 0), PieceAnswer::Serve);
    assert_eq!(book.uploads_in_flight(), total);
    assert_eq!(book.handle_piece_request(NodeId(3), revision, 0), PieceAnswer::Busy, "in total");
    for (requester, held) in [(1, per_requester), (2, per_requester), (3, 1)] {
        for _ in 0..held {
            let have = book.handle_piece_done(NodeId(requester), revision).expect("tracked");
            assert!(have.is_full());
        }
    }
    assert_eq!(book.uploads_in_flight(), 0);
    assert_eq!(book.handle_piece_request(NodeId(99), revision, 0), PieceAnswer::Serve);
}

#[test]
fn a_node_serves_as_many_requests_of_one_peer_as_its_downloads_ask_of_one_peer() {
    let mut book = book();
    let revision = track(&mut book, &manifest(1, 2), 2);
    let accepted = (0..UPLOADS_IN_FLIGHT_MAX)
        .take_while(|_| book.handle_piece_request(NodeId(1), revision, 0) == PieceAnswer::Serve)
        .count();
    assert_eq!(accepted, REQUESTS_PER_PEER.min(UPLOADS_IN_FLIGHT_MAX));
}

#[test]
fn the_origin_hands_out_each_piece_once_before_any_twice_then_serves_as_usual() {
    let mut book = book();
    let manifest = manifest(1, 3);
    let revision = manifest.revision_id();
    assert_eq!(book.handle_pushed(Arc::new(manifest.clone()), map_of(&manifest)), Wake::Waiters);
    assert!(book.is_complete(revision));
    assert_eq!(book.manifest(revision).as_deref(), Some(&manifest));
    assert!(book.advertised(revision).expect("origin").is_full());

    assert_eq!(book.handle_piece_request(NodeId(2), revision, 0), PieceAnswer::Serve);
    assert_eq!(book.handle_piece_done(NodeId(2), revision).expect("origin").iter().collect::<Vec<_>>(), vec![1, 2]);
    // Piece 0 is out while 1 and 2 never left: declined, and no slot stays taken.
    assert_eq!(book.handle_piece_request(NodeId(3), revision, 0), PieceAnswer::Busy);
    assert_eq!(book.uploads_in_flight(), 0);
    // Out of range: not the origin's to decide (the chunk lookup refuses it).
    assert_eq!(book.handle_piece_request(NodeId(3), revision, 7), PieceAnswer::Serve);
    let _ = book.handle_piece_done(NodeId(3), revision);

    for piece in [1, 2] {
        assert_eq!(book.handle_piece_request(NodeId(3), revision, piece), PieceAnswer::Serve);
        let _ = book.handle_piece_done(NodeId(3), revision);
    }
    // Every piece is out: an ordinary seed, advertising and serving everything.
    assert!(book.advertised(revision).expect("tracked").is_full());
    assert_eq!(book.handle_piece_request(NodeId(4), revision, 0), PieceAnswer::Serve);
    assert_eq!(book.handle_piece_request(NodeId(4), revision, 0), PieceAnswer::Serve);
}

#[test]
fn a_pushed_revision_of_one_piece_is_served_without_super_seeding() {
    let mut book = book();
    let manifest = manifest(1, 1);
    let revision = manifest.revision_id();
    let _ = book.handle_pushed(Arc::new(manifest.clone()), map_of(&manifest));
    for _ in 0..3 {
        assert_eq!(book.handle_piece_request(NodeId(2), revision, 0), PieceAnswer::Serve);
    }
}

#[test]
fn a_push_completes_a_revision_tracked_as_unfinished() {
    let mut book = book();
    let manifest = manifest(1, 2);
    let revision = track(&mut book, &manifest, 0);
    assert_eq!(book.handle_fetch_wanted(revision), FetchStart::Start);
    let _ = book.handle_pushed(Arc::new(manifest.clone()), map_of(&manifest));
    assert!(book.is_complete(revision));
    assert_eq!(book.bytes_held(revision), 2 * u64::from(CHUNK_BYTES));
    assert_eq!(book.handle_fetch_wanted(revision), FetchStart::Complete);
}

#[test]
fn a_push_session_counts_its_bytes_against_what_it_declared() {
    let mut book = book();
    assert!(matches!(
        book.handle_upload_begin("big".to_string(), "app", 11, 10),
        Err(UploadError::TooLarge { declared_bytes: 11, limit_bytes: 10 })
    ));
    assert!(matches!(book.handle_chunks_received("big", 1), Err(UploadError::UnknownUpload { .. })));
    book.handle_upload_begin("push".to_string(), "app", 10, 10).expect("within the limit");
    book.handle_chunks_received("push", 6).expect("within what was declared");
    assert!(matches!(book.handle_chunks_received("push", 5), Err(UploadError::OverDeclared { declared_bytes: 10 })));
    assert_eq!(book.handle_upload_finished("push").expect("open"), "app");
    assert!(matches!(book.handle_upload_finished("push"), Err(UploadError::UnknownUpload { .. })));
}

#[test]
fn a_download_turn_records_progress_and_brings_the_peers_listed_now() {
    let mut book = book();
    let revision = track(&mut book, &manifest(1, 2), 0);
    assert_eq!(book.handle_fetch_wanted(revision), FetchStart::Start);
    let mut have = Bitfield::new(2);
    have.set(0);
    let (wake, peers) = book.handle_download_turn(revision, &have, u64::from(CHUNK_BYTES), false);
    assert_eq!((wake, peers), (Wake::Waiters, Vec::new()));
    let _ = book.handle_assignments([revision], &BTreeMap::from([(revision, vec![member(2)])]));
    let (_, peers) = book.handle_download_turn(revision, &Bitfield::full(2), 2 * u64::from(CHUNK_BYTES), true);
    assert_eq!(peers, vec![member(2)]);
    assert!(book.is_complete(revision));
    assert_eq!(book.advertised(revision), Some(Bitfield::full(2)));
}
