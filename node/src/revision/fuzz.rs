//! Entry points for fuzzing the decoders of untrusted input, shared by the `cargo fuzz`
//! targets in `fuzz/` (nightly) and the stable test that replays their committed corpora.
//!
//! Each function takes arbitrary bytes, runs them through the real public decoder, and
//! panics only when the decoder breaks a promise (a panic inside it, or an accepted input
//! that does not survive its own checks). Errors are expected and ignored.
//!
//! | target     | input                          | decoder                                          |
//! |------------|--------------------------------|--------------------------------------------------|
//! | `appspec`  | an `appspec.yml`               | `fleetmesh_core::appspec::parse`                 |
//! | `platform_appspec` | a Lambda or ECS AppSpec | `appspec::lambda_ecs::parse_lambda`, `parse_ecs` |
//! | `frame`    | one frame off a QUIC stream    | `frame::decode`, then the protocol's JSON header |
//! | `manifest` | a manifest as a peer sends it  | JSON into `Manifest`, `validate`, its piece map  |
//! | `archive`  | a bundle file (tar, tgz, zip)  | [`bundle_size`] and [`build_manifest`]           |
//! | `aws_request` | `X-Amz-Target`, newline, body | `fleetmesh_model::aws::parse`, `exception`, `status` |
//! | `sigv4`    | headers, empty line, body      | `sigv4::signed`, `verify`, `binds`               |

use std::convert::Infallible;
use std::io;
use std::path::Path;

use bytes::Bytes;
use fleetmesh_core::appspec::SCRIPT_TIMEOUT_MAX;
use fleetmesh_core::swarm::PieceMap;
use fleetmesh_state::model::ids::ChunkHash;
use fleetmesh_state::model::revision::{ChunkRef, Manifest};
use fleetmesh_transport::frame::{self, FrameKind};

use super::{build_manifest, bundle_size};
use crate::runtime::protocol::{Request, Response};

/// The fuzz targets, by the name of their `fuzz/fuzz_targets/<name>.rs` and corpus
/// directory `fuzz/corpus/<name>/`.
pub const TARGETS: [&str; 7] = ["appspec", "platform_appspec", "frame", "manifest", "archive", "aws_request", "sigv4"];

/// Parses `data` as an appspec, as the agent does with the file it reads from a revision.
pub fn appspec(data: &[u8]) {
    // The agent reads the file with `read_to_string`: text that is not UTF-8 never
    // reaches the parser.
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(spec) = fleetmesh_core::appspec::parse("appspec.yml", text) else { return };
    for script in spec.hooks.values().flatten() {
        assert!(script.timeout <= SCRIPT_TIMEOUT_MAX, "a script timeout over the limit was accepted");
    }
}

/// Parses `data` as a Lambda and as an ECS AppSpec, as the leader does with a revision's
/// AppSpec content before a deployment starts. What is accepted must hold the rules the
/// parsers promise: positive versions and port, each hook event once.
pub fn platform_appspec(data: &[u8]) {
    use fleetmesh_core::appspec::lambda_ecs::{parse_ecs, parse_lambda, Hook};
    let Ok(text) = std::str::from_utf8(data) else { return };
    let once =
        |hooks: &[Hook]| hooks.iter().enumerate().all(|(i, hook)| hooks[..i].iter().all(|h| h.event != hook.event));
    if let Ok(spec) = parse_lambda(text) {
        assert!(spec.current_version > 0 && spec.target_version > 0, "a version 0 was accepted");
        assert!(!spec.alias.is_empty() && !spec.function_name.is_empty(), "an empty name was accepted");
        assert!(once(&spec.hooks), "a hook event was accepted twice");
    }
    if let Ok(spec) = parse_ecs(text) {
        assert!(spec.container_port > 0, "port 0 was accepted");
        assert!(spec.network.is_none_or(|network| !network.subnets.is_empty()), "no subnet was accepted");
        assert!(once(&spec.hooks), "a hook event was accepted twice");
    }
}

/// Decodes `data` as one frame, and its header as the node protocol's request and
/// response, as a node does with what a peer sends on a stream. An accepted frame must
/// re-encode to the same bytes (the reserved prefix byte aside).
pub fn frame(data: &[u8]) {
    let bytes = Bytes::copy_from_slice(data);
    let Ok((kind, message)) = frame::decode(&bytes) else { return };
    let encoded = frame::encode(kind, &message);
    assert_eq!(encoded.len(), data.len(), "an accepted frame re-encodes to another length");
    assert!(
        encoded.iter().zip(data).enumerate().all(|(at, (ours, theirs))| at == 5 || ours == theirs),
        "an accepted frame re-encodes to other bytes"
    );
    if kind == FrameKind::Message {
        // The handler decodes a request, the caller a response; either may fail, only a
        // panic is a finding. (A transport error's header is read as lossy UTF-8.)
        let request = serde_json::from_slice::<Request>(&message.header);
        let response = serde_json::from_slice::<Response>(&message.header);
        drop((request, response));
    }
}

/// Decodes `data` as a manifest, as a node does with one fetched from a peer or read back
/// from its disk: JSON into [`Manifest`], then `validate`, then what a download builds
/// from a valid one (its unique chunks and piece map).
pub fn manifest(data: &[u8]) {
    let Ok(manifest) = serde_json::from_slice::<Manifest>(data) else { return };
    let again = serde_json::from_slice::<Manifest>(&manifest.canonical_bytes());
    assert!(again.is_ok_and(|again| again == manifest), "canonical bytes do not decode to the same manifest");
    if manifest.validate().is_err() {
        return;
    }
    let unique = manifest.unique_chunks();
    let unique_bytes: u64 = unique.iter().map(|chunk| u64::from(chunk.len())).sum();
    assert_eq!(PieceMap::new(&unique).total_bytes(), unique_bytes);
    assert!(manifest.total_bytes() >= unique_bytes);
    assert_eq!(manifest.revision_id(), manifest.revision_id());
}

/// Writes `data` as a bundle file in `dir` (no extension: the format comes from its
/// magic bytes) and reads it as `deploy push` does: [`bundle_size`], then
/// [`build_manifest`]. The readers never write; `dir` receives only the bundle file.
/// A bundle that builds must also pass the size pass with the same total.
///
/// # Errors
/// Only when the bundle file cannot be written to `dir`.
pub fn archive(dir: &Path, data: &[u8]) -> io::Result<()> {
    let source = dir.join("bundle");
    std::fs::write(&source, data)?;
    let size = bundle_size(&source);
    let built = build_manifest(&source, &mut |chunk: ChunkRef, bytes: &[u8]| {
        assert_eq!(chunk.hash(), ChunkHash::of(bytes), "a chunk reached the sink under another hash");
        assert_eq!(chunk.len() as usize, bytes.len(), "a chunk reached the sink with another length");
        Ok::<(), Infallible>(())
    });
    if let Ok(built) = built {
        assert!(
            size.as_ref().is_ok_and(|size| *size == built.total_bytes),
            "a bundle built ({} bytes) but its size pass said {size:?}",
            built.total_bytes
        );
    }
    Ok(())
}

/// Parses `data` as a request of CodeDeploy's protocol, as a node's `POST /` does: the
/// first line is the `X-Amz-Target`, the rest the body. An accepted request is one of
/// the served operations and its bounds check runs; a refused one gets an exception
/// name and a 4xx or 5xx status.
pub fn aws_request(data: &[u8]) {
    use fleetmesh_model::aws;
    let split = data.iter().position(|byte| *byte == b'\n').unwrap_or(data.len());
    let Ok(target) = std::str::from_utf8(&data[..split]) else { return };
    let body = data.get(split + 1..).unwrap_or_default();
    match aws::parse(target, body) {
        Ok(operation) => {
            assert!(aws::WIRE_OPERATIONS.contains(&operation.name()), "{} was accepted off the wire", operation.name());
            drop(operation.check());
        }
        Err(error) => {
            let name = target.strip_prefix(aws::TARGET_PREFIX).unwrap_or(target);
            assert!(!aws::exception(name, &error).is_empty(), "a refusal without an exception name");
            assert!((400..600).contains(&aws::status(&error)), "a refusal with status {}", aws::status(&error));
        }
    }
}

/// Reads `data` as a signed request, as a node does before it answers one: header lines
/// `name: value` up to an empty line, then the body; builds the canonical request
/// ([`fleetmesh_model::sigv4::signed`]) and checks it with a fixed secret and clock.
/// A request that verifies must bind its own body and target.
pub fn sigv4(data: &[u8]) {
    use fleetmesh_model::sigv4::{binds, signed, verify, RequestParts};
    let split = data.windows(2).position(|pair| pair == b"\n\n").unwrap_or(data.len());
    let Ok(head) = std::str::from_utf8(&data[..split]) else { return };
    let body = data.get(split + 2..).unwrap_or_default();
    let headers: Vec<(&str, &[u8])> = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name, value.trim().as_bytes()))
        .collect();
    let target = headers.iter().find(|(name, _)| name.eq_ignore_ascii_case("x-amz-target")).map(|(_, value)| *value);
    let parts = RequestParts { method: "POST", path: "/", query: "", headers: headers.clone(), body };
    let Ok(request) = signed(&parts) else { return };
    // The secret and clock of the request botocore signed in `sigv4`'s tests (a seed).
    if verify(&request, "fleetmesh/test+secret/0123456789abcdefABCD", 1796420629).is_ok() {
        let target = target.and_then(|target| std::str::from_utf8(target).ok()).unwrap_or_default();
        assert!(binds(&request, target, body), "a verified request does not bind its own target and body");
    }
}

#[cfg(test)]
mod tests;
