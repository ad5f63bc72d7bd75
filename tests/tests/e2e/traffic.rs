//! Traffic routes end to end: three nodes on loopback, tiny TCP servers (one per node,
//! on its address and the route's target port, answering the node's id), and a route
//! whose router is node 2 (not the leader, so a change travels a poll answer). Connections through the router follow the weights with no
//! failure, a dead target is skipped without the client noticing, weight changes reach
//! the router within a second (the measured time is printed), bad input is refused and
//! changes nothing, a `--command` route runs its program with the route's JSON, and a
//! deleted route's port closes.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use fleetmesh_tests::{wait_until, Options, TestCluster};
use serde_json::Value;

const LISTEN_PORT: u16 = 18000;
const COMMAND_PORT: u16 = 18001;
const TARGET_PORT: u16 = 18080;

/// A TCP server that answers every connection with `answer` and closes it, until
/// stopped (then its port is closed).
struct Server {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start(address: SocketAddr, answer: String) -> Self {
        Self::start_holding(address, answer, false)
    }

    /// With `hold`, connections stay open after the answer (until the server stops).
    fn start_holding(address: SocketAddr, answer: String, hold: bool) -> Self {
        let listener = TcpListener::bind(address).unwrap_or_else(|error| panic!("bind {address}: {error}"));
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            while !stopping.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        use std::io::Write;
                        // A client that went away is not this server's problem.
                        let _ = stream.write_all(format!("{answer}\n").as_bytes());
                        if hold {
                            held.push(stream);
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Self { stop, thread: Some(thread) }
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("server thread");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One connection through `router`: the id of the node that answered, or why not.
fn ask(router: SocketAddr) -> Result<u64, String> {
    let mut stream = TcpStream::connect_timeout(&router, Duration::from_secs(5)).map_err(|error| error.to_string())?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).map_err(|error| error.to_string())?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).map_err(|error| error.to_string())?;
    answer.trim().parse().map_err(|_| format!("answer {answer:?}"))
}

/// `count` connections through `router`: answers per node id, and failures.
fn spread(router: SocketAddr, count: usize) -> (BTreeMap<u64, usize>, Vec<String>) {
    let (mut answers, mut failures) = (BTreeMap::new(), Vec::new());
    for _ in 0..count {
        match ask(router) {
            Ok(id) => *answers.entry(id).or_default() += 1,
            Err(error) => failures.push(error),
        }
    }
    (answers, failures)
}

fn targets(weights: &[(u64, u32, &str)]) -> String {
    let list: Vec<Value> = weights
        .iter()
        .map(|(id, weight, state)| serde_json::json!({"targetId": id, "weight": weight, "state": state}))
        .collect();
    Value::Array(list).to_string()
}

/// Runs a CLI command that must fail; its stderr.
fn refused(cluster: &TestCluster, args: &[&str]) -> String {
    let output = cluster.cli(1, args);
    assert!(!output.status.success(), "fleetmesh {} should fail", args.join(" "));
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn traffic_routes_follow_weights_skip_dead_targets_and_refuse_bad_input() {
    let options = Options {
        tags: BTreeMap::from([(2, vec!["role=web".to_string(), "router=yes".to_string()])]),
        ..Options::default()
    };
    let cluster = TestCluster::start(3, options);
    wait_until("feature level 8", Duration::from_secs(60), || {
        (cluster.status(1)?["feature_level"].as_u64()? >= 8).then_some(())
    });
    let ids: Vec<u64> = (1..=3).map(|index| cluster.node_id(index)).collect();
    let ip = |index: u32| -> IpAddr { cluster.ip(index) };
    let mut servers: Vec<Server> = (1..=3)
        .map(|index| Server::start(SocketAddr::new(ip(index), TARGET_PORT), ids[index as usize - 1].to_string()))
        .collect();
    let router = SocketAddr::new(ip(2), LISTEN_PORT);
    let listen = LISTEN_PORT.to_string();

    cluster.create_route("web", LISTEN_PORT, TARGET_PORT, 5, &[]);
    let weights = targets(&[(ids[0], 60, "serving"), (ids[1], 30, "serving"), (ids[2], 10, "serving")]);
    cluster.ok(1, &["traffic", "set-route-targets", "--route-name", "web", "--targets", &weights]);
    let route: Value = serde_json::from_str(&cluster.ok(2, &["traffic", "get-route", "--route-name", "web", "--json"]))
        .expect("get-route --json");
    assert_eq!(route["routeName"], "web");
    assert_eq!(route["listenPort"], LISTEN_PORT);
    assert_eq!(route["targetPort"], TARGET_PORT);
    assert_eq!(route["routers"], serde_json::json!([ids[1]]));
    assert_eq!(route["targets"][1]["address"], format!("{}:{TARGET_PORT}", ip(2)));
    assert_eq!(
        (route["targets"][1]["targetId"].as_u64(), route["targets"][1]["weight"].as_u64()),
        (Some(ids[1]), Some(30))
    );
    assert_eq!(route["targets"][2]["state"], "serving");
    wait_until("the router listens", Duration::from_secs(10), || ask(router).ok());

    // ~200 connections follow 60/30/10 (loosely), none fails.
    let through = Instant::now();
    let (answers, failures) = spread(router, 200);
    let through = through.elapsed();
    let direct = Instant::now();
    let (direct_answers, _) = spread(SocketAddr::new(ip(1), TARGET_PORT), 200);
    println!(
        "200 sequential connections: {} ms through the router, {} ms straight to a target ({direct_answers:?})",
        through.as_millis(),
        direct.elapsed().as_millis()
    );
    println!("weights 60/30/10 over 200 connections: {answers:?}");
    assert!(failures.is_empty(), "{failures:?}");
    let share = |id: u64| answers.get(&id).copied().unwrap_or(0);
    // About ±4.5 standard deviations, and a connect slower than 1 s on a loaded machine
    // moves a connection to the heaviest target: an even or reversed split still fails.
    assert!((85..=155).contains(&share(ids[0])), "{answers:?}");
    assert!((30..=90).contains(&share(ids[1])), "{answers:?}");
    assert!((3..=45).contains(&share(ids[2])), "{answers:?}");

    // Node 3's server stops: its connects fail and the router moves on; no client sees it.
    servers[2].stop();
    let (answers, failures) = spread(router, 100);
    println!("target 3 down, 100 connections: {answers:?}");
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(share_of(&answers, ids[2]), 0);

    // New weights: all to node 2 (node 1 drains, node 3 blocked). Time until the router follows.
    let weights = targets(&[(ids[0], 0, "serving"), (ids[1], 100, "serving"), (ids[2], 10, "blocked")]);
    let asked = Instant::now();
    cluster.ok(1, &["traffic", "set-route-targets", "--route-name", "web", "--targets", &weights]);
    let committed = Instant::now();
    let followed = wait_until("the router follows the new weights", Duration::from_secs(5), || {
        (ask(router).ok() == Some(ids[1])).then(Instant::now)
    });
    let propagation = followed.duration_since(committed);
    println!(
        "weight change reached the router in {} ms after the CLI returned (the commit), {} ms after it started",
        propagation.as_millis(),
        followed.duration_since(asked).as_millis()
    );
    // The figure (~100 ms on a quiet machine) is printed above; the bound only catches a
    // router that stopped following, not a slow CI neighbour.
    assert!(propagation < Duration::from_secs(3), "{propagation:?}");
    let (answers, failures) = spread(router, 50);
    assert!(failures.is_empty() && answers.keys().eq([&ids[1]]), "{answers:?} {failures:?}");

    // Bad input: clear errors, nothing changes.
    let before = cluster.ok(1, &["traffic", "list-routes", "--json"]);
    let used = refused(
        &cluster,
        &[
            "traffic",
            "create-route",
            "--route-name",
            "other",
            "--listen-port",
            &listen,
            "--target-port",
            "80",
            "--router-tag",
            "router=yes",
        ],
    );
    assert!(used.contains("listen port 18000 is already used by route web"), "{used}");
    let unknown = refused(
        &cluster,
        &["traffic", "set-route-targets", "--route-name", "web", "--targets", &targets(&[(99, 10, "serving")])],
    );
    assert!(unknown.contains("target 99 is not a member"), "{unknown}");
    let zero = refused(
        &cluster,
        &[
            "traffic",
            "create-route",
            "--route-name",
            "zero",
            "--listen-port",
            "0",
            "--target-port",
            "80",
            "--router-tag",
            "router=yes",
        ],
    );
    assert!(zero.contains("listenPort") && zero.contains("not a port"), "{zero}");
    let tag = refused(
        &cluster,
        &[
            "traffic",
            "create-route",
            "--route-name",
            "tag",
            "--listen-port",
            "18002",
            "--target-port",
            "80",
            "--router-tag",
            "novalue",
        ],
    );
    assert!(tag.contains("KEY=VALUE"), "{tag}");
    assert_eq!(cluster.ok(1, &["traffic", "list-routes", "--json"]), before, "nothing changed");

    command_route(&cluster, &ids);
    port_in_use(&cluster, ids[1]);
    draining_and_blocked(&cluster, ids[0]);

    // Deleted: the router stops listening.
    cluster.ok(1, &["traffic", "delete-route", "--route-name", "web"]);
    wait_until("the router's port closes", Duration::from_secs(5), || {
        TcpStream::connect_timeout(&router, Duration::from_secs(1)).is_err().then_some(())
    });
    drop(servers);
}

fn share_of(answers: &BTreeMap<u64, usize>, id: u64) -> usize {
    answers.get(&id).copied().unwrap_or(0)
}

/// A `--command` route: the router runs a script that writes its stdin to a file; the
/// file holds the route's JSON with the targets set.
fn command_route(cluster: &TestCluster, ids: &[u64]) {
    let script = cluster.dir.path().join("route-command.sh");
    let output = cluster.dir.path().join("route-command.json");
    write_script(&script, &output);
    let port = COMMAND_PORT.to_string();
    cluster.ok(
        1,
        &[
            "traffic",
            "create-route",
            "--route-name",
            "cmd",
            "--listen-port",
            &port,
            "--target-port",
            "8080",
            "--router-tag",
            "router=yes",
            "--command",
            script.to_str().expect("utf-8 path"),
        ],
    );
    let weights = targets(&[(ids[1], 7, "serving")]);
    cluster.ok(1, &["traffic", "set-route-targets", "--route-name", "cmd", "--targets", &weights]);
    let route = wait_until("the route command ran with the targets", Duration::from_secs(10), || {
        let text = std::fs::read_to_string(&output).ok()?;
        let route: Value = serde_json::from_str(&text).ok()?;
        (route["targets"].as_array()?.len() == 1).then_some(route)
    });
    assert_eq!(route["routeName"], "cmd");
    assert_eq!(route["listenPort"], COMMAND_PORT);
    assert_eq!(route["routers"], serde_json::json!([ids[1]]));
    assert_eq!(route["targets"][0]["targetId"], ids[1]);
    assert_eq!(route["targets"][0]["weight"], 7);
    assert_eq!(route["targets"][0]["address"], format!("{}:8080", cluster.ip(2)));
    assert!(
        TcpStream::connect_timeout(&SocketAddr::new(cluster.ip(2), COMMAND_PORT), Duration::from_secs(1)).is_err(),
        "a command route does not proxy"
    );
    cluster.ok(1, &["traffic", "delete-route", "--route-name", "cmd"]);
}

fn write_script(script: &Path, output: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let text = format!("#!/bin/sh\ncat > {0}.tmp && mv {0}.tmp {0}\n", output.display());
    std::fs::write(script, text).expect("write script");
    std::fs::set_permissions(script, std::fs::Permissions::from_mode(0o755)).expect("chmod script");
}

/// An open connection through a router: true once the router closed it (end of file or
/// reset), false while it stays open for `wait`.
fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    stream.set_read_timeout(Some(wait)).expect("read timeout");
    let mut buffer = [0u8; 64];
    match stream.read(&mut buffer) {
        Ok(0) => true,
        Ok(_) => false,
        Err(error) => !matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
    }
}

/// How long after `since` the router closed `stream` (end of file or reset), waiting up
/// to `limit` after `since`; `None` while it stays open that long.
fn closed_after(stream: &mut TcpStream, since: Instant, limit: Duration) -> Option<Duration> {
    let mut buffer = [0u8; 64];
    // Until closed or the limit; the target sends nothing more, so a read returns only then.
    loop {
        let left = limit.checked_sub(since.elapsed()).filter(|left| !left.is_zero())?;
        stream.set_read_timeout(Some(left)).expect("read timeout");
        match stream.read(&mut buffer) {
            Ok(0) => return Some(since.elapsed()),
            Ok(_) => {}
            Err(error) if matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return Some(since.elapsed()),
        }
    }
}

/// A held connection through the router, after reading the target's answer line.
fn held_connection(router: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect_timeout(&router, Duration::from_secs(5)).expect("connect through the router");
    stream.set_read_timeout(Some(Duration::from_secs(5))).expect("read timeout");
    let mut byte = [0u8; 1];
    // The answer line, byte by byte up to its newline.
    while stream.read(&mut byte).map(|read| read == 1 && byte[0] != b'\n').unwrap_or(false) {}
    stream
}

/// Open connections to a target that stops serving: weight 0 keeps them for the
/// route's drain time (3 s here) then closes them; blocked closes them at once.
fn draining_and_blocked(cluster: &TestCluster, target: u64) {
    let (listen, target_port) = (18003u16, 18081u16);
    let _server = Server::start_holding(SocketAddr::new(cluster.ip(1), target_port), target.to_string(), true);
    let router = SocketAddr::new(cluster.ip(2), listen);
    cluster.create_route("hold", listen, target_port, 3, &[]);
    let set = |weight: u32, state: &str| {
        let list = targets(&[(target, weight, state)]);
        cluster.ok(1, &["traffic", "set-route-targets", "--route-name", "hold", "--targets", &list]);
    };
    set(10, "serving");
    wait_until("the hold route listens", Duration::from_secs(10), || {
        TcpStream::connect_timeout(&router, Duration::from_secs(1)).ok()
    });
    let mut draining = held_connection(router);
    // The router cannot see the change before it is sent, so the drain ends no earlier
    // than 3 s after `sent`, on the clock every process shares; measuring from when the
    // CLI returned instead left this test at the mercy of how soon a loaded machine ran it
    // again (it failed twice so, with a browser test on the same 2 cores).
    let sent = Instant::now();
    set(0, "serving");
    let closed = closed_after(&mut draining, sent, Duration::from_secs(10)).expect("closed after the drain time");
    assert!(
        closed >= Duration::from_millis(2990),
        "open during the drain time: closed {closed:?} after weight 0 was sent"
    );
    println!("a drained connection closed {} ms after weight 0 was sent (drain time 3 s)", closed.as_millis());
    set(10, "serving");
    let mut blocked = wait_until("a new connection after serving again", Duration::from_secs(5), || {
        let mut stream = held_connection(router);
        (!closed_within(&mut stream, Duration::from_millis(100))).then_some(stream)
    });
    set(10, "blocked");
    let stopped = Instant::now();
    assert!(closed_within(&mut blocked, Duration::from_secs(3)), "blocked closes at once");
    println!("a blocked target's connection closed after {} ms", stopped.elapsed().as_millis());
    cluster.ok(1, &["traffic", "delete-route", "--route-name", "hold"]);
}

/// A route whose listen port is taken on its router: the router says so, and
/// `get-route` shows it (from the router's next poll).
fn port_in_use(cluster: &TestCluster, router: u64) {
    let taken = TcpListener::bind(SocketAddr::new(cluster.ip(2), 18004)).expect("take the port");
    cluster.ok(
        1,
        &[
            "traffic",
            "create-route",
            "--route-name",
            "busy",
            "--listen-port",
            "18004",
            "--target-port",
            "80",
            "--router-tag",
            "router=yes",
        ],
    );
    let route = wait_until("get-route shows the router's error", Duration::from_secs(20), || {
        let route: Value =
            serde_json::from_str(&cluster.ok(3, &["traffic", "get-route", "--route-name", "busy", "--json"])).ok()?;
        route["routerErrors"].as_array().is_some_and(|errors| !errors.is_empty()).then_some(route)
    });
    assert_eq!(route["routerErrors"][0]["nodeId"], router, "{route}");
    let error = route["routerErrors"][0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("cannot listen on") && error.contains("in use"), "{error}");
    cluster.ok(1, &["traffic", "delete-route", "--route-name", "busy"]);
    drop(taken);
}
