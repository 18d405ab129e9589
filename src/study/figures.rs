//! Figures drawn from a [`Summary`] (never from the runs directly): per target, scratch against
//! each strategy (mean evaluation return with a shaded 95 % band, the threshold as a dashed
//! line); and the metrics' differences with their intervals. Each is written as PNG and SVG.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::util::file_safe;

use super::StudyError;
use super::summary::{Metric, Summary};

const COLORS: [RGBColor; 6] = [
    RGBColor(90, 90, 90),
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
];

/// The colour of the `i`th arm (figures and the HTML report's curves).
pub(super) fn color(i: usize) -> RGBColor {
    COLORS[i % COLORS.len()]
}

type Fallible = Result<(), Box<dyn std::error::Error>>;

fn curves<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, summary: &Summary, t: usize) -> Fallible
where
    DB::ErrorType: 'static,
{
    let target = &summary.targets[t];
    area.fill(&WHITE)?;
    let (mut lo, mut hi) = (target.threshold.min(target.random_return), target.threshold.max(target.random_return));
    for c in &target.curves {
        lo = c.low.iter().copied().fold(lo, f64::min);
        hi = c.high.iter().copied().fold(hi, f64::max);
    }
    let pad = 0.05 * (hi - lo).max(1e-9);
    let mut chart = ChartBuilder::on(area)
        .caption(format!("{}: {} from {}", target.key, summary.experiment, summary.source), ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..summary.budget as f64, (lo - pad)..(hi + pad))?;
    chart
        .configure_mesh()
        .x_desc("environment steps on the target")
        .y_desc(format!("evaluation return ({} seeds)", summary.seeds))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    chart
        .draw_series(DashedLineSeries::new(
            [(0.0, target.threshold), (summary.budget as f64, target.threshold)],
            6,
            4,
            BLACK.mix(0.6).stroke_width(1),
        ))?
        .label(format!("threshold {}", target.threshold))
        .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], BLACK.mix(0.6)));
    for (i, c) in target.curves.iter().enumerate() {
        let col = color(i);
        let band: Vec<(f64, f64)> = c
            .steps
            .iter()
            .zip(&c.high)
            .map(|(s, h)| (*s as f64, *h))
            .chain(c.steps.iter().zip(&c.low).rev().map(|(s, l)| (*s as f64, *l)))
            .collect();
        chart.draw_series(std::iter::once(Polygon::new(band, col.mix(0.18).filled())))?;
        let line: Vec<(f64, f64)> = c.steps.iter().zip(&c.mean).map(|(s, m)| (*s as f64, *m)).collect();
        chart
            .draw_series(LineSeries::new(line, col.stroke_width(2)))?
            .label(format!("{} (n = {})", c.arm, c.finished))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], col.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.7))
        .border_style(BLACK.mix(0.3))
        .draw()?;
    area.present()?;
    Ok(())
}

const METRICS: [Metric; 3] = [Metric::Jumpstart, Metric::Asymptotic, Metric::Area];

fn metrics<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, summary: &Summary) -> Fallible
where
    DB::ErrorType: 'static,
{
    area.fill(&WHITE)?;
    let area = area.titled(
        &format!("{}: transfer minus scratch (normalised; times in steps), 95 % Welch intervals", summary.experiment),
        ("sans-serif", 18),
    )?;
    let panels = area.split_evenly((summary.targets.len(), METRICS.len()));
    for (p, panel) in panels.iter().enumerate() {
        let (t, m) = (p / METRICS.len(), p % METRICS.len());
        let target = &summary.targets[t];
        let rows: Vec<(String, f64, (f64, f64))> = target
            .comparisons
            .iter()
            .filter(|c| c.baseline == "scratch")
            .filter_map(|c| {
                let stat = c.metric(METRICS[m])?;
                Some((c.strategy.clone(), stat.difference, stat.ci95))
            })
            .collect();
        let (mut lo, mut hi) = (0.0f64, 0.0f64);
        for (_, d, (a, b)) in &rows {
            lo = lo.min(*a).min(*d);
            hi = hi.max(*b).max(*d);
        }
        let pad = 0.1 * (hi - lo).max(0.1);
        let n = rows.len().max(1);
        let names: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
        let mut chart = ChartBuilder::on(panel)
            .caption(format!("{} — {}", target.key, METRICS[m].name()), ("sans-serif", 15))
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(110)
            .build_cartesian_2d((lo - pad)..(hi + pad), -0.5f64..(n as f64 - 0.5))?;
        chart
            .configure_mesh()
            .x_label_formatter(&|x| format!("{}", (x * 1000.0).round() / 1000.0 + 0.0))
            .y_labels(n)
            .y_label_formatter(&|y| {
                let i = y.round();
                if (y - i).abs() < 1e-6 && i >= 0.0 {
                    names.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        chart.draw_series(std::iter::once(PathElement::new([(0.0, -0.5), (0.0, n as f64 - 0.5)], BLACK.mix(0.5))))?;
        for (i, (_, d, (a, b))) in rows.iter().enumerate() {
            let y = i as f64;
            let col = if *a > 0.0 {
                RGBColor(44, 160, 44)
            } else if *b < 0.0 {
                RGBColor(214, 39, 40)
            } else {
                RGBColor(90, 90, 90)
            };
            chart.draw_series(std::iter::once(PathElement::new([(*a, y), (*b, y)], col.stroke_width(3))))?;
            chart.draw_series(std::iter::once(Circle::new((*d, y), 5, col.filled())))?;
        }
    }
    area.present()?;
    Ok(())
}

/// The performance profile across targets (rliable): per arm, the fraction of runs (every
/// target and seed) whose normalised score exceeds τ, as τ goes over the scores' range.
fn profile<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, summary: &Summary) -> Fallible
where
    DB::ErrorType: 'static,
{
    area.fill(&WHITE)?;
    let Some(first) = summary.aggregate.first() else { return Ok(()) };
    let all: Vec<f64> = summary
        .aggregate
        .iter()
        .flat_map(|a| a.scores.0.iter().chain(&a.scores.1))
        .copied()
        .filter(|v| v.is_finite())
        .collect();
    let lo = all.iter().copied().fold(f64::INFINITY, f64::min).min(0.0);
    let hi = all.iter().copied().fold(f64::NEG_INFINITY, f64::max).max(1.0);
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!("{}: performance profile across targets ({})", summary.experiment, first.metric),
            ("sans-serif", 18),
        )
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(lo..hi, 0f64..1.02)?;
    chart
        .configure_mesh()
        .x_desc("normalised score τ")
        .y_desc("fraction of runs > τ")
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    let steps = 200;
    let line = |scores: &[f64]| -> Vec<(f64, f64)> {
        (0..=steps)
            .map(|i| {
                let tau = lo + (hi - lo) * i as f64 / steps as f64;
                (tau, scores.iter().filter(|&&s| s > tau).count() as f64 / scores.len().max(1) as f64)
            })
            .collect()
    };
    chart
        .draw_series(LineSeries::new(line(&first.scores.1), color(0).stroke_width(2)))?
        .label("scratch")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], color(0).stroke_width(2)));
    for (i, a) in summary.aggregate.iter().enumerate() {
        let c = color(i + 1);
        chart
            .draw_series(LineSeries::new(line(&a.scores.0), c.stroke_width(2)))?
            .label(a.strategy.clone())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.7))
        .border_style(BLACK.mix(0.3))
        .draw()?;
    area.present()?;
    Ok(())
}

/// The PNG figures of a results folder (what the report shows); each also exists as SVG.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Figures {
    /// Per target, in the summary's order: its learning curves.
    pub curves: Vec<String>,
    /// The metrics' differences with their intervals.
    pub metrics: String,
    /// The performance profile across targets (empty with one target).
    pub profile: String,
}

/// Writes every figure of `summary` into `out`.
pub fn draw(out: &Path, summary: &Summary) -> Result<Figures, StudyError> {
    let mut figures = Figures::default();
    let err =
        |name: &str, e: Box<dyn std::error::Error>| StudyError::Figure { path: out.join(name), message: e.to_string() };
    for t in 0..summary.targets.len() {
        let stem = format!("curves-{}", file_safe(&summary.targets[t].key));
        let png = format!("{stem}.png");
        curves(&BitMapBackend::new(&out.join(&png), (960, 600)).into_drawing_area(), summary, t)
            .map_err(|e| err(&png, e))?;
        let svg = format!("{stem}.svg");
        curves(&SVGBackend::new(&out.join(&svg), (960, 600)).into_drawing_area(), summary, t)
            .map_err(|e| err(&svg, e))?;
        figures.curves.push(png);
    }
    let size = (1200, 60 + 260 * summary.targets.len() as u32);
    metrics(&BitMapBackend::new(&out.join("metrics.png"), size).into_drawing_area(), summary)
        .map_err(|e| err("metrics.png", e))?;
    metrics(&SVGBackend::new(&out.join("metrics.svg"), size).into_drawing_area(), summary)
        .map_err(|e| err("metrics.svg", e))?;
    figures.metrics = "metrics.png".into();
    if !summary.aggregate.is_empty() {
        profile(&BitMapBackend::new(&out.join("profile.png"), (900, 560)).into_drawing_area(), summary)
            .map_err(|e| err("profile.png", e))?;
        profile(&SVGBackend::new(&out.join("profile.svg"), (900, 560)).into_drawing_area(), summary)
            .map_err(|e| err("profile.svg", e))?;
        figures.profile = "profile.png".into();
    }
    Ok(figures)
}
