//! `report.html`: the report as one self-contained page that a researcher can attach to a mail or
//! open from a cluster's file browser. It holds `report.md` rendered (setup, verdict table,
//! sections), every figure inline (the figures' SVG twins; a PNG without a twin as data), each
//! target's evaluation curves per seed (hover a line: its arm, seed and returns), the transfer
//! report of each arm, and the experiment's settings. The page reads no other file and fetches
//! nothing; while the study is partial it reloads itself every minute.
//!
//! The markdown's raw HTML is shown as text and links to other schemes than the web's are
//! dropped: an experiment's name or description cannot inject markup or script into a page that
//! others open.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

use base64::Engine;
use pulldown_cmark::{CowStr, Event, Options, Parser, Tag, TagEnd};

use crate::util::write_atomic;

use super::StudyError;
use super::experiment::Experiment;
use super::figures;
use super::records::UnitResult;
use super::summary::Summary;

/// Writes a study's `report.html` into `out` from its report's markdown, summary and units.
pub fn write(
    out: &Path,
    experiment: &Experiment,
    summary: &Summary,
    units: &[UnitResult],
    markdown: &str,
) -> Result<(), StudyError> {
    let sections = seed_curves(summary, units) + &transfer_reports(summary, units);
    let page = Page {
        title: &experiment.name,
        markdown,
        sections: &sections,
        settings: &experiment.identity(),
        partial: summary.partial.is_some(),
    };
    page.write(out)
}

/// A self-contained report page: the markdown with its figures inline, sections of HTML after
/// it, and the settings file's text.
pub struct Page<'a> {
    /// The page's title.
    pub title: &'a str,
    /// The report's markdown (`report.md`).
    pub markdown: &'a str,
    /// HTML after the markdown.
    pub sections: &'a str,
    /// The experiment's (or sequence's) file, shown under Settings.
    pub settings: &'a str,
    /// Results still come: the page reloads itself every minute.
    pub partial: bool,
}

impl Page<'_> {
    /// Writes `report.html` into `out`.
    pub fn write(&self, out: &Path) -> Result<(), StudyError> {
        let mut body = render(out, self.markdown);
        body += self.sections;
        let _ = write!(
            body,
            "<h2 id=\"settings\">Settings</h2>\n<details><summary>the file that defined it</summary><pre>{}</pre></details>\n",
            escape(self.settings)
        );
        let refresh = if self.partial { "<meta http-equiv=\"refresh\" content=\"60\">\n" } else { "" };
        let page = format!(
            "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n{refresh}\
         <meta name=\"generator\" content=\"headstart {}\">\n<title>{} · headstart</title>\n<style>{STYLE}</style>\n</head>\n\
         <body>\n<main>\n{body}</main>\n<script>{SCRIPT}</script>\n</body>\n</html>\n",
            env!("CARGO_PKG_VERSION"),
            escape(self.title)
        );
        write_atomic(&out.join("report.html"), page)?;
        Ok(())
    }
}

/// `report.md` as HTML: tables on, raw HTML escaped, links kept only to the web (`http`,
/// `https`, `mailto`), the page itself (`#...`) or relative paths, images replaced by the
/// figures themselves.
fn render(out: &Path, markdown: &str) -> String {
    let mut events = Vec::new();
    let mut in_image = false;
    for event in Parser::new_ext(markdown, Options::ENABLE_TABLES) {
        match event {
            Event::Start(Tag::Image { dest_url, .. }) => {
                events.push(Event::Html(CowStr::from(figure(out, &dest_url))));
                in_image = true;
            }
            Event::End(TagEnd::Image) => in_image = false,
            _ if in_image => {} // the alt text: the figure carries its own title
            Event::Html(html) | Event::InlineHtml(html) => events.push(Event::Text(html)),
            Event::Start(Tag::Link { link_type, dest_url, title, id }) if !safe_link(&dest_url) => {
                events.push(Event::Start(Tag::Link { link_type, dest_url: CowStr::from("#"), title, id }))
            }
            e => events.push(e),
        }
    }
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, events.into_iter());
    html
}

/// Whether a link's target is one a report may hold: a web or mail address, an anchor or a
/// relative path (no `javascript:`, `data:` or other scheme).
fn safe_link(url: &str) -> bool {
    let scheme = url.split_once(':').map(|(s, _)| s).filter(|s| !s.contains(['/', '?', '#']));
    scheme.is_none_or(|s| ["http", "https", "mailto"].contains(&s.to_ascii_lowercase().as_str()))
}

/// A figure of the results folder inline: its SVG twin, else the PNG as data, else a note.
fn figure(out: &Path, name: &str) -> String {
    let file_name = Path::new(name).file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    let svg = out.join(Path::new(&file_name).with_extension("svg"));
    if let Ok(text) = std::fs::read_to_string(&svg)
        && let Some(start) = text.find("<svg")
    {
        return format!("<figure class=\"plot\">{}</figure>", &text[start..]);
    }
    match std::fs::read(out.join(&file_name)) {
        Ok(png) => format!(
            "<figure class=\"plot\"><img alt=\"{}\" src=\"data:image/png;base64,{}\"></figure>",
            escape(&file_name),
            base64::engine::general_purpose::STANDARD.encode(png)
        ),
        Err(_) => format!("<p class=\"missing\">(figure {} not found)</p>", escape(&file_name)),
    }
}

/// Plot geometry: the SVG's size and the plotting area's margins.
const WIDTH: f64 = 900.0;
const HEIGHT: f64 = 420.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 40.0;

/// Each target's evaluation curves, one line per unit (arm colours as the figures'), the arms'
/// means over them, the threshold and the random policy's return; hovering a line says whose it is.
fn seed_curves(summary: &Summary, units: &[UnitResult]) -> String {
    let mut html = String::from(
        "<h2 id=\"seeds\">Curves per seed</h2>\n<p>Every run's evaluations; hover a line (or tap it) for its arm, seed and \
         returns. Thick lines are the arms' means.</p>\n",
    );
    for (t, target) in summary.targets.iter().enumerate() {
        let arms: Vec<&str> = target.curves.iter().map(|c| c.arm.as_str()).collect();
        let mut runs: BTreeMap<(usize, u64), Vec<(u64, f64)>> = BTreeMap::new();
        for u in units.iter().filter(|u| u.target.to_string() == target.key) {
            if let Some(a) = arms.iter().position(|&arm| arm == u.arm.to_string()) {
                let points = u.evals.iter().filter(|e| e.mean.is_finite()).map(|e| (e.step, e.mean)).collect();
                runs.insert((a, u.seed), points);
            }
        }
        let values = runs.values().flatten().map(|p| p.1).chain([target.threshold, target.random_return]);
        let (lo, hi) =
            values.filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| (l.min(v), h.max(v)));
        if !lo.is_finite() {
            continue;
        }
        let (lo, hi) = if hi > lo { (lo, hi) } else { (lo - 1.0, hi + 1.0) };
        let x_max = runs.values().flatten().map(|p| p.0).max().unwrap_or(0).max(summary.budget).max(1) as f64;
        let x = |step: u64| LEFT + step as f64 / x_max * (WIDTH - LEFT - RIGHT);
        let y = |v: f64| TOP + (hi - v) / (hi - lo) * (HEIGHT - TOP - BOTTOM);
        let points = |p: &mut dyn Iterator<Item = (u64, f64)>| {
            p.map(|(s, v)| format!("{:.1},{:.1}", x(s), y(v))).collect::<Vec<_>>().join(" ")
        };
        let _ = write!(
            html,
            "<h3>{}</h3>\n<svg class=\"seeds\" id=\"seeds-{t}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" \
             aria-label=\"evaluation return per seed on {}\">\n",
            escape(&target.key),
            escape(&target.key)
        );
        for (label, v) in [("threshold", target.threshold), ("random policy", target.random_return)] {
            let _ = writeln!(
                html,
                "<line class=\"ref\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/><text class=\"ref\" x=\"{}\" y=\"{:.1}\">{label} {v:.1}</text>",
                WIDTH - RIGHT,
                LEFT + 4.0,
                y(v) - 4.0,
                y = y(v)
            );
        }
        let _ = writeln!(html, "{}", axes(lo, hi, x_max, &x, &y));
        for ((a, seed), p) in &runs {
            let last = p.last().map_or_else(|| "-".into(), |l| format!("{:.1} at step {}", l.1, l.0));
            let best = p.iter().map(|q| q.1).fold(f64::NEG_INFINITY, f64::max);
            let info = format!("{} · seed {seed} · last {last} · best {best:.1} · {} evaluations", arms[*a], p.len());
            let _ = writeln!(
                html,
                "<polyline class=\"seed\" data-info=\"{}\" stroke=\"{}\" points=\"{}\"><title>{}</title></polyline>",
                escape(&info),
                colour(*a),
                points(&mut p.iter().copied()),
                escape(&info)
            );
        }
        for (a, curve) in target.curves.iter().enumerate() {
            let mean = &mut curve.steps.iter().copied().zip(curve.mean.iter().copied()).filter(|p| p.1.is_finite());
            let _ = writeln!(html, "<polyline class=\"mean\" stroke=\"{}\" points=\"{}\"/>", colour(a), points(mean));
        }
        html += "</svg>\n<p class=\"legend\">";
        for (a, arm) in arms.iter().enumerate() {
            let _ = write!(html, "<span style=\"color:{}\">&#9632;</span> {} ", colour(a), escape(arm));
        }
        let _ = writeln!(html, "</p>\n<p class=\"info\" id=\"info-{t}\">&nbsp;</p>");
    }
    html
}

/// The axes' lines, ticks and labels.
fn axes(lo: f64, hi: f64, x_max: f64, x: &dyn Fn(u64) -> f64, y: &dyn Fn(f64) -> f64) -> String {
    let (x0, y0) = (LEFT, HEIGHT - BOTTOM);
    let mut svg = format!(
        "<g class=\"axes\"><line x1=\"{x0}\" y1=\"{TOP}\" x2=\"{x0}\" y2=\"{y0}\"/><line x1=\"{x0}\" y1=\"{y0}\" x2=\"{}\" y2=\"{y0}\"/>",
        WIDTH - RIGHT
    );
    for (v, label) in ticks(lo, hi) {
        let _ = write!(svg, "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{label}</text>", x0 - 6.0, y(v) + 4.0);
    }
    for (step, label) in ticks(0.0, x_max) {
        let _ =
            write!(svg, "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{label}</text>", x(step as u64), y0 + 16.0);
    }
    let _ = write!(
        svg,
        "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">environment steps</text></g>",
        (LEFT + WIDTH - RIGHT) / 2.0,
        HEIGHT - 4.0
    );
    svg
}

/// Round values between `lo` and `hi`, about five (multiples of 1, 2 or 5 times a power of ten),
/// with their labels.
fn ticks(lo: f64, hi: f64) -> Vec<(f64, String)> {
    let rough = (hi - lo) / 5.0;
    let power = 10f64.powf(rough.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * power).find(|&s| s >= rough).unwrap_or(10.0 * power);
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    let first = (lo / step).ceil() as i64;
    (first..)
        .map(|k| k as f64 * step)
        .take_while(|&v| v <= hi + step * 1e-9)
        .map(|v| (v, format!("{v:.decimals$}")))
        .collect()
}

/// The transfer report of each arm (its first seed's: the seeds share the strategy).
fn transfer_reports(summary: &Summary, units: &[UnitResult]) -> String {
    let mut html = String::new();
    for target in &summary.targets {
        let mut seen = Vec::new();
        for u in units.iter().filter(|u| u.target.to_string() == target.key) {
            let arm = u.arm.to_string();
            let Some(report) = u.report.as_ref().filter(|_| !seen.contains(&arm)) else { continue };
            if html.is_empty() {
                html += "<h2 id=\"transfer\">What each arm transferred</h2>\n";
            }
            let _ = writeln!(
                html,
                "<details><summary>{} on {} (seed {})</summary><pre>{}</pre></details>",
                escape(&arm),
                escape(&target.key),
                u.seed,
                escape(&report.table())
            );
            seen.push(arm);
        }
    }
    html
}

fn colour(i: usize) -> String {
    let c = figures::color(i);
    format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2)
}

/// `text` with HTML's special characters escaped (for text and attribute values).
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out += "&amp;",
            '<' => out += "&lt;",
            '>' => out += "&gt;",
            '"' => out += "&quot;",
            '\'' => out += "&#39;",
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "
body { font: 15px/1.5 system-ui, sans-serif; color: #222; margin: 0; background: #fafafa; }
main { max-width: 1100px; margin: 0 auto; padding: 1em 2em 4em; background: #fff; }
h1 { border-bottom: 2px solid #ddd; padding-bottom: .3em; }
h2 { border-bottom: 1px solid #eee; margin-top: 2em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 13px; display: block; overflow-x: auto; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
tr:nth-child(even) td { background: #fbfbfb; }
code, pre { font: 12px/1.4 ui-monospace, monospace; }
pre { background: #f6f6f6; padding: .8em; overflow-x: auto; }
figure.plot { margin: 1em 0; }
figure.plot svg, figure.plot img, svg.seeds { max-width: 100%; height: auto; display: block; }
svg.seeds { border: 1px solid #eee; }
svg.seeds .seed { fill: none; stroke-width: 1.2; opacity: .45; cursor: pointer; }
svg.seeds .seed:hover, svg.seeds .seed.on { stroke-width: 3.5; opacity: 1; }
svg.seeds .mean { fill: none; stroke-width: 3; opacity: .9; pointer-events: none; }
svg.seeds line.ref { stroke: #999; stroke-dasharray: 4 4; }
svg.seeds text.ref { fill: #777; font-size: 11px; }
svg.seeds .axes line { stroke: #444; }
svg.seeds .axes text { font-size: 11px; fill: #444; }
p.info { font-family: ui-monospace, monospace; font-size: 13px; min-height: 1.5em; }
details { margin: .4em 0; }
";

/// Hovering (or tapping) a seed's line writes what it is below its plot.
const SCRIPT: &str = "
document.querySelectorAll('svg.seeds').forEach(function (svg) {
  var info = document.getElementById('info-' + svg.id.slice(6));
  function show(e) {
    var line = e.target.closest('.seed');
    if (!line) return;
    svg.querySelectorAll('.seed.on').forEach(function (l) { l.classList.remove('on'); });
    line.classList.add('on');
    info.textContent = line.getAttribute('data-info');
  }
  svg.addEventListener('mouseover', show);
  svg.addEventListener('click', show);
});
";

#[cfg(test)]
mod tests {
    use super::*;

    /// An experiment's text cannot put markup or script into the page: raw HTML is text, script
    /// links lead nowhere, web links stay.
    #[test]
    fn markdown_from_an_experiment_is_shown_not_run() {
        let markdown = "# <script>alert(1)</script>\n\n<img src=x onerror=alert(2)> [a](javascript:alert(3)) \
                        <JavaScript:alert(4)> [b](data:text/html,x) [c](https://example.org/p?q=1:2) [d](#verdicts) [e](runs/x.csv)";
        let html = render(Path::new("/nonexistent"), markdown);
        assert!(!html.contains("<script") && !html.contains("<img"), "{html}");
        let lower = html.to_lowercase();
        assert!(!lower.contains("href=\"javascript") && !lower.contains("href=\"data:"), "{html}");
        for kept in ["https://example.org/p?q=1:2", "\"#verdicts\"", "\"runs/x.csv\""] {
            assert!(html.contains(kept), "{kept} in {html}");
        }
        assert_eq!(escape("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    }
}
