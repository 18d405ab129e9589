//! A transfer matrix as the report shows it (`source: Matrix([...])`): per strategy, sources
//! (rows) by targets (columns), each cell the primary metric's difference against the target's
//! scratch with its verdict (Holm over every cell of the study: the matrix is one family); the
//! matrix as `matrix.csv`; a heat map (`matrix.png` / `.svg`, one panel per strategy); and per
//! target the best source, its difference with its interval, and its margin over the runner-up
//! with Welch's interval (whether "best" is told apart from the next).

use std::fmt::Write;
use std::path::Path;

use plotters::prelude::*;

use super::StudyError;
use super::experiment::{Experiment, Source};
use super::stats;
use super::summary::{Comparison, MetricStat, Summary, Verdict};

/// One cell: a source on a target with one strategy.
pub struct Cell<'a> {
    /// The source's name.
    pub source: String,
    /// The strategy's label.
    pub strategy: String,
    /// The target's key.
    pub target: String,
    /// The comparison with the target's scratch.
    pub comparison: &'a Comparison,
    /// Its primary metric.
    pub primary: &'a MetricStat,
}

/// Every cell of a matrix study, source by source, strategy by strategy, target by target;
/// empty for a study that is not a matrix.
pub fn cells<'a>(experiment: &Experiment, summary: &'a Summary) -> Vec<Cell<'a>> {
    if !matches!(experiment.source, Source::Matrix(_)) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (arm, strategy, member) in experiment.strategy_arms() {
        let Some((_, source)) = member else { continue };
        for t in &summary.targets {
            let found = t.comparisons.iter().find(|c| c.baseline == "scratch" && c.strategy == arm.as_str());
            if let Some(c) = found
                && let Some(primary) = c.metrics.iter().find(|m| m.metric == c.primary)
            {
                let (source, strategy, target) = (source.clone(), strategy.label(), t.key.clone());
                out.push(Cell { source, strategy, target, comparison: c, primary });
            }
        }
    }
    out
}

/// The matrix as CSV: one row per cell.
pub fn csv(cells: &[Cell<'_>]) -> String {
    let mut out = String::from(
        "source,strategy,target,transfer_mean,scratch_mean,difference,ci_low,ci_high,p_corrected,verdict\n",
    );
    for c in cells {
        let m = c.primary;
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{}",
            c.source,
            c.strategy,
            c.target,
            m.transfer.mean,
            m.scratch.mean,
            m.difference,
            m.ci95.0,
            m.ci95.1,
            m.p_corrected,
            c.comparison.verdict.word()
        );
    }
    out
}

fn unique(values: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for v in values {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

/// The report's section: the matrix per strategy, the best source per target, the figure.
pub fn section(out: &Path, summary: &Summary, cells: &[Cell<'_>]) -> Result<String, StudyError> {
    if cells.is_empty() {
        return Ok(String::new());
    }
    let sources = unique(cells.iter().map(|c| c.source.clone()));
    let targets = unique(cells.iter().map(|c| c.target.clone()));
    let strategies = unique(cells.iter().map(|c| c.strategy.clone()));
    let mut text = format!(
        "\n## Transfer matrix\n\n{} sources x {} targets: each cell the {} of transfer minus the target's scratch (95 % \
         t-interval, uncorrected), **bold** where the verdict (Holm over the study's {} comparisons) is not inconclusive. \
         The matrix is also `matrix.csv`.\n",
        sources.len(),
        targets.len(),
        summary.primary,
        summary.family
    );
    let find = |s: &str, st: &str, t: &str| cells.iter().find(|c| c.source == s && c.strategy == st && c.target == t);
    for strategy in &strategies {
        if strategies.len() > 1 {
            let _ = writeln!(text, "\n**{strategy}**");
        }
        let _ = writeln!(text, "\n| source \\ target | {} |\n|---|{}", targets.join(" | "), "---|".repeat(targets.len()));
        for s in &sources {
            let row: Vec<String> = targets
                .iter()
                .map(|t| match find(s, strategy, t) {
                    Some(c) => {
                        let m = c.primary;
                        let cell = format!("{:+.2} [{:+.2}, {:+.2}]", m.difference, m.ci95.0, m.ci95.1);
                        match c.comparison.verdict {
                            Verdict::Inconclusive | Verdict::TooFewSeeds => cell,
                            v => format!("**{cell} {}**", v.word()),
                        }
                    }
                    None => "-".into(),
                })
                .collect();
            let _ = writeln!(text, "| {s} | {} |", row.join(" | "));
        }
        let _ = writeln!(
            text,
            "\nBest source per target ({strategy}): the highest mean {}, its difference with scratch, and its margin over the \
             runner-up (Welch's 95 % interval: a margin whose interval holds 0 does not tell the two apart).\n\n\
             | target | best source | against scratch | runner-up | margin over it |\n|---|---|---|---|---|",
            summary.primary
        );
        for t in &targets {
            let mut ranked: Vec<&Cell<'_>> = cells.iter().filter(|c| &c.strategy == strategy && &c.target == t).collect();
            ranked.sort_by(|a, b| b.primary.transfer.mean.total_cmp(&a.primary.transfer.mean));
            let Some(best) = ranked.first() else { continue };
            let m = best.primary;
            let (second, margin) = match ranked.get(1) {
                Some(r) => {
                    let w = stats::welch(&m.transfer.values, &r.primary.transfer.values);
                    let margin = w.map_or_else(
                        || "-".to_string(),
                        |w| {
                            let (lo, hi) = w.interval(0.95);
                            format!("{:+.2} [{lo:+.2}, {hi:+.2}]", w.difference)
                        },
                    );
                    (r.source.clone(), margin)
                }
                None => ("-".into(), "-".into()),
            };
            let _ = writeln!(
                text,
                "| {t} | {} | {:+.2} [{:+.2}, {:+.2}] {} | {second} | {margin} |",
                best.source,
                m.difference,
                m.ci95.0,
                m.ci95.1,
                best.comparison.verdict.word()
            );
        }
    }
    draw_all(out, cells, (&sources, &targets, &strategies), &summary.primary)?;
    let _ = writeln!(text, "\n![the transfer matrix](matrix.png)");
    Ok(text)
}

fn draw_all(
    out: &Path,
    cells: &[Cell<'_>],
    axes: (&[String], &[String], &[String]),
    metric: &str,
) -> Result<(), StudyError> {
    let (sources, targets, strategies) = axes;
    let (w, h) = (180 + 190 * targets.len() as u32, (90 + 60 * sources.len() as u32) * strategies.len() as u32);
    for name in ["matrix.png", "matrix.svg"] {
        let path = out.join(name);
        let drawn = if name.ends_with(".png") {
            heat(&BitMapBackend::new(&path, (w, h)).into_drawing_area(), cells, axes, metric)
        } else {
            heat(&SVGBackend::new(&path, (w, h)).into_drawing_area(), cells, axes, metric)
        };
        drawn.map_err(|e| StudyError::Figure { path, message: e.to_string() })?;
    }
    Ok(())
}

/// Blue for better than scratch, red for worse, white at zero; the scale symmetric.
fn color(v: f64, max: f64) -> RGBColor {
    let x = (v / max).clamp(-1.0, 1.0);
    let fade = |c: u8, t: f64| (255.0 + (c as f64 - 255.0) * t) as u8;
    if x >= 0.0 { RGBColor(fade(33, x), fade(102, x), fade(172, x)) } else { RGBColor(fade(178, -x), fade(24, -x), fade(43, -x)) }
}

fn heat<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    cells: &[Cell<'_>],
    (sources, targets, strategies): (&[String], &[String], &[String]),
    metric: &str,
) -> Result<(), Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    area.fill(&WHITE)?;
    let max = cells.iter().map(|c| c.primary.difference.abs()).filter(|v| v.is_finite()).fold(0.05, f64::max);
    let (n, m) = (targets.len() as f64, sources.len() as f64);
    for (panel, strategy) in area.split_evenly((strategies.len(), 1)).iter().zip(strategies) {
        // Row names in the column left of the cells, target names in the row above them.
        let mut chart = ChartBuilder::on(panel)
            .caption(format!("{metric}: transfer - scratch ({strategy}); * significant (Holm)"), ("sans-serif", 16))
            .margin(10)
            .build_cartesian_2d(-1.0f64..n, 0f64..m + 0.5)?;
        let font = ("sans-serif", 14).into_font();
        for (si, s) in sources.iter().enumerate() {
            let y = m - 1.0 - si as f64;
            chart.draw_series(std::iter::once(Text::new(s.clone(), (-0.95, y + 0.55), font.clone())))?;
            for (ti, t) in targets.iter().enumerate() {
                let Some(c) = cells.iter().find(|c| &c.source == s && &c.target == t && &c.strategy == strategy) else {
                    continue;
                };
                let x = ti as f64;
                let v = c.primary.difference;
                let fill = color(v, max).filled();
                chart.draw_series(std::iter::once(Rectangle::new([(x, y), (x + 1.0, y + 1.0)], fill)))?;
                let border = Rectangle::new([(x, y), (x + 1.0, y + 1.0)], WHITE.stroke_width(2));
                chart.draw_series(std::iter::once(border))?;
                let mark = match c.comparison.verdict {
                    Verdict::Positive | Verdict::Negative | Verdict::Mixed => "*",
                    _ => "",
                };
                let label = Text::new(format!("{v:+.2}{mark}"), (x + 0.3, y + 0.6), ("sans-serif", 16).into_font());
                chart.draw_series(std::iter::once(label))?;
            }
        }
        for (ti, t) in targets.iter().enumerate() {
            chart.draw_series(std::iter::once(Text::new(t.clone(), (ti as f64 + 0.02, m + 0.4), font.clone())))?;
        }
    }
    area.present()?;
    Ok(())
}
