//! Shared helpers of the storage benchmarks (`benches/`):
//!
//! - [`raw`]: the disk's own limits, measured with plain syscalls in the same run as
//!   the log benches so every log number can be given as a ratio of what the device
//!   does without the log (one `pwrite` + one `fdatasync` per small write; large
//!   sequential writes then one `fdatasync`).
//! - [`Histogram`]: exact latency percentiles (every sample kept, sorted once).
//! - [`Table`]: a plain-text table printed to stdout, pasted into `docs/benchmarks.md`.
//! - [`bench_dir`] / [`quick_mode`]: where bench files go and whether this is a
//!   smoke run (`cargo test --benches`) rather than a measurement (`cargo bench`).
//!
//! - [`load`]: the `hourglass-bench` load generator; [`report`]: its `report`
//!   subcommand (tables, ratios, goals and the SVG chart of a `bench/compare.sh` run).
//!
//! Nothing here asserts a timing.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub mod load;
pub mod raw;
pub mod report;

/// Latency samples in nanoseconds; percentiles are exact (nearest-rank).
#[derive(Debug, Default, Clone)]
pub struct Histogram {
    samples: Vec<u64>,
    sorted: bool,
}

impl Histogram {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn with_capacity(n: usize) -> Self {
        Self { samples: Vec::with_capacity(n), sorted: true }
    }
    pub fn record(&mut self, d: Duration) {
        self.samples.push(d.as_nanos().min(u64::MAX as u128) as u64);
        self.sorted = false;
    }
    pub fn merge(&mut self, other: Histogram) {
        self.samples.extend(other.samples);
        self.sorted = false;
    }
    pub fn len(&self) -> usize {
        self.samples.len()
    }
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
    fn sort(&mut self) {
        if !self.sorted {
            self.samples.sort_unstable();
            self.sorted = true;
        }
    }
    /// Nearest-rank percentile, `p` in [0, 100]. Zero when empty.
    pub fn percentile(&mut self, p: f64) -> Duration {
        if self.samples.is_empty() {
            return Duration::ZERO;
        }
        self.sort();
        let n = self.samples.len();
        // Nearest rank: ceil(p/100 × n). A product that is a whole number up to float
        // error (99.9% of 1000 = 999.0000000001) must not round up to the next sample.
        let exact = p.clamp(0.0, 100.0) / 100.0 * n as f64;
        let rank = if (exact - exact.round()).abs() < 1e-6 { exact.round() } else { exact.ceil() } as usize;
        Duration::from_nanos(self.samples[rank.clamp(1, n) - 1])
    }
    pub fn max(&mut self) -> Duration {
        self.percentile(100.0)
    }
    pub fn mean(&self) -> Duration {
        if self.samples.is_empty() {
            return Duration::ZERO;
        }
        let sum: u128 = self.samples.iter().map(|&s| s as u128).sum();
        Duration::from_nanos((sum / self.samples.len() as u128) as u64)
    }
}

/// A duration as a short human string in µs or ms.
pub fn fmt_dur(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.0} µs")
    } else {
        format!("{:.2} ms", us / 1000.0)
    }
}

/// MB/s (10^6 bytes per second).
pub fn mb_per_s(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / 1e6 / elapsed.as_secs_f64().max(1e-9)
}

/// A text table with a header row, printed as GitHub markdown.
#[derive(Debug, Clone)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Self { header: header.iter().map(|s| s.to_string()).collect(), rows: Vec::new() }
    }
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }
    pub fn render(&self) -> String {
        let cols = self.header.len();
        let mut width = vec![0usize; cols];
        for row in std::iter::once(&self.header).chain(&self.rows) {
            for (i, c) in row.iter().enumerate().take(cols) {
                width[i] = width[i].max(c.chars().count());
            }
        }
        let mut out = String::new();
        let line = |out: &mut String, row: &[String]| {
            out.push('|');
            for (i, w) in width.iter().enumerate() {
                let c = row.get(i).map(String::as_str).unwrap_or("");
                let pad = w - c.chars().count();
                let _ = write!(out, " {c}{} |", " ".repeat(pad));
            }
            out.push('\n');
        };
        line(&mut out, &self.header);
        out.push('|');
        for w in &width {
            let _ = write!(out, " {} |", "-".repeat(*w));
        }
        out.push('\n');
        for row in &self.rows {
            line(&mut out, row);
        }
        out
    }
}

/// True when the bench binary runs as a smoke test (`cargo test --benches`, which
/// passes no `--bench` flag) or `HG_BENCH_QUICK=1` is set: tiny sizes, no claims.
pub fn quick_mode() -> bool {
    std::env::var_os("HG_BENCH_QUICK").is_some_and(|v| v != "0") || !std::env::args().any(|a| a == "--bench")
}

/// Parent directory for bench files: `HG_BENCH_DIR`, else `target/bench-data` of the
/// workspace (on the same file system as the checkout, i.e. the real disk, not a
/// tmpfs). Created if missing.
pub fn bench_dir() -> PathBuf {
    let dir = match std::env::var_os("HG_BENCH_DIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data"),
    };
    std::fs::create_dir_all(&dir).expect("create bench dir");
    dir
}

/// A fresh temporary directory under [`bench_dir`], removed on drop.
pub fn temp_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(prefix).tempdir_in(bench_dir()).expect("create bench temp dir")
}

/// Seconds from `HG_BENCH_SECS`, else `default`.
pub fn env_secs(default: f64) -> Duration {
    let s = std::env::var("HG_BENCH_SECS").ok().and_then(|v| v.parse::<f64>().ok()).unwrap_or(default);
    Duration::from_secs_f64(s)
}

/// The host's 1-minute load average (for the report), if readable.
pub fn load_average() -> Option<String> {
    std::fs::read_to_string("/proc/loadavg").ok().map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

/// CPU time counters of the whole machine and of this process, to tell how much
/// of the machine *other* processes used during a measurement (this machine is
/// shared with compilers; a busy neighbour makes latency numbers meaningless).
#[derive(Debug, Clone, Copy)]
pub struct CpuSample {
    /// Busy clock ticks of all CPUs (user, nice, system, irq, softirq, steal).
    machine_busy: u64,
    /// User + system clock ticks of this process (all its threads).
    own: u64,
    at: std::time::Instant,
}

/// Kernel clock ticks per second (`/proc` CPU times are in ticks).
pub fn clock_ticks_per_s() -> f64 {
    // SAFETY: sysconf has no memory effects.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

impl CpuSample {
    pub fn now() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let cpu: Vec<u64> = stat.lines().next()?.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
        // user nice system idle iowait irq softirq steal
        let machine_busy = [0usize, 1, 2, 5, 6, 7].iter().filter_map(|i| cpu.get(*i)).sum();
        let me = std::fs::read_to_string("/proc/self/stat").ok()?;
        let fields: Vec<&str> = me.rsplit_once(')')?.1.split_whitespace().collect();
        let own = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        Some(Self { machine_busy, own, at: std::time::Instant::now() })
    }

    /// CPUs' worth of time used by everything but this process since `self`
    /// (0.0 = quiet, 1.0 = one core fully busy elsewhere). Includes kernel threads
    /// doing this process's I/O (journal, writeback), so a few hundredths is normal.
    pub fn foreign_cpus(&self) -> Option<f64> {
        let now = Self::now()?;
        let foreign = now.machine_busy.saturating_sub(self.machine_busy) as f64 - now.own.saturating_sub(self.own) as f64;
        let secs = now.at.duration_since(self.at).as_secs_f64().max(1e-3);
        Some((foreign / clock_ticks_per_s() / secs).max(0.0))
    }
}

/// Waits (at most `max_wait`) for a one-second window in which other processes
/// use less than `threshold` CPUs; returns the last window's value.
pub fn wait_quiet(max_wait: Duration, threshold: f64) -> f64 {
    let deadline = std::time::Instant::now() + max_wait;
    loop {
        let Some(s) = CpuSample::now() else { return 0.0 };
        std::thread::sleep(Duration::from_secs(1));
        let foreign = s.foreign_cpus().unwrap_or(0.0);
        if foreign < threshold || std::time::Instant::now() >= deadline {
            return foreign;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut h = Histogram::new();
        for i in 1..=100u64 {
            h.record(Duration::from_nanos(i));
        }
        assert_eq!(h.percentile(50.0), Duration::from_nanos(50));
        assert_eq!(h.percentile(99.0), Duration::from_nanos(99));
        assert_eq!(h.percentile(0.0), Duration::from_nanos(1));
        assert_eq!(h.max(), Duration::from_nanos(100));
        assert_eq!(h.mean(), Duration::from_nanos(50));
        assert_eq!(Histogram::new().percentile(50.0), Duration::ZERO);
        let mut h = Histogram::new();
        for i in 1..=1000u64 {
            h.record(Duration::from_nanos(i));
        }
        assert_eq!(h.percentile(99.9), Duration::from_nanos(999), "float error must not push the rank up");
        assert_eq!(h.percentile(99.0), Duration::from_nanos(990));
    }

    #[test]
    fn cpu_samples_read_proc() {
        let s = CpuSample::now().expect("/proc/stat and /proc/self/stat are readable on Linux");
        assert!(s.foreign_cpus().is_some_and(|f| f >= 0.0));
    }

    #[test]
    fn table_renders_aligned_markdown() {
        let mut t = Table::new(&["a", "bb"]);
        t.row(vec!["xyz".into(), "1".into()]);
        assert_eq!(t.render(), "| a   | bb |\n| --- | -- |\n| xyz | 1  |\n");
    }
}
