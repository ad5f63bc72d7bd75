//! The ureq adapter against canned loopback servers: status mapping, redirects, stalls.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use gix_transport::client::blocking_io::http::Http;

use super::{redirect_target, redirected_base, status_error, HttpError, UreqHttp};

/// A loopback server answering its connections in turn with `answers` (raw HTTP);
/// `None` reads the request and then sends nothing for 30 s. Returns its port.
pub(in crate::revision::git) fn serve(answers: Vec<Option<String>>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let port = listener.local_addr().expect("local address").port();
    std::thread::spawn(move || {
        for answer in answers {
            let Ok((mut stream, _)) = listener.accept() else { return };
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.windows(4).any(|window| window == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(read) => request.extend_from_slice(&buf[..read]),
                }
            }
            match answer {
                Some(answer) => drop(stream.write_all(answer.as_bytes())),
                None => std::thread::sleep(Duration::from_secs(30)),
            }
        }
    });
    port
}

pub(in crate::revision::git) fn status(code: u16, headers: &str) -> Option<String> {
    Some(format!("HTTP/1.1 {code} Whatever\r\n{headers}Content-Length: 0\r\nConnection: close\r\n\r\n"))
}

fn get(http: &mut UreqHttp, base: &str) -> String {
    let url = format!("{base}/info/refs?service=git-upload-pack");
    match http.get(&url, base, ["Git-Protocol: version=2"]) {
        Ok(_) => "ok".into(),
        Err(error) => format!("{error:#}"),
    }
}

#[test]
fn statuses_map_to_what_they_mean() {
    let url = "https://example.com/acme/shop.git";
    assert!(status_error(200, url).is_none());
    assert!(matches!(status_error(401, url), Some(HttpError::AuthenticationRequired { .. })));
    assert!(matches!(status_error(403, url), Some(HttpError::Forbidden { .. })));
    assert!(matches!(status_error(404, url), Some(HttpError::NotFound { status: 404, .. })));
    assert!(matches!(status_error(410, url), Some(HttpError::NotFound { status: 410, .. })));
    assert!(matches!(status_error(500, url), Some(HttpError::Status { status: 500, .. })));
    let message = status_error(401, url).map(|error| error.to_string()).unwrap_or_default();
    assert!(message.contains("authentication required") && message.contains(url), "{message}");
    assert!(message.contains("no credentials"), "{message}");
}

#[test]
fn redirects_resolve_and_never_downgrade() {
    let url = "https://a.example/shop.git/info/refs?service=git-upload-pack";
    let moved = redirect_target(url, "/new/shop.git/info/refs?service=git-upload-pack").expect("root-relative");
    assert_eq!(moved, "https://a.example/new/shop.git/info/refs?service=git-upload-pack");
    assert!(redirect_target(url, "http://a.example/shop.git").is_err(), "https to http");
    assert!(redirect_target(url, "shop.git").is_err(), "relative path");
    assert!(redirect_target("http://a.example/x", "https://b.example/x").is_ok(), "http to https");
    let base = redirected_base(&moved, "https://a.example/shop.git", url).expect("same tail");
    assert_eq!(base, "https://a.example/new/shop.git");
    assert!(redirected_base("https://b.example/other", "https://a.example/shop.git", url).is_err());
}

#[test]
fn a_404_over_the_wire_is_repository_not_found_and_a_redirect_moves_the_base() {
    let port = serve(vec![status(302, "Location: /moved/info/refs?service=git-upload-pack\r\n"), status(404, "")]);
    let base = format!("http://127.0.0.1:{port}/shop.git");
    let mut http = UreqHttp::new(Duration::from_secs(5));
    let error = get(&mut http, &base);
    assert!(error.contains("repository not found (HTTP 404"), "{error}");
    assert_eq!(http.redirected_base_url(), Some(format!("http://127.0.0.1:{port}/moved")));
}

#[test]
fn a_redirect_loop_stops_after_a_few_hops() {
    let hop = || status(302, "Location: /shop.git/info/refs?service=git-upload-pack\r\n");
    let port = serve((0..=super::REDIRECTS_MAX).map(|_| hop()).collect());
    let error = get(&mut UreqHttp::new(Duration::from_secs(5)), &format!("http://127.0.0.1:{port}/shop.git"));
    assert!(error.contains("more than 3 redirects"), "{error}");
}

#[test]
fn a_server_that_stalls_fails_after_the_read_timeout() {
    let port = serve(vec![None]);
    let started = Instant::now();
    let error = get(&mut UreqHttp::new(Duration::from_secs(1)), &format!("http://127.0.0.1:{port}/shop.git"));
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    assert!(error.to_lowercase().contains("timeout") || error.contains("timed out"), "{error}");
}

#[test]
fn a_post_is_sent_at_the_first_read_and_its_status_is_checked() {
    let port = serve(vec![status(500, "")]);
    let url = format!("http://127.0.0.1:{port}/shop.git/git-upload-pack");
    let mut http = UreqHttp::new(Duration::from_secs(5));
    let kind = gix_transport::client::blocking_io::http::PostBodyDataKind::BoundedAndFitsIntoMemory;
    let Ok(response) = http.post(&url, &url, ["Content-Type: application/x-git-upload-pack-request"], kind) else {
        panic!("a post is only prepared, not sent");
    };
    let (mut post_body, mut headers) = (response.post_body, response.headers);
    post_body.write_all(b"0000").expect("buffered");
    drop(post_body);
    let error = headers.read_to_end(&mut Vec::new()).expect_err("HTTP 500");
    assert!(error.to_string().contains("HTTP 500 from"), "{error}");
}
