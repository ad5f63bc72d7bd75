//! A test process's memory and CPU, from `/proc` (benchmarks measure nodes with them).

use std::time::Duration;

/// A field of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`).
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|line| line.starts_with(field) && line[field.len()..].starts_with(':'))?;
    line[field.len() + 1..].trim().trim_end_matches("kB").trim().parse().ok()
}

/// CPU time (user + system) a process has used so far.
pub fn process_cpu(pid: u32) -> Option<Duration> {
    process_cpu_split(pid).map(|(user, system)| user + system)
}

/// CPU time a process has used so far in user space and in the kernel, apart.
pub fn process_cpu_split(pid: u32) -> Option<(Duration, Duration)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = text.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |field: usize| fields.get(field)?.parse::<u64>().ok();
    // USER_HZ is 100 on Linux for every architecture this runs on.
    Some((Duration::from_millis(ticks(11)? * 10), Duration::from_millis(ticks(12)? * 10)))
}
