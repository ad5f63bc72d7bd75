//! The production [`Transport`]: QUIC (quinn) with mutual TLS under the cluster CA.
//!
//! One UDP socket per node both accepts and connects. Connections are cached per peer
//! and re-established on failure; every request runs on its own bidirectional stream.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use rustls::pki_types::CertificateDer;
use tracing::{debug, warn};

use crate::frame::{self, FrameError, FrameKind, PREFIX_BYTES};
use crate::pki::{self, CaFingerprint, TlsIdentity, CLUSTER_SERVER_NAME};
use crate::revocation::Revocation;
use crate::tls::{self, TlsError, ALPN_CLUSTER, ALPN_JOIN};
use crate::{BoxFuture, Caller, Handler, Message, NodeId, Peer, Transport, TransportError};

/// QUIC application error code sent when a connection is refused after the handshake.
const REFUSED_CODE: u32 = 1;

/// Why the QUIC endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum QuicError {
    /// The UDP socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Requested address.
        addr: SocketAddr,
        /// OS error.
        source: std::io::Error,
    },
    /// TLS configuration failed.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

type ConnectionSlot = Arc<tokio::sync::Mutex<Option<quinn::Connection>>>;

/// A cached connection whose requests keep timing out while the peer sends nothing at
/// all (not even acknowledgements) for this long is closed, so the next request
/// reconnects.
///
/// Why: a peer that restarts on the same address does not know the old connection, and
/// QUIC gives no signal (its stateless reset cannot be validated across processes), so
/// without this the connection lingered until the 10 s idle timeout. Meanwhile Raft's
/// heartbeats to a restarted voter all timed out, the voter called elections and, with a
/// higher term, deposed the leader, repeatedly. A live peer, however slow its answers,
/// acknowledges within a round trip plus its ack delay (25 ms), so 300 ms of total silence
/// under continued requests means the connection is dead; the window stays well under
/// Raft's election timeout (`RaftTiming`).
pub const SILENT_CONNECTION_EVICT_AFTER: Duration = Duration::from_millis(300);

/// Since when requests on a peer's connection time out unanswered, and how many
/// datagrams that connection had received then.
#[derive(Clone, Copy, Debug)]
struct Silence {
    since: std::time::Instant,
    datagrams: u64,
}

/// A node's QUIC endpoint: answers peers through a [`Handler`] and sends requests as a
/// [`Transport`].
pub struct QuicTransport {
    endpoint: quinn::Endpoint,
    /// The client side of new connections (swapped with a renewed certificate).
    client: RwLock<quinn::ClientConfig>,
    /// Members refused at the handshake, and whose open connections are closed.
    revocation: Arc<Revocation>,
    connections: Mutex<HashMap<NodeId, ConnectionSlot>>,
    /// Peers whose requests time out, see [`SILENT_CONNECTION_EVICT_AFTER`].
    silences: Mutex<HashMap<NodeId, Silence>>,
}

impl std::fmt::Debug for QuicTransport {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("QuicTransport").finish_non_exhaustive()
    }
}

impl QuicTransport {
    /// Binds `addr`, starts answering peers with `handler`, and returns the endpoint.
    /// Nobody is revoked until a policy is installed in [`QuicTransport::revocation`].
    ///
    /// # Errors
    /// The address cannot be bound or the identity is not a valid TLS configuration.
    pub fn bind(addr: SocketAddr, identity: &TlsIdentity, handler: Arc<dyn Handler>) -> Result<Arc<Self>, QuicError> {
        let revocation = Revocation::new();
        let server = tls::server_config_with(identity, revocation.clone())?;
        let endpoint = server_endpoint(server, addr)?;
        let transport = Arc::new(Self {
            endpoint: endpoint.clone(),
            client: RwLock::new(tls::client_config_with(identity, revocation.clone())?),
            revocation: revocation.clone(),
            connections: Mutex::new(HashMap::new()),
            silences: Mutex::new(HashMap::new()),
        });
        tokio::spawn(accept_loop(endpoint, handler, revocation));
        Ok(transport)
    }

    /// Which members this endpoint refuses; the node installs its policy here.
    pub fn revocation(&self) -> &Arc<Revocation> {
        &self.revocation
    }

    /// Presents `identity` (a renewed certificate) from the next handshake on, both
    /// to peers that connect and to peers this node connects to. Open connections keep
    /// the certificate they were made with.
    ///
    /// # Errors
    /// The identity is not a valid TLS configuration; the old one stays in use.
    pub fn set_identity(&self, identity: &TlsIdentity) -> Result<(), QuicError> {
        let server = tls::server_config_with(identity, self.revocation.clone())?;
        let client = tls::client_config_with(identity, self.revocation.clone())?;
        self.endpoint.set_server_config(Some(server));
        *self.client.write().unwrap_or_else(std::sync::PoisonError::into_inner) = client;
        Ok(())
    }

    /// The bound address (useful when binding port 0).
    ///
    /// # Errors
    /// The socket is gone.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// Closes every connection and stops accepting.
    pub async fn close(&self) {
        self.endpoint.close(quinn::VarInt::from_u32(0), b"node shutting down");
        // Waiting for peers to acknowledge the close is a courtesy: after a second the
        // node stops anyway, and peers notice by their idle timeout.
        let _ = tokio::time::timeout(Duration::from_secs(1), self.endpoint.wait_idle()).await;
    }

    fn slot(&self, peer: NodeId) -> ConnectionSlot {
        let mut connections = self.connections.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        connections.entry(peer).or_default().clone()
    }

    async fn connection(&self, peer: Peer) -> Result<quinn::Connection, TransportError> {
        let slot = self.slot(peer.id);
        let mut guard = slot.lock().await;
        if let Some(connection) = guard.as_ref() {
            let usable = connection.close_reason().is_none() && connection.remote_address() == peer.addr;
            if usable && !self.revocation.is_revoked(peer.id) {
                return Ok(connection.clone());
            }
        }
        let unreachable = |reason: String| TransportError::Unreachable { peer: peer.id, addr: peer.addr, reason };
        if self.revocation.is_revoked(peer.id) {
            if let Some(connection) = guard.take() {
                connection.close(quinn::VarInt::from_u32(REFUSED_CODE), b"removed from the cluster");
            }
            return Err(unreachable(format!("node {} was removed from the cluster", peer.id)));
        }
        let client = self.client.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let connecting = self
            .endpoint
            .connect_with(client, peer.addr, &peer.id.server_name())
            .map_err(|error| unreachable(error.to_string()))?;
        let connection = connecting.await.map_err(|error| unreachable(error.to_string()))?;
        *guard = Some(connection.clone());
        Ok(connection)
    }

    async fn request_inner(&self, peer: Peer, message: Message, timeout: Duration) -> Result<Message, TransportError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let timed_out = || TransportError::Timeout { peer: peer.id, timeout };
        let connection = tokio::time::timeout_at(deadline, self.connection(peer)).await.map_err(|_| timed_out())??;
        match tokio::time::timeout_at(deadline, exchange(&connection, peer.id, message)).await {
            Ok(Err(error @ TransportError::Broken { .. })) => {
                // Forget a broken connection so the next request reconnects.
                connection.close(quinn::VarInt::from_u32(0), b"broken");
                Err(error)
            }
            Ok(other) => {
                self.silences.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&peer.id);
                other
            }
            Err(_) => {
                self.note_silence(peer.id, &connection);
                Err(timed_out())
            }
        }
    }

    /// After a timed-out request: closes `connection` once the peer has sent nothing on
    /// it for [`SILENT_CONNECTION_EVICT_AFTER`] of timed-out requests.
    fn note_silence(&self, peer: NodeId, connection: &quinn::Connection) {
        let now = std::time::Instant::now();
        let datagrams = connection.stats().udp_rx.datagrams;
        let mut silences = self.silences.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let silence = silences.entry(peer).or_insert(Silence { since: now, datagrams });
        if silence.datagrams != datagrams {
            // The peer is alive, only slow: start over.
            *silence = Silence { since: now, datagrams };
        } else if now.duration_since(silence.since) >= SILENT_CONNECTION_EVICT_AFTER {
            silences.remove(&peer);
            debug!(%peer, "closing a connection the peer has not answered on for a while");
            connection.close(quinn::VarInt::from_u32(0), b"peer silent");
        }
    }
}

impl Transport for QuicTransport {
    fn request(
        &self,
        peer: Peer,
        message: Message,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<Message, TransportError>> {
        Box::pin(self.request_inner(peer, message, timeout))
    }
}

/// Socket buffer bytes asked for the node's UDP socket, each way.
///
/// 4 MiB: the Linux default (208 KiB) holds ~150 full-size datagrams, which a
/// receiver busy verifying and writing a piece overflowed on loopback during a bulk
/// transfer (UDP `RcvbufErrors`), each drop costing a retransmission and a congestion
/// window cut. 4 MiB is the usual `net.core.rmem_max`; the kernel caps what it grants
/// at that sysctl, so a smaller grant is not an error.
pub const SOCKET_BUFFER_BYTES: usize = 4 << 20;

/// A quinn endpoint bound to `addr` that accepts with `server`, on a UDP socket with
/// [`SOCKET_BUFFER_BYTES`] buffers.
///
/// # Errors
/// [`QuicError::Bind`] when the socket cannot be created or bound.
pub fn server_endpoint(server: quinn::ServerConfig, addr: SocketAddr) -> Result<quinn::Endpoint, QuicError> {
    let bind = |source| QuicError::Bind { addr, source };
    let socket =
        socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::DGRAM, Some(socket2::Protocol::UDP))
            .map_err(bind)?;
    // Best effort: without them the node still works, only bulk transfers lose more.
    if let Err(error) = socket.set_recv_buffer_size(SOCKET_BUFFER_BYTES) {
        debug!(%error, "cannot enlarge the UDP receive buffer");
    }
    if let Err(error) = socket.set_send_buffer_size(SOCKET_BUFFER_BYTES) {
        debug!(%error, "cannot enlarge the UDP send buffer");
    }
    socket.bind(&addr.into()).map_err(bind)?;
    let runtime = quinn::default_runtime()
        .ok_or_else(|| bind(std::io::Error::other("no async runtime for the QUIC endpoint")))?;
    quinn::Endpoint::new(quinn::EndpointConfig::default(), Some(server), socket.into(), runtime).map_err(bind)
}

/// Sends one request on a new stream of `connection` and reads the answer.
async fn exchange(connection: &quinn::Connection, peer: NodeId, message: Message) -> Result<Message, TransportError> {
    // With the peer's reason when it closed the connection (a handshake it refused
    // after this side considered it done, e.g. a revoked certificate).
    let broken = |reason: String| TransportError::Broken {
        peer,
        reason: match connection.close_reason() {
            Some(closed) => format!("{reason}: {closed}"),
            None => reason,
        },
    };
    let (mut send, mut recv) = connection.open_bi().await.map_err(|error| broken(error.to_string()))?;
    write_frame(&mut send, FrameKind::Message, message).await.map_err(|error| broken(error.to_string()))?;
    let (kind, answer) = read_frame(&mut recv).await.map_err(|error| match error {
        ReadError::Frame(frame) => TransportError::Refused { peer, reason: frame.to_string() },
        ReadError::Stream(reason) => broken(reason),
    })?;
    match kind {
        FrameKind::Message => Ok(answer),
        FrameKind::TransportError => {
            Err(TransportError::Refused { peer, reason: String::from_utf8_lossy(&answer.header).into_owned() })
        }
    }
}

/// Why a frame could not be written to a stream.
#[derive(Debug, thiserror::Error)]
enum WriteError {
    /// The stream broke while writing.
    #[error(transparent)]
    Write(#[from] quinn::WriteError),
    /// The stream was already closed.
    #[error(transparent)]
    Closed(#[from] quinn::ClosedStream),
}

/// Frames with at least this many payload bytes are bulk: in practice piece answers and
/// the manifests of large revisions (a node's messages carry bulk bytes in the payload,
/// everything else in the header).
pub const BULK_PAYLOAD_BYTES: usize = 64 << 10;

/// The send priority of a bulk frame's stream, below the default (0) of every other:
/// with streams sent one after another ([`crate::tls::transport_config`]), a Raft
/// heartbeat or a have-set written after eight piece answers would otherwise wait for
/// all their bytes (~8 MiB, 64 ms at 1 Gbit/s) to leave first.
pub const BULK_PRIORITY: i32 = -1;

async fn write_frame(send: &mut quinn::SendStream, kind: FrameKind, message: Message) -> Result<(), WriteError> {
    if message.payload.len() >= BULK_PAYLOAD_BYTES {
        // Fails only on a stream already closed, which the write below reports.
        let _ = send.set_priority(BULK_PRIORITY);
    }
    let prefix = frame::encode_prefix(kind, message.header.len(), message.payload.len());
    let mut chunks = [Bytes::copy_from_slice(&prefix), message.header, message.payload];
    send.write_all_chunks(&mut chunks).await.map_err(|error| match error {
        quinn::WriteError::ClosedStream => WriteError::Closed(quinn::ClosedStream::default()),
        other => WriteError::Write(other),
    })?;
    send.finish()?;
    Ok(())
}

enum ReadError {
    Frame(FrameError),
    Stream(String),
}

async fn read_frame(recv: &mut quinn::RecvStream) -> Result<(FrameKind, Message), ReadError> {
    let mut prefix_bytes = [0u8; PREFIX_BYTES];
    recv.read_exact(&mut prefix_bytes).await.map_err(|error| ReadError::Stream(error.to_string()))?;
    let prefix = frame::decode_prefix(&prefix_bytes).map_err(ReadError::Frame)?;
    let header = read_exactly(recv, prefix.header_len).await?;
    let payload = read_exactly(recv, prefix.payload_len).await?;
    Ok((prefix.kind, Message { header: header.freeze(), payload: payload.freeze() }))
}

/// Most bytes reserved for a frame's part before they arrive: a peer that announces a
/// large frame (up to the prefix's limits, tens of MiB) gets the memory only as it sends
/// the bytes, so a stream that stops early holds little.
const RESERVED_AHEAD_MAX: usize = 1 << 20;

/// Reads `len` bytes, chunk by chunk into uninitialized capacity: a piece answer is
/// ~1 MiB, and zeroing a buffer only to overwrite it showed up in the receiver's profile.
async fn read_exactly(recv: &mut quinn::RecvStream, len: usize) -> Result<bytes::BytesMut, ReadError> {
    let mut buffer = bytes::BytesMut::with_capacity(len.min(RESERVED_AHEAD_MAX));
    // Bounded: each turn adds at least one byte, up to len.
    while buffer.len() < len {
        match recv.read_chunk(len - buffer.len(), true).await {
            Ok(Some(chunk)) => buffer.extend_from_slice(&chunk.bytes),
            Ok(None) => return Err(ReadError::Stream("the stream ended inside a frame".to_string())),
            Err(error) => return Err(ReadError::Stream(error.to_string())),
        }
    }
    Ok(buffer)
}

async fn accept_loop(endpoint: quinn::Endpoint, handler: Arc<dyn Handler>, revocation: Arc<Revocation>) {
    // Bounded by the endpoint's life: accept() returns None once it is closed.
    while let Some(incoming) = endpoint.accept().await {
        let handler = handler.clone();
        let revocation = revocation.clone();
        tokio::spawn(async move {
            let remote = incoming.remote_address();
            match incoming.await {
                Ok(connection) => serve_connection(connection, handler, revocation).await,
                Err(error) => debug!(%remote, %error, "incoming connection failed its handshake"),
            }
        });
    }
}

fn caller_of(connection: &quinn::Connection) -> Result<Caller, &'static str> {
    let alpn = connection
        .handshake_data()
        .and_then(|data| data.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|data| data.protocol);
    let certificates =
        connection.peer_identity().and_then(|identity| identity.downcast::<Vec<CertificateDer<'static>>>().ok());
    match alpn.as_deref() {
        Some(ALPN_JOIN) => Ok(Caller::Joiner),
        Some(ALPN_CLUSTER) => {
            let Some(leaf) = certificates.as_ref().and_then(|certs| certs.first()) else {
                return Err("a cluster certificate is required");
            };
            pki::node_id_of(leaf).map(Caller::Node).ok_or("the certificate names no node")
        }
        _ => Err("unknown protocol"),
    }
}

/// How often an open connection's peer is checked against the revocation: a member
/// removed while connected is cut off within this.
const REVOCATION_CHECK: Duration = Duration::from_secs(1);

async fn serve_connection(connection: quinn::Connection, handler: Arc<dyn Handler>, revocation: Arc<Revocation>) {
    let caller = match caller_of(&connection) {
        Ok(caller) => caller,
        Err(reason) => {
            warn!(remote = %connection.remote_address(), reason, "refusing connection");
            connection.close(quinn::VarInt::from_u32(REFUSED_CODE), reason.as_bytes());
            return;
        }
    };
    let mut check = tokio::time::interval(REVOCATION_CHECK);
    // Bounded by the connection's life and by max_concurrent_bidi_streams.
    loop {
        let accepted = tokio::select! {
            accepted = connection.accept_bi() => accepted,
            _ = check.tick() => {
                if let Caller::Node(id) = caller {
                    if revocation.is_revoked(id) {
                        warn!(node = %id, "closing the connection of a node removed from the cluster");
                        connection.close(quinn::VarInt::from_u32(REFUSED_CODE), b"removed from the cluster");
                        return;
                    }
                }
                continue;
            }
        };
        let Ok((send, recv)) = accepted else { return };
        let handler = handler.clone();
        tokio::spawn(serve_stream(caller, send, recv, handler));
    }
}

async fn serve_stream(
    caller: Caller,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    handler: Arc<dyn Handler>,
) {
    let (kind, answer) = match read_frame(&mut recv).await {
        Ok((FrameKind::Message, request)) => match handler.handle(caller, request).await {
            Ok(answer) => (FrameKind::Message, answer),
            Err(refused) => (FrameKind::TransportError, Message::new(refused.reason)),
        },
        Ok((FrameKind::TransportError, _)) => {
            (FrameKind::TransportError, Message::new("a request cannot be a transport error"))
        }
        Err(ReadError::Frame(error)) => (FrameKind::TransportError, Message::new(error.to_string())),
        Err(ReadError::Stream(reason)) => {
            debug!(?caller, reason, "request stream broke");
            return;
        }
    };
    if let Err(error) = write_frame(&mut send, kind, answer).await {
        debug!(?caller, %error, "could not send the answer");
    }
}

/// Sends one request to a seed as a joining node: no certificate, the seed's CA must
/// match `pin`. Used once, before the node has an identity.
///
/// # Errors
/// The seed is unreachable, its CA does not match the pin, or it refused the request.
pub async fn join_request(
    seed: SocketAddr,
    pin: CaFingerprint,
    message: Message,
    timeout: Duration,
) -> Result<Message, TransportError> {
    let peer = NodeId(0);
    let unreachable = |reason: String| TransportError::Unreachable { peer, addr: seed, reason };
    let bind: SocketAddr = if seed.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }
        .parse()
        .map_err(|_| unreachable("bad bind address".to_string()))?;
    let mut endpoint = quinn::Endpoint::client(bind).map_err(|error| unreachable(error.to_string()))?;
    endpoint.set_default_client_config(tls::join_client_config(pin).map_err(|error| unreachable(error.to_string()))?);
    let result = tokio::time::timeout(timeout, async {
        let connection = endpoint
            .connect(seed, CLUSTER_SERVER_NAME)
            .map_err(|error| unreachable(error.to_string()))?
            .await
            .map_err(|error| unreachable(error.to_string()))?;
        let answer = exchange(&connection, peer, message).await;
        connection.close(quinn::VarInt::from_u32(0), b"done");
        answer
    })
    .await
    .unwrap_or(Err(TransportError::Timeout { peer, timeout }));
    endpoint.close(quinn::VarInt::from_u32(0), b"done");
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{CaAuthority, ClusterCa, NodeKey};
    use crate::Refused;

    struct Echo;
    impl Handler for Echo {
        fn handle(&self, caller: Caller, message: Message) -> BoxFuture<'static, Result<Message, Refused>> {
            Box::pin(async move {
                let who = match caller {
                    Caller::Node(id) => format!("node {id}"),
                    Caller::Joiner => "joiner".to_string(),
                };
                Ok(Message::with_payload(who, message.payload))
            })
        }
    }

    fn identity(ca: &ClusterCa, id: u64) -> TlsIdentity {
        let key = NodeKey::generate().expect("key");
        let cert = ca.sign_node(NodeId(id), &key.public_key).expect("cert");
        TlsIdentity::from_pem(NodeId(id), &ca.cert_pem, &cert, &key.key_pem).expect("identity")
    }

    /// Two nodes of one cluster talk; the server learns the caller's id from its
    /// certificate; a node of another cluster, and a joiner pinning the wrong CA, are
    /// refused during the handshake; a joiner with the right pin is answered as a joiner.
    #[tokio::test]
    async fn mutual_tls_admits_members_only() {
        let ca = ClusterCa::generate("a").expect("ca");
        let server =
            QuicTransport::bind("127.0.0.1:0".parse().expect("addr"), &identity(&ca, 1), Arc::new(Echo)).expect("bind");
        let addr = server.local_addr().expect("addr");
        let client =
            QuicTransport::bind("127.0.0.1:0".parse().expect("addr"), &identity(&ca, 2), Arc::new(Echo)).expect("bind");
        let peer = Peer { id: NodeId(1), addr };
        let payload = Bytes::from(vec![7u8; 3 << 20]);
        let answer = client
            .request(peer, Message::with_payload(&b"hi"[..], payload.clone()), Duration::from_secs(5))
            .await
            .expect("member request");
        assert_eq!(&answer.header[..], b"node 2");
        assert_eq!(answer.payload, payload);

        let other = ClusterCa::generate("b").expect("ca");
        let intruder = QuicTransport::bind("127.0.0.1:0".parse().expect("addr"), &identity(&other, 2), Arc::new(Echo))
            .expect("bind");
        assert!(intruder.request(peer, Message::new(&b"hi"[..]), Duration::from_secs(5)).await.is_err());

        let wrong_pin =
            join_request(addr, other.fingerprint().expect("fp"), Message::new(&b"join"[..]), Duration::from_secs(5))
                .await;
        assert!(wrong_pin.is_err());
        let joiner =
            join_request(addr, ca.fingerprint().expect("fp"), Message::new(&b"join"[..]), Duration::from_secs(5))
                .await
                .expect("pinned joiner");
        assert_eq!(&joiner.header[..], b"joiner");
        // Asking for the wrong node id at the right address fails the name check.
        let wrong_id = Peer { id: NodeId(9), addr };
        assert!(client.request(wrong_id, Message::new(&b"hi"[..]), Duration::from_secs(5)).await.is_err());
        for transport in [server, client, intruder] {
            transport.close().await;
        }
    }

    /// A member the server's policy revokes is refused at the handshake and learns it
    /// from the error; one revoked while connected is cut off; a renewed identity is
    /// presented to new connections.
    #[tokio::test]
    async fn revoked_members_are_refused_and_cut_off() {
        use std::sync::atomic::{AtomicU64, Ordering};
        let ca = ClusterCa::generate("a").expect("ca");
        let server =
            QuicTransport::bind("127.0.0.1:0".parse().expect("addr"), &identity(&ca, 1), Arc::new(Echo)).expect("bind");
        let revoked = Arc::new(AtomicU64::new(3));
        let policy = revoked.clone();
        assert!(server.revocation().install(Arc::new(move |id: NodeId| id.0 == policy.load(Ordering::SeqCst))));
        let peer = Peer { id: NodeId(1), addr: server.local_addr().expect("addr") };
        let bind = |id| {
            QuicTransport::bind("127.0.0.1:0".parse().expect("addr"), &identity(&ca, id), Arc::new(Echo)).expect("bind")
        };
        let (member, removed) = (bind(2), bind(3));
        member.request(peer, Message::new(&b"hi"[..]), Duration::from_secs(5)).await.expect("member");
        let error = removed.request(peer, Message::new(&b"hi"[..]), Duration::from_secs(5)).await.expect_err("revoked");
        assert!(crate::revocation::is_revoked_by_peer(&error.to_string()), "{error}");

        revoked.store(2, Ordering::SeqCst);
        tokio::time::sleep(REVOCATION_CHECK * 2).await;
        let cut = member.request(peer, Message::new(&b"hi"[..]), Duration::from_secs(5)).await;
        assert!(cut.is_err(), "the open connection of a node revoked since was closed");

        member.set_identity(&identity(&ca, 2)).expect("renewed identity");
        revoked.store(0, Ordering::SeqCst);
        member.request(peer, Message::new(&b"hi"[..]), Duration::from_secs(5)).await.expect("renewed member");
        for transport in [server, member, removed] {
            transport.close().await;
        }
    }

    /// A small request on a connection busy with bulk answers is answered ahead of
    /// most of them: bulk frames go at [`BULK_PRIORITY`]. Streams of one priority are
    /// sent one after another, so without the priority the small answer would wait for
    /// every bulk byte queued before it (measured: after 12 of 12; with it, after 4 or 5:
    /// what is already in flight still arrives first).
    #[tokio::test]
    async fn control_messages_do_not_wait_behind_bulk_answers() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        const BULK: usize = 12;
        struct Bulk;
        impl Handler for Bulk {
            fn handle(&self, _caller: Caller, message: Message) -> BoxFuture<'static, Result<Message, Refused>> {
                Box::pin(async move {
                    Ok(match &message.header[..] {
                        // 12 × 4 MiB fits the 64 MiB send window: all of it is queued
                        // at once, ahead of the small answer.
                        b"bulk" => Message::with_payload(&b"bulk"[..], Bytes::from(vec![1u8; 4 << 20])),
                        _ => Message::new(&b"small"[..]),
                    })
                })
            }
        }
        let ca = ClusterCa::generate("a").expect("ca");
        let server =
            QuicTransport::bind("127.0.0.1:0".parse().expect("addr"), &identity(&ca, 1), Arc::new(Bulk)).expect("bind");
        let client =
            QuicTransport::bind("127.0.0.1:0".parse().expect("addr"), &identity(&ca, 2), Arc::new(Echo)).expect("bind");
        let peer = Peer { id: NodeId(1), addr: server.local_addr().expect("addr") };
        let timeout = Duration::from_secs(30);
        client.request(peer, Message::new(&b"small"[..]), timeout).await.expect("connect");
        let finished = Arc::new(AtomicUsize::new(0));
        let mut bulk = tokio::task::JoinSet::new();
        for _ in 0..BULK {
            let (client, finished) = (client.clone(), finished.clone());
            bulk.spawn(async move {
                let answer = client.request(peer, Message::new(&b"bulk"[..]), timeout).await;
                finished.fetch_add(1, Ordering::SeqCst);
                answer.map(|answer| answer.payload.len())
            });
        }
        // The small request goes once two bulk answers' worth of bytes have arrived.
        let slot = client.connections.lock().expect("connections").get(&peer.id).cloned().expect("connection");
        let received = || async { slot.lock().await.as_ref().map_or(0, |connection| connection.stats().udp_rx.bytes) };
        // Bounded: 30 s of 1 ms turns at most.
        for _ in 0..30_000 {
            if received().await >= 8 << 20 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(received().await >= 8 << 20, "bulk answers did not arrive within 30 s");
        let small = client.request(peer, Message::new(&b"small"[..]), timeout).await.expect("small answer");
        let before_small = finished.load(Ordering::SeqCst);
        assert_eq!(&small.header[..], b"small");
        assert!(
            before_small <= BULK * 3 / 4,
            "the small answer came after {before_small} of {BULK} bulk answers (expected before three quarters of them)"
        );
        while let Some(answer) = bulk.join_next().await {
            assert_eq!(answer.expect("task").expect("bulk answer"), 4 << 20);
        }
        server.close().await;
        client.close().await;
    }

    /// A peer killed without a word (its runtime dropped: no CONNECTION_CLOSE) and
    /// restarted on the same address is reached again within a second, not after the
    /// 10 s idle timeout: requests on the dead cached connection time out unanswered,
    /// the connection is closed after [`SILENT_CONNECTION_EVICT_AFTER`], and the next
    /// request reconnects.
    #[tokio::test]
    async fn a_silent_connection_to_a_restarted_peer_is_replaced() {
        let ca = ClusterCa::generate("a").expect("ca");
        let server_identity = identity(&ca, 1);
        let first_life =
            tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("rt");
        let server = {
            let _inside = first_life.enter();
            QuicTransport::bind("127.0.0.1:0".parse().expect("addr"), &server_identity, Arc::new(Echo)).expect("bind")
        };
        let addr = server.local_addr().expect("addr");
        let client =
            QuicTransport::bind("127.0.0.1:0".parse().expect("addr"), &identity(&ca, 2), Arc::new(Echo)).expect("bind");
        let peer = Peer { id: NodeId(1), addr };
        client.request(peer, Message::new(&b"hi"[..]), Duration::from_secs(5)).await.expect("first life");
        // The "kill -9": the server's tasks vanish without sending anything.
        drop(server);
        first_life.shutdown_background();
        // The dropped runtime frees the old socket in the background: retry the bind briefly.
        let mut restarted = None;
        for _ in 0..50 {
            match QuicTransport::bind(addr, &server_identity, Arc::new(Echo)) {
                Ok(transport) => {
                    restarted = Some(transport);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        let restarted = restarted.expect("rebind the same address");
        let started = std::time::Instant::now();
        // Bounded: at most 30 attempts of 100 ms.
        let mut answered = false;
        for _ in 0..30 {
            if client.request(peer, Message::new(&b"hi"[..]), Duration::from_millis(100)).await.is_ok() {
                answered = true;
                break;
            }
        }
        assert!(answered, "the restarted peer was not reached within 30 attempts ({:?})", started.elapsed());
        assert!(started.elapsed() < Duration::from_secs(2), "reconnecting took {:?}", started.elapsed());
        restarted.close().await;
        client.close().await;
    }
}
