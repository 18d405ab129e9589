//! The verdict table and `report.md`, written from a [`Summary`] and its [`Figures`]; and
//! [`write_outputs`], the last stage of a run (and all of `report`): everything a results folder
//! derives from its unit records.

use std::fmt::Write;
use std::path::Path;

use crate::util::{to_ron, write_atomic};

use super::StudyError;
use super::experiment::Experiment;
use super::figures::{self, Figures};
use super::records::{UnitResult, evaluations_csv};
use super::summary::{Comparison, Metric, MetricStat, Summary, Verdict};

/// Writes the evaluations (CSV), the summary (RON and JSON), the figures and the report.
pub fn write_outputs(out: &Path, experiment: &Experiment, summary: &Summary, units: &[UnitResult]) -> Result<(), StudyError> {
    write_atomic(&out.join("evaluations.csv"), evaluations_csv(units))?;
    write_atomic(&out.join("summary.ron"), to_ron(summary))?;
    write_atomic(&out.join("summary.json"), serde_json::to_string_pretty(summary)?)?;
    let figures = figures::draw(out, summary)?;
    write_atomic(&out.join("report.md"), report_markdown(experiment, summary, &figures))?;
    Ok(())
}

fn ci(m: &MetricStat, scale: f64) -> String {
    format!("{:+.2} [{:+.2}, {:+.2}]", m.difference * scale, m.ci95.0 * scale, m.ci95.1 * scale)
}

/// A metric's difference and interval, or `-` where the comparison lacks it.
fn ci_of(c: &Comparison, metric: Metric) -> String {
    c.metric(metric).map_or_else(|| "-".into(), |m| ci(m, 1.0))
}


/// The verdict table: one row per target and strategy.
pub fn verdict_table(summary: &Summary) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| target | strategy | jumpstart | asymptotic | area | P(improve) | reached threshold | speed-up | verdict |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
    for t in &summary.targets {
        for c in &t.comparisons {
            let area = c.metric(Metric::Area);
            let (scratch_n, transfer_n) = area.map_or((0, 0), |a| (a.scratch.values.len(), a.transfer.values.len()));
            let verdict = if c.verdict == Verdict::Negative { "**NEGATIVE TRANSFER**".to_string() } else { c.verdict.word().to_string() };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {:.2} | {}/{} vs {}/{} | {} | {verdict} |",
                t.key,
                c.strategy,
                ci_of(c, Metric::Jumpstart),
                ci_of(c, Metric::Asymptotic),
                ci_of(c, Metric::Area),
                area.map_or(f64::NAN, |a| a.prob_improvement),
                c.reached.0,
                transfer_n,
                c.reached.1,
                scratch_n,
                c.speedup.text(),
            );
        }
    }
    out
}

/// `report.md`: the setup, per target the metrics with intervals and verdicts, and the figures.
pub fn report_markdown(experiment: &Experiment, summary: &Summary, figures: &Figures) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# {}\n", experiment.name);
    if !experiment.description.is_empty() {
        let _ = writeln!(out, "{}\n", experiment.description);
    }
    let _ = writeln!(out, "## Setup\n");
    let _ = writeln!(out, "- Source: `{}` ({} training steps).", summary.source, summary.source_steps);
    let strategies: Vec<String> = experiment.strategies.iter().map(|s| format!("`{}`", s.label())).collect();
    let _ = writeln!(out, "- Strategies against scratch: {}.", strategies.join(", "));
    let _ = writeln!(
        out,
        "- {} seeds per arm (paired: scratch and transfer share environment seeds), {} target steps each, evaluated every {} steps \
         and before the first update on {} {} episodes.",
        experiment.seeds,
        experiment.budget,
        experiment.eval.every,
        experiment.eval.episodes,
        if experiment.eval.deterministic { "deterministic" } else { "stochastic" }
    );
    let _ = writeln!(
        out,
        "- Metrics on returns normalised to 0 (random policy) .. 1 (threshold); differences are transfer minus scratch (scratch minus \
         transfer for times), with 95 % percentile-bootstrap intervals ({} resamples); asymptotic = mean over the last {:.0} % of the \
         budget; area = mean of the normalised curve over the budget (trapezoid); runs that never reach the threshold are censored \
         one evaluation past the budget. Verdict: the area's interval above zero is positive, below zero negative, else inconclusive.",
        experiment.resamples,
        experiment.final_fraction * 100.0
    );
    let _ = writeln!(out, "\n## Verdicts\n");
    out.push_str(&verdict_table(summary));
    for (ti, t) in summary.targets.iter().enumerate() {
        let _ = writeln!(out, "\n## {}\n", t.key);
        let _ = writeln!(
            out,
            "`{}`: threshold {}, random policy {:.1}. Runs: {}.\n",
            t.env,
            t.threshold,
            t.random_return,
            t.curves.iter().map(|c| format!("{} {} finished{}", c.arm, c.finished, if c.failed > 0 { format!(", {} failed", c.failed) } else { String::new() })).collect::<Vec<_>>().join("; ")
        );
        let _ = writeln!(out, "| strategy | metric | transfer mean (IQM) | scratch mean (IQM) | difference [95 % CI] | P(improve) | Mann-Whitney p | verdict |");
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
        for c in &t.comparisons {
            for m in &c.metrics {
                let _ = writeln!(
                    out,
                    "| {} | {} | {:.3} ({:.3}) | {:.3} ({:.3}) | {} | {:.2} | {:.3} | {} |",
                    c.strategy,
                    m.metric,
                    m.transfer.mean,
                    m.transfer.iqm,
                    m.scratch.mean,
                    m.scratch.iqm,
                    ci(m, 1.0),
                    m.prob_improvement,
                    m.p_value,
                    m.verdict.word()
                );
            }
            let _ = writeln!(
                out,
                "| {} | transfer ratio (area) | {:.3} | | | | | |\n| {} | speed-up to threshold (median; with source steps) | {} ({}) | | | | | |",
                c.strategy,
                c.transfer_ratio,
                c.strategy,
                c.speedup.text(),
                c.speedup_total.text()
            );
        }
        // The target's own figure, by position: never another target's whose key extends this one.
        if let Some(f) = figures.curves.get(ti) {
            let _ = writeln!(out, "\n![learning curves on {}]({f})", t.key);
        }
    }
    if !figures.metrics.is_empty() {
        let _ = writeln!(out, "\n## Metrics\n\n![differences with 95 % intervals]({})", figures.metrics);
    }
    if !summary.failures.is_empty() {
        let _ = writeln!(out, "\n## Failed units\n");
        for f in &summary.failures {
            let _ = writeln!(out, "- {f}");
        }
    }
    out
}
