//! The comparison chart (SVG, drawn with `plotters`): left, workflows/s per server
//! (median run, with the min–max of the repeats as a whisker); right, start-to-completion
//! latency per server: p50 and p99 at peak, p99 at half of peak. Both axes are
//! logarithmic because the servers differ by orders of magnitude.

use std::path::Path;

use plotters::prelude::*;

use super::Comparison;

const SERVER_COLORS: [RGBColor; 4] =
    [RGBColor(0x1f, 0x77, 0xb4), RGBColor(0xd6, 0x27, 0x28), RGBColor(0xff, 0x7f, 0x0e), RGBColor(0x2c, 0xa0, 0x2c)];
const LATENCY_SERIES: [(&str, RGBColor); 3] = [
    ("p50 at peak", RGBColor(0x9e, 0xc5, 0xe8)),
    ("p99 at peak", RGBColor(0x1f, 0x77, 0xb4)),
    ("p99 at half of peak", RGBColor(0x2c, 0xa0, 0x2c)),
];

pub fn write_svg(cmp: &Comparison, path: &Path) -> Result<(), String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    }
    let root = SVGBackend::new(path, (1000, 420)).into_drawing_area();
    draw(cmp, &root).map_err(|e| format!("draw {}: {e}", path.display()))?;
    root.present().map_err(|e| format!("write {}: {e}", path.display()))
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;
type DrawResult = Result<(), Box<dyn std::error::Error>>;

fn draw(cmp: &Comparison, root: &Area) -> DrawResult {
    root.fill(&WHITE)?;
    let title = format!("Hourglass vs the reference, scenario `{}`", cmp.scenario);
    let root = root.titled(&title, ("sans-serif", 20))?;
    let (left, right) = root.split_horizontally(430);
    throughput_panel(cmp, &left)?;
    latency_panel(cmp, &right)?;
    Ok(())
}

/// (min, max) of positive values, widened to whole decades for a log axis.
fn decades(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.filter(|v| *v > 0.0).fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        return (0.1, 10.0);
    }
    (10f64.powf(lo.log10().floor()), 10f64.powf(hi.log10().ceil().max(lo.log10().floor() + 1.0)))
}

/// Axis numbers without a pointless ".0" (log axes tick at 1, 10, 100, ...).
fn axis_number(v: f64) -> String {
    if v >= 1.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

fn server_label(names: &[String], x: f64) -> String {
    let i = x.round();
    if (x - i).abs() < 1e-6 && i >= 0.0 {
        names.get(i as usize).cloned().unwrap_or_default()
    } else {
        String::new()
    }
}

type ServerChart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<plotters::coord::types::RangedCoordf64, LogCoord<f64>>>;

/// A panel with one slot per server on x (at 0, 1, …) and a log-scale y from `lo` to `hi`.
fn server_axes<'a, 'b>(
    area: &'a Area<'b>,
    caption: &str,
    y_desc: &str,
    names: &[String],
    (lo, hi): (f64, f64),
) -> Result<ServerChart<'a, 'b>, Box<dyn std::error::Error>> {
    let n = names.len() as f64;
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 15))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5..n - 0.5, (lo..hi).log_scale())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(names.len() * 2 + 1)
        .x_label_formatter(&|x| server_label(names, *x))
        .y_label_formatter(&|y| axis_number(*y))
        .y_desc(y_desc)
        .draw()?;
    Ok(chart)
}

fn throughput_panel(cmp: &Comparison, area: &Area) -> DrawResult {
    let names: Vec<String> = cmp.servers.iter().map(|s| s.name.clone()).collect();
    let (lo, hi) = decades(cmp.servers.iter().flat_map(|s| s.peak.iter().map(|r| r.wf_s())));
    let mut chart = server_axes(area, "workflows/s (median of repeats, log scale)", "workflows/s", &names, (lo, hi))?;
    for (i, s) in cmp.servers.iter().enumerate() {
        let x = i as f64;
        let color = SERVER_COLORS[i % SERVER_COLORS.len()];
        let median = s.median().wf_s().max(lo);
        chart.draw_series(std::iter::once(Rectangle::new([(x - 0.3, lo), (x + 0.3, median)], color.filled())))?;
        let (min, max) = s.wf_s_range();
        chart.draw_series(std::iter::once(PathElement::new(vec![(x, min.max(lo)), (x, max.max(lo))], BLACK.stroke_width(2))))?;
        chart.draw_series(std::iter::once(Text::new(format!("{median:.0}"), (x - 0.12, median * 1.6), ("sans-serif", 13))))?;
    }
    Ok(())
}

fn latency_panel(cmp: &Comparison, area: &Area) -> DrawResult {
    let names: Vec<String> = cmp.servers.iter().map(|s| s.name.clone()).collect();
    let values: Vec<[Option<f64>; 3]> = cmp
        .servers
        .iter()
        .map(|s| [s.median().latency("p50"), s.median().latency("p99"), s.half.as_ref().and_then(|h| h.latency("p99"))])
        .collect();
    // The goal line is always on the axis.
    let (lo, hi) = decades(values.iter().flatten().flatten().copied().chain([super::GOAL_P99_AT_HALF_PEAK_MS / 2.0]));
    let hi = hi * 40.0; // headroom above the tallest bar for the legend
    let n = names.len() as f64;
    let mut chart = server_axes(area, "start → completion latency, ms (log scale)", "ms", &names, (lo, hi))?;
    let width = 0.8 / LATENCY_SERIES.len() as f64;
    for (k, (label, color)) in LATENCY_SERIES.iter().enumerate() {
        let bars = values.iter().enumerate().filter_map(|(i, v)| {
            let y = v[k]?;
            let x0 = i as f64 - 0.4 + k as f64 * width;
            Some(Rectangle::new([(x0, lo), (x0 + width * 0.9, y.max(lo))], color.filled()))
        });
        chart.draw_series(bars)?.label(*label).legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    let goal = super::GOAL_P99_AT_HALF_PEAK_MS;
    if (lo..=hi).contains(&goal) {
        let red = RGBColor(0xd6, 0x27, 0x28);
        chart
            .draw_series(DashedLineSeries::new(vec![(-0.5, goal), (n - 0.5, goal)], 6, 4, red.stroke_width(1)))?
            .label(format!("goal: p99 at half of peak ≤ {goal:.0} ms"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 10, y)], red));
    }
    chart.configure_series_labels().position(SeriesLabelPosition::UpperLeft).background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    Ok(())
}
