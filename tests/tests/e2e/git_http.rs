//! Git revisions over HTTP and HTTPS (the smart protocol): `git http-backend` behind a
//! small Python server on loopback serves the repository; the leader fetches it with
//! its own HTTP client. HTTPS uses a test CA the nodes trust through `SSL_CERT_FILE`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fleetmesh_tests::{wait_until, Options, TestCluster};

use super::aws_protocol::{access_key, aws, aws_json, create_web_group};
use super::aws_sources::shop_repository;

/// `git http-backend` as CGI behind Python's HTTP server: argv is the project root, the
/// file to write the port to, then optionally a certificate and key for HTTPS. Passes
/// `Git-Protocol` on as `GIT_PROTOCOL` (protocol v2) and turns CGI's `Status:` into the
/// response status.
const SERVER: &str = r#"
import http.server, os, ssl, subprocess, sys
root, port_file = sys.argv[1], sys.argv[2]

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.backend()

    def do_POST(self):
        self.backend()

    def backend(self):
        path, _, query = self.path.partition("?")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        env = dict(os.environ, GIT_PROJECT_ROOT=root, GIT_HTTP_EXPORT_ALL="1", PATH_INFO=path,
                   QUERY_STRING=query, REQUEST_METHOD=self.command, REMOTE_ADDR="127.0.0.1",
                   CONTENT_TYPE=self.headers.get("Content-Type", ""), CONTENT_LENGTH=str(length))
        if self.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True).stdout
        head, sep, payload = out.partition(b"\r\n\r\n")
        if not sep:
            head, sep, payload = out.partition(b"\n\n")
        status, headers = 200, []
        for line in head.decode().splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers.append((name, value.strip()))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass

server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
if len(sys.argv) > 4:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(sys.argv[3], sys.argv[4])
    server.socket = context.wrap_socket(server.socket, server_side=True)
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(port_file + ".tmp", port_file)
server.serve_forever()
"#;

/// The Python server above serving `root` (HTTPS with `tls` = certificate and key);
/// killed when dropped.
struct GitHttpServer(Child, u16);

impl GitHttpServer {
    fn start(root: &Path, tls: Option<(&Path, &Path)>) -> Self {
        let script = root.join("../git_http_server.py");
        std::fs::write(&script, SERVER).expect("write the server script");
        let port_file = root.join("../git_http_port");
        let mut command = Command::new("python3");
        command.arg(&script).arg(root).arg(&port_file);
        if let Some((certificate, key)) = tls {
            command.arg(certificate).arg(key);
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|error| panic!("python3 is not available: {error}"));
        let port = wait_until("the git http server to listen", Duration::from_secs(20), || {
            std::fs::read_to_string(&port_file).ok().and_then(|port| port.trim().parse::<u16>().ok())
        });
        Self(child, port)
    }
}

impl Drop for GitHttpServer {
    fn drop(&mut self) {
        // Best effort: it may have exited already.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A two-node cluster (node 1 the voter) with `env` on both nodes.
fn cluster(env: &[(String, String)]) -> TestCluster {
    let options = Options {
        node_flags: vec!["--voters".into(), "1".into()],
        env: [(1, env.to_vec()), (2, env.to_vec())].into_iter().collect(),
        ..Options::default()
    };
    TestCluster::start(2, options)
}

/// `register-application-revision` of `repository` at `commit`.
fn register(cluster: &TestCluster, key: &(String, String), repository: &str, commit: &str) -> std::process::Output {
    let location = serde_json::json!({"repository": repository, "commitId": commit}).to_string();
    let args = ["register-application-revision", "--application-name", "shop", "--github-location", &location];
    aws(cluster, key, &args)
}

/// Refused with `InvalidRevisionException`, and the message contains `named`.
fn assert_refused(output: &std::process::Output, named: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("(InvalidRevisionException)"), "{stderr}");
    assert!(stderr.contains(named), "names {named}: {stderr}");
}

/// A commit served by `git http-backend` over plain HTTP deploys to both nodes; a
/// commit the repository lacks is refused naming it; a repository the server does not
/// have is refused as "repository not found".
#[test]
fn a_git_commit_served_over_http_is_fetched_and_deployed() {
    let cluster = cluster(&[]);
    let work = cluster.dir.path();
    let first = shop_repository(work);
    let server = GitHttpServer::start(&work.join("repos"), None);
    let repository = format!("http://127.0.0.1:{}/shop.git", server.1);
    let location = serde_json::json!({"repository": repository, "commitId": first}).to_string();

    let key = access_key(&cluster);
    aws_json(&cluster, &key, &["create-application", "--application-name", "shop"]);
    create_web_group(&cluster, &key);
    let args = ["--application-name", "shop", "--deployment-group-name", "web", "--github-location", &location];
    let deployment = aws_json(&cluster, &key, &[&["create-deployment"][..], &args].concat());
    let id = deployment["deploymentId"].as_str().expect("deploymentId").to_string();
    let waited = aws(&cluster, &key, &["wait", "deployment-successful", "--deployment-id", &id]);
    assert!(waited.status.success(), "wait: {}{}", String::from_utf8_lossy(&waited.stderr), cluster.logs());
    for index in [1, 2] {
        let node = &cluster.nodes[&index];
        let installed = std::fs::read_to_string(node.install_root.join("srv/shop/index.html")).unwrap_or_default();
        assert_eq!(installed, "<h1>shop from git</h1>\n", "node {index} has the first commit's tree");
    }

    let missing = "0".repeat(40);
    assert_refused(&register(&cluster, &key, &repository, &missing), &missing);
    let absent = format!("http://127.0.0.1:{}/absent.git", server.1);
    let output = register(&cluster, &key, &absent, &first);
    assert_refused(&output, "repository not found");
    assert_refused(&output, &absent);
    let listed = aws_json(&cluster, &key, &["list-application-revisions", "--application-name", "shop"]);
    assert_eq!(listed["revisions"].as_array().map(Vec::len), Some(1), "refusals register nothing: {listed}");
}

/// `openssl ARGS` in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|error| panic!("openssl is not available: {error}"));
    assert!(output.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
}

/// A test CA (`ca.pem`) and a certificate for 127.0.0.1 it signed (`server.pem`,
/// `server.key`) in `dir`.
fn test_ca(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).expect("mkdir tls");
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let ca = ["req", "-x509", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=fleetmesh test CA"];
    openssl(dir, &[&ca[..], &ec, &["-addext", "basicConstraints=critical,CA:TRUE"]].concat());
    let csr = ["req", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"];
    openssl(dir, &[&csr[..], &ec].concat());
    std::fs::write(dir.join("server.ext"), "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
        .expect("write server.ext");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    );
    (dir.join("ca.pem"), dir.join("server.pem"), dir.join("server.key"))
}

/// Over HTTPS, a commit registers when the leader trusts the server's CA through
/// `SSL_CERT_FILE`; a commit the repository lacks is refused naming it.
#[test]
fn a_git_commit_served_over_https_registers_with_the_ca_from_ssl_cert_file() {
    let tls = tempfile::tempdir().expect("a temporary directory");
    let (ca, certificate, key_file) = test_ca(tls.path());
    let env = [("SSL_CERT_FILE".to_string(), ca.display().to_string())];
    let cluster = cluster(&env);
    let work = cluster.dir.path();
    let first = shop_repository(work);
    let server = GitHttpServer::start(&work.join("repos"), Some((&certificate, &key_file)));
    let repository = format!("https://127.0.0.1:{}/shop.git", server.1);

    let key = access_key(&cluster);
    aws_json(&cluster, &key, &["create-application", "--application-name", "shop"]);
    let registered = register(&cluster, &key, &repository, &first);
    assert!(registered.status.success(), "{}{}", String::from_utf8_lossy(&registered.stderr), cluster.logs());
    let location = serde_json::json!({"repository": repository, "commitId": first}).to_string();
    let got = aws_json(
        &cluster,
        &key,
        &["get-application-revision", "--application-name", "shop", "--github-location", &location],
    );
    assert_eq!(got["revision"]["gitHubLocation"]["commitId"], first.as_str(), "{got}");
    let missing = "f".repeat(40);
    assert_refused(&register(&cluster, &key, &repository, &missing), &missing);
}
