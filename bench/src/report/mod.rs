//! `hourglass-bench report`: turns the JSON files one `bench/compare.sh` run wrote
//! (`<server>.peak<i>.json` for each repeat at full load, `<server>.half.json` for the
//! open-loop run at half of that server's median peak) into markdown tables, the
//! ratios to the reference, the goals and an SVG chart, and splices them into
//! `docs/benchmarks.md` between `<!-- compare:<scenario>:begin -->` and
//! `<!-- compare:<scenario>:end -->` (appended at the end when the markers are
//! missing).
//!
//! Medians, not means: a run disturbed by another process on this shared machine
//! moves the mean but not the median. The row of a server shows its median-throughput
//! run (so its latency, CPU and RSS belong to one real run), plus the min–max of
//! workflows/s over all repeats.

mod chart;
mod docs;
mod runs;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::Args as ClapArgs;

use crate::Table;
pub use runs::{Run, ServerRuns};

/// The servers compare.sh knows, in table order; hourglass is compared to the others.
pub const HOURGLASS: &str = "hourglass";
pub const REFERENCE_DURABLE: &str = "reference-durable";

/// Goals of issue 4 judged from a compare run (the storage and memory goals come from
/// the criterion benches; see docs/benchmarks.md).
pub const GOAL_RATIO_VS_REFERENCE_DURABLE: f64 = 100.0;
pub const GOAL_RATIO_SCENARIO: &str = "one-activity";
pub const GOAL_P99_AT_HALF_PEAK_MS: f64 = 10.0;

#[derive(Debug, Clone, ClapArgs)]
pub struct ReportArgs {
    /// Directory with the JSON files of one compare run.
    #[arg(long)]
    pub dir: PathBuf,
    /// Servers in table order (default: every `<server>.peak1.json` found, hourglass first).
    #[arg(long, value_delimiter = ',')]
    pub servers: Vec<String>,
    /// Markdown file to splice the section into (e.g. docs/benchmarks.md).
    #[arg(long)]
    pub docs: Option<PathBuf>,
    /// Where to write the SVG chart (its path relative to --docs is linked).
    #[arg(long)]
    pub chart: Option<PathBuf>,
    /// The command that produced the run, quoted in the section.
    #[arg(long, default_value = "bench/compare.sh")]
    pub command: String,
    /// Git revision the measured binaries were built from (default: the work tree's).
    #[arg(long)]
    pub git_rev: Option<String>,
}

/// Everything one report says, for the markdown and the chart.
#[derive(Debug)]
pub struct Comparison {
    pub scenario: String,
    pub servers: Vec<ServerRuns>,
    /// When the runs were measured (see [`runs::measured_at`]).
    pub measured_at: String,
}

impl Comparison {
    pub fn load(dir: &Path, names: &[String]) -> Result<Self, String> {
        let names = if names.is_empty() { runs::discover(dir)? } else { names.to_vec() };
        if names.is_empty() {
            return Err(format!("no <server>.peak1.json in {}", dir.display()));
        }
        let servers = names.iter().map(|n| ServerRuns::load(dir, n)).collect::<Result<Vec<_>, _>>()?;
        let scenario = servers[0].median().scenario();
        if let Some(other) = servers.iter().find(|s| s.median().scenario() != scenario) {
            return Err(format!("{} ran {:?}, {} ran {scenario:?}", other.name, other.median().scenario(), servers[0].name));
        }
        Ok(Self { scenario, servers, measured_at: runs::measured_at(dir) })
    }

    pub fn server(&self, name: &str) -> Option<&ServerRuns> {
        self.servers.iter().find(|s| s.name == name)
    }

    /// The markdown section (without the begin/end markers).
    pub fn markdown(&self, command: &str, git_rev: &str, chart_link: Option<&str>) -> String {
        let mut out = String::new();
        let m = self.servers[0].median();
        let _ = writeln!(out, "### `{}`: {}\n", self.scenario, runs::machine_line());
        let _ = writeln!(
            out,
            "Measured by `{command}` on {} (git {}). Each server: {} measured run(s) of {:.0} s after {:.0} s of \
             warm-up, closed loop with {} workflows in flight, {} workflow-task / {} activity pollers, then one \
             open-loop run at half of its median peak. Load average (1, 5, 15 min) when hourglass's median run started: {}.\n",
            self.measured_at,
            git_rev,
            self.servers[0].peak.len(),
            m.f("window_s").unwrap_or(0.0),
            m.f("warmup_s").unwrap_or(0.0),
            m.u("concurrency").unwrap_or(0),
            m.u("wft_pollers").unwrap_or(0),
            m.u("activity_pollers").unwrap_or(0),
            m.s("load_average").unwrap_or_else(|| "-".into()),
        );
        out.push_str(&self.peak_table().render());
        out.push('\n');
        if let Some(t) = self.ratio_table() {
            out.push_str(&t.render());
            out.push('\n');
        }
        if let Some(t) = self.half_table() {
            out.push_str("Half of peak (open loop, latency from each workflow's due time):\n\n");
            out.push_str(&t.render());
            out.push('\n');
        }
        if let Some(t) = self.goal_table() {
            out.push_str(&t.render());
            out.push('\n');
        }
        if let Some(link) = chart_link {
            let _ = writeln!(out, "![{}: workflows/s and latency per server]({link})\n", self.scenario);
        }
        out
    }

    fn peak_table(&self) -> Table {
        let mut t = Table::new(&[
            "server",
            "wf/s (median)",
            "wf/s min–max",
            "transitions/s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "p99.9 ms",
            "server CPU (cores)",
            "server RSS MiB",
            "generator CPU (cores)",
            "failed",
            "errors",
        ]);
        for s in &self.servers {
            let m = s.median();
            let (lo, hi) = s.wf_s_range();
            t.row(vec![
                s.name.clone(),
                fmt1(Some(m.wf_s())),
                format!("{lo:.1}–{hi:.1}"),
                fmt1(m.f("transitions_per_s")),
                fmt2(m.latency("p50")),
                fmt2(m.latency("p90")),
                fmt2(m.latency("p99")),
                fmt2(m.latency("p99.9")),
                fmt2(m.f("server_cpu_cores")),
                fmt1(m.f("server_rss_mib")),
                fmt2(m.f("bench_cpu_cores")),
                s.peak.iter().map(|r| r.u("workflows_failed").unwrap_or(0)).sum::<u64>().to_string(),
                m.errors(),
            ]);
        }
        t
    }

    fn ratio_table(&self) -> Option<Table> {
        let hg = self.server(HOURGLASS)?.median();
        let others: Vec<_> = self.servers.iter().filter(|s| s.name != HOURGLASS).collect();
        if others.is_empty() {
            return None;
        }
        let mut t = Table::new(&["ratio", "wf/s", "transitions/s", "p50: theirs ÷ ours", "p99: theirs ÷ ours", "wf/s per server core"]);
        for o in others {
            let r = o.median();
            let per_core = |x: &Run| x.f("server_cpu_cores").filter(|c| *c > 0.0).map(|c| x.wf_s() / c);
            t.row(vec![
                format!("hourglass / {}", o.name),
                ratio(Some(hg.wf_s()), Some(r.wf_s())),
                ratio(hg.f("transitions_per_s"), r.f("transitions_per_s")),
                ratio(r.latency("p50"), hg.latency("p50")),
                ratio(r.latency("p99"), hg.latency("p99")),
                ratio(per_core(hg), per_core(r)),
            ]);
        }
        Some(t)
    }

    fn half_table(&self) -> Option<Table> {
        if self.servers.iter().all(|s| s.half.is_none()) {
            return None;
        }
        let mut t = Table::new(&[
            "server",
            "offered wf/s",
            "completed wf/s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "p99.9 ms",
            "server CPU (cores)",
            "failed",
        ]);
        for s in &self.servers {
            let Some(h) = &s.half else { continue };
            t.row(vec![
                s.name.clone(),
                fmt1(h.f("rate_wf_per_s")),
                fmt1(Some(h.wf_s())),
                fmt2(h.latency("p50")),
                fmt2(h.latency("p90")),
                fmt2(h.latency("p99")),
                fmt2(h.latency("p99.9")),
                fmt2(h.f("server_cpu_cores")),
                h.u("workflows_failed").unwrap_or(0).to_string(),
            ]);
        }
        Some(t)
    }

    fn goal_table(&self) -> Option<Table> {
        let hg = self.server(HOURGLASS)?;
        let mut t = Table::new(&["goal", "measured in this run", "met?"]);
        // The throughput goal is stated for one-activity workflows only.
        if let Some(refd) = self.server(REFERENCE_DURABLE).filter(|_| self.scenario == GOAL_RATIO_SCENARIO) {
            let r = hg.median().wf_s() / refd.median().wf_s().max(f64::MIN_POSITIVE);
            t.row(vec![
                format!("`{GOAL_RATIO_SCENARIO}` workflows/s ≥ {GOAL_RATIO_VS_REFERENCE_DURABLE:.0}× the reference's durable figure"),
                format!("{r:.1}× ({:.1} vs {:.1} wf/s)", hg.median().wf_s(), refd.median().wf_s()),
                yes_no(r >= GOAL_RATIO_VS_REFERENCE_DURABLE),
            ]);
        }
        if let Some(p99) = hg.half.as_ref().and_then(|h| h.latency("p99")) {
            t.row(vec![
                format!("p99 start-to-completion ≤ {GOAL_P99_AT_HALF_PEAK_MS:.0} ms at half of peak"),
                format!("{p99:.2} ms at {} wf/s offered", fmt1(hg.half.as_ref().and_then(|h| h.f("rate_wf_per_s")))),
                yes_no(p99 <= GOAL_P99_AT_HALF_PEAK_MS),
            ]);
        }
        Some(t)
    }
}

fn fmt1(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.1}")).unwrap_or_else(|| "-".into())
}
fn fmt2(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into())
}
fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "-".into(),
    }
}
fn yes_no(ok: bool) -> String {
    if ok { "**yes**" } else { "**no**" }.to_string()
}

/// Runs the `report` subcommand: prints the section, writes the chart and the docs.
pub fn run(args: &ReportArgs) -> Result<(), String> {
    let cmp = Comparison::load(&args.dir, &args.servers)?;
    let chart_link = match &args.chart {
        Some(path) => {
            chart::write_svg(&cmp, path)?;
            eprintln!("chart written to {}", path.display());
            Some(docs::relative_link(args.docs.as_deref(), path))
        }
        None => None,
    };
    let git_rev = args.git_rev.clone().unwrap_or_else(runs::git_rev);
    let section = cmp.markdown(&args.command, &git_rev, chart_link.as_deref());
    println!("{section}");
    if let Some(doc) = &args.docs {
        docs::splice(doc, &cmp.scenario, &section)?;
        eprintln!("section `{}` written into {}", cmp.scenario, doc.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests;
