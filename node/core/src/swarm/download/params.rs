//! The download's caps and back-offs, and why each default is what it is.

use std::time::Duration;

/// Requests in flight to one peer.
///
/// 4: one 1 MiB piece takes ~8 ms at 1 Gbit/s against a ~1 ms LAN round trip, so two
/// outstanding requests already keep a peer's uplink busy for us; four also cover WAN
/// round trips up to ~25 ms. More would only queue at the uploader (which answers
/// `Busy` past its own slots) and commit pieces to a source long before it can send them.
pub const REQUESTS_PER_PEER_MAX: usize = 4;

/// Requests in flight in total.
///
/// 8: enough to keep the downlink fed from several peers while some of them are slow
/// or busy, and it bounds receive buffers to ~8 MiB per download whatever the revision
/// size. Measured in the swarm simulation (200 nodes, 256 MiB): 4 or 6 left downlinks
/// idle and 12 or 16 lengthened every uploader's queue, each making the last node
/// 5-20 % later than with 8.
pub const REQUESTS_IN_FLIGHT_MAX: usize = 8;

/// Requests for one piece in the endgame: the first one plus one duplicate. More would
/// spend peers' uplinks on bytes that are thrown away.
pub const ENDGAME_REQUESTS_PER_PIECE_MAX: usize = 2;

/// Known peers below which the download asks the shell for more (see
/// [`super::Download::wanted_peers_hint`]).
pub const PEERS_WANTED_MIN: usize = 4;

/// Tuning of a [`super::Download`]; [`Default`] holds the values the constants justify.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DownloadParams {
    /// Requests in flight to one peer, at least 1.
    pub requests_per_peer_max: usize,
    /// Requests in flight in total, at least 1.
    pub requests_in_flight_max: usize,
    /// Requests for one piece once every missing piece is in flight, at least 1.
    pub endgame_requests_per_piece_max: usize,
    /// How long a peer that answered `Busy` is left alone; doubles per consecutive
    /// `Busy` from it up to `busy_backoff_max`.
    pub busy_backoff: Duration,
    /// Longest back-off after `Busy` answers.
    pub busy_backoff_max: Duration,
    /// How long a peer is left alone after its first failure; doubles per consecutive
    /// failure up to `failed_backoff_max`.
    pub failed_backoff: Duration,
    /// Longest back-off after failures.
    pub failed_backoff_max: Duration,
    /// Known peers below which [`super::Download::wanted_peers_hint`] asks for more.
    pub peers_wanted_min: usize,
}

impl Default for DownloadParams {
    fn default() -> Self {
        Self {
            requests_per_peer_max: REQUESTS_PER_PEER_MAX,
            requests_in_flight_max: REQUESTS_IN_FLIGHT_MAX,
            endgame_requests_per_piece_max: ENDGAME_REQUESTS_PER_PIECE_MAX,
            // A busy uploader frees a slot every ~8 ms (one piece); 10 ms lets others
            // take turns without leaving its queue empty. Doubling up to 80 ms for a
            // peer that stays busy halved the Busy round trips in the swarm simulation
            // for ~2 % on the last node's time.
            busy_backoff: Duration::from_millis(10),
            busy_backoff_max: Duration::from_millis(80),
            // A failure is a lost response or a dead connection: give it a few round
            // trips before retrying, and up to 2 s if it keeps failing.
            failed_backoff: Duration::from_millis(50),
            failed_backoff_max: Duration::from_secs(2),
            peers_wanted_min: PEERS_WANTED_MIN,
        }
    }
}
