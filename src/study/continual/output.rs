//! A sequence study's outputs, from its records alone: `summary.ron`, `metrics.csv` (each
//! unit's metrics), `performance.csv` (every task's evaluation at every point), `report.md` (and
//! `report.html`, the same as one self-contained page), and
//! three figures (PNG and SVG): the mean performance matrix of each method as a heat map, every
//! task's curve over the whole sequence with the task changes marked, and forgetting against
//! forward transfer per method (Continual World's figure).

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;

use crate::study::StudyError;
use crate::util::{to_ron, write_atomic};

use super::metrics::{self, Call, ContinualSummary, Estimate, Shape};
use super::sequence::{SINGLE, Sequence, TaskInfo};
use super::unit::SequenceRecord;

/// Writes every output into `out`.
pub fn write(
    out: &Path,
    sequence: &Sequence,
    tasks: &[TaskInfo],
    records: &[SequenceRecord],
    summary: &ContinualSummary,
) -> Result<(), StudyError> {
    let shape = Shape { tasks: tasks.len(), phases: sequence.phases(), budget: sequence.budget };
    write_atomic(&out.join("summary.ron"), to_ron(summary))?;
    let mut csv = String::from("method,seed,average,forgetting,backward_transfer,own\n");
    let mut perf = String::from("method,seed,phase,trained,step,sequence_step,task,return,normalised\n");
    for r in records {
        if let Some(s) = metrics::score(r, tasks, shape) {
            let _ = writeln!(csv, "{},{},{},{},{},{}", r.method, r.seed, s.average, s.forgetting, s.backward, s.own);
        }
        for e in &r.evals {
            for (j, ret) in e.returns.iter().enumerate() {
                let global = e.phase as u64 * sequence.budget + e.nominal;
                let _ = writeln!(
                    perf,
                    "{},{},{},{},{},{global},{},{ret},{}",
                    r.method,
                    r.seed,
                    e.phase,
                    tasks[e.phase % tasks.len()].task.key,
                    e.nominal,
                    tasks[j].task.key,
                    tasks[j].normalise(*ret)
                );
            }
        }
    }
    write_atomic(&out.join("metrics.csv"), csv)?;
    write_atomic(&out.join("performance.csv"), perf)?;
    figures(out, sequence, tasks, records, summary)?;
    let markdown = report(sequence, tasks, summary);
    write_atomic(&out.join("report.md"), &markdown)?;
    let settings = sequence.to_ron();
    let partial = summary.partial.is_some();
    let (title, sections) = (&sequence.name, "");
    let page = crate::study::html::Page { title, markdown: &markdown, sections, settings: &settings, partial };
    page.write(out)
}

fn estimate(e: &Estimate) -> String {
    match e.ci {
        Some((lo, hi)) => format!("{:+.2} [{lo:+.2}, {hi:+.2}]", e.mean),
        None => format!("{:+.2}", e.mean),
    }
}

/// The verdict table as text (what `run` prints and `report.md` holds).
pub fn verdict_table(summary: &ContinualSummary) -> String {
    let mut t = String::from(
        "| method | against | difference in average performance [95% CI, uncorrected] | p (Holm) | verdict |\n|---|---|---|---|---|\n",
    );
    for c in &summary.comparisons {
        let ci = c.ci.map(|(lo, hi)| format!(" [{lo:+.2}, {hi:+.2}]")).unwrap_or_default();
        let call = match c.call {
            Call::Better => "BETTER",
            Call::Worse => "WORSE",
            Call::Inconclusive => "inconclusive",
            Call::TooFewSeeds => "too few seeds",
        };
        let _ = writeln!(t, "| {} | {} | {:+.2}{ci} | {:.3} | {call} |", c.method, c.against, c.difference, c.p_holm);
    }
    t
}

/// The metrics table as text.
pub fn metrics_table(summary: &ContinualSummary) -> String {
    let mut t = String::from(
        "| method | seeds | average performance | forgetting | backward transfer | forward transfer |\n|---|---|---|---|---|---|\n",
    );
    for m in &summary.methods {
        let failed = if m.failed > 0 { format!(" ({} failed)", m.failed) } else { String::new() };
        let (average, forward) = if m.name == SINGLE {
            (format!("{} (each task alone)", estimate(&m.own)), "reference".to_string())
        } else {
            (estimate(&m.average), m.forward.as_ref().map_or("n/a".into(), estimate))
        };
        let (forgetting, backward) =
            if m.name == SINGLE { ("-".into(), "-".into()) } else { (estimate(&m.forgetting), estimate(&m.backward)) };
        let _ =
            writeln!(t, "| {} | {}{failed} | {average} | {forgetting} | {backward} | {forward} |", m.name, m.scored);
    }
    t
}

/// What a method does at a task change, in words: what differs from plain fine-tuning.
fn describe(m: &super::sequence::Method) -> String {
    use crate::transfer::continual::Protect;
    let st = &m.strategy;
    if !st.copy {
        return "every task from scratch (the single-task reference)".into();
    }
    let mut parts = vec!["fine-tunes the previous task's agent".to_string()];
    if !st.reset.optimizer {
        parts.push("keeps its optimiser's state".into());
    }
    if !st.reset.replay {
        parts.push("keeps its replay buffer (earlier tasks' transitions replayed)".into());
    }
    if !st.reinit.is_empty() {
        parts.push(format!("re-initialises {}", st.reinit.join(", ")));
    }
    if !st.freeze.is_empty() {
        parts.push(format!("freezes {}", st.freeze.join(", ")));
    }
    if st.lr_scale != 1.0 {
        parts.push(format!("learning rate x{}", st.lr_scale));
    }
    if st.l2_init > 0.0 {
        parts.push(format!("L2 towards the previous weights ({})", st.l2_init));
    }
    if let Some(d) = st.distill {
        parts.push(format!("distils the previous policy (weight {}, to 0 at step {})", d.weight, d.decay_steps));
    }
    if !st.add.is_empty() {
        parts.push(format!("adds {} layer(s)", st.add.len()));
    }
    match &m.protect {
        Some(Protect::Ewc { lambda, samples }) => {
            parts.push(format!("EWC (lambda {lambda}, Fisher on {samples} states per task)"))
        }
        Some(Protect::Mas { lambda, samples }) => {
            parts.push(format!("MAS (lambda {lambda}, on {samples} states per task)"))
        }
        Some(Protect::PackNet { keep, retrain }) => parts.push(format!(
            "PackNet (each task keeps {} of the free weights, retrained {})",
            keep.map_or("an equal share".to_string(), |k| format!("{k}")),
            retrain.map_or("a tenth of the budget".to_string(), |r| format!("{r} steps"))
        )),
        None => {}
    }
    parts.join("; ")
}

fn report(sequence: &Sequence, tasks: &[TaskInfo], summary: &ContinualSummary) -> String {
    let mut r = format!("# {}\n\n", sequence.name);
    if let Some((done, total)) = summary.partial {
        let _ = writeln!(r, "**PARTIAL: {done} of {total} units are recorded; these numbers will change.**\n");
    }
    if !sequence.description.is_empty() {
        let _ = writeln!(r, "{}\n", sequence.description);
    }
    let _ = writeln!(
        r,
        "{} {} agent trained along {} tasks{}, {} steps each, {} seeds per method; every task evaluated every {} steps \
         ({} episodes). Scores are normalised per task: 0 is the random policy's return, 1 the threshold.\n",
        sequence.agent.algorithm,
        sequence.agent.preset.as_deref().map(|p| format!("({p} preset)")).unwrap_or_default(),
        tasks.len(),
        if sequence.repeats > 1 { format!(" x {} passes", sequence.repeats) } else { String::new() },
        sequence.budget,
        sequence.seeds,
        sequence.eval.every,
        sequence.eval.episodes
    );
    r.push_str("| # | task | threshold | random return |\n|---|---|---|---|\n");
    for (i, t) in tasks.iter().enumerate() {
        let _ = writeln!(r, "| {i} | {} | {} | {:.1} |", t.task.key, t.threshold, t.random_return);
    }
    r.push_str("\n## Methods\n\n");
    for m in sequence.methods() {
        let _ = writeln!(r, "- **{}**: {}", m.name, describe(&m));
    }
    r.push_str("\n## Verdicts\n\nAverage performance at the end of the sequence, each method against fine-tuning and against \
                single-task training (each task learned alone, its score when learned); Welch's test, Holm over the table.\n\n");
    r.push_str(&verdict_table(summary));
    r.push_str("\n## Metrics\n\nMeans over seeds with 95 % t-intervals (uncorrected). Forgetting: best earlier score minus \
                final score (Chaudhry et al. 2018); backward transfer: final score minus the score when last learned \
                (Lopez-Paz & Ranzato 2017); forward transfer: Continual World's normalised area against the single-task \
                reference.\n\n");
    r.push_str(&metrics_table(summary));
    r.push_str("\n### Per task\n\n| method | task | forgetting | forward transfer |\n|---|---|---|---|\n");
    for m in summary.methods.iter().filter(|m| m.name != SINGLE) {
        for (j, key) in summary.tasks.iter().enumerate() {
            let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:+.2}"));
            let _ =
                writeln!(r, "| {} | {key} | {} | {} |", m.name, f(m.forgetting_per_task[j]), f(m.forward_per_task[j]));
        }
    }
    r.push_str("\n## Performance matrices\n\nRow `p`: every task's mean normalised score at the end of phase `p`.\n\n");
    for m in &summary.methods {
        let _ = writeln!(r, "**{}**\n", m.name);
        let _ = writeln!(r, "| after | {} |", summary.tasks.join(" | "));
        let _ = writeln!(r, "|---|{}", "---|".repeat(summary.tasks.len()));
        for (p, row) in m.matrix.iter().enumerate() {
            let cells: Vec<String> = row.iter().map(|v| format!("{v:.2}")).collect();
            let _ = writeln!(r, "| {p}: {} | {} |", summary.tasks[p % summary.tasks.len()], cells.join(" | "));
        }
        r.push('\n');
    }
    r.push_str(
        "![performance matrices](sequence-matrix.png)\n\n![every task over the sequence](sequence-curves.png)\n\n\
                ![forgetting against forward transfer](sequence-tradeoff.png)\n",
    );
    r
}

fn figures(
    out: &Path,
    sequence: &Sequence,
    tasks: &[TaskInfo],
    records: &[SequenceRecord],
    summary: &ContinualSummary,
) -> Result<(), StudyError> {
    let n = summary.methods.len() as u32;
    let err =
        |name: &str, e: Box<dyn std::error::Error>| StudyError::Figure { path: out.join(name), message: e.to_string() };
    for ext in ["png", "svg"] {
        let name = format!("sequence-matrix.{ext}");
        let size = (260 * n.min(4), 60 + (40 + 30 * summary.phases as u32) * n.div_ceil(4));
        let path = out.join(&name);
        let drawn = if ext == "png" {
            heat(&BitMapBackend::new(&path, size).into_drawing_area(), summary)
        } else {
            heat(&SVGBackend::new(&path, size).into_drawing_area(), summary)
        };
        drawn.map_err(|e| err(&name, e))?;
        let name = format!("sequence-curves.{ext}");
        let path = out.join(&name);
        let size = (1000, 220 * n);
        let drawn = if ext == "png" {
            curves(&BitMapBackend::new(&path, size).into_drawing_area(), sequence, tasks, records, summary)
        } else {
            curves(&SVGBackend::new(&path, size).into_drawing_area(), sequence, tasks, records, summary)
        };
        drawn.map_err(|e| err(&name, e))?;
        let name = format!("sequence-tradeoff.{ext}");
        let path = out.join(&name);
        let drawn = if ext == "png" {
            tradeoff(&BitMapBackend::new(&path, (700, 520)).into_drawing_area(), summary)
        } else {
            tradeoff(&SVGBackend::new(&path, (700, 520)).into_drawing_area(), summary)
        };
        drawn.map_err(|e| err(&name, e))?;
    }
    Ok(())
}

type Drawn = Result<(), Box<dyn std::error::Error>>;

fn shade(v: f64) -> RGBColor {
    let x = v.clamp(0.0, 1.0);
    let fade = |c: u8| (255.0 + (c as f64 - 255.0) * x) as u8;
    RGBColor(fade(33), fade(102), fade(172))
}

fn heat<DB: DrawingBackend>(area: &DrawingArea<DB, plotters::coord::Shift>, summary: &ContinualSummary) -> Drawn
where
    DB::ErrorType: 'static,
{
    area.fill(&WHITE)?;
    let cols = summary.methods.len().min(4);
    let rows = summary.methods.len().div_ceil(4);
    let (t, p) = (summary.tasks.len() as f64, summary.phases as f64);
    for (panel, m) in area.split_evenly((rows, cols)).iter().zip(&summary.methods) {
        let mut chart = ChartBuilder::on(panel)
            .caption(format!("{}: R[phase, task]", m.name), ("sans-serif", 15))
            .margin(8)
            .x_label_area_size(20)
            .y_label_area_size(30)
            .build_cartesian_2d(0f64..t, 0f64..p)?;
        chart.configure_mesh().disable_mesh().x_desc("task").y_desc("after phase").x_labels(0).y_labels(0).draw()?;
        let font = ("sans-serif", 12).into_font();
        for j in 0..summary.tasks.len() {
            chart.draw_series(std::iter::once(Text::new(format!("{j}"), (j as f64 + 0.45, 0.02), font.clone())))?;
        }
        for (pi, row) in m.matrix.iter().enumerate() {
            let y = p - 1.0 - pi as f64;
            for (j, v) in row.iter().enumerate() {
                let x = j as f64;
                chart.draw_series(std::iter::once(Rectangle::new([(x, y), (x + 1.0, y + 1.0)], shade(*v).filled())))?;
                let ink = if *v > 0.6 { WHITE } else { BLACK };
                let label =
                    Text::new(format!("{v:.2}"), (x + 0.2, y + 0.65), ("sans-serif", 13).into_font().color(&ink));
                chart.draw_series(std::iter::once(label))?;
            }
        }
    }
    area.present()?;
    Ok(())
}

fn curves<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    sequence: &Sequence,
    tasks: &[TaskInfo],
    records: &[SequenceRecord],
    summary: &ContinualSummary,
) -> Drawn
where
    DB::ErrorType: 'static,
{
    area.fill(&WHITE)?;
    let total = (sequence.phases() as u64 * sequence.budget) as f64;
    for (panel, m) in area.split_evenly((summary.methods.len(), 1)).iter().zip(&summary.methods) {
        let mut chart = ChartBuilder::on(panel)
            .caption(format!("{}: every task's normalised score over the sequence", m.name), ("sans-serif", 14))
            .margin(6)
            .x_label_area_size(22)
            .y_label_area_size(36)
            .build_cartesian_2d(0f64..total, -0.2f64..1.3)?;
        chart.configure_mesh().light_line_style(WHITE).x_labels(8).y_labels(4).draw()?;
        for p in 1..sequence.phases() {
            let x = (p as u64 * sequence.budget) as f64;
            chart.draw_series(LineSeries::new([(x, -0.2), (x, 1.3)], BLACK.mix(0.4)))?;
        }
        let mine: Vec<&SequenceRecord> = records.iter().filter(|r| r.method == m.name).collect();
        let Some(first) = mine.first() else { continue };
        for (j, t) in tasks.iter().enumerate() {
            let color = Palette99::pick(j).to_rgba();
            let points: Vec<(f64, f64)> = first
                .evals
                .iter()
                .enumerate()
                .filter_map(|(i, e)| {
                    let v: Vec<f64> =
                        mine.iter().filter_map(|r| r.evals.get(i)).map(|e| t.normalise(e.returns[j])).collect();
                    (v.len() == mine.len())
                        .then(|| ((e.phase as u64 * sequence.budget + e.nominal) as f64, crate::study::stats::mean(&v)))
                })
                .collect();
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))?
                .label(t.task.key.to_string())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()?;
    }
    area.present()?;
    Ok(())
}

fn tradeoff<DB: DrawingBackend>(area: &DrawingArea<DB, plotters::coord::Shift>, summary: &ContinualSummary) -> Drawn
where
    DB::ErrorType: 'static,
{
    area.fill(&WHITE)?;
    let points: Vec<(&str, &Estimate, &Estimate)> = summary
        .methods
        .iter()
        .filter_map(|m| m.forward.as_ref().map(|f| (m.name.as_str(), &m.forgetting, f)))
        .collect();
    let bound = |e: &Estimate| e.ci.map_or((e.mean, e.mean), |c| c);
    let xs = points.iter().flat_map(|p| [bound(p.1).0, bound(p.1).1]).filter(|v| v.is_finite());
    let ys = points.iter().flat_map(|p| [bound(p.2).0, bound(p.2).1]).filter(|v| v.is_finite());
    let range = |v: Vec<f64>| {
        let lo = v.iter().copied().fold(0.0f64, f64::min) - 0.05;
        let hi = v.iter().copied().fold(0.0f64, f64::max) + 0.05;
        lo..hi
    };
    let mut chart = ChartBuilder::on(area)
        .caption("forgetting (lower is better) against forward transfer (higher is better)", ("sans-serif", 15))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(48)
        .build_cartesian_2d(range(xs.collect()), range(ys.collect()))?;
    chart.configure_mesh().x_desc("forgetting").y_desc("forward transfer").draw()?;
    for (i, (name, f, ft)) in points.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let (x0, x1) = bound(f);
        let (y0, y1) = bound(ft);
        chart.draw_series(LineSeries::new([(x0, ft.mean), (x1, ft.mean)], color.stroke_width(1)))?;
        chart.draw_series(LineSeries::new([(f.mean, y0), (f.mean, y1)], color.stroke_width(1)))?;
        chart.draw_series(std::iter::once(Circle::new((f.mean, ft.mean), 5, color.filled())))?;
        chart.draw_series(std::iter::once(Text::new(
            name.to_string(),
            (f.mean, ft.mean),
            ("sans-serif", 14).into_font(),
        )))?;
    }
    area.present()?;
    Ok(())
}
