//! The sequential guard as the report shows it ([`super::guard`]): the design (looks, spending,
//! boundaries), every look's statistics and decisions per target, where an arm stopped, the
//! compute saved, and a figure per target (`guard-<target>.png` / `.svg`: each strategy's `Z`
//! at the looks against the boundaries).

use std::fmt::Write;
use std::path::Path;

use plotters::prelude::*;

use super::StudyError;
use super::guard::{GuardSummary, Look};
use super::records::UnitResult;
use super::sequential::Crossing;
use super::summary::Summary;

/// The report's section on the guard, with its figures drawn into `out`; empty without a guard.
pub fn section(out: &Path, summary: &Summary, units: &[UnitResult]) -> Result<String, StudyError> {
    let Some(g) = &summary.guard else { return Ok(String::new()) };
    let design = &g.looks.design;
    let mut text = String::new();
    let spending = match g.looks.guard.spending {
        super::sequential::Spending::OBrienFleming => "O'Brien-Fleming-like",
        super::sequential::Spending::Pocock => "Pocock-like",
    };
    let _ = writeln!(
        text,
        "\n## Sequential guard\n\n{} looks at steps {} ({spending} Lan-DeMets spending). Each side of each comparison spends \
         5 % / 2 / {} (the study's {} comparisons, Bonferroni) over the looks; the statistic is Welch's test of the area so far \
         made normal through its p-value. {}Verdicts use the stage-wise p-value of each arm's trajectory, Holm-corrected as \
         without a guard.\n",
        g.looks.steps.len(),
        g.looks.steps.iter().map(u64::to_string).collect::<Vec<_>>().join(", "),
        g.looks.family,
        g.looks.family,
        if g.looks.guard.success {
            "An arm is stopped when it crosses the harm (lower) or the success (upper) boundary. "
        } else {
            "An arm is stopped when it crosses the harm (lower) boundary; the upper side is tested at the last look only. "
        },
    );
    let bound = |b: f64| if b.is_finite() { format!("{b:+.2}") } else { "-".into() };
    let _ = writeln!(text, "| look | step | harm boundary (Z) | success boundary (Z) |\n|---|---|---|---|");
    for (i, step) in g.looks.steps.iter().enumerate() {
        let _ = writeln!(text, "| {} | {step} | {} | {} |", i + 1, bound(design.lower[i]), bound(design.upper[i]));
    }
    let _ = writeln!(text, "\n| target | strategy | Z at each look (difference in area so far) | decision |\n|---|---|---|---|");
    for t in &summary.targets {
        let looks: Vec<&Look> = g.decisions.iter().filter(|l| l.target.as_str() == t.key).collect();
        for c in t.comparisons.iter().filter(|c| c.baseline == "scratch") {
            let z: Vec<String> = looks
                .iter()
                .filter_map(|l| l.arms.iter().find(|a| a.arm.as_str() == c.strategy).map(|a| (l.step, a)))
                .map(|(step, a)| format!("{step}: {:+.2} ({:+.3})", a.z, a.difference))
                .collect();
            let decision = match c.guard.as_ref().and_then(|g| g.stopped) {
                Some((step, Crossing::Harm)) => format!("**stopped at step {step}: harm**"),
                Some((step, Crossing::Success)) => format!("stopped at step {step}: success"),
                None if looks.len() == g.looks.steps.len() => "ran to the budget".into(),
                None => format!("running ({} of {} looks decided)", looks.len(), g.looks.steps.len()),
            };
            let _ = writeln!(text, "| {} | {} | {} | {decision} |", t.key, c.strategy, z.join("; "));
        }
    }
    if g.saved.is_empty() {
        let _ = writeln!(text, "\nNo arm was stopped: the guard saved nothing.");
    } else {
        let _ = writeln!(
            text,
            "\nCompute saved (wall time: the arm's mean seconds per unit from the journal, per step trained, times the steps not \
             trained):\n\n| target | strategy | stopped at | steps not trained | of the arm's budget | wall time not spent |\n\
             |---|---|---|---|---|---|"
        );
        let costs = super::cost::costs(out, units);
        for s in &g.saved {
            let per_unit = costs.iter().find(|c| c.target == s.target && c.arm == s.arm).and_then(|c| c.seconds);
            let seconds = per_unit.filter(|_| s.trained > 0).map_or_else(
                || "-".to_string(),
                |per_unit| format!("{:.1} s", per_unit * summary.seeds as f64 * s.steps as f64 / s.trained as f64),
            );
            let _ = writeln!(
                text,
                "| {} | {} | {} | {} | {:.0} % | {seconds} |",
                s.target,
                s.arm,
                s.step,
                s.steps,
                100.0 * s.share
            );
        }
    }
    for t in &summary.targets {
        let looks: Vec<&Look> = g.decisions.iter().filter(|l| l.target.as_str() == t.key).collect();
        if looks.is_empty() {
            continue;
        }
        let stem = format!("guard-{}", crate::util::file_safe(&t.key));
        figure(out, &stem, g, &looks, &t.key)?;
        let _ = writeln!(text, "\n![the guard's looks on {}]({stem}.png)", t.key);
    }
    Ok(text)
}

/// Draws `looks` of one target against the boundaries, as `<stem>.png` and `.svg`.
fn figure(out: &Path, stem: &str, g: &GuardSummary, looks: &[&Look], target: &str) -> Result<(), StudyError> {
    for name in [format!("{stem}.png"), format!("{stem}.svg")] {
        let path = out.join(&name);
        let drawn = match name.ends_with(".png") {
            true => draw(&BitMapBackend::new(&path, (900, 520)).into_drawing_area(), g, looks, target),
            false => draw(&SVGBackend::new(&path, (900, 520)).into_drawing_area(), g, looks, target),
        };
        drawn.map_err(|e| StudyError::Figure { path, message: e.to_string() })?;
    }
    Ok(())
}

fn draw<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    g: &GuardSummary,
    looks: &[&Look],
    target: &str,
) -> Result<(), Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    let design = &g.looks.design;
    let finite = |v: &f64| v.is_finite();
    let values: Vec<f64> = looks
        .iter()
        .flat_map(|l| l.arms.iter().map(|a| a.z))
        .chain(design.lower.iter().copied())
        .chain(design.upper.iter().copied())
        .filter(finite)
        .collect();
    let (lo, hi) = values.iter().fold((-3.0f64, 3.0f64), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let (lo, hi) = (lo.max(-12.0) - 0.5, hi.min(12.0) + 0.5);
    let budget = *g.looks.steps.last().unwrap_or(&1) as f64;
    area.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(area)
        .caption(format!("sequential guard on {target}: Z of each strategy against scratch"), ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..budget * 1.02, lo..hi)?;
    chart
        .configure_mesh()
        .x_desc("target environment steps (looks)")
        .y_desc("Z (area so far, transfer - scratch)")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .draw()?;
    let steps = &g.looks.steps;
    let boundary = |values: &[f64]| -> Vec<(f64, f64)> {
        steps.iter().zip(values).filter(|(_, b)| b.is_finite()).map(|(&s, &b)| (s as f64, b.clamp(lo, hi))).collect()
    };
    chart
        .draw_series(LineSeries::new(boundary(&design.lower), RED.stroke_width(2)))?
        .label("harm boundary")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(2)));
    chart.draw_series(boundary(&design.lower).into_iter().map(|p| Cross::new(p, 5, RED.stroke_width(2))))?;
    let upper = boundary(&design.upper);
    if !upper.is_empty() {
        chart
            .draw_series(LineSeries::new(upper.clone(), GREEN.stroke_width(2)))?
            .label("success boundary")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], GREEN.stroke_width(2)));
        chart.draw_series(upper.into_iter().map(|p| Cross::new(p, 5, GREEN.stroke_width(2))))?;
    }
    let mut arms: Vec<&str> = Vec::new();
    for l in looks {
        for a in &l.arms {
            if !arms.contains(&a.arm.as_str()) {
                arms.push(a.arm.as_str());
            }
        }
    }
    for (i, arm) in arms.iter().enumerate() {
        let color = [BLUE, MAGENTA, CYAN, BLACK][i % 4].mix(0.9);
        let points: Vec<(f64, f64, bool)> = looks
            .iter()
            .filter_map(|l| l.arms.iter().find(|a| a.arm.as_str() == *arm).map(|a| (l.step as f64, a.z, a.crossed.is_some())))
            .filter(|(_, z, _)| z.is_finite())
            .map(|(s, z, c)| (s, z.clamp(lo, hi), c))
            .collect();
        chart
            .draw_series(LineSeries::new(points.iter().map(|&(s, z, _)| (s, z)), color.stroke_width(2)))?
            .label(arm.to_string())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        chart.draw_series(
            points.iter().map(|&(s, z, stop)| Circle::new((s, z), if stop { 7 } else { 4 }, color.filled())),
        )?;
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    area.present()?;
    Ok(())
}
