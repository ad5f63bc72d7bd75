//! The wire format of one request or response.
//!
//! ```text
//! offset  size  field
//!      0     2  magic "FM"
//!      2     2  wire version (big endian); this release speaks WIRE_VERSION
//!      4     1  kind: 0 = message, 1 = transport error (header is a UTF-8 reason)
//!      5     1  reserved, 0
//!      6     4  header length in bytes (big endian), ≤ HEADER_BYTES_MAX
//!     10     4  payload length in bytes (big endian), ≤ PAYLOAD_BYTES_MAX
//!     14     …  header (JSON defined by the layer above), then payload (raw bytes)
//! ```
//!
//! A node that receives a frame with another wire version answers with a transport
//! error frame in its own version, naming both, so a node of the next release can tell
//! an old peer apart instead of misreading it.

use bytes::{BufMut, Bytes, BytesMut};

/// The frame format version this release writes and accepts.
pub const WIRE_VERSION: u16 = 1;

/// Magic bytes at the start of every frame.
pub const MAGIC: [u8; 2] = *b"FM";

/// Size of the fixed frame prefix.
pub const PREFIX_BYTES: usize = 14;

/// Cap on a JSON header: Raft appends and manifests of multi-GiB revisions fit, a
/// malicious peer cannot make us allocate more.
pub const HEADER_BYTES_MAX: usize = 64 << 20;

/// Cap on a raw payload: the swarm moves pieces of a few MiB; nothing larger is sent.
pub const PAYLOAD_BYTES_MAX: usize = 32 << 20;

/// What a frame carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// A message for the layer above.
    Message = 0,
    /// The transport at the far end could not handle the request; the header is why.
    TransportError = 1,
}

/// One request or response: a JSON header defined by the layer above and an optional
/// binary payload (chunk bytes), kept apart so bulk data is never JSON-encoded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message {
    /// Serialized header, usually JSON.
    pub header: Bytes,
    /// Raw bytes attached to the header; empty for most messages.
    pub payload: Bytes,
}

impl Message {
    /// A message with a header and no payload.
    pub fn new(header: impl Into<Bytes>) -> Self {
        Self { header: header.into(), payload: Bytes::new() }
    }

    /// A message with a header and a binary payload.
    pub fn with_payload(header: impl Into<Bytes>, payload: impl Into<Bytes>) -> Self {
        Self { header: header.into(), payload: payload.into() }
    }

    /// Total size on the wire, prefix included.
    pub fn wire_len(&self) -> usize {
        PREFIX_BYTES + self.header.len() + self.payload.len()
    }
}

/// The decoded fixed prefix of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prefix {
    /// Wire version the sender speaks.
    pub version: u16,
    /// What the frame carries.
    pub kind: FrameKind,
    /// Header length in bytes.
    pub header_len: usize,
    /// Payload length in bytes.
    pub payload_len: usize,
}

/// Why a frame could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// The first two bytes are not "FM": not a fleetmesh peer.
    #[error("not a fleetmesh frame (bad magic {0:02x?})")]
    BadMagic([u8; 2]),
    /// The peer speaks another wire version.
    #[error("peer speaks wire version {theirs}, this node speaks {ours}")]
    Version {
        /// The version in the frame.
        theirs: u16,
        /// [`WIRE_VERSION`].
        ours: u16,
    },
    /// Unknown kind byte.
    #[error("unknown frame kind {0}")]
    Kind(u8),
    /// A length field is over its cap.
    #[error("frame {field} of {len} bytes is over the {max}-byte limit")]
    TooLarge {
        /// `header` or `payload`.
        field: &'static str,
        /// Declared length.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// A buffer that is not exactly one frame: truncated, or with bytes after it.
    #[error("a frame of {len} bytes where its prefix declares {expected}")]
    Length {
        /// Bytes received.
        len: usize,
        /// Bytes the prefix declares (or the prefix alone, when even that is missing).
        expected: usize,
    },
}

/// Encodes the prefix of a frame carrying `header_len` + `payload_len` bytes.
pub fn encode_prefix(kind: FrameKind, header_len: usize, payload_len: usize) -> [u8; PREFIX_BYTES] {
    assert!(header_len <= HEADER_BYTES_MAX, "header of {header_len} bytes over the cap");
    assert!(payload_len <= PAYLOAD_BYTES_MAX, "payload of {payload_len} bytes over the cap");
    let mut prefix = [0u8; PREFIX_BYTES];
    prefix[0..2].copy_from_slice(&MAGIC);
    prefix[2..4].copy_from_slice(&WIRE_VERSION.to_be_bytes());
    prefix[4] = kind as u8;
    prefix[6..10].copy_from_slice(&(header_len as u32).to_be_bytes());
    prefix[10..14].copy_from_slice(&(payload_len as u32).to_be_bytes());
    prefix
}

/// Decodes and checks a frame prefix.
///
/// # Errors
/// Bad magic, another wire version, an unknown kind or a length over its cap.
pub fn decode_prefix(prefix: &[u8; PREFIX_BYTES]) -> Result<Prefix, FrameError> {
    let magic = [prefix[0], prefix[1]];
    if magic != MAGIC {
        return Err(FrameError::BadMagic(magic));
    }
    let version = u16::from_be_bytes([prefix[2], prefix[3]]);
    if version != WIRE_VERSION {
        return Err(FrameError::Version { theirs: version, ours: WIRE_VERSION });
    }
    let kind = match prefix[4] {
        0 => FrameKind::Message,
        1 => FrameKind::TransportError,
        other => return Err(FrameError::Kind(other)),
    };
    let header_len = u32::from_be_bytes([prefix[6], prefix[7], prefix[8], prefix[9]]) as usize;
    let payload_len = u32::from_be_bytes([prefix[10], prefix[11], prefix[12], prefix[13]]) as usize;
    if header_len > HEADER_BYTES_MAX {
        return Err(FrameError::TooLarge { field: "header", len: header_len, max: HEADER_BYTES_MAX });
    }
    if payload_len > PAYLOAD_BYTES_MAX {
        return Err(FrameError::TooLarge { field: "payload", len: payload_len, max: PAYLOAD_BYTES_MAX });
    }
    Ok(Prefix { version, kind, header_len, payload_len })
}

/// Encodes a whole frame into one buffer (used by tests and small messages).
pub fn encode(kind: FrameKind, message: &Message) -> Bytes {
    let mut buffer = BytesMut::with_capacity(message.wire_len());
    buffer.put_slice(&encode_prefix(kind, message.header.len(), message.payload.len()));
    buffer.put_slice(&message.header);
    buffer.put_slice(&message.payload);
    buffer.freeze()
}

/// Decodes a whole frame from one buffer.
///
/// # Errors
/// A bad prefix, or a buffer shorter or longer than the prefix declares.
pub fn decode(bytes: &Bytes) -> Result<(FrameKind, Message), FrameError> {
    if bytes.len() < PREFIX_BYTES {
        return Err(FrameError::Length { len: bytes.len(), expected: PREFIX_BYTES });
    }
    let mut prefix_bytes = [0u8; PREFIX_BYTES];
    prefix_bytes.copy_from_slice(&bytes[..PREFIX_BYTES]);
    let prefix = decode_prefix(&prefix_bytes)?;
    let expected = PREFIX_BYTES + prefix.header_len + prefix.payload_len;
    if bytes.len() != expected {
        return Err(FrameError::Length { len: bytes.len(), expected });
    }
    let header = bytes.slice(PREFIX_BYTES..PREFIX_BYTES + prefix.header_len);
    let payload = bytes.slice(PREFIX_BYTES + prefix.header_len..);
    Ok((prefix.kind, Message { header, payload }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_round_trips() {
        let message = Message::with_payload(&b"{\"a\":1}"[..], vec![1u8, 2, 3]);
        let bytes = encode(FrameKind::Message, &message);
        assert_eq!(decode(&bytes), Ok((FrameKind::Message, message)));
    }

    #[test]
    fn other_versions_are_named() {
        let mut bytes = encode(FrameKind::Message, &Message::new(&b"{}"[..])).to_vec();
        bytes[3] = 9;
        assert_eq!(decode(&Bytes::from(bytes)), Err(FrameError::Version { theirs: 9, ours: WIRE_VERSION }));
    }

    #[test]
    fn oversized_lengths_are_refused_before_allocation() {
        let mut prefix = encode_prefix(FrameKind::Message, 0, 0);
        prefix[6..10].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(decode_prefix(&prefix), Err(FrameError::TooLarge { field: "header", .. })));
    }

    #[test]
    fn truncated_and_overlong_buffers_are_named() {
        let bytes = encode(FrameKind::Message, &Message::with_payload(&b"{}"[..], vec![7u8; 5]));
        let short = bytes.slice(..bytes.len() - 1);
        assert_eq!(decode(&short), Err(FrameError::Length { len: 20, expected: 21 }));
        assert_eq!(decode(&bytes.slice(..3)), Err(FrameError::Length { len: 3, expected: PREFIX_BYTES }));
        let mut long = bytes.to_vec();
        long.push(0);
        assert_eq!(decode(&Bytes::from(long)), Err(FrameError::Length { len: 22, expected: 21 }));
    }

    /// `bytes` with the reserved prefix byte zeroed: the decoder ignores it (a later
    /// version may use it), the encoder writes 0.
    fn without_reserved(bytes: &Bytes) -> Bytes {
        let mut bytes = bytes.to_vec();
        if let Some(reserved) = bytes.get_mut(5) {
            *reserved = 0;
        }
        Bytes::from(bytes)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 2048, ..Default::default() })]

        #[test]
        fn arbitrary_bytes_decode_or_fail_cleanly(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            // Fuzzes the decoder with arbitrary buffers; asserts it returns (never panics)
            // and that whatever it accepts re-encodes to the same bytes.
            let bytes = Bytes::from(bytes);
            if let Ok((kind, message)) = decode(&bytes) {
                proptest::prop_assert_eq!(encode(kind, &message), without_reserved(&bytes));
            }
        }

        #[test]
        fn mutated_frames_decode_or_fail_cleanly(
            header in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..32),
            payload in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..32),
            flips in proptest::collection::vec((0usize..96, proptest::prelude::any::<u8>()), 0..4),
        ) {
            // Fuzzes valid frames with a few corrupted bytes (prefixes mostly intact, so
            // the length and version checks are reached); asserts no panic, and an accepted
            // buffer round-trips.
            let mut bytes = encode(FrameKind::Message, &Message::with_payload(header, payload)).to_vec();
            for (at, value) in flips {
                if let Some(byte) = bytes.get_mut(at % 96) {
                    *byte = value;
                }
            }
            let bytes = Bytes::from(bytes);
            if let Ok((kind, message)) = decode(&bytes) {
                proptest::prop_assert_eq!(encode(kind, &message), without_reserved(&bytes));
            }
        }
    }

    #[test]
    fn garbage_is_not_a_frame() {
        let prefix = [0xffu8; PREFIX_BYTES];
        assert_eq!(decode_prefix(&prefix), Err(FrameError::BadMagic([0xff, 0xff])));
    }
}
