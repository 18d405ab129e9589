//! A study's sequential guard checked against its budget and evaluation grid ([`super::Guard`]).

use super::{Guard, StudyError};

/// Checks a study's guard against its budget and grid, naming the field.
pub(super) fn check(guard: &Guard, budget: u64, every: u64) -> Result<(), StudyError> {
    let bad = |field: &'static str, message: String| Err(StudyError::field(field, &message));
    if !(2..=20).contains(&guard.looks) {
        return bad("guard.looks", format!("must be between 2 and 20 (is {})", guard.looks));
    }
    let steps = guard.steps(budget, every);
    if steps.len() < guard.looks {
        let points = budget.div_ceil(every);
        return bad(
            "guard.looks",
            format!(
                "{} looks need {} distinct evaluation points, and the budget has {points} after step 0 \
                 (`eval.every` {every}): fewer looks or more frequent evaluations",
                guard.looks, guard.looks
            ),
        );
    }
    Ok(())
}
