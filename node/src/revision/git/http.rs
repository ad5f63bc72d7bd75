//! Git's smart HTTP protocol over our own HTTPS client: gix-transport's
//! [`Http`](gix_transport::client::blocking_io::http::Http) trait on ureq (rustls on
//! ring, the roots of [`fleetmesh_aws::outbound_agent`]), so no second TLS stack.
//!
//! - `GET …/info/refs?service=git-upload-pack` follows at most [`REDIRECTS_MAX`]
//!   redirects (never from `https` down to `http`), and only on the first request, as
//!   Git does (`http.followRedirects=initial`); the new base is reported to gix.
//! - `POST …/git-upload-pack`: gix writes the request (want/have lines, a few KiB, at
//!   most [`POST_BODY_BYTES_MAX`]) into a buffer, then reads the answer; the first read
//!   sends the request. No extra thread. The answer (the pack) is streamed, never
//!   buffered whole.
//! - Every transport read or write waits at most `read_timeout`, so a stalled server
//!   ends the exchange by itself; each exchange also ends within [`EXCHANGE_TIMEOUT`].
//! - No credentials: 401 and 403 fail naming the repository URL (there is no credential
//!   helper to ask, so gix is not asked to retry).

use std::io::{BufRead, BufReader, Cursor, Read, Write};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use gix_transport::client::blocking_io::http::{self, GetResponse, PostBodyDataKind, PostResponse};

/// Most redirects followed for the first request.
pub(super) const REDIRECTS_MAX: u32 = 3;
/// Longest one HTTP exchange (connect to last byte of a pack) may take; the caller's own
/// clone timeout is the same (`GIT_FETCH_TIMEOUT` of the deploy API).
pub(super) const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(600);
/// Largest request body gix may write (fetch negotiation is a few KiB).
pub(super) const POST_BODY_BYTES_MAX: usize = 16 << 20;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// Why an HTTP exchange with a Git server failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HttpError {
    /// 404 or 410: no repository at that URL (or a private one: GitHub answers 404).
    #[error("repository not found (HTTP {status} from {url}); check the URL, and note that private repositories need credentials, which this release does not send")]
    NotFound {
        /// The URL asked.
        url: String,
        /// 404 or 410.
        status: u16,
    },
    /// 401: the server wants credentials.
    #[error("authentication required (HTTP 401 from {url}): this release sends no credentials to Git servers; use a public repository, or a git:// or ssh:// URL")]
    AuthenticationRequired {
        /// The URL asked.
        url: String,
    },
    /// 403: the server refuses.
    #[error("access denied (HTTP 403 from {url}): this release sends no credentials to Git servers")]
    Forbidden {
        /// The URL asked.
        url: String,
    },
    /// Any other status that is not a success.
    #[error("HTTP {status} from {url}")]
    Status {
        /// The URL asked.
        url: String,
        /// The status code.
        status: u16,
    },
    /// A redirect that was not followed.
    #[error("redirect from {url} not followed: {reason}")]
    Redirect {
        /// The URL that answered with the redirect.
        url: String,
        /// Why.
        reason: String,
    },
    /// The request failed before an answer (connect, TLS, timeout, broken connection).
    #[error("{url}: {reason}")]
    Request {
        /// The URL asked.
        url: String,
        /// ureq's reason.
        reason: String,
    },
    /// gix wrote more than [`POST_BODY_BYTES_MAX`] bytes to post.
    #[error("the request to {url} is larger than {bytes_max} bytes")]
    RequestTooLarge {
        /// The URL to post to.
        url: String,
        /// The bound.
        bytes_max: usize,
    },
}

/// The failure a status stands for, or `None` for a success (2xx).
pub(super) fn status_error(status: u16, url: &str) -> Option<HttpError> {
    let url = url.to_string();
    match status {
        200..=299 => None,
        401 => Some(HttpError::AuthenticationRequired { url }),
        403 => Some(HttpError::Forbidden { url }),
        404 | 410 => Some(HttpError::NotFound { url, status }),
        _ => Some(HttpError::Status { url, status }),
    }
}

/// The absolute URL a redirect from `url` to `location` points at; refuses a scheme
/// other than http(s) and a downgrade from https to http.
pub(super) fn redirect_target(url: &str, location: &str) -> Result<String, HttpError> {
    let refuse = |reason: String| HttpError::Redirect { url: url.to_string(), reason };
    let target = if location.starts_with("https://") || location.starts_with("http://") {
        location.to_string()
    } else if location.starts_with('/') && !location.starts_with("//") {
        let scheme_end = url.find("://").map_or(0, |index| index + 3);
        let authority_end = url[scheme_end..].find('/').map_or(url.len(), |index| scheme_end + index);
        format!("{}{location}", &url[..authority_end])
    } else {
        return Err(refuse(format!("unsupported Location {location:?}")));
    };
    if url.starts_with("https://") && !target.starts_with("https://") {
        return Err(refuse(format!("{target} would downgrade https to http")));
    }
    Ok(target)
}

/// The repository's base URL after a redirect to `target` of `url` (= `base` + tail):
/// `target` must end in the same tail (`/info/refs?service=…`).
pub(super) fn redirected_base(target: &str, base: &str, url: &str) -> Result<String, HttpError> {
    let tail = url.strip_prefix(base).unwrap_or_default();
    target
        .strip_suffix(tail)
        .filter(|new_base| !new_base.is_empty())
        .map(str::to_string)
        .ok_or_else(|| HttpError::Redirect { url: url.to_string(), reason: format!("{target} does not end in {tail}") })
}

/// gix's HTTP client: ureq with per-read and per-write timeouts.
pub(super) struct UreqHttp {
    agent: ureq::Agent,
    read_timeout: Duration,
    extra_headers: Vec<String>,
    follow_redirects: bool,
    redirected_base: Option<String>,
}

impl UreqHttp {
    /// A client whose every transport read or write waits at most `read_timeout`.
    pub(super) fn new(read_timeout: Duration) -> Self {
        Self {
            agent: fleetmesh_aws::outbound_agent(EXCHANGE_TIMEOUT, 0),
            read_timeout,
            extra_headers: Vec::new(),
            follow_redirects: true,
            redirected_base: None,
        }
    }

    /// `name: value` lines from gix, then `http.extraHeader`s, as (name, value) pairs.
    fn header_pairs(&self, headers: impl IntoIterator<Item = impl AsRef<str>>) -> Vec<(String, String)> {
        let lines: Vec<String> = headers.into_iter().map(|line| line.as_ref().to_string()).collect();
        lines
            .iter()
            .chain(&self.extra_headers)
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.trim().to_string(), value.trim().to_string()))
            .filter(|(name, _)| !name.is_empty())
            .collect()
    }

    fn get_once(&self, url: &str, headers: &[(String, String)]) -> Result<ureq::http::Response<ureq::Body>, HttpError> {
        let request = prepared(self.agent.get(url), headers, self.read_timeout);
        request.call().map_err(|error| HttpError::Request { url: url.to_string(), reason: error.to_string() })
    }
}

/// `request` with `headers` and this transport's timeouts (per read and write, connect).
fn prepared<B>(
    mut request: ureq::RequestBuilder<B>,
    headers: &[(String, String)],
    read_timeout: Duration,
) -> ureq::RequestBuilder<B> {
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str());
    }
    request
        .config()
        .timeout_per_read(Some(read_timeout))
        .timeout_per_write(Some(read_timeout))
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .build()
}

/// A response's headers as `name: value` lines, as gix reads them.
fn header_lines(response: &ureq::http::Response<ureq::Body>) -> Vec<u8> {
    let mut lines = Vec::new();
    for (name, value) in response.headers() {
        lines.extend_from_slice(name.as_str().as_bytes());
        lines.extend_from_slice(b": ");
        lines.extend_from_slice(value.as_bytes());
        lines.push(b'\n');
    }
    lines
}

/// Headers and body of a successful response, else the failure its status stands for.
fn answer(response: ureq::http::Response<ureq::Body>, url: &str) -> Result<Answer, HttpError> {
    if let Some(error) = status_error(response.status().as_u16(), url) {
        return Err(error);
    }
    let headers = header_lines(&response);
    Ok(Answer { headers, body: Some(BufReader::new(response.into_body().into_reader())) })
}

struct Answer {
    headers: Vec<u8>,
    body: Option<BufReader<ureq::BodyReader<'static>>>,
}

/// A POST not sent yet: where, with what, and the body gix writes.
struct PendingPost {
    agent: ureq::Agent,
    url: String,
    headers: Vec<(String, String)>,
    read_timeout: Duration,
    body: Vec<u8>,
}

impl PendingPost {
    fn send(self) -> Result<Answer, HttpError> {
        let request = prepared(self.agent.post(&self.url), &self.headers, self.read_timeout);
        let response = request
            .send(&self.body[..])
            .map_err(|error| HttpError::Request { url: self.url.clone(), reason: error.to_string() })?;
        answer(response, &self.url)
    }
}

/// One POST exchange shared by the three handles gix gets: the body writer, the
/// headers and the response body. The first read sends the request.
enum Exchange {
    Writing(Option<PendingPost>),
    Answered { headers: Option<Vec<u8>>, body: Option<BufReader<ureq::BodyReader<'static>>> },
    Failed(HttpError),
}

type SharedExchange = Arc<Mutex<Exchange>>;

/// Sends the pending request of `shared` if not sent yet; then `take` its part.
fn take_part<T>(shared: &SharedExchange, take: impl FnOnce(&mut Exchange) -> Option<T>) -> std::io::Result<T> {
    let mut exchange = shared.lock().unwrap_or_else(PoisonError::into_inner);
    if let Exchange::Writing(pending) = &mut *exchange {
        let sent = pending.take().map(PendingPost::send);
        *exchange = match sent {
            Some(Ok(answer)) => Exchange::Answered { headers: Some(answer.headers), body: answer.body },
            Some(Err(error)) => Exchange::Failed(error),
            None => Exchange::Failed(HttpError::Request { url: String::new(), reason: "request lost".into() }),
        };
    }
    if let Exchange::Failed(error) = &*exchange {
        return Err(std::io::Error::other(error.clone()));
    }
    take(&mut exchange).ok_or_else(|| std::io::Error::other("the HTTP response was already read"))
}

/// The post body gix writes: buffered (bounded) until the answer is read.
pub(super) struct PostBody(SharedExchange);

impl Write for PostBody {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let mut exchange = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let Exchange::Writing(Some(pending)) = &mut *exchange else {
            return Err(std::io::Error::other("the HTTP request was already sent"));
        };
        if pending.body.len() + bytes.len() > POST_BODY_BYTES_MAX {
            let url = pending.url.clone();
            return Err(std::io::Error::other(HttpError::RequestTooLarge { url, bytes_max: POST_BODY_BYTES_MAX }));
        }
        pending.body.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Response headers, one `name: value` per line; known at once (GET) or at first read.
pub(super) struct Headers {
    pending: Option<SharedExchange>,
    lines: Cursor<Vec<u8>>,
}

impl Headers {
    fn ready(&mut self) -> std::io::Result<()> {
        if let Some(shared) = self.pending.take() {
            let lines = take_part(&shared, |exchange| match exchange {
                Exchange::Answered { headers, .. } => headers.take(),
                _ => None,
            })?;
            self.lines = Cursor::new(lines);
        }
        Ok(())
    }
}

impl Read for Headers {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.ready()?;
        self.lines.read(buf)
    }
}

impl BufRead for Headers {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        self.ready()?;
        self.lines.fill_buf()
    }

    fn consume(&mut self, amount: usize) {
        self.lines.consume(amount);
    }
}

/// The response body, streamed from the connection.
pub(super) struct ResponseBody {
    pending: Option<SharedExchange>,
    reader: Option<BufReader<ureq::BodyReader<'static>>>,
}

impl ResponseBody {
    fn reader(&mut self) -> std::io::Result<&mut BufReader<ureq::BodyReader<'static>>> {
        if let Some(shared) = self.pending.take() {
            let body = take_part(&shared, |exchange| match exchange {
                Exchange::Answered { body, .. } => body.take(),
                _ => None,
            })?;
            self.reader = Some(body);
        }
        self.reader.as_mut().ok_or_else(|| std::io::Error::other("the HTTP response has no body"))
    }
}

impl Read for ResponseBody {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.reader()?.read(buf)
    }
}

impl BufRead for ResponseBody {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        self.reader()?.fill_buf()
    }

    fn consume(&mut self, amount: usize) {
        if let Some(reader) = self.reader.as_mut() {
            reader.consume(amount);
        }
    }
}

impl http::Http for UreqHttp {
    type Headers = Headers;
    type ResponseBody = ResponseBody;
    type PostBody = PostBody;

    fn get(
        &mut self,
        url: &str,
        base_url: &str,
        headers: impl IntoIterator<Item = impl AsRef<str>>,
    ) -> gix::error::Result<GetResponse<Headers, ResponseBody>> {
        let headers = self.header_pairs(headers);
        let hops_max = if self.follow_redirects { REDIRECTS_MAX } else { 0 };
        // Git follows redirects of the first request only (`http.followRedirects=initial`).
        self.follow_redirects = false;
        let mut current = url.to_string();
        for hop in 0..=hops_max {
            let response = self.get_once(&current, &headers).map_err(gix::error::Error::from_error)?;
            let status = response.status().as_u16();
            if matches!(status, 301 | 302 | 303 | 307 | 308) {
                let location = response.headers().get("location").and_then(|value| value.to_str().ok());
                let refuse = |reason: &str| HttpError::Redirect { url: current.clone(), reason: reason.to_string() };
                let error = match location {
                    None => refuse("no Location header"),
                    Some(_) if hop == hops_max => refuse(&format!("more than {hops_max} redirects")),
                    Some(location) => {
                        let target = redirect_target(&current, location).map_err(gix::error::Error::from_error)?;
                        let base = redirected_base(&target, base_url, url).map_err(gix::error::Error::from_error)?;
                        self.redirected_base = Some(base);
                        current = target;
                        continue;
                    }
                };
                return Err(gix::error::Error::from_error(error));
            }
            let Answer { headers, body } = answer(response, &current).map_err(gix::error::Error::from_error)?;
            return Ok(GetResponse {
                headers: Headers { pending: None, lines: Cursor::new(headers) },
                body: ResponseBody { pending: None, reader: body },
            });
        }
        Err(gix::error::Error::from_error(HttpError::Redirect { url: current, reason: "too many redirects".into() }))
    }

    fn post(
        &mut self,
        url: &str,
        _base_url: &str,
        headers: impl IntoIterator<Item = impl AsRef<str>>,
        _body: PostBodyDataKind,
    ) -> gix::error::Result<PostResponse<Headers, ResponseBody, PostBody>> {
        self.follow_redirects = false;
        let pending = PendingPost {
            agent: self.agent.clone(),
            url: url.to_string(),
            headers: self.header_pairs(headers),
            read_timeout: self.read_timeout,
            body: Vec::with_capacity(4096),
        };
        let shared: SharedExchange = Arc::new(Mutex::new(Exchange::Writing(Some(pending))));
        Ok(PostResponse {
            post_body: PostBody(shared.clone()),
            headers: Headers { pending: Some(shared.clone()), lines: Cursor::new(Vec::new()) },
            body: ResponseBody { pending: Some(shared), reader: None },
        })
    }

    fn configure(&mut self, config: &dyn std::any::Any) -> gix::error::Result {
        if let Some(options) = config.downcast_ref::<http::Options>() {
            self.extra_headers.clone_from(&options.extra_headers);
            if options.follow_redirects == http::options::FollowRedirects::None {
                self.follow_redirects = false;
            }
        }
        Ok(())
    }

    fn redirected_base_url(&self) -> Option<String> {
        self.redirected_base.clone()
    }
}

#[cfg(test)]
pub(super) mod tests;
