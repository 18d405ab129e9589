//! Parts: name patterns over the parameter names of the agent layer. `actor.trunk` names
//! everything under it; `*` matches any run of characters (`critic.*.head`).

use super::TransferError;

/// Whether the part pattern `pattern` names parameter `name`: `*` matches any run of
/// characters; without `*`, the name itself or anything under it (`actor.trunk` names
/// `actor.trunk.0.weight`).
pub fn matches(pattern: &str, name: &str) -> bool {
    if !pattern.contains('*') {
        return name == pattern || name.starts_with(pattern) && name[pattern.len()..].starts_with('.');
    }
    glob(pattern.as_bytes(), name.as_bytes()) || glob(format!("{pattern}.*").as_bytes(), name.as_bytes())
}

fn glob(p: &[u8], s: &[u8]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|i| glob(rest, &s[i..])),
        Some((c, rest)) => s.first() == Some(c) && glob(rest, &s[1..]),
    }
}

/// The parts a pattern may name: every parameter and each of its dotted prefixes.
fn parts(names: &[String]) -> Vec<String> {
    let mut out: Vec<String> = names
        .iter()
        .flat_map(|n| {
            let pieces: Vec<&str> = n.split('.').collect();
            (1..=pieces.len()).map(move |k| pieces[..k].join("."))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The target parameters a list of patterns names; a pattern that names none is an error.
pub(super) fn select(field: &'static str, patterns: &[String], names: &[String]) -> Result<Vec<String>, TransferError> {
    for pattern in patterns {
        if !names.iter().any(|n| matches(pattern, n)) {
            let parts = parts(names);
            let suggestion = crate::util::nearest(pattern, parts.iter().map(String::as_str));
            return Err(TransferError::UnknownPart { field, pattern: pattern.clone(), parts, suggestion });
        }
    }
    Ok(names.iter().filter(|n| patterns.iter().any(|p| matches(p, n))).cloned().collect())
}
