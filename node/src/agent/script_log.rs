//! The per-deployment script log, `<deployment dir>/logs/scripts.log` (`codedeploy.md`
//! §1.5, §8.3): every line a hook script prints, stamped and tagged with its stream, so
//! an operator can read what happened on a host after the fact.
//!
//! Lines are written as `[2026-11-26T10:00:00.123Z] [stdout] text`; a host's log of all
//! deployments (`<root>/deployment-logs/codedeploy-agent-deployments.log`, which existing
//! tooling tails) gets each line too, prefixed with its deployment:
//! `[2026-11-26T10:00:00.123Z] [d-XXXXXXXXX] [stdout] text`. Each line is one
//! unbuffered `write`, so a crash loses at most the line being written. A failure to
//! write the log never fails a lifecycle event (the scripts' own success is what
//! counts); the first write error is kept and logged once.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use fleetmesh_model::civil_from_days;

/// Where a log line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogStream {
    /// The script's standard output.
    Stdout,
    /// The script's standard error.
    Stderr,
    /// fleetmesh itself (script started, killed, output left open).
    Agent,
}

impl LogStream {
    /// The tag written in brackets.
    pub fn tag(self) -> &'static str {
        match self {
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
            Self::Agent => "agent",
        }
    }
}

/// An append-only script log file.
#[derive(Debug)]
pub struct ScriptLog {
    path: PathBuf,
    file: File,
    /// The host's log of all deployments, and the deployment id its lines carry.
    all: Option<(File, String)>,
    write_error: Option<String>,
}

/// The host's log of all deployments under a deployment root (`codedeploy.md` §8.3).
pub fn deployments_log(root: &Path) -> PathBuf {
    root.join("deployment-logs").join("codedeploy-agent-deployments.log")
}

impl ScriptLog {
    /// Opens (creating it and its directories) the log of the deployment whose
    /// directory is `deployment_dir`: `<deployment_dir>/logs/scripts.log`.
    ///
    /// # Errors
    /// The directory or file cannot be created.
    pub fn for_deployment(deployment_dir: &Path) -> io::Result<Self> {
        Self::open(&deployment_dir.join("logs").join("scripts.log"))
    }

    /// Opens `path` for appending, creating it and its parent directories.
    ///
    /// # Errors
    /// The directory or file cannot be created.
    pub fn open(path: &Path) -> io::Result<Self> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self { path: path.to_path_buf(), file, all: None, write_error: None })
    }

    /// Also writes every line to the host's log of all deployments at `path`, prefixed
    /// with `deployment_id`. A log that cannot be opened is warned about and skipped:
    /// the per-deployment log is the one the diagnostics come from.
    pub fn also_to(mut self, path: &Path, deployment_id: &str) -> Self {
        let opened = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| OpenOptions::new().create(true).append(true).open(path));
        match opened {
            Ok(file) => self.all = Some((file, deployment_id.to_string())),
            Err(error) => tracing::warn!(path = %path.display(), %error, "cannot open the deployments log"),
        }
        self
    }

    /// The log file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The first write error, if writing ever failed.
    pub fn write_error(&self) -> Option<&str> {
        self.write_error.as_deref()
    }

    /// Appends one stamped line. `text` must not contain a newline (the hook runner
    /// splits output into lines first).
    pub fn write_line(&mut self, stream: LogStream, text: &str) {
        let time = rfc3339_utc(SystemTime::now());
        let line = format!("[{time}] [{}] {text}\n", stream.tag());
        if let Some((all, deployment_id)) = &mut self.all {
            // One write per line with O_APPEND: lines of concurrent deployments do not mix.
            let tagged = format!("[{time}] [{deployment_id}] [{}] {text}\n", stream.tag());
            if let Err(error) = all.write_all(tagged.as_bytes()) {
                tracing::warn!(%error, "cannot write the deployments log");
            }
        }
        if let Err(error) = self.file.write_all(line.as_bytes()) {
            if self.write_error.is_none() {
                tracing::warn!(path = %self.path.display(), %error, "cannot write the script log");
                self.write_error = Some(error.to_string());
            }
        }
    }
}

/// `time` as RFC 3339 in UTC with milliseconds, e.g. `2026-11-26T10:00:00.123Z`.
pub fn rfc3339_utc(time: SystemTime) -> String {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since_epoch.as_secs();
    let days = i64::try_from(seconds / 86_400).unwrap_or(i64::MAX / 2);
    let second_of_day = seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60,
        since_epoch.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        // Formats the epoch, a leap day and a date past 2038; asserts the exact text.
        assert_eq!(rfc3339_utc(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap_day = UNIX_EPOCH + Duration::from_millis(951_782_400_123 + 3_723_000);
        assert_eq!(rfc3339_utc(leap_day), "2000-02-29T01:02:03.123Z");
        let later = UNIX_EPOCH + Duration::from_secs(4_102_444_800);
        assert_eq!(rfc3339_utc(later), "2100-01-01T00:00:00.000Z");
    }

    #[test]
    fn lines_are_appended_with_stamp_and_stream() {
        // Opens a log in a fresh deployment dir, writes two lines, reopens and writes a
        // third; asserts all three lines, their tags and that reopening appends.
        let dir = tempfile::tempdir().expect("temp dir");
        let mut log = ScriptLog::for_deployment(dir.path()).expect("open log");
        log.write_line(LogStream::Stdout, "hello");
        log.write_line(LogStream::Stderr, "oops");
        drop(log);
        let mut log = ScriptLog::for_deployment(dir.path()).expect("reopen log");
        log.write_line(LogStream::Agent, "done");
        let text = std::fs::read_to_string(dir.path().join("logs/scripts.log")).expect("read log");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        for (line, suffix) in lines.iter().zip(["] [stdout] hello", "] [stderr] oops", "] [agent] done"]) {
            assert!(line.starts_with('[') && line.ends_with(suffix), "{line}");
            assert_eq!(&line[24..26], "Z]", "{line}");
        }
        assert!(log.write_error().is_none());
    }

    #[test]
    fn every_deployment_also_writes_the_hosts_deployments_log() {
        // Two deployments' logs share the host's log; each line there names its deployment.
        let dir = tempfile::tempdir().expect("tempdir");
        let all = deployments_log(dir.path());
        let mut first = ScriptLog::for_deployment(&dir.path().join("g/d-1")).expect("open").also_to(&all, "d-1");
        let mut second = ScriptLog::for_deployment(&dir.path().join("g/d-2")).expect("open").also_to(&all, "d-2");
        first.write_line(LogStream::Stdout, "one");
        second.write_line(LogStream::Stderr, "two");
        let text = std::fs::read_to_string(&all).expect("read the deployments log");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].ends_with("] [d-1] [stdout] one"), "{text}");
        assert!(lines[1].ends_with("] [d-2] [stderr] two"), "{text}");
        assert!(all.ends_with("deployment-logs/codedeploy-agent-deployments.log"));
        let own = std::fs::read_to_string(dir.path().join("g/d-1/logs/scripts.log")).expect("read");
        assert!(own.trim_end().ends_with("] [stdout] one") && !own.contains("d-2"), "{own}");
    }
}
