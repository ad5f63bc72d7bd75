//! AWS Signature Version 4, the verifying side: what the AWS CLI, boto3 and the SDKs
//! send with every request (`Authorization: AWS4-HMAC-SHA256 Credential=…,
//! SignedHeaders=…, Signature=…`).
//!
//! ```text
//!  HTTP request ──canonical_request──▶ Signed { canonical request, key id, scope, signature }
//!                                        │   (travels to a voter when this node holds no secrets)
//!  secret (unsealed on a voter) ──verify─┘──▶ Ok, or the AWS error that names what is wrong
//! ```
//!
//! Pure: no clock and no state; the caller gives the time and the secret. What the
//! canonical request binds is checked here too: the payload hash is the body's, and the
//! operation (`x-amz-target`) and `host` are among the signed headers, so a member that
//! forwards a signed request cannot change what it asks for.

use ring::{digest, hmac};
use serde::{Deserialize, Serialize};

/// The only algorithm AWS's clients use for this service.
const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The service name in the credential scope.
pub const SERVICE: &str = "codedeploy";
/// How far a request's time may be from the verifier's clock (AWS: 15 minutes).
pub const SKEW_MAX_SECS: i64 = 15 * 60;
/// Most bytes of a canonical request (headers are bounded by the HTTP server already).
const CANONICAL_BYTES_MAX: usize = 64 << 10;

/// Why a request is not authenticated, with AWS's exception names.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header, or not a SigV4 one.
    #[error("{0}")]
    Missing(String),
    /// The access key is unknown or was deleted.
    #[error("The security token included in the request is invalid: access key {0} is unknown or was deleted")]
    UnknownKey(String),
    /// The header or the scope is malformed, the signature does not match, or the time is
    /// too far off.
    #[error("{0}")]
    Invalid(String),
}

impl AuthError {
    /// AWS's exception name.
    pub fn exception(&self) -> &'static str {
        match self {
            Self::Missing(_) => "MissingAuthenticationTokenException",
            Self::UnknownKey(_) => "UnrecognizedClientException",
            Self::Invalid(_) => "InvalidSignatureException",
        }
    }
}

/// A signed request as a verifier needs it: everything it binds, and the signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signed {
    /// The access key id (`AKIA…`).
    pub access_key_id: String,
    /// `X-Amz-Date`: `YYYYMMDDTHHMMSSZ`.
    pub amz_date: String,
    /// `date/region/service/aws4_request`.
    pub scope: String,
    /// The canonical request, as the node that took the HTTP request built it.
    pub canonical_request: String,
    /// 64 hex digits.
    pub signature: String,
}

/// A signed AWS-protocol request as a member forwards it to the leader: the signature
/// and the body and target it binds, so the leader checks both the signature and that
/// the forwarded operation is the one signed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedRequest {
    /// The signature and what it covers.
    pub signed: Signed,
    /// `X-Amz-Target`.
    pub target: String,
    /// The body as sent.
    pub body: String,
}

/// The parts of an HTTP request a signature covers.
#[derive(Debug)]
pub struct RequestParts<'a> {
    /// `POST`.
    pub method: &'a str,
    /// The path as sent (`/`).
    pub path: &'a str,
    /// The query string as sent, without `?`.
    pub query: &'a str,
    /// Every header, names in any case (a name may repeat).
    pub headers: Vec<(&'a str, &'a [u8])>,
    /// The body.
    pub body: &'a [u8],
}

/// The parsed `Authorization` header.
#[derive(Debug, PartialEq, Eq)]
struct Authorization<'a> {
    access_key_id: &'a str,
    scope: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

fn invalid(message: impl Into<String>) -> AuthError {
    AuthError::Invalid(message.into())
}

fn parse_authorization(value: &str) -> Result<Authorization<'_>, AuthError> {
    let rest = value
        .strip_prefix(ALGORITHM)
        .ok_or_else(|| AuthError::Missing(format!("Authorization header is not {ALGORITHM} (Signature Version 4)")))?;
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (name, value) = part
            .trim()
            .split_once('=')
            .ok_or_else(|| invalid(format!("Authorization: malformed part {:?}", cut(part))))?;
        match name {
            "Credential" => credential = Some(value),
            "SignedHeaders" => signed_headers = Some(value),
            "Signature" => signature = Some(value),
            _ => return Err(invalid(format!("Authorization: unknown part {:?}", cut(name)))),
        }
    }
    let credential = credential.ok_or_else(|| invalid("Authorization: no Credential"))?;
    let signed_headers = signed_headers.ok_or_else(|| invalid("Authorization: no SignedHeaders"))?;
    let signature = signature.ok_or_else(|| invalid("Authorization: no Signature"))?;
    let (access_key_id, scope) =
        credential.split_once('/').ok_or_else(|| invalid("Credential is not <access key id>/<scope>"))?;
    if signature.len() != 64 || !signature.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return Err(invalid("Signature is not 64 hex digits"));
    }
    let signed_headers: Vec<&str> = signed_headers.split(';').collect();
    let sorted = signed_headers.windows(2).all(|pair| pair[0] < pair[1]);
    if !sorted || signed_headers.iter().any(|name| name.is_empty() || name.bytes().any(|b| b.is_ascii_uppercase())) {
        return Err(invalid("SignedHeaders are not lower-case names in order"));
    }
    Ok(Authorization { access_key_id, scope, signed_headers, signature })
}

/// A value echoed in an error, cut short.
fn cut(text: &str) -> String {
    text.chars().take(64).collect()
}

fn header_values<'a>(parts: &'a RequestParts<'_>, name: &str) -> Vec<&'a [u8]> {
    parts.headers.iter().filter(|(header, _)| header.eq_ignore_ascii_case(name)).map(|(_, value)| *value).collect()
}

/// A header value as SigV4 canonicalizes it: trimmed, runs of spaces made one.
fn canonical_value(value: &[u8]) -> Result<String, AuthError> {
    let text = std::str::from_utf8(value).map_err(|_| invalid("a signed header is not UTF-8"))?;
    Ok(text.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// SigV4's URI encoding of one query-string component.
fn encode(component: &str) -> String {
    let mut out = String::with_capacity(component.len());
    for byte in component.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn decode(component: &str) -> String {
    let bytes = component.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let hex = bytes.get(index + 1..index + 3).and_then(|pair| std::str::from_utf8(pair).ok());
        match (bytes[index], hex.and_then(|pair| u8::from_str_radix(pair, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                index += 3;
            }
            (byte, _) => {
                out.push(if byte == b'+' { b' ' } else { byte });
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (encode(&decode(name)), encode(&decode(value)))
        })
        .collect();
    pairs.sort();
    pairs.into_iter().map(|(name, value)| format!("{name}={value}")).collect::<Vec<_>>().join("&")
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, bytes))
}

/// Reads the signature of `parts` and builds its canonical request: what a verifier
/// checks (here or on a voter).
///
/// # Errors
/// No or a malformed `Authorization`, a signed header that is missing, `host` or
/// `x-amz-target` not signed, or a payload hash that is not the body's.
pub fn signed(parts: &RequestParts<'_>) -> Result<Signed, AuthError> {
    let authorization = header_values(parts, "authorization");
    let authorization = match authorization.as_slice() {
        [] => return Err(AuthError::Missing("Missing Authentication Token: sign the request (SigV4)".into())),
        [value] => std::str::from_utf8(value).map_err(|_| invalid("Authorization is not UTF-8"))?,
        _ => return Err(invalid("more than one Authorization header")),
    };
    let authorization = parse_authorization(authorization)?;
    for required in ["host", "x-amz-target"] {
        if !authorization.signed_headers.contains(&required) {
            return Err(invalid(format!("the header {required} must be signed")));
        }
    }
    let body_hash = sha256_hex(parts.body);
    if let [claimed] = header_values(parts, "x-amz-content-sha256").as_slice() {
        if !claimed.eq_ignore_ascii_case(body_hash.as_bytes()) {
            return Err(invalid("x-amz-content-sha256 is not the SHA-256 of the body"));
        }
    }
    let mut canonical = format!("{}\n{}\n{}\n", parts.method, parts.path, canonical_query(parts.query));
    for name in &authorization.signed_headers {
        let values = header_values(parts, name);
        if values.is_empty() {
            return Err(invalid(format!("the signed header {} is not in the request", cut(name))));
        }
        let values = values.into_iter().map(canonical_value).collect::<Result<Vec<_>, _>>()?;
        canonical.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    canonical.push_str(&format!("\n{}\n{body_hash}", authorization.signed_headers.join(";")));
    let amz_date = match header_values(parts, "x-amz-date").as_slice() {
        [value] => canonical_value(value)?,
        _ => return Err(invalid("a signed request carries one X-Amz-Date header")),
    };
    if !authorization.signed_headers.contains(&"x-amz-date") {
        return Err(invalid("the header x-amz-date must be signed"));
    }
    Ok(Signed {
        access_key_id: authorization.access_key_id.to_string(),
        amz_date,
        scope: authorization.scope.to_string(),
        canonical_request: canonical,
        signature: authorization.signature.to_ascii_lowercase(),
    })
}

/// Seconds since the epoch of `YYYYMMDDTHHMMSSZ`.
fn parse_amz_date(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    if bytes.len() != 16 || bytes[8] != b'T' || bytes[15] != b'Z' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| text.get(range)?.parse::<i64>().ok();
    let (year, month, day) = (number(0..4)?, number(4..6)?, number(6..8)?);
    let (hour, minute, second) = (number(9..11)?, number(11..13)?, number(13..15)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    // Days from the civil date (proleptic Gregorian), as in Howard Hinnant's algorithm.
    let shifted = if month <= 2 { year - 1 } else { year };
    let era = shifted.div_euclid(400);
    let year_of_era = shifted - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second)
}

/// `YYYYMMDDTHHMMSSZ` of `epoch_secs` (a client's `X-Amz-Date`).
pub fn amz_date(epoch_secs: i64) -> String {
    let (days, second_of_day) = (epoch_secs.div_euclid(86_400), epoch_secs.rem_euclid(86_400));
    let (year, month, day) = crate::time::civil_from_days(days);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60
    )
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data).as_ref().to_vec()
}

/// The signature SigV4 gives `string_to_sign` under `secret` and `scope`'s date, region
/// and service (the client's side, used by tests and the benchmark).
pub fn signature(secret: &str, scope_parts: [&str; 3], string_to_sign: &str) -> String {
    let [date, region, service] = scope_parts;
    let key = hmac_sha256(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let key = hmac_sha256(&key, region.as_bytes());
    let key = hmac_sha256(&key, service.as_bytes());
    let key = hmac_sha256(&key, b"aws4_request");
    hex::encode(hmac_sha256(&key, string_to_sign.as_bytes()))
}

/// The string SigV4 signs for `signed`.
pub fn string_to_sign(signed: &Signed) -> String {
    format!("{ALGORITHM}\n{}\n{}\n{}", signed.amz_date, signed.scope, sha256_hex(signed.canonical_request.as_bytes()))
}

/// Checks `signed` under `secret` at `now_secs`: the scope (any region, this service,
/// the request's date), the time (within [`SKEW_MAX_SECS`]) and the signature.
///
/// # Errors
/// [`AuthError::Invalid`] naming what is wrong.
pub fn verify(signed: &Signed, secret: &str, now_secs: i64) -> Result<(), AuthError> {
    if signed.canonical_request.len() > CANONICAL_BYTES_MAX {
        return Err(invalid("the canonical request is too large"));
    }
    let scope: Vec<&str> = signed.scope.split('/').collect();
    let [date, region, service, terminator] = scope.as_slice() else {
        return Err(invalid("Credential scope is not <date>/<region>/<service>/aws4_request"));
    };
    if *terminator != "aws4_request" || *service != SERVICE || region.is_empty() {
        return Err(invalid(format!(
            "Credential should be scoped to a valid region and to the service '{SERVICE}', not {:?}",
            cut(&signed.scope)
        )));
    }
    let time = parse_amz_date(&signed.amz_date)
        .ok_or_else(|| invalid(format!("X-Amz-Date {:?} is not YYYYMMDDTHHMMSSZ", cut(&signed.amz_date))))?;
    if !signed.amz_date.starts_with(date) || date.len() != 8 {
        return Err(invalid("Credential scope's date is not the date of X-Amz-Date"));
    }
    if (now_secs - time).abs() > SKEW_MAX_SECS {
        return Err(invalid(format!(
            "Signature expired: {} is more than 15 minutes from the server's time; check the client's clock",
            signed.amz_date
        )));
    }
    let expected = signature(secret, [date, region, service], &string_to_sign(signed));
    if !ring_constant_time_eq(expected.as_bytes(), signed.signature.as_bytes()) {
        return Err(invalid(
            "The request signature we calculated does not match the signature you provided. Check your AWS \
             Secret Access Key and signing method.",
        ));
    }
    Ok(())
}

fn ring_constant_time_eq(left: &[u8], right: &[u8]) -> bool {
    left.len() == right.len() && left.iter().zip(right).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// Whether `signed` binds `body` and asks for the operation `target`
/// (`CodeDeploy_20141006.<Operation>`): the payload hash is the body's, and the signed
/// `x-amz-target` is `target`.
pub fn binds(signed: &Signed, target: &str, body: &[u8]) -> bool {
    let body_hash = sha256_hex(body);
    let lines: Vec<&str> = signed.canonical_request.split('\n').collect();
    lines.last() == Some(&body_hash.as_str())
        && lines.iter().any(|line| line.strip_prefix("x-amz-target:") == Some(target))
}

#[cfg(test)]
mod tests;
