//! Every API route, fed extreme and malformed input by a seeded generator (xorshift;
//! `FLEETMESH_BOUNDS_SEED` picks another seed, `FLEETMESH_BOUNDS_REQUESTS` another count):
//! huge, negative and fractional numbers, empty, huge, unicode and control-character
//! strings, wrong types, nulls, deep nesting, unknown members, truncated or non-JSON
//! bodies, bodies over the limit, wrong methods, content types and paths. Every answer
//! must be a 2xx or a 4xx, with a JSON body that has `error` when it is a 4xx and a
//! bounded length; never a 5xx, a dropped connection or a panic in the node's log.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use fleetmesh_model::OPERATION_NAMES;
use fleetmesh_tests::{Options, TestCluster};
use serde_json::Value;

/// A seeded xorshift64* generator: the same seed gives the same requests.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const REVISION: &str = "\"00000000000000000000000000000000000000000000000000000000000000aa\"";
const FILTERS: &str = r#"[{"Key": "role", "Value": "web", "Type": "KEY_AND_VALUE"}]"#;
const ROLLBACK: &str = r#"{"enabled": true, "events": ["DEPLOYMENT_FAILURE"]}"#;

/// Each operation's members with a valid value (raw JSON), the starting point of its
/// mutations.
fn template(operation: &str) -> Vec<(&'static str, &'static str)> {
    let application = ("applicationName", "\"pt-app\"");
    let group = ("deploymentGroupName", "\"pt-group\"");
    let config = ("deploymentConfigName", "\"pt-config\"");
    let deployment = ("deploymentId", "\"d-ABCDEFGHI\"");
    match operation {
        "CreateApplication" => vec![application, ("computePlatform", "\"Server\"")],
        "GetApplication" | "DeleteApplication" | "ListDeploymentGroups" | "ListApplicationRevisions" => {
            vec![application]
        }
        "CreateDeploymentGroup" => vec![
            application,
            group,
            ("deploymentConfigName", "\"CodeDeployDefault.OneAtATime\""),
            ("onPremisesInstanceTagFilters", FILTERS),
            ("onPremisesTagSet", r#"{"onPremisesTagSetList": [[{"Key": "role", "Type": "KEY_ONLY"}]]}"#),
            ("autoRollbackConfiguration", ROLLBACK),
            ("outdatedInstancesStrategy", "\"UPDATE\""),
        ],
        "GetDeploymentGroup" | "DeleteDeploymentGroup" => vec![application, group],
        "CreateDeploymentConfig" => {
            vec![
                config,
                ("minimumHealthyHosts", r#"{"type": "HOST_COUNT", "value": 1}"#),
                ("computePlatform", "\"Server\""),
            ]
        }
        "GetDeploymentConfig" | "DeleteDeploymentConfig" => vec![config],
        "RegisterApplicationRevision" => vec![
            application,
            ("description", "\"pt\""),
            ("manifest", r#"{"format": 1, "chunking": {}, "entries": []}"#),
        ],
        "GetApplicationRevision" => vec![application, ("revisionId", REVISION)],
        "Prefetch" => vec![("revisionId", REVISION), group, ("allNodes", "true")],
        "GetRevisionDistribution" => vec![("revisionId", REVISION)],
        "CreateDeployment" => vec![
            application,
            group,
            (
                "revision",
                r#"{"revisionType": "fleetmesh", "revisionId": "00000000000000000000000000000000000000000000000000000000000000aa"}"#,
            ),
            ("description", "\"pt\""),
            ("ignoreApplicationStopFailures", "false"),
            ("fileExistsBehavior", "\"OVERWRITE\""),
            ("autoRollbackConfiguration", ROLLBACK),
        ],
        "GetDeployment" | "ListDeploymentTargets" => vec![deployment],
        "StopDeployment" => vec![deployment, ("autoRollbackEnabled", "true")],
        "GetDeploymentTarget" => vec![deployment, ("targetId", "\"1\"")],
        "ListDeployments" => vec![
            application,
            group,
            ("includeOnlyStatuses", "[\"Succeeded\"]"),
            ("createTimeRange", r#"{"start": 0, "end": 10000000000}"#),
        ],
        "CreateJoinToken" => vec![("ttlSeconds", "60"), ("description", "\"pt\""), ("maxUses", "1")],
        "DeleteJoinToken" => vec![("tokenId", "\"jt-0123456789abcdef\"")],
        "RotateApiToken" => vec![("kind", "\"read-only\"")],
        // Routed by no node (no node has the tag), so random ports are never listened on.
        "CreateRoute" => vec![
            ("routeName", "\"pt-route\""),
            ("listenPort", "18500"),
            ("targetPort", "8080"),
            ("routerTags", r#"{"pt": "router"}"#),
            ("drainSeconds", "30"),
            ("command", "\"/bin/true\""),
        ],
        "GetRoute" | "DeleteRoute" => vec![("routeName", "\"pt-route\"")],
        "SetRouteTargets" => {
            vec![("routeName", "\"pt-route\""), ("targets", r#"[{"targetId": 1, "weight": 10, "state": "serving"}]"#)]
        }
        _ => Vec::new(),
    }
}

/// An extreme or malformed JSON value, as text.
fn extreme(rng: &mut Rng) -> String {
    const FIXED: &[&str] = &[
        "0",
        "-1",
        "1.5",
        "-0.0",
        "1e308",
        "1e400",
        "-1e400",
        "18446744073709551615",
        "18446744073709551616",
        "-9223372036854775809",
        "4294967296",
        "99999999999999999999999999999999",
        "true",
        "null",
        "[]",
        "{}",
        "[1, 2, 3]",
        r#"{"a": 1}"#,
        "\"\"",
        "\" \"",
        "\"é😀中\"",
        r#""\u0000\u001b\n\t""#,
        r#""\ud800""#,
        "\"../../etc/passwd\"",
        "\"%s%n{}\"",
        "\"d-ABCDEFGHI\"",
        "\"jt-0123456789abcdef\"",
        REVISION,
        "\"admin\"",
        "\"KEY_ONLY\"",
        "\"FLEET_PERCENT\"",
        r#"{"type": "FLEET_PERCENT", "value": 4294967295}"#,
        r#"{"type": "MOST_CONCURRENCY", "value": 0}"#,
        r#"[{"Type": "VALUE_ONLY"}]"#,
        r#"[{"Key": "", "Type": "KEY_ONLY"}]"#,
        r#"{"onPremisesTagSetList": [[], [], [], []]}"#,
        r#"{"enabled": true, "events": ["DEPLOYMENT_FAILURE", "DEPLOYMENT_FAILURE"]}"#,
        r#"{"revisionType": "S3"}"#,
        r#"{"start": -1e300, "end": 1e300}"#,
    ];
    match rng.below(10) {
        0 => format!("\"{}\"", "a".repeat(*rng.pick(&[99, 100, 101, 256, 257, 1000, 100_000]))),
        1 => format!("\"{}\"", "é".repeat(*rng.pick(&[100, 101, 300]))),
        2 => "[".repeat(*rng.pick(&[64, 127, 129, 300, 5000])),
        3 => {
            let depth = *rng.pick(&[10, 127, 130, 1000]);
            format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth))
        }
        4 => format!("[{}]", vec!["0"; *rng.pick(&[1000, 30_000])].join(",")),
        5 => format!("[{}]", [FILTERS.trim_matches(['[', ']'])].repeat(*rng.pick(&[101, 500])).join(",")),
        _ => rng.pick(FIXED).to_string(),
    }
}

/// A member name nobody declared.
fn unknown_member(rng: &mut Rng) -> String {
    let long = "k".repeat(100_000);
    rng.pick(&["nextToken", "targetInstances", "Colour", "", "é😀", "\\u0000", long.as_str(), "applicationname"])
        .to_string()
}

/// A body for `operation`: its template mutated, or malformed as a whole.
fn body(rng: &mut Rng, operation: &str) -> Vec<u8> {
    let mut members: Vec<(String, String)> =
        template(operation).into_iter().map(|(name, value)| (name.to_string(), value.to_string())).collect();
    let object = |members: &[(String, String)]| {
        let pairs: Vec<String> = members.iter().map(|(name, value)| format!("\"{name}\": {value}")).collect();
        format!("{{{}}}", pairs.join(", "))
    };
    match rng.below(12) {
        0..=4 if !members.is_empty() => {
            for _ in 0..=rng.below(3) {
                let index = rng.below(members.len());
                members[index].1 = extreme(rng);
            }
        }
        5 => members.push((unknown_member(rng), extreme(rng))),
        6 if !members.is_empty() => {
            members.remove(rng.below(members.len()));
        }
        7 => {
            let text = object(&members);
            let cut = rng.below(text.len().max(1));
            return text.as_bytes()[..cut].to_vec();
        }
        8 => return whole_body(rng),
        9 => {
            let index = rng.below(members.len().max(1));
            if let Some(member) = members.get(index).cloned() {
                members.push(member);
            }
        }
        _ => {}
    }
    object(&members).into_bytes()
}

/// A body malformed as a whole.
fn whole_body(rng: &mut Rng) -> Vec<u8> {
    match rng.below(12) {
        0 => Vec::new(),
        1 => b"not json".to_vec(),
        2 => b"[]".to_vec(),
        3 => b"null".to_vec(),
        4 => b"5".to_vec(),
        5 => b"{\"applicationName\": \"\xff\xfe\"}".to_vec(),
        6 => b"{} trailing".to_vec(),
        7 => b"\xef\xbb\xbf{}".to_vec(),
        8 => "[".repeat(100_000).into_bytes(),
        9 => format!("{{\"applicationName\": \"{}\"}}", "x".repeat(3 << 20)).into_bytes(),
        10 => (0..200).map(|_| (rng.next() & 0xff) as u8).collect(),
        _ => b"{\"a\": ".to_vec(),
    }
}

/// One request: method, path (with query), content type, body, and whether it carries
/// the admin token.
struct Case {
    method: &'static str,
    path: String,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    authorized: bool,
}

/// A path parameter: an id as it might come, or garbage.
fn path_param(rng: &mut Rng, upload: &str) -> String {
    let long = "x".repeat(*rng.pick(&[101, 4000]));
    rng.pick(&[
        upload,
        "0",
        "jt-0123456789abcdef",
        "00000000000000000000000000000000000000000000000000000000000000aa",
        "%FF%FE",
        "%00",
        "%C3%A9%F0%9F%98%80",
        "..",
        long.as_str(),
        "-1",
    ])
    .to_string()
}

fn case(rng: &mut Rng, upload: &str) -> Case {
    let authorized = rng.below(20) != 0;
    let content_type =
        *rng.pick(&[Some("application/json"), Some("application/json"), None, Some("text/plain"), Some("a/b; x")]);
    let post = |path: String, body: Vec<u8>| Case { method: "POST", path, content_type, body, authorized };
    match rng.below(20) {
        0..=12 => {
            let operation = if rng.below(30) == 0 { "LaunchRockets" } else { *rng.pick(OPERATION_NAMES) };
            let query = *rng.pick(&["", "", "", "?consistent=true", "?consistent=maybe", "?consistent=1&x=%FF"]);
            let body = body(rng, operation);
            post(format!("/v1/deploy/{operation}{query}"), body)
        }
        13 => {
            let body = body(rng, "CreateJoinToken");
            post("/v1/join-tokens".to_string(), body)
        }
        14 => {
            let members = [("applicationName", "\"pt-app\""), ("totalBytes", "1000")];
            let mut pairs: Vec<String> = members.iter().map(|(name, value)| format!("\"{name}\": {value}")).collect();
            let index = rng.below(pairs.len());
            pairs[index] = format!("\"{}\": {}", members[index].0, extreme(rng));
            post("/v1/uploads".to_string(), format!("{{{}}}", pairs.join(", ")).into_bytes())
        }
        15 => {
            let id = path_param(rng, upload);
            let step = *rng.pick(&["missing", "chunks", "finish"]);
            let body = match step {
                "chunks" => (0..*rng.pick(&[0usize, 10, 36, 40, 200])).map(|_| (rng.next() & 0xff) as u8).collect(),
                "missing" => format!("{{\"chunks\": {}}}", extreme(rng)).into_bytes(),
                _ => format!("{{\"manifest\": {}, \"description\": {}}}", extreme(rng), extreme(rng)).into_bytes(),
            };
            post(format!("/v1/uploads/{id}/{step}"), body)
        }
        16 => Case {
            method: "DELETE",
            path: format!("/v1/join-tokens/{}", path_param(rng, upload)),
            content_type: None,
            body: Vec::new(),
            authorized,
        },
        17 => Case {
            method: "GET",
            path: format!("/v1/revisions/{}/distribution", path_param(rng, upload)),
            content_type: None,
            body: Vec::new(),
            authorized,
        },
        _ => {
            let path = rng.pick(&[
                "/healthz",
                "/metrics",
                "/v1/cluster",
                "/v1/join-tokens",
                "/v1/deploy/GetCluster",
                "/v1/uploads",
                "/nope",
                "/v1/deploy",
                "/v1/deploy/",
                "/%FF",
                "/v1/cluster?consistent=maybe",
            ]);
            let method = *rng.pick(&["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]);
            let body = if matches!(method, "POST" | "PUT" | "PATCH") { body(rng, "GetCluster") } else { Vec::new() };
            Case { method, path: path.to_string(), content_type, body, authorized }
        }
    }
}

/// What is wrong with an answer, if anything.
fn judge(case: &Case, status: u16, content_type: &str, text: &str) -> Option<String> {
    if status >= 500 {
        return Some(format!("status {status}: {}", cut(text)));
    }
    if !(200..300).contains(&status) && !(400..500).contains(&status) {
        return Some(format!("status {status}"));
    }
    if text.len() > 8192 && status >= 400 {
        return Some(format!("an error answer of {} bytes (input echoed unbounded?)", text.len()));
    }
    if case.method == "HEAD" || (case.path.starts_with("/metrics") && status == 200) {
        return None;
    }
    if !content_type.starts_with("application/json") {
        return Some(format!("status {status} with content type {content_type:?}: {}", cut(text)));
    }
    let Ok(body) = serde_json::from_str::<Value>(text) else {
        return Some(format!("status {status}, not JSON: {}", cut(text)));
    };
    if status >= 400 {
        if !body["error"].is_string() {
            return Some(format!("status {status} without an error: {}", cut(text)));
        }
        if !(body["field"].is_null() || body["field"].as_str().is_some_and(|field| field.len() < 400)) {
            return Some(format!("status {status} with a bad field: {}", cut(text)));
        }
    }
    None
}

fn cut(text: &str) -> String {
    text.chars().take(300).collect()
}

/// Sends `case`; the status, content type and body, or the transport error.
fn send(agent: &ureq::Agent, base: &str, token: &str, case: &Case) -> Result<(u16, String, String), String> {
    let mut request = ureq::http::Request::builder().method(case.method).uri(format!("{base}{}", case.path));
    if case.authorized {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    if let Some(content_type) = case.content_type {
        request = request.header("Content-Type", content_type);
    }
    let request = request.body(case.body.clone()).map_err(|error| format!("cannot build: {error}"))?;
    let response = agent.run(request).map_err(|error| error.to_string())?;
    let status = response.status().as_u16();
    let content_type =
        response.headers().get("content-type").and_then(|value| value.to_str().ok()).unwrap_or_default().to_string();
    let mut body = response.into_body();
    let text = body.with_config().limit(64 << 20).read_to_string().map_err(|error| error.to_string())?;
    Ok((status, content_type, text))
}

/// Opens an upload on `cluster`'s node 1, so chunk and finish requests reach a real one.
fn open_upload(cluster: &TestCluster) -> String {
    let body = serde_json::json!({"applicationName": "pt-app", "totalBytes": 1000});
    let (status, answer) = cluster.api_post(1, "/v1/uploads", &body);
    assert_eq!(status, 200, "{answer}");
    answer["uploadId"].as_str().unwrap_or_default().to_string()
}

/// A few answers in detail: the field named, axum's own refusals as JSON.
fn specific_answers(agent: &ureq::Agent, base: &str, token: &str) {
    let post = |path: &str, body: &[u8], content_type: Option<&'static str>| {
        let case = Case { method: "POST", path: path.to_string(), content_type, body: body.to_vec(), authorized: true };
        let (status, content_type, text) = send(agent, base, token, &case).expect("an answer");
        assert!(content_type.starts_with("application/json"), "{path}: {content_type} {text}");
        (status, serde_json::from_str::<Value>(&text).unwrap_or(Value::Null))
    };
    let json = Some("application/json");
    let (status, body) = post("/v1/deploy/ListDeployments", br#"{"maxItems": 3}"#, json);
    assert_eq!((status, body["field"].as_str()), (400, Some("maxItems")), "{body}");
    let long = format!(r#"{{"applicationName": "{}"}}"#, "a".repeat(101));
    let (status, body) = post("/v1/deploy/CreateApplication", long.as_bytes(), json);
    assert_eq!((status, body["field"].as_str()), (400, Some("applicationName")), "{body}");
    let (status, body) = post("/v1/deploy/CreateJoinToken", br#"{"ttlSeconds": 18446744073709551615}"#, json);
    assert_eq!((status, body["field"].as_str()), (400, Some("ttlSeconds")), "{body}");
    let (status, body) = post("/v1/deploy/CreateDeploymentGroup", br#"{"applicationName": "a"}"#, json);
    assert_eq!((status, body["field"].as_str()), (400, Some("deploymentGroupName")), "{body}");
    let (status, body) = post("/v1/uploads", b"{}", Some("text/plain"));
    assert!(status == 415 && body["error"].is_string(), "{status} {body}");
    let (status, body) = post("/v1/uploads", b"{", json);
    assert!(status == 400 && body["error"].is_string(), "{status} {body}");
    let (status, body) = post("/v1/cluster", b"", None);
    assert!(status == 405 && body["error"].is_string(), "{status} {body}");
    let huge = format!(r#"{{"applicationName": "{}"}}"#, "x".repeat(3 << 20));
    let (status, body) = post("/v1/deploy/GetApplication", huge.as_bytes(), json);
    assert!(status == 413 && body["error"].is_string(), "{status} {body}");
}

#[test]
fn every_route_answers_extreme_and_malformed_input_with_a_json_4xx() {
    let cluster = TestCluster::start(1, Options::default());
    let seed: u64 = std::env::var("FLEETMESH_BOUNDS_SEED").ok().and_then(|seed| seed.parse().ok()).unwrap_or(13_008);
    let count: usize =
        std::env::var("FLEETMESH_BOUNDS_REQUESTS").ok().and_then(|count| count.parse().ok()).unwrap_or(5000);
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let agent = fleetmesh_tests::http_agent_within(Some(&cluster.ca_bundle(1)), Duration::from_secs(30));
    let base = cluster.api_url(1);
    let mut token = cluster.admin_token.clone();
    let upload = open_upload(&cluster);
    specific_answers(&agent, &base, &token);
    let (start, deadline) = (Instant::now(), Instant::now() + Duration::from_secs(55));
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut sent = 0;
    while sent < count && Instant::now() < deadline {
        let case = case(&mut rng, &upload);
        sent += 1;
        let verdict = match send(&agent, &base, &token, &case) {
            Ok((status, content_type, text)) => {
                *statuses.entry(status).or_default() += 1;
                if case.path.starts_with("/v1/deploy/RotateApiToken") && status == 200 {
                    // A rotated admin token replaces the one the next requests carry.
                    if let Ok(answer) = serde_json::from_str::<Value>(&text) {
                        if answer["kind"] == "admin" {
                            token = answer["token"].as_str().unwrap_or_default().to_string();
                        }
                    }
                }
                judge(&case, status, &content_type, &text)
            }
            Err(error) => Some(format!("no answer: {error}")),
        };
        if let Some(problem) = verdict {
            let body = String::from_utf8_lossy(&case.body[..case.body.len().min(200)]).into_owned();
            failures.push(format!(
                "{} {} [{} body bytes: {body}]: {problem}",
                case.method,
                cut(&case.path),
                case.body.len()
            ));
        }
    }
    let elapsed = start.elapsed();
    eprintln!(
        "bounds: seed {seed}, {sent} requests in {elapsed:?}, statuses {statuses:?}, {} failures",
        failures.len()
    );
    let log = cluster.log(1);
    assert!(!log.contains("panicked"), "the node panicked:\n{}", cut(&log[log.find("panicked").unwrap_or(0)..]));
    assert!(
        failures.is_empty(),
        "{} of {sent} answers were wrong (seed {seed}):\n{}",
        failures.len(),
        failures[..failures.len().min(25)].join("\n")
    );
    assert!(sent >= count.min(1000), "only {sent} requests in {elapsed:?}");
    let list = Case {
        method: "POST",
        path: "/v1/deploy/ListApplications".to_string(),
        content_type: Some("application/json"),
        body: b"{}".to_vec(),
        authorized: true,
    };
    let answer = send(&agent, &base, &token, &list);
    assert!(answer.as_ref().is_ok_and(|(status, _, _)| *status == 200), "the node still answers: {answer:?}");
}
