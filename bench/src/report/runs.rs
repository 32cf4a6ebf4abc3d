//! The JSON reports of one compare run, per server, and the machine they ran on.

use std::path::Path;

use serde_json::Value;

use super::HOURGLASS;

/// One `hourglass-bench --json` report.
#[derive(Debug, Clone)]
pub struct Run(pub Value);

impl Run {
    pub fn read(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| format!("parse {}: {e}", path.display()))?;
        if v.get("workflows_per_s").and_then(Value::as_f64).is_none() {
            return Err(format!("{}: not a hourglass-bench report (no workflows_per_s)", path.display()));
        }
        Ok(Self(v))
    }
    pub fn f(&self, key: &str) -> Option<f64> {
        self.0.get(key).and_then(Value::as_f64)
    }
    pub fn u(&self, key: &str) -> Option<u64> {
        self.0.get(key).and_then(Value::as_u64)
    }
    pub fn s(&self, key: &str) -> Option<String> {
        self.0.get(key).and_then(Value::as_str).map(str::to_string)
    }
    pub fn wf_s(&self) -> f64 {
        self.f("workflows_per_s").unwrap_or(0.0)
    }
    pub fn scenario(&self) -> String {
        self.s("scenario").unwrap_or_default()
    }
    /// Latency percentile in ms (`p50`, `p90`, `p99`, `p99.9`, `max`); None without samples.
    pub fn latency(&self, key: &str) -> Option<f64> {
        if self.u("latency_samples") == Some(0) {
            return None;
        }
        self.0.get("latency_ms").and_then(|l| l.get(key)).and_then(Value::as_f64)
    }
    pub fn errors(&self) -> String {
        match self.0.get("errors").and_then(Value::as_object) {
            Some(m) if !m.is_empty() => m.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join(", "),
            _ => "none".into(),
        }
    }
}

/// One server's repeats at peak and its half-of-peak run.
#[derive(Debug, Clone)]
pub struct ServerRuns {
    pub name: String,
    /// Closed-loop repeats, sorted by workflows/s.
    pub peak: Vec<Run>,
    pub half: Option<Run>,
}

impl ServerRuns {
    /// Reads `<name>.peak1.json`, `<name>.peak2.json`, … and `<name>.half.json`.
    pub fn load(dir: &Path, name: &str) -> Result<Self, String> {
        let mut peak = Vec::new();
        for i in 1.. {
            let p = dir.join(format!("{name}.peak{i}.json"));
            if !p.exists() {
                break;
            }
            peak.push(Run::read(&p)?);
        }
        if peak.is_empty() {
            return Err(format!("no {name}.peak1.json in {}", dir.display()));
        }
        peak.sort_by(|a, b| a.wf_s().total_cmp(&b.wf_s()));
        let half_path = dir.join(format!("{name}.half.json"));
        let half = if half_path.exists() { Some(Run::read(&half_path)?) } else { None };
        Ok(Self { name: name.to_string(), peak, half })
    }

    /// The run with the median workflows/s (the lower middle one for an even count).
    pub fn median(&self) -> &Run {
        &self.peak[(self.peak.len() - 1) / 2]
    }

    pub fn wf_s_range(&self) -> (f64, f64) {
        (self.peak[0].wf_s(), self.peak[self.peak.len() - 1].wf_s())
    }
}

/// Server names with a `<name>.peak1.json` in `dir`, hourglass first, then by name.
pub fn discover(dir: &Path) -> Result<Vec<String>, String> {
    let rd = std::fs::read_dir(dir).map_err(|e| format!("read {}: {e}", dir.display()))?;
    let mut names: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_suffix(".peak1.json")).map(str::to_string))
        .collect();
    names.sort_by_key(|n| (n != HOURGLASS, n.clone()));
    Ok(names)
}

/// "2 vCPUs (AMD EPYC …), 23.5 GiB, Linux 6.x": read from /proc on the machine that
/// writes the report, which compare.sh runs right after the measurements.
pub fn machine_line() -> String {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| c.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split_once(':')).map(|(_, m)| m.trim().to_string()))
        .unwrap_or_else(|| "unknown CPU".into());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines().find(|l| l.starts_with("MemTotal:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / (1024.0 * 1024.0));
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()).unwrap_or_default();
    format!("{cpus} CPUs ({model}), {} GiB RAM, Linux {kernel}", mem_gib.map(|g| format!("{g:.1}")).unwrap_or_else(|| "?".into()))
}

/// When the first run of `dir` was written (the oldest `*.json`), else now, as
/// `YYYY-MM-DD HH:MM UTC`: re-running the report later keeps the measurement's date.
pub fn measured_at(dir: &Path) -> String {
    let oldest = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| e.metadata().ok()?.modified().ok())
        .min();
    utc(oldest.unwrap_or_else(std::time::SystemTime::now))
}

/// `t` as `YYYY-MM-DD HH:MM UTC` (civil-from-days, no time crate).
pub fn utc(t: std::time::SystemTime) -> String {
    let secs = t.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02} UTC", rem / 3600, rem % 3600 / 60)
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Short git revision of the working tree, with `-dirty` if it has changes.
pub fn git_rev() -> String {
    let run = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match run(&["rev-parse", "--short", "HEAD"]) {
        Some(rev) => {
            let dirty = run(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{rev}-dirty")
            } else {
                rev
            }
        }
        None => "unknown".into(),
    }
}
