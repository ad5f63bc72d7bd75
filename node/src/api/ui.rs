//! `/ui`: the live dashboard every node serves on its API listener.
//!
//! The page and its scripts hold no data, so these routes need no token; the page asks
//! for the admin token (or an access key) once, keeps it in the browser's
//! `sessionStorage`, and sends it as `Authorization: Bearer` on every API call it makes.
//! Everything is compiled into the binary (`include_str!`): plain ES modules and CSS, no
//! build step, nothing fetched from elsewhere.
//!
//! ```text
//!  browser ──GET /ui, /ui/, /ui/<asset>──▶ node (no token; Cache-Control: no-cache)
//!          ──/v1/cluster, /v1/deploy/<Operation>, /v1/events (SSE read by fetch)──▶ with the token
//! ```

use axum::extract::Path;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::ApiError;

/// The page: allows only this origin's scripts, styles and API calls, and no framing.
const CONTENT_SECURITY_POLICY: &str =
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// One file of the dashboard.
#[derive(Debug)]
struct Asset {
    /// Its name under `/ui/`.
    name: &'static str,
    /// Its `Content-Type`.
    content_type: &'static str,
    /// Its text.
    body: &'static str,
}

const HTML: &str = "text/html; charset=utf-8";
const JAVASCRIPT: &str = "text/javascript; charset=utf-8";

/// Every file of the dashboard, the page first.
const ASSETS: &[Asset] = &[
    Asset { name: "index.html", content_type: HTML, body: include_str!("ui/index.html") },
    Asset { name: "app.js", content_type: JAVASCRIPT, body: include_str!("ui/app.js") },
    Asset { name: "api.js", content_type: JAVASCRIPT, body: include_str!("ui/api.js") },
    Asset { name: "events.js", content_type: JAVASCRIPT, body: include_str!("ui/events.js") },
    Asset { name: "dom.js", content_type: JAVASCRIPT, body: include_str!("ui/dom.js") },
    Asset { name: "views.js", content_type: JAVASCRIPT, body: include_str!("ui/views.js") },
    Asset { name: "deployment.js", content_type: JAVASCRIPT, body: include_str!("ui/deployment.js") },
    Asset { name: "target.js", content_type: JAVASCRIPT, body: include_str!("ui/target.js") },
    Asset { name: "style.css", content_type: "text/css; charset=utf-8", body: include_str!("ui/style.css") },
];

/// The dashboard's routes, to be merged outside the token middleware.
pub(super) fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/ui", get(|| async { serve("index.html") }))
        .route("/ui/", get(|| async { serve("index.html") }))
        .route("/ui/{asset}", get(|Path(name): Path<String>| async move { serve(&name) }))
}

/// The asset called `name`, if the dashboard has one.
fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|asset| asset.name == name)
}

/// The answer for `/ui/<name>`: the asset, or 404.
fn serve(name: &str) -> Response {
    let Some(asset) = find(name) else {
        let echoed = fleetmesh_model::bounds::echo(name);
        return ApiError::not_found(format!("the dashboard has no file {echoed}")).into_response();
    };
    let mut headers: Vec<(HeaderName, &'static str)> = vec![
        (header::CONTENT_TYPE, asset.content_type),
        // A node upgraded in place serves new files at the same names: always revalidate.
        (header::CACHE_CONTROL, "no-cache"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ];
    if asset.content_type == HTML {
        headers.push((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY));
        headers.push((header::REFERRER_POLICY, "no-referrer"));
    }
    let mut response = (StatusCode::OK, asset.body).into_response();
    for (name, value) in headers {
        response.headers_mut().insert(name, HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_served_with_its_type_and_no_cache() {
        for asset in ASSETS {
            let response = serve(asset.name);
            assert_eq!(response.status(), StatusCode::OK, "{}", asset.name);
            let headers = response.headers();
            assert_eq!(headers[header::CONTENT_TYPE], asset.content_type, "{}", asset.name);
            assert_eq!(headers[header::CACHE_CONTROL], "no-cache", "{}", asset.name);
            assert_eq!(headers.contains_key(header::CONTENT_SECURITY_POLICY), asset.content_type == HTML);
            assert!(!asset.body.is_empty(), "{} is empty", asset.name);
        }
    }

    #[test]
    fn unknown_assets_are_not_found() {
        for name in ["nope.js", "", "..", "index.html/", "APP.JS"] {
            assert_eq!(serve(name).status(), StatusCode::NOT_FOUND, "{name:?}");
        }
    }

    #[test]
    fn every_module_the_page_imports_is_served() {
        // The scripts import one another by absolute path (`/ui/<name>`).
        for asset in ASSETS {
            for (at, _) in asset.body.match_indices("/ui/") {
                let rest = &asset.body[at + 4..];
                let name: String =
                    rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-').collect();
                if name.ends_with(".js") || name.ends_with(".css") {
                    assert!(find(&name).is_some(), "{} refers to /ui/{name}, which is not served", asset.name);
                }
            }
        }
    }
}
