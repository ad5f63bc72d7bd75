//! moto's server: a real AWS API implementation (Lambda, ECS, ELBv2, …) started by the
//! test itself on a free loopback port, for the tests of fleetmesh's AWS edge.
//!
//! moto lives in a virtualenv under `target/aws-venv`, pinned ([`MOTO`]). `.ci/run`
//! installs it; when it is missing (a fresh clone tested without `.ci/run`) the first
//! test installs it under a lock, so parallel test processes install it once. A test
//! whose moto cannot be installed or started fails with a one-line reason; it never
//! skips.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The pinned moto (STACK.md: verified for alias routing, Invoke without Docker, ECS
/// task sets and ELBv2 weighted forwards).
pub const MOTO: &str = "moto[server]==5.2.5";

/// The pinned AWS CLI (v1, from PyPI; it shares botocore with moto's boto3: 1.44.8), for
/// the tests of CodeDeploy's protocol (`tests/e2e/aws_protocol.rs`).
pub const AWS_CLI: &str = "awscli==1.46.3";

/// A running moto server; killed when dropped.
#[derive(Debug)]
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The virtualenv's `python` (boto3 comes with moto), for setting resources up.
    pub python: PathBuf,
}

/// Why moto is not available.
#[derive(Debug, thiserror::Error)]
pub enum MotoError {
    /// The virtualenv or the package could not be installed.
    #[error("moto could not be installed into {venv} ({step}): {reason}")]
    Install {
        /// The virtualenv.
        venv: String,
        /// Which step failed.
        step: &'static str,
        /// What it said.
        reason: String,
    },
    /// The server did not start or answer.
    #[error("moto's server did not start: {0}")]
    Start(String),
}

fn venv() -> PathBuf {
    crate::compat::workspace().join("target").join("aws-venv")
}

/// The virtualenv with moto, installed on first use (under a lock).
///
/// # Errors
/// When `python3 -m venv` or `pip install` fails.
pub fn ensure_installed() -> Result<PathBuf, MotoError> {
    let venv = venv();
    let installed = || venv.join("bin/moto_server").exists() && venv.join("bin/aws").exists();
    if installed() {
        return Ok(venv);
    }
    let failed = |step, reason: String| MotoError::Install { venv: venv.display().to_string(), step, reason };
    let parent = venv.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|error| failed("create target/", error.to_string()))?;
    let lock =
        std::fs::File::create(parent.join(".aws-venv.lock")).map_err(|error| failed("lock", error.to_string()))?;
    let _guard = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, errno)| failed("lock", errno.to_string()))?;
    if installed() {
        return Ok(venv);
    }
    let run = |step, command: &mut Command| {
        let output = command.output().map_err(|error| failed(step, error.to_string()))?;
        if output.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(failed(step, stderr.lines().last().unwrap_or("no output").to_string()))
    };
    if !venv.join("bin/pip").exists() {
        run("python3 -m venv", Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    }
    run("pip install", Command::new(venv.join("bin/pip")).args(["install", "--quiet", MOTO, AWS_CLI]))?;
    Ok(venv)
}

/// See [`Moto::lambda_setup`]; `NAMES` is the Python list of function names.
const LAMBDA_SETUP: &str = r#"
import io, json, zipfile, boto3
role = boto3.client("iam").create_role(
    RoleName="lambda-role",
    AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}),
)["Role"]["Arn"]
def bundle(body):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.py", body)
    return buffer.getvalue()
client = boto3.client("lambda")
for name in NAMES:
    client.create_function(FunctionName=name, Runtime="python3.11", Role=role, Handler="index.handler",
                           Code={"ZipFile": bundle("def handler(event, context):\n    return 1\n")}, Publish=True)
client.update_function_code(FunctionName="app", ZipFile=bundle("def handler(event, context):\n    return 2\n"))
second = client.publish_version(FunctionName="app")["Version"]
client.create_alias(FunctionName="app", Name="live", FunctionVersion="1")
print(second)
"#;

impl Moto {
    /// Installs moto if needed, starts its server on a free port and waits until it
    /// answers; Lambda `Invoke` runs without Docker (the function's code does not run).
    ///
    /// # Errors
    /// [`MotoError`] with the reason.
    pub fn start() -> Result<Self, MotoError> {
        let venv = ensure_installed()?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map_err(|error| MotoError::Start(format!("no free port: {error}")))?
            .port();
        let child = Command::new(venv.join("bin/moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|error| MotoError::Start(error.to_string()))?;
        let moto = Self { child, endpoint: format!("http://127.0.0.1:{port}"), python: venv.join("bin/python") };
        let deadline = Instant::now() + Duration::from_secs(30);
        let config = r#"{"lambda": {"use_docker": false}}"#;
        loop {
            match http_post(port, "/moto-api/config", config) {
                Ok(status) if status < 300 => return Ok(moto),
                Ok(status) => return Err(MotoError::Start(format!("POST /moto-api/config answered {status}"))),
                Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
                Err(error) => return Err(MotoError::Start(format!("no answer on port {port} in 30 s: {error}"))),
            }
        }
    }

    /// Runs `script` with the virtualenv's Python (boto3 pointed at this server through
    /// `AWS_ENDPOINT_URL`, test credentials, region us-east-1); returns its stdout.
    ///
    /// # Panics
    /// When the script fails (its stderr in the message).
    pub fn python(&self, script: &str) -> String {
        let output = Command::new(&self.python)
            .args(["-c", script])
            .envs(self.env())
            .output()
            .unwrap_or_else(|error| panic!("run {}: {error}", self.python.display()));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "the setup script failed: {stderr}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Starts `script` with the virtualenv's Python as [`Moto::python`] does, in the
    /// background, its stdout piped.
    ///
    /// # Panics
    /// When Python cannot start.
    pub fn spawn_python(&self, script: &str) -> Child {
        Command::new(&self.python)
            .args(["-c", script])
            .envs(self.env())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("run {}: {error}", self.python.display()))
    }

    /// Creates Lambda function `app` with versions 1 and 2 and alias `live` on 1, and
    /// one more function per name in `hooks` (moto runs none of their code); returns
    /// the second version's number as moto published it.
    pub fn lambda_setup(&self, hooks: &[&str]) -> String {
        let names = std::iter::once("app").chain(hooks.iter().copied()).collect::<Vec<_>>().join("\", \"");
        self.python(&LAMBDA_SETUP.replace("NAMES", &format!("[\"{names}\"]"))).trim().to_string()
    }

    /// The environment a client of this server needs.
    pub fn env(&self) -> [(&'static str, String); 5] {
        [
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "testing".to_string()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_string()),
            ("AWS_REGION", "us-east-1".to_string()),
            // botocore reads the region from this one.
            ("AWS_DEFAULT_REGION", "us-east-1".to_string()),
        ]
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        // Best effort: the server may have exited already.
        let _ = self.child.kill();
        // Reaps it; nothing to do if it was reaped already.
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 POST with a JSON body; the answer's status code.
fn http_post(port: u16, path: &str, body: &str) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes())?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let status = answer.split_whitespace().nth(1).and_then(|code| code.parse().ok());
    status.ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP answer"))
}
