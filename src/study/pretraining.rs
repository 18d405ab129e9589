//! A reward-free source's pretraining as the report shows it: the objective it maximised
//! instead of the task's reward, and its intrinsic reward per rollout (`intrinsic.csv` beside
//! each source checkpoint), drawn as `source-intrinsic.png` / `.svg`.

use std::fmt::Write;
use std::path::Path;

use plotters::prelude::*;

use crate::agent::checkpoint;
use crate::agent::train::{Curve, INTRINSIC_FILE};

use super::StudyError;

/// The pretraining of a study's reward-free sources.
pub struct Pretraining {
    /// The objective, as the command line names it (`rnd`).
    pub objective: String,
    /// The environment steps each source was pretrained for.
    pub steps: u64,
    /// Each source's intrinsic reward per rollout: (source, [(step, mean reward)]).
    pub curves: Vec<(String, Vec<(u64, f64)>)>,
}

/// The pretraining of `sources` (checkpoint folders), when they were pretrained without reward;
/// `None` for reward-trained sources, or ones whose card no longer reads.
pub fn read(sources: &[String]) -> Option<Pretraining> {
    let cards: Vec<checkpoint::Card> = sources.iter().filter_map(|s| checkpoint::read_card(Path::new(s)).ok()).collect();
    let first = cards.first().filter(|c| c.reward_free)?;
    let curves = sources
        .iter()
        .filter_map(|s| {
            let text = std::fs::read_to_string(Path::new(s).join(INTRINSIC_FILE)).ok()?;
            Some((s.clone(), Curve::intrinsic_from_csv(&text).ok()?))
        })
        .collect();
    Some(Pretraining { objective: first.config.objective().name().to_string(), steps: first.steps, curves })
}

/// The report's lines on the pretraining, naming the figure when there is one.
pub fn section(p: &Pretraining, figure: Option<&str>) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "- The source was pretrained **without reward** (objective `{}`, {} environment steps per source): it never read the \
         task's reward; its critic learned the value of the intrinsic reward. The pretraining steps count in `with source steps` \
         (the speed-up with the source's steps added to the transfer's).",
        p.objective, p.steps
    );
    let falls: Vec<String> = p
        .curves
        .iter()
        .filter_map(|(_, c)| Some(format!("{:.3e} -> {:.3e}", c.first()?.1, c.last()?.1)))
        .collect();
    if !falls.is_empty() {
        let _ = write!(out, " Its mean intrinsic reward per rollout, first to last: {}.", falls.join(", "));
    }
    if let Some(figure) = figure {
        let _ = write!(out, "\n\n  ![intrinsic reward during pretraining]({figure})");
    }
    out.push('\n');
    out
}

/// Draws the intrinsic reward of every source over its pretraining into `out` (on a log scale
/// when every value is positive, as RND's prediction errors are); the PNG's file name, or `None`
/// when no source has a curve.
pub fn figure(out: &Path, p: &Pretraining) -> Result<Option<String>, StudyError> {
    let points: Vec<f64> = p.curves.iter().flat_map(|(_, c)| c.iter().map(|&(_, r)| r)).filter(|r| r.is_finite()).collect();
    if points.is_empty() {
        return Ok(None);
    }
    let log = points.iter().all(|&r| r > 0.0);
    let y = |r: f64| if log { r.log10() } else { r };
    let (lo, hi) = points.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &r| (lo.min(y(r)), hi.max(y(r))));
    let pad = 0.05 * (hi - lo).max(1e-9);
    let (lo, hi) = (lo - pad, hi + pad);
    let steps = p.curves.iter().flat_map(|(_, c)| c.iter().map(|&(s, _)| s)).max().unwrap_or(1).max(1);
    let stem = "source-intrinsic";
    for name in [format!("{stem}.png"), format!("{stem}.svg")] {
        let path = out.join(&name);
        let drawn = match name.ends_with(".png") {
            true => draw(&BitMapBackend::new(&path, (900, 520)).into_drawing_area(), p, (lo, hi, log), steps),
            false => draw(&SVGBackend::new(&path, (900, 520)).into_drawing_area(), p, (lo, hi, log), steps),
        };
        drawn.map_err(|e| StudyError::Figure { path, message: e.to_string() })?;
    }
    Ok(Some(format!("{stem}.png")))
}

fn draw<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    p: &Pretraining,
    (lo, hi, log): (f64, f64, bool),
    steps: u64,
) -> Result<(), Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    area.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(area)
        .caption(format!("reward-free pretraining ({}): intrinsic reward per rollout", p.objective.to_uppercase()), ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..steps as f64, lo..hi)?;
    chart
        .configure_mesh()
        .x_desc("pretraining environment steps")
        .y_desc(if log { "mean intrinsic reward (unscaled, log scale)" } else { "mean intrinsic reward" })
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| if log { format!("{:.1e}", 10f64.powf(*y)) } else { format!("{y:.2}") })
        .draw()?;
    for (i, (_, curve)) in p.curves.iter().enumerate() {
        let color = Palette99::pick(i).mix(0.8);
        let line = curve.iter().filter(|(_, r)| r.is_finite()).map(|&(s, r)| (s as f64, if log { r.log10() } else { r }));
        chart.draw_series(LineSeries::new(line, color.stroke_width(1)))?;
    }
    area.present()?;
    Ok(())
}
