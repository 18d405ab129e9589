//! The HTML report opened in a real browser: Debian's Chromium, headless (`make setup-browser`
//! installs it; `HEADSTART_CHROMIUM` names another). A checking page loads `report.html` in a
//! frame and reads what the browser laid out: the verdict table and its rows, every figure drawn
//! at its size, one line per seed with what hovering it says, and no resource from outside the
//! page. A screenshot must come out too.

use std::path::{Path, PathBuf};
use std::process::Command;

fn headstart(args: &[&str]) {
    let status = Command::new(env!("CARGO_BIN_EXE_headstart")).args(args).status().unwrap();
    assert!(status.success(), "headstart {args:?}");
}

fn browser() -> PathBuf {
    if let Some(path) = std::env::var_os("HEADSTART_CHROMIUM") {
        return path.into();
    }
    let found = ["chromium", "chromium-browser", "google-chrome"].iter().find_map(|name| {
        std::env::var_os("PATH")
            .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join(name)).find(|p| p.is_file()))
    });
    found.expect("no Chromium on PATH: `make setup-browser` installs Debian's (or set HEADSTART_CHROMIUM)")
}

fn chromium(args: &[&str]) -> String {
    let profile = std::env::temp_dir().join(format!("headstart-chromium-{}", std::process::id()));
    let output = Command::new(browser())
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files", "--hide-scrollbars"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .expect("Chromium runs");
    assert!(output.status.success(), "chromium {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    std::fs::remove_dir_all(&profile).ok();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// What the checking page finds in the frame, as JSON in `<pre id="result">`.
const CHECK: &str = r#"<!doctype html><html><body>
<iframe id="report" src="report.html" style="width:1200px;height:900px"></iframe>
<pre id="result">not loaded</pre>
<script>
document.getElementById('report').addEventListener('load', function () {
  var doc = this.contentDocument;
  var verdict = Array.from(doc.querySelectorAll('table')).find(function (t) {
    return Array.from(t.querySelectorAll('th')).some(function (th) { return /verdict/i.test(th.textContent); });
  });
  var drawn = Array.from(doc.querySelectorAll('figure.plot svg')).filter(function (s) {
    var r = s.getBoundingClientRect(); return r.width > 300 && r.height > 150;
  }).length;
  var seeds = doc.querySelectorAll('svg.seeds .seed');
  var seedSize = seeds.length ? seeds[0].ownerSVGElement.getBoundingClientRect().width : 0;
  var info = '';
  if (seeds.length) {
    seeds[seeds.length - 1].dispatchEvent(new MouseEvent('mouseover', { bubbles: true }));
    info = doc.getElementById('info-0').textContent;
  }
  var outside = Array.from(doc.querySelectorAll('[src],[href],link')).map(function (e) {
    return e.getAttribute('src') || e.getAttribute('href') || 'link';
  }).filter(function (u) { return !/^(data:|#)/.test(u); });
  document.getElementById('result').textContent = JSON.stringify({
    title: doc.title,
    verdictRows: verdict ? verdict.querySelectorAll('tbody tr').length : -1,
    figures: doc.querySelectorAll('figure.plot').length,
    drawn: drawn,
    seeds: seeds.length,
    seedWidth: seedSize,
    info: info,
    outside: outside,
    settings: doc.querySelector('#settings + details pre') ? doc.querySelector('#settings + details pre').textContent.length : 0
  });
});
</script></body></html>"#;

fn field<'a>(json: &'a str, key: &str) -> &'a str {
    let start = json.find(&format!("\"{key}\":")).unwrap_or_else(|| panic!("{key} in {json}")) + key.len() + 3;
    let rest = &json[start..];
    let end = rest.find([',', '}']).unwrap();
    &rest[..end]
}

#[test]
fn the_html_report_renders_in_chromium() {
    let out = std::env::temp_dir().join(format!("headstart-html-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    headstart(&["run", "-q", "experiments/smoke.ron", "--out", out.to_str().unwrap()]);
    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(report.starts_with("<!doctype html>") && report.contains("<table>"));
    std::fs::write(out.join("check.html"), CHECK).unwrap();
    let dom = chromium(&["--virtual-time-budget=10000", "--dump-dom", &url(&out.join("check.html"))]);
    let json = dom.split("<pre id=\"result\">").nth(1).and_then(|r| r.split("</pre>").next()).unwrap();
    let json = json.replace("&quot;", "\"");
    assert_ne!(json, "not loaded", "the frame never loaded:\n{dom}");
    // smoke.ron: one target, two strategies against scratch, two seeds each.
    assert_eq!(field(&json, "verdictRows"), "2", "{json}");
    let svgs = std::fs::read_dir(&out)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension() == Some("svg".as_ref()))
        .count();
    assert!(svgs >= 2, "the curves and the metrics");
    assert_eq!(field(&json, "figures"), svgs.to_string(), "every figure of the folder, inline: {json}");
    assert_eq!(field(&json, "drawn"), svgs.to_string(), "each laid out at its size: {json}");
    assert_eq!(field(&json, "seeds"), "6", "3 arms x 2 seeds: {json}");
    assert!(field(&json, "seedWidth").parse::<f64>().unwrap() > 300.0, "{json}");
    assert!(field(&json, "info").contains("seed 1"), "hovering the last line names its seed: {json}");
    assert_eq!(field(&json, "outside"), "[]", "nothing fetched from outside the page: {json}");
    assert!(field(&json, "settings").parse::<usize>().unwrap() > 100, "{json}");
    // A screenshot of the page itself (what the README shows for the quick start).
    let shot = out.join("shot.png");
    chromium(&["--window-size=1200,1600", &format!("--screenshot={}", shot.display()), &url(&out.join("report.html"))]);
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 20_000, "a screenshot of {} bytes", png.len());
    std::fs::remove_dir_all(&out).ok();
}

fn url(path: &Path) -> String {
    format!("file://{}", path.canonicalize().unwrap().display())
}

/// Half a study's units (one shard of two) rendered by `report`: the page says it is partial and
/// reloads itself (a study's processes write the same while they run); the finished study's does
/// neither.
#[test]
fn a_partial_report_says_so_and_reloads() {
    let out = std::env::temp_dir().join(format!("headstart-html-partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let o = out.to_str().unwrap();
    headstart(&["run", "-q", "experiments/smoke.ron", "--out", o, "--shard", "0/2"]);
    headstart(&["report", o]);
    let page = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(page.contains("<strong>Partial</strong>") && page.contains("http-equiv=\"refresh\""), "a partial page");
    headstart(&["run", "-q", "experiments/smoke.ron", "--out", o, "--shard", "1/2"]);
    let page = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(!page.contains("<strong>Partial</strong>") && !page.contains("http-equiv"), "the final page");
    std::fs::remove_dir_all(&out).ok();
}
