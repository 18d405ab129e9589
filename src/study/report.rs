//! The verdict table and `report.md`, written from a [`Summary`] and its [`Figures`]; and
//! [`write_outputs`], the last stage of a run (and all of `report`): everything a results folder
//! derives from its unit records (`report.html` among them: [`super::html`]).

use std::fmt::Write;
use std::path::Path;

use crate::util::{to_ron, write_atomic};

use super::StudyError;
use super::decision::Correction;
use super::experiment::Experiment;
use super::figures::{self, Figures};
use super::pretraining;
use super::records::{UnitResult, evaluations_csv};
use super::summary::{Comparison, Metric, MetricStat, Speedup, Summary, Verdict};

/// Writes the evaluations (CSV), the summary (RON and JSON), the figures and the report.
pub fn write_outputs(
    out: &Path,
    experiment: &Experiment,
    summary: &Summary,
    units: &[UnitResult],
) -> Result<(), StudyError> {
    write_atomic(&out.join("evaluations.csv"), evaluations_csv(units))?;
    write_atomic(&out.join("summary.ron"), to_ron(summary))?;
    write_atomic(&out.join("summary.json"), serde_json::to_string_pretty(summary).map_err(StudyError::Json)?)?;
    let figures = figures::draw(out, summary)?;
    let mut report = report_markdown(experiment, summary, &figures);
    // A reward-free source's pretraining, below the setup's source line.
    let sources = if summary.sources.is_empty() { vec![summary.source.clone()] } else { summary.sources.clone() };
    let runs = super::interference::read(&sources);
    if !runs.is_empty()
        && let Some(at) = report.find("\n## Verdicts")
    {
        report.insert_str(at, &super::interference::section(&runs));
    }
    if let Some(p) = pretraining::read(&sources) {
        let figure = pretraining::figure(out, &p)?;
        // Under the setup's source line.
        if let Some(at) = report.find("\n- Source: ").map(|i| i + 1).and_then(|i| report[i..].find('\n').map(|j| i + j + 1)) {
            report.insert_str(at, &pretraining::section(&p, figure.as_deref()));
        }
    }
    let cells = super::matrix::cells(experiment, summary);
    if !cells.is_empty() {
        write_atomic(&out.join("matrix.csv"), super::matrix::csv(&cells))?;
        let section = super::matrix::section(out, summary, &cells)?;
        let at = report.find("\n## Verdicts").map(|i| i + 1);
        let at = at.and_then(|i| report[i..].find("\n## ").map(|j| i + j)).unwrap_or(report.len());
        report.insert_str(at, &section);
    }
    let guard = super::guarding::section(out, summary, units)?;
    if !guard.is_empty() {
        let at = report.find("\n## Across targets").or_else(|| summary.targets.first().and_then(|t| report.find(&format!("\n## {}\n", t.key))));
        report.insert_str(at.unwrap_or(report.len()), &guard);
    }
    report.push_str(&super::cost::cost_section(&super::cost::costs(out, units)));
    write_atomic(&out.join("report.md"), &report)?;
    super::html::write(out, experiment, summary, units, &report)?;
    Ok(())
}

fn ci(m: &MetricStat) -> String {
    if m.ci95.0.is_nan() {
        return if m.difference.is_nan() { "-".into() } else { format!("{:+.2} [-]", m.difference) };
    }
    format!("{:+.2} [{:+.2}, {:+.2}]", m.difference, m.ci95.0, m.ci95.1)
}

/// A metric's difference and interval, or `-` where the comparison lacks it.
fn ci_of(c: &Comparison, metric: Metric) -> String {
    if c.stopped_at().is_some() && matches!(metric, Metric::Asymptotic | Metric::Time) {
        return "not tested (stopped)".into();
    }
    c.metric(metric).map_or_else(|| "-".into(), ci)
}

/// The headline as the verdict table shows it.
fn headline(c: &Comparison) -> String {
    // Against another strategy the words say better or worse than it, not transfer's sign.
    let against = c.baseline != "scratch";
    let mut word = match c.verdict {
        Verdict::Negative if against => format!("**worse than {}**", c.baseline),
        Verdict::Positive if against => format!("better than {}", c.baseline),
        Verdict::Negative => "**NEGATIVE TRANSFER**".to_string(),
        Verdict::Mixed => "**mixed**".to_string(),
        v => v.word().to_string(),
    };
    if let Some(step) = c.stopped_at() {
        let _ = write!(word, " (stopped at step {step})");
    }
    if c.unreliable {
        word.push_str(" (unreliable: failure rates differ, Fisher p < 0.05)");
    }
    word
}

/// The speed-up as the verdict table shows it: with its interval, and not at all without one.
fn speedup(c: &Comparison) -> String {
    match (c.speedup, c.speedup_ci95) {
        (Speedup::ZeroShot | Speedup::NotEstimable, _) => c.speedup.text(),
        (_, None) => "-".into(),
        (s, Some((lo, hi))) => {
            let hi = if hi.is_finite() { format!("{hi:.2}") } else { "inf".into() };
            format!("{} [{lo:.2}, {hi}]", s.text())
        }
    }
}

/// The verdict column's header: the primary metric and the correction, or why there is none.
fn verdict_header(summary: &Summary) -> String {
    match summary.family {
        0 => format!(
            "verdict ({}; no comparison has {} scored seeds per arm)",
            summary.primary,
            super::decision::MIN_SEEDS
        ),
        n => format!("verdict ({}, Holm-corrected over {n})", summary.primary),
    }
}

/// The verdict table: one row per target and strategy. The differences' intervals are the
/// uncorrected 95 % t-intervals, the verdicts Holm-corrected, and the header says so.
pub fn verdict_table(summary: &Summary) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| target | strategy | jumpstart [95 % CI, uncorrected] | asymptotic [95 % CI, uncorrected] | area [95 % CI, uncorrected] | P(improve) | reached threshold | speed-up [95 % order statistics] | {} |",
        verdict_header(summary)
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
    for t in &summary.targets {
        for c in &t.comparisons {
            let primary = c.metrics.iter().find(|m| m.metric == c.primary);
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {:.2} | {}/{} vs {}/{} | {} | {} |",
                t.key,
                c.label(),
                ci_of(c, Metric::Jumpstart),
                ci_of(c, Metric::Asymptotic),
                ci_of(c, Metric::Area),
                primary.map_or(f64::NAN, |a| a.prob_improvement),
                c.reached.0,
                c.runs.0,
                c.reached.1,
                c.runs.1,
                speedup(c),
                headline(c),
            );
        }
    }
    out
}

/// The aggregate across targets, as a table (empty with one target).
pub fn aggregate_table(summary: &Summary) -> String {
    let mut out = String::new();
    for line in &summary.unaggregated {
        let _ = writeln!(out, "{line}\n");
    }
    if summary.aggregate.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "| strategy | score | transfer IQM | scratch IQM | difference [95 % stratified bootstrap] | P(improve) |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    for a in &summary.aggregate {
        let _ = writeln!(
            out,
            "| {} | {} | {:.3} | {:.3} | {:+.3} [{:+.3}, {:+.3}] | {:.2} |",
            a.strategy,
            a.metric,
            a.transfer_iqm,
            a.scratch_iqm,
            a.difference.value,
            a.difference.ci95.0,
            a.difference.ci95.1,
            a.prob_improvement
        );
    }
    for a in summary.aggregate.iter().filter(|a| !a.excluded.is_empty()) {
        let _ = writeln!(
            out,
            "\n{}: left out of the aggregate, an arm with no finished unit (every unit failed): {}",
            a.strategy,
            a.excluded.join(", ")
        );
    }
    out
}

/// How a metric's verdict was corrected, in a table cell.
fn correction(m: &MetricStat) -> String {
    match m.correction {
        Correction::Study(n) => format!("Holm, study ({n})"),
        Correction::Comparison(n) => format!("Holm, comparison ({n})"),
    }
}

/// `report.md`: the setup, per target the metrics with intervals and verdicts, and the figures.
pub fn report_markdown(experiment: &Experiment, summary: &Summary, figures: &Figures) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# {}\n", experiment.name);
    if let Some(p) = summary.partial {
        let _ = writeln!(
            out,
            "**Partial**: {} of {} units have finished; the numbers and verdicts below will change as the others finish.\n",
            p.done, p.total
        );
    }
    if !experiment.description.is_empty() {
        let _ = writeln!(out, "{}\n", experiment.description);
    }
    let _ = writeln!(out, "## Setup\n");
    let _ = writeln!(out, "- Source: `{}` ({} training steps).", summary.source, summary.source_steps);
    if summary.sources.is_empty() {
        let _ = writeln!(
            out,
            "- One source checkpoint: every conclusion holds for that checkpoint; another pretraining run of the source may \
             transfer differently (give `source` several `seeds`, or several `Policies`, to measure that)."
        );
    } else {
        let _ = writeln!(
            out,
            "- {} source checkpoints ({}): target seed k transfers from source k mod {}. Verdicts test the per-source differences \
             (the source is the unit of replication, so conclusions reach other pretraining runs), and each metric shows the spread \
             between sources and within a source.",
            summary.sources.len(),
            summary.sources.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", "),
            summary.sources.len()
        );
    }
    let strategies: Vec<String> = experiment.strategies.iter().map(|s| format!("`{}`", s.label())).collect();
    let _ = writeln!(out, "- Strategies against scratch: {}.", strategies.join(", "));
    if !experiment.against.is_empty() {
        let against: Vec<String> = experiment.against.iter().map(|a| format!("`{a}`")).collect();
        let _ = writeln!(
            out,
            "- Also against {}: every other strategy compared with each as with scratch (rows `x vs {}`), in the same Holm family; in those \
             rows \"transfer\" is the strategy and \"scratch\" the one it is compared with.",
            against.join(", "),
            experiment.against.join("`, `x vs ")
        );
    }
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
         transfer for times, in steps actually trained). Asymptotic = mean over the last {:.0} % of the budget; area = mean of the \
         normalised curve over the budget (trapezoid); runs that never reach the threshold are censored one evaluation past the budget. \
         Units that failed count (intention to treat): their last finite evaluation stands for the rest of the budget.",
        experiment.final_fraction * 100.0
    );
    let family = match summary.family {
        0 => "headlines (none has enough seeds here)".to_string(),
        1 => "one headline".to_string(),
        n => format!("{n} headlines"),
    };
    let _ = writeln!(
        out,
        "- Decisions: Welch's t test (intervals are uncorrected 95 % t-intervals; the percentile-bootstrap intervals, {} resamples over \
         sources then seeds, and Mann-Whitney p-values are descriptions, too narrow at few seeds). The headline rests on the {} with \
         Holm's correction over the study's {family} (family-wise error 5 %): positive or NEGATIVE when it is significant; mixed when \
         any metric is significantly better and another significantly worse (the others Holm-corrected over the comparison); too few \
         seeds below {} scored seeds per arm (failed units are scored); else inconclusive. Failure rates are compared by Fisher's exact \
         test: a comparison is marked unreliable when they differ at 5 %. Power notes plan for the smallest difference of interest, \
         {:.3} on the {} (`effect`), never for the observed difference.",
        experiment.resamples,
        summary.primary,
        super::decision::MIN_SEEDS,
        experiment.effect(),
        summary.primary
    );
    let _ = writeln!(out, "\n## Verdicts\n");
    out.push_str(&verdict_table(summary));
    let notes: Vec<String> = summary
        .targets
        .iter()
        .flat_map(|t| {
            t.comparisons
                .iter()
                .flat_map(move |c| c.notes.iter().map(move |n| format!("- {} on {}: {n}", c.label(), t.key)))
        })
        .collect();
    if !notes.is_empty() {
        let _ = writeln!(out, "\n{}", notes.join("\n"));
    }
    if !summary.aggregate.is_empty() || !summary.unaggregated.is_empty() {
        let _ = writeln!(out, "\n## Across targets\n");
        out.push_str(&aggregate_table(summary));
        if !figures.profile.is_empty() {
            let _ = writeln!(out, "\n![performance profile]({})", figures.profile);
        }
    }
    for (ti, t) in summary.targets.iter().enumerate() {
        let _ = writeln!(out, "\n## {}\n", t.key);
        let _ = writeln!(
            out,
            "`{}`: threshold {}, random policy {:.1}. Runs: {}.\n",
            t.env,
            t.threshold,
            t.random_return,
            t.curves
                .iter()
                .map(|c| format!(
                    "{} {} finished{}",
                    c.arm,
                    c.finished,
                    if c.failed > 0 { format!(", {} failed", c.failed) } else { String::new() }
                ))
                .collect::<Vec<_>>()
                .join("; ")
        );
        let _ = writeln!(
            out,
            "| strategy | metric | transfer mean (IQM) | scratch mean (IQM) | difference [95 % Welch, uncorrected] | bootstrap 95 % (descriptive: too narrow at few seeds or sources) | P(improve) | Welch p | corrected p | correction | Mann-Whitney p | verdict |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|---|");
        for c in &t.comparisons {
            for m in &c.metrics {
                let _ = writeln!(
                    out,
                    "| {} | {} | {:.3} ({:.3}) | {:.3} ({:.3}) | {} | [{:+.2}, {:+.2}] | {:.2} | {:.3} | {:.3} | {} | {:.3} | {} |",
                    c.label(),
                    m.metric,
                    m.transfer.mean,
                    m.transfer.iqm,
                    m.scratch.mean,
                    m.scratch.iqm,
                    ci(m),
                    m.bootstrap_ci95.0,
                    m.bootstrap_ci95.1,
                    m.prob_improvement,
                    m.p_value,
                    m.p_corrected,
                    correction(m),
                    m.mann_whitney_p,
                    m.verdict.word()
                );
            }
        }
        let levels: Vec<(String, &MetricStat)> = t
            .comparisons
            .iter()
            .flat_map(|c| c.metrics.iter().filter(|m| m.levels.is_some()).map(move |m| (c.label(), m)))
            .collect();
        if !levels.is_empty() {
            let _ = writeln!(
                out,
                "\n| strategy | metric | sources | sd of the difference between sources | sd within a source and arm |\n|---|---|---|---|---|"
            );
            for (strategy, m) in levels {
                let l = m.levels.expect("filtered");
                let _ = writeln!(
                    out,
                    "| {strategy} | {} | {} | {:.3} | {:.3} |",
                    m.metric, l.sources, l.between_sources_sd, l.within_source_sd
                );
            }
        }
        let _ = writeln!(
            out,
            "\n| strategy | forward transfer (area) [95 % t, uncorrected] | speed-up to threshold [95 % order statistics] | with source steps | power |\n|---|---|---|---|---|"
        );
        for c in &t.comparisons {
            let ft = c.forward_transfer.map_or_else(
                || match c.baseline.as_str() {
                    "scratch" => "not estimable (scratch's area is within 0.05 of solved)".to_string(),
                    other => format!("not applicable (against {other})"),
                },
                |f| {
                    if f.ci95.0.is_nan() {
                        format!("{:+.3} [-]", f.value)
                    } else {
                        format!("{:+.3} [{:+.3}, {:+.3}]", f.value, f.ci95.0, f.ci95.1)
                    }
                },
            );
            let power = format!(
                "detects {:.3} ({}) with 80 % power at {} {} (sd {:.3}, level {:.4}); {:.3} (`effect`) needs {}",
                c.power.min_detectable,
                c.primary,
                c.power.replicates,
                c.power.unit(),
                c.power.sd,
                c.power.alpha,
                c.power.effect,
                c.power.replicates_for_effect.map_or_else(|| "-".to_string(), |n| n.to_string())
            );
            let _ = writeln!(out, "| {} | {ft} | {} | {} | {power} |", c.label(), speedup(c), c.total_time.text());
        }
        // The target's own figure, by position: never another target's whose key extends this one.
        if let Some(f) = figures.curves.get(ti) {
            let _ = writeln!(out, "\n![learning curves on {}]({f})", t.key);
        }
    }
    if !figures.metrics.is_empty() {
        let _ = writeln!(out, "\n## Metrics\n\n![differences with 95 % Welch intervals]({})", figures.metrics);
    }
    if !summary.failures.is_empty() {
        let _ = writeln!(out, "\n## Failed units\n");
        for f in &summary.failures {
            let _ = writeln!(out, "- {f}");
        }
    }
    out
}
