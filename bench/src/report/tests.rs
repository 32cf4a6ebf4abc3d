use super::docs::{markers, spliced};
use super::runs::civil_from_days;
use super::*;

fn write_run(dir: &Path, file: &str, wf_s: f64, p99: f64, rate: Option<f64>) {
    let v = serde_json::json!({
        "scenario": "one-activity", "concurrency": 50, "wft_pollers": 8, "activity_pollers": 8,
        "warmup_s": 5.0, "window_s": 20.0, "workflows_per_s": wf_s, "transitions_per_s": wf_s * 4.0,
        "workflows_failed": 0, "latency_samples": 100, "rate_wf_per_s": rate,
        "latency_ms": {"p50": p99 / 2.0, "p90": p99 * 0.8, "p99": p99, "p99.9": p99 * 1.5, "max": p99 * 2.0},
        "server_cpu_cores": 1.0, "server_rss_mib": 50.0, "bench_cpu_cores": 0.5, "errors": {},
        "load_average": "0.10 0.20 0.30",
    });
    std::fs::write(dir.join(file), v.to_string()).unwrap();
}

fn sample_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for (i, w) in [900.0, 1000.0, 700.0].iter().enumerate() {
        write_run(d.path(), &format!("hourglass.peak{}.json", i + 1), *w, 20.0 + i as f64, None);
    }
    write_run(d.path(), "hourglass.half.json", 500.0, 8.0, Some(500.0));
    for (i, w) in [9.0, 11.0, 10.0].iter().enumerate() {
        write_run(d.path(), &format!("reference-durable.peak{}.json", i + 1), *w, 900.0, None);
    }
    d
}

#[test]
fn medians_ratios_and_goals() {
    let d = sample_dir();
    let cmp = Comparison::load(d.path(), &[]).unwrap();
    assert_eq!(cmp.servers.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["hourglass", "reference-durable"]);
    let hg = cmp.server(HOURGLASS).unwrap();
    assert_eq!(hg.median().wf_s(), 900.0, "median of 700, 900, 1000");
    assert_eq!(hg.median().latency("p99"), Some(20.0), "the median run's own latency");
    assert_eq!(hg.wf_s_range(), (700.0, 1000.0));
    let md = cmp.markdown("bench/compare.sh", "abc123", Some("img/x.svg"));
    // Table cells are padded; compare with runs of spaces collapsed.
    let md = md.split(' ').filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" ");
    assert!(md.contains("| hourglass / reference-durable | 90.00× | 90.00× | 45.00× | 45.00× |"), "{md}");
    assert!(md.contains("90.0× (900.0 vs 10.0 wf/s) | **no**"), "{md}");
    assert!(md.contains("8.00 ms at 500.0 wf/s offered | **yes**"), "{md}");
    assert!(md.contains("![one-activity: workflows/s and latency per server](img/x.svg)"));
    assert!(md.contains("(git abc123)"), "{md}");
}

#[test]
fn the_throughput_goal_is_judged_on_one_activity_only() {
    let d = sample_dir();
    let mut cmp = Comparison::load(d.path(), &[]).unwrap();
    cmp.scenario = "noop".into();
    let md = cmp.markdown("bench/compare.sh", "abc123", None);
    assert!(!md.contains("the reference's durable figure"), "{md}");
    assert!(md.contains("p99 start-to-completion ≤ 10 ms at half of peak"), "{md}");
}

#[test]
fn chart_is_an_svg_naming_every_server() {
    let d = sample_dir();
    let cmp = Comparison::load(d.path(), &[]).unwrap();
    let out = d.path().join("sub/chart.svg");
    chart::write_svg(&cmp, &out).unwrap();
    let svg = std::fs::read_to_string(&out).unwrap();
    assert!(svg.starts_with("<svg") || svg.contains("<svg"), "not an SVG");
    assert!(svg.contains("reference-durable") && svg.contains("hourglass"), "server labels missing");
    assert!(svg.contains("p99 at half of peak"), "legend missing");
}

#[test]
fn missing_or_foreign_files_are_errors() {
    let d = tempfile::tempdir().unwrap();
    assert!(Comparison::load(d.path(), &[]).is_err());
    std::fs::write(d.path().join("x.peak1.json"), "{\"a\": 1}").unwrap();
    let e = Comparison::load(d.path(), &[]).unwrap_err();
    assert!(e.contains("not a hourglass-bench report"), "{e}");
}

#[test]
fn splice_replaces_between_markers_or_appends() {
    let (b, e) = markers("one-activity");
    let appended = spliced("# Doc\n", "one-activity", "new table\n").unwrap();
    assert_eq!(appended, format!("# Doc\n\n{b}\n\nnew table\n{e}\n"));
    let replaced = spliced(&format!("head\n{b}\nold\n{e}\ntail\n"), "one-activity", "fresh").unwrap();
    assert_eq!(replaced, format!("head\n{b}\n\nfresh\n{e}\ntail\n"));
    assert_eq!(spliced(&replaced, "one-activity", "fresh").unwrap(), replaced, "idempotent");
    // Another scenario's section is left alone and a new one appended.
    let two = spliced(&replaced, "noop", "n").unwrap();
    assert!(!two.contains("old") && two.contains("fresh") && two.contains("compare:noop:begin"));
    assert!(spliced(&format!("{b}\nno end\n"), "one-activity", "x").is_err(), "half a pair of markers");
}

#[test]
fn relative_links() {
    assert_eq!(docs::relative_link(Some(Path::new("/r/docs/benchmarks.md")), Path::new("/r/docs/img/a.svg")), "img/a.svg");
    assert_eq!(docs::relative_link(Some(Path::new("/r/docs/benchmarks.md")), Path::new("/r/out/a.svg")), "../out/a.svg");
}

#[test]
fn civil_dates() {
    assert_eq!(civil_from_days(0), (1970, 1, 1));
    assert_eq!(civil_from_days(20_413), (2025, 11, 21));
    assert_eq!(civil_from_days(11_016), (2000, 2, 29));
}
