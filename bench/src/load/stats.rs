//! Counters shared by the starter and the workers, and CPU/RSS sampling of this
//! process and (optionally) the server's.

use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::{clock_ticks_per_s, Histogram};

/// Monotonic counters; a report is the difference of two [`Snapshot`]s.
#[derive(Debug, Default)]
pub struct Counters {
    pub started: AtomicU64,
    pub completed: AtomicU64,
    /// Successful state-changing RPCs: StartWorkflowExecution,
    /// RespondWorkflowTaskCompleted, RespondActivityTaskCompleted,
    /// SignalWorkflowExecution.
    pub transitions: AtomicU64,
    /// History events of completed workflows (the length of the final history,
    /// i.e. the last task's history + WorkflowTaskCompleted + WorkflowExecutionCompleted).
    pub events: AtomicU64,
    pub wft_polled: AtomicU64,
    pub act_polled: AtomicU64,
    pub empty_polls: AtomicU64,
    /// Workflows the starter gave up on (start failed or no completion in time).
    pub failed: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Snapshot {
    pub started: u64,
    pub completed: u64,
    pub transitions: u64,
    pub events: u64,
    pub wft_polled: u64,
    pub act_polled: u64,
    pub empty_polls: u64,
    pub failed: u64,
}

impl Counters {
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }
    /// One failed RPC, keyed `Rpc: Code`.
    pub fn error(&self, rpc: &str, code: &str) {
        *self.errors.lock().entry(format!("{rpc}: {code}")).or_default() += 1;
    }
    pub fn errors(&self) -> BTreeMap<String, u64> {
        self.errors.lock().clone()
    }
    pub fn error_total(&self) -> u64 {
        self.errors.lock().values().sum()
    }
    pub fn snapshot(&self) -> Snapshot {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Snapshot {
            started: g(&self.started),
            completed: g(&self.completed),
            transitions: g(&self.transitions),
            events: g(&self.events),
            wft_polled: g(&self.wft_polled),
            act_polled: g(&self.act_polled),
            empty_polls: g(&self.empty_polls),
            failed: g(&self.failed),
        }
    }
}

impl Snapshot {
    pub fn since(&self, earlier: &Snapshot) -> Snapshot {
        Snapshot {
            started: self.started - earlier.started,
            completed: self.completed - earlier.completed,
            transitions: self.transitions - earlier.transitions,
            events: self.events - earlier.events,
            wft_polled: self.wft_polled - earlier.wft_polled,
            act_polled: self.act_polled - earlier.act_polled,
            empty_polls: self.empty_polls - earlier.empty_polls,
            failed: self.failed - earlier.failed,
        }
    }
}

/// Latency percentiles reported (p50, p90, p99, p99.9, max) in milliseconds.
pub fn latency_ms(h: &mut Histogram) -> Vec<(&'static str, f64)> {
    [("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99.9", 99.9), ("max", 100.0)]
        .into_iter()
        .map(|(name, p)| (name, h.percentile(p).as_secs_f64() * 1e3))
        .collect()
}

/// CPU time (user + system, all threads) and resident memory of one process.
#[derive(Debug, Clone, Copy)]
pub struct ProcSample {
    pub cpu: Duration,
    pub rss_bytes: u64,
}

impl ProcSample {
    /// This process: getrusage(RUSAGE_SELF) for CPU, /proc/self/status for RSS.
    pub fn own() -> Option<Self> {
        // SAFETY: getrusage writes into the zeroed struct we own.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
            return None;
        }
        let tv = |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
        Some(Self { cpu: tv(ru.ru_utime) + tv(ru.ru_stime), rss_bytes: vm_rss("self").unwrap_or(0) })
    }

    /// Another process, from /proc/PID/stat (utime + stime) and /proc/PID/status.
    pub fn of_pid(pid: u32) -> Option<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let f: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        // After ")": state(0) ... utime(11) stime(12).
        let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
        let cpu = Duration::from_secs_f64(ticks as f64 / clock_ticks_per_s());
        Some(Self { cpu, rss_bytes: vm_rss(&pid.to_string()).unwrap_or(0) })
    }

    /// Cores used between `earlier` and `self` over `wall`.
    pub fn cores_since(&self, earlier: &ProcSample, wall: Duration) -> f64 {
        self.cpu.saturating_sub(earlier.cpu).as_secs_f64() / wall.as_secs_f64().max(1e-9)
    }
}

fn vm_rss(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_percentiles_in_ms() {
        let mut h = Histogram::new();
        for i in 1..=1000u64 {
            h.record(Duration::from_millis(i));
        }
        let l = latency_ms(&mut h);
        let get = |n: &str| l.iter().find(|(k, _)| *k == n).unwrap().1;
        assert_eq!(get("p50"), 500.0);
        assert_eq!(get("p90"), 900.0);
        assert_eq!(get("p99"), 990.0);
        assert_eq!(get("p99.9"), 999.0);
        assert_eq!(get("max"), 1000.0);
    }

    #[test]
    fn samples_this_process() {
        let own = ProcSample::own().unwrap();
        let by_pid = ProcSample::of_pid(std::process::id()).unwrap();
        assert!(own.rss_bytes > 0 && by_pid.rss_bytes > 0);
        let c = Counters::default();
        c.error("Start", "Unavailable");
        c.error("Start", "Unavailable");
        assert_eq!(c.error_total(), 2);
    }
}
