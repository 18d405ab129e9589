//! `transfer --watch`: a fine-tuning run evaluated at regular points on the zero-shot
//! evaluation's episode seeds, warned when it falls significantly below what it started with,
//! and optionally replaced by the agent as transferred or by scratch (the rule:
//! [`crate::transfer::watch`]). The looks go to `watch.ron` beside the checkpoint.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};

use crate::agent::session::Session;
use crate::agent::train::Task;
use crate::agent::{Agent, Event, EvalStats, Outcome, evaluate};
use crate::env::Registry;
use crate::transfer::watch::{Fallback, Watch, WatchLook};

/// What `watch.ron` holds.
#[derive(serde::Serialize)]
struct Record<'a> {
    episodes: usize,
    every: u64,
    looks_planned: usize,
    alpha: f64,
    min_drop: f64,
    patience: usize,
    zero_shot: f64,
    random_return: f64,
    looks: &'a [WatchLook],
    fallback: Fallback,
    /// The step whose look confirmed the collapse that the fallback acted on.
    fell_back_at: Option<u64>,
}

/// How a watched run ended.
pub(super) struct Watched {
    pub(super) outcome: Outcome,
    pub(super) eval: Option<EvalStats>,
    pub(super) seconds: f64,
}

/// Trains `agent` on `task` for `total` steps under `watch`, evaluating every `every` steps on
/// `episodes` deterministic episodes from `eval_seed` (the zero-shot evaluation's seeds); on a
/// confirmed collapse with a fallback, saves what the fallback gives instead (`rebuild` makes
/// the agent as transferred, or from scratch). Saves into `out`.
#[allow(clippy::too_many_arguments)]
pub(super) fn run(
    registry: &Registry,
    task: &Task,
    agent: &mut dyn Agent,
    (total, every, episodes, eval_seed): (u64, u64, usize, u64),
    watch: &Watch,
    fallback: Fallback,
    rebuild: &dyn Fn(bool) -> Result<Box<dyn Agent>>,
    quiet: bool,
    out: &Path,
) -> Result<Watched> {
    let interrupted = super::interrupt_flag(None);
    let mut session = Session::new(registry, task, agent, total)?;
    let bar = crate::util::progress(total, quiet, "steps, {per_sec}");
    let start = Instant::now();
    let mut looks: Vec<WatchLook> = Vec::new();
    let mut next = every;
    let mut last_eval = None;
    let (outcome, confirmed) = loop {
        let mut due = false;
        let outcome = session.train(&mut |event| {
            match event {
                Event::Progress { step } => {
                    bar.set_position(step);
                    due |= step >= next;
                }
                Event::Checkpoint { .. } if due || interrupted.load(std::sync::atomic::Ordering::SeqCst) => {
                    return std::ops::ControlFlow::Break(());
                }
                _ => {}
            }
            std::ops::ControlFlow::Continue(())
        })?;
        if outcome == Outcome::Stopped && !due {
            break (Outcome::Stopped, false);
        }
        let mut env = task.make(registry)?;
        let stats = evaluate(session.agent(), env.as_mut(), episodes, true, eval_seed)?;
        let look = watch.look(session.agent().steps(), &stats.returns);
        let line = format!(
            "watch: step {}: return {:.1} ({:+.1} against step 0, paired one-sided p = {:.2e}){}",
            look.step,
            look.mean,
            look.drop,
            look.p_value,
            if look.collapsed { " -- COLLAPSE: significantly below its zero-shot return" } else { "" }
        );
        bar.suspend(|| if look.collapsed { eprintln!("warning: {line}") } else if !quiet { eprintln!("{line}") });
        looks.push(look);
        last_eval = Some(stats);
        if fallback != Fallback::None && watch.confirmed(&looks) {
            break (Outcome::Finished, true);
        }
        if outcome == Outcome::Finished {
            break (Outcome::Finished, false);
        }
        let steps = session.agent().steps();
        while next <= steps {
            next += every;
        }
    };
    bar.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64();
    let fell_back_at = confirmed.then(|| looks.last().map(|l| l.step)).flatten();
    let eval = match (confirmed, fallback) {
        (false, _) | (true, Fallback::None) => {
            let eval = if outcome == Outcome::Finished { last_eval } else { None };
            session.save(eval.clone(), super::produced_by(), out)?;
            eval
        }
        (true, Fallback::Source) => {
            drop(session);
            eprintln!(
                "fallback: fine-tuning collapsed ({} looks in a row); saving the agent as transfer made it, before any update",
                watch.patience
            );
            let mut agent = rebuild(false)?;
            let mut env = task.make(registry)?;
            let eval = evaluate(agent.as_ref(), env.as_mut(), episodes, true, eval_seed)?;
            Session::new(registry, task, agent.as_mut(), total)?.save(Some(eval.clone()), super::produced_by(), out)?;
            Some(eval)
        }
        (true, Fallback::Scratch) => {
            drop(session);
            eprintln!(
                "fallback: fine-tuning collapsed ({} looks in a row); training from scratch on the budget instead",
                watch.patience
            );
            let mut agent = rebuild(true)?;
            let mut session = Session::new(registry, task, agent.as_mut(), total)?;
            super::agent::train_and_save(registry, &mut session, episodes, quiet, out, None)?.eval
        }
    };
    let zero = watch.zero_shot.iter().sum::<f64>() / watch.zero_shot.len().max(1) as f64;
    let record = Record {
        episodes,
        every,
        looks_planned: watch.looks,
        alpha: watch.alpha,
        min_drop: watch.min_drop,
        patience: watch.patience,
        zero_shot: zero,
        random_return: watch.random_return,
        looks: &looks,
        fallback,
        fell_back_at,
    };
    let path = out.join("watch.ron");
    crate::util::write_atomic(&path, crate::util::to_ron(&record)).with_context(|| format!("writing {}", path.display()))?;
    let collapsed = looks.iter().filter(|l| l.collapsed).count();
    println!(
        "collapse watch: {} looks, {collapsed} below the zero-shot return {zero:.1} (rule: paired one-sided t at 5 % / {} and a drop \
         of at least {:.0} % of the way to random){}; {}",
        looks.len(),
        watch.looks,
        100.0 * watch.min_drop,
        match (fell_back_at, fallback) {
            (Some(step), Fallback::Source) => format!("; fell back to the transferred agent at step {step}"),
            (Some(step), Fallback::Scratch) => format!("; fell back to scratch at step {step}"),
            _ => String::new(),
        },
        path.display()
    );
    Ok(Watched { outcome, eval, seconds })
}
