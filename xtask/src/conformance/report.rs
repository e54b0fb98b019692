//! The matrix as files other programs read: JUnit XML for CI systems, and one
//! self-contained HTML page for people.

use super::Report;
use std::fmt::Write as _;

/// JUnit XML: one `<testsuite>` per matrix column (suite, provider and store), one
/// `<testcase>` per cell; a skipped cell carries its reason, a failed one its message (the
/// first line as the attribute, all of it as the text).
pub(crate) fn junit(report: &Report) -> String {
    let mut suites: Vec<(String, Vec<&super::Cell>)> = Vec::new();
    for cell in &report.cells {
        let name = format!("{} · {}", cell.suite, super::column_label(cell));
        match suites.iter_mut().find(|(n, _)| *n == name) {
            Some((_, cells)) => cells.push(cell),
            None => suites.push((name, vec![cell])),
        }
    }
    let seconds = |ms: u128| format!("{:.3}", ms as f64 / 1000.0);
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let s = &report.summary;
    let _ = writeln!(
        xml,
        "<testsuites name=\"grantkit conformance\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" errors=\"0\" time=\"{}\">",
        report.cells.len(),
        s.failed,
        s.skipped,
        seconds(s.wall_ms)
    );
    for (name, cells) in &suites {
        let failures = cells.iter().filter(|c| c.outcome == "failed").count();
        let skipped = cells.iter().filter(|c| c.outcome == "skipped").count();
        let time: u128 = cells.iter().map(|c| c.duration_ms).sum();
        let _ = writeln!(
            xml,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\" errors=\"0\" time=\"{}\">",
            xml_escape(name),
            cells.len(),
            seconds(time)
        );
        for cell in cells {
            let classname = format!("{}.{}", cell.suite, super::column_label(cell));
            let _ = write!(
                xml,
                "    <testcase classname=\"{}\" name=\"{}\" time=\"{}\"",
                xml_escape(&classname),
                xml_escape(&cell.test),
                seconds(cell.duration_ms)
            );
            let reason = cell.reason.as_deref().unwrap_or("");
            match cell.outcome {
                "failed" => {
                    let first = reason.lines().next().unwrap_or("failed");
                    let _ = writeln!(
                        xml,
                        ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>",
                        xml_escape(first),
                        xml_escape(reason)
                    );
                }
                "skipped" => {
                    let _ = writeln!(
                        xml,
                        ">\n      <skipped message=\"{}\"/>\n    </testcase>",
                        xml_escape(reason)
                    );
                }
                _ => xml.push_str("/>\n"),
            }
        }
        xml.push_str("  </testsuite>\n");
    }
    xml.push_str("</testsuites>\n");
    xml
}

/// Escapes text for XML content and attributes, dropping the control characters XML 1.0
/// cannot carry (a failure message may hold anything a server sent).
fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\t' | '\r' => out.push(' '),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// One page, no network: the counts, the durations, and per suite a colour grid of
/// backends (rows) × behaviours (columns); a failed cell shows its message when clicked;
/// three fields filter by provider, store and behaviour. The page draws itself from the
/// report embedded as JSON, so what it shows is what the JSON says.
pub(crate) fn html(report: &Report) -> Result<String, String> {
    let data = serde_json::to_string(report).map_err(|e| e.to_string())?;
    // Inside <script>, `</script>` (or `<!--`) in a message would end the element early.
    let data = data.replace('<', "\\u003c");
    Ok(PAGE.replace("/*REPORT*/null", &data))
}

const PAGE: &str = r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>grantkit conformance</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
  h1 { font-size: 1.4em; margin: 0 0 .3em; }
  .counts span { display: inline-block; margin-right: 1.2em; }
  .counts b { font-size: 1.3em; }
  #passed { color: #1a7f37; } #failed { color: #cf222e; } #skipped { color: #6e7781; }
  .filters { margin: 1em 0; }
  .filters input { margin-right: 1em; padding: .25em .4em; }
  table { border-collapse: collapse; margin-bottom: 2em; }
  th { font-weight: normal; text-align: left; padding-right: .6em; white-space: nowrap; }
  thead th { writing-mode: vertical-rl; transform: rotate(180deg); font-size: 11px; padding: .3em 0; }
  td { width: 14px; height: 14px; border: 1px solid #fff; padding: 0; }
  td.passed { background: #2da44e; } td.failed { background: #cf222e; cursor: pointer; }
  td.skipped { background: #d0d7de; } td.none { background: transparent; }
  #detail { white-space: pre-wrap; background: #fff8f8; border: 1px solid #cf222e; padding: .6em; display: none; }
</style>
</head>
<body>
<h1>grantkit conformance</h1>
<div class="counts">
  <span><b id="total">0</b> cells</span>
  <span><b id="passed">0</b> passed</span>
  <span><b id="failed">0</b> failed</span>
  <span><b id="skipped">0</b> skipped</span>
  <span><b id="wall">0</b> s wall</span>
  <span><b id="celltime">0</b> s of cell time</span>
</div>
<div class="filters">
  <input id="f-provider" placeholder="provider">
  <input id="f-store" placeholder="store">
  <input id="f-test" placeholder="behaviour">
</div>
<pre id="detail"></pre>
<div id="grids"></div>
<script id="report" type="application/json">/*REPORT*/null</script>
<script>
const report = JSON.parse(document.getElementById('report').textContent);
const field = id => document.getElementById(id).value.trim().toLowerCase();
const label = c => (c.provider ? c.provider + '+' : '') + (c.store || '-');
function draw() {
  const fp = field('f-provider'), fs = field('f-store'), ft = field('f-test');
  const cells = report.cells.filter(c =>
    (!fp || (c.provider || '').toLowerCase().includes(fp)) &&
    (!fs || (c.store || '').toLowerCase().includes(fs)) &&
    (!ft || c.test.toLowerCase().includes(ft)));
  const count = o => cells.filter(c => c.outcome === o).length;
  document.getElementById('total').textContent = cells.length;
  document.getElementById('passed').textContent = count('passed');
  document.getElementById('failed').textContent = count('failed');
  document.getElementById('skipped').textContent = count('skipped');
  const grids = document.getElementById('grids');
  grids.replaceChildren();
  for (const suite of [...new Set(cells.map(c => c.suite))]) {
    const own = cells.filter(c => c.suite === suite);
    const tests = [...new Set(own.map(c => c.test))];
    const rows = [...new Set(own.map(label))];
    const byKey = new Map(own.map(c => [label(c) + '\n' + c.test, c]));
    const h = document.createElement('h2');
    h.textContent = suite + ' suite';
    const table = document.createElement('table');
    const head = table.createTHead().insertRow();
    head.appendChild(document.createElement('th'));
    for (const t of tests) {
      const th = document.createElement('th');
      th.textContent = t;
      head.appendChild(th);
    }
    const body = table.createTBody();
    for (const row of rows) {
      const tr = body.insertRow();
      const th = document.createElement('th');
      th.textContent = row;
      tr.appendChild(th);
      for (const t of tests) {
        const c = byKey.get(row + '\n' + t);
        const td = tr.insertCell();
        td.className = c ? c.outcome : 'none';
        if (c) {
          td.title = `${row} · ${t}: ${c.outcome} (${c.duration_ms} ms)` + (c.reason ? '\n' + c.reason : '');
          if (c.outcome === 'failed') {
            td.onclick = () => {
              const d = document.getElementById('detail');
              d.textContent = `${row} · ${t}\n${c.reason || ''}`;
              d.style.display = 'block';
            };
          }
        }
      }
    }
    grids.append(h, table);
  }
}
document.getElementById('wall').textContent = (report.summary.wall_ms / 1000).toFixed(1);
document.getElementById('celltime').textContent = (report.summary.cell_ms / 1000).toFixed(1);
for (const id of ['f-provider', 'f-store', 'f-test']) {
  document.getElementById(id).addEventListener('input', draw);
}
draw();
</script>
</body>
</html>
"##;

#[cfg(test)]
mod tests {
    use super::super::{Cell, Summary};
    use super::*;

    /// A report with every outcome, and failure text that is hostile to XML and HTML.
    fn sample() -> Report {
        let cell = |suite,
                    provider: Option<&str>,
                    store: &str,
                    test: &str,
                    outcome,
                    reason: Option<&str>| Cell {
            suite,
            provider: provider.map(str::to_owned),
            store: Some(store.to_owned()),
            test: test.to_owned(),
            outcome,
            reason: reason.map(str::to_owned),
            duration_ms: 12,
        };
        let hostile = "assertion failed: </script><img src=x onerror=alert(1)> & \"quotes\"\u{1b}[31m\u{0}\nsecond line";
        let cells = vec![
            cell(
                "store",
                None,
                "memory",
                "round_trip_every_field",
                "passed",
                None,
            ),
            cell(
                "store",
                None,
                "memory",
                "lease_is_exclusive",
                "skipped",
                Some("the store does not declare the capability leases"),
            ),
            cell(
                "store",
                None,
                "file",
                "round_trip_every_field",
                "failed",
                Some(hostile),
            ),
            cell(
                "provider",
                Some("joinme/implicit"),
                "memory",
                "flow_round_trip",
                "passed",
                None,
            ),
            cell(
                "provider",
                Some("joinme/implicit"),
                "memory",
                "api_faults",
                "passed",
                None,
            ),
        ];
        Report {
            summary: Summary {
                passed: 3,
                failed: 1,
                skipped: 1,
                wall_ms: 1_500,
                cell_ms: 60,
            },
            skipped_backends: Vec::new(),
            cells,
        }
    }

    #[test]
    fn junit_reads_back_in_a_junit_parser() {
        let report = sample();
        let xml = junit(&report);
        let parsed = junit_parser::from_reader(std::io::Cursor::new(xml.as_bytes()))
            .unwrap_or_else(|e| panic!("{e}\n{xml}"));
        let cases: Vec<_> = parsed.suites.iter().flat_map(|s| &s.cases).collect();
        assert_eq!(cases.len(), report.cells.len());
        let count = |f: fn(&junit_parser::TestStatus) -> bool| {
            cases.iter().filter(|c| f(&c.status)).count()
        };
        assert_eq!(count(|s| s.is_success()), report.summary.passed);
        assert_eq!(count(|s| s.is_failure()), report.summary.failed);
        assert_eq!(count(|s| s.is_skipped()), report.summary.skipped);
        let suite_failures: u64 = parsed.suites.iter().map(|s| s.failures).sum();
        assert_eq!(suite_failures, 1);
        assert!(
            !xml.contains('\u{1b}') && !xml.contains('\u{0}'),
            "control bytes dropped"
        );
        assert!(
            xml.contains("lease_is_exclusive") && xml.contains("declare the capability leases")
        );
    }

    /// Renders the page in headless Chromium: the counts it shows are the report's, and a
    /// failure message is text, never markup. Leaves a screenshot in
    /// `target/conformance-report.png`.
    #[test]
    fn the_html_page_shows_the_reports_counts_in_chromium() {
        let report = sample();
        let dir = tempfile::tempdir().unwrap();
        let page = dir.path().join("conformance.html");
        std::fs::write(&page, html(&report).unwrap()).unwrap();
        let url = format!("file://{}", page.display());
        let chromium = |extra: &[&str]| {
            let output = std::process::Command::new("chromium")
                .args([
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--hide-scrollbars",
                ])
                .arg(format!(
                    "--user-data-dir={}",
                    dir.path().join("profile").display()
                ))
                .args(extra)
                .arg(&url)
                .output()
                .expect("chromium runs (Debian: apt-get install chromium)");
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            String::from_utf8_lossy(&output.stdout).into_owned()
        };
        let dom = chromium(&["--dump-dom"]);
        let shown = |id: &str| -> String {
            let start = dom
                .find(&format!("id=\"{id}\">"))
                .unwrap_or_else(|| panic!("#{id} in {dom}"));
            let rest = &dom[start..];
            let open = rest.find('>').unwrap() + 1;
            rest[open..open + rest[open..].find('<').unwrap()].to_owned()
        };
        assert_eq!(shown("total"), report.cells.len().to_string());
        assert_eq!(shown("passed"), report.summary.passed.to_string());
        assert_eq!(shown("failed"), report.summary.failed.to_string());
        assert_eq!(shown("skipped"), report.summary.skipped.to_string());
        assert_eq!(shown("wall"), "1.5");
        // One grid cell per report cell, coloured by outcome.
        assert_eq!(dom.matches("<td class=\"passed\"").count(), 3);
        assert_eq!(dom.matches("<td class=\"failed\"").count(), 1);
        assert_eq!(dom.matches("<td class=\"skipped\"").count(), 1);
        // Attribute values may hold the message as text; outside them, no markup of it.
        let mut markup = String::new();
        let mut quoted = false;
        for c in dom.chars() {
            match c {
                '"' => quoted = !quoted,
                c if !quoted => markup.push(c),
                _ => {}
            }
        }
        assert!(!markup.contains("<img"), "a failure message became markup");

        let shot = crate::root().join("target/conformance-report.png");
        chromium(&[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1200,800",
        ]);
        let png = std::fs::read(&shot).expect("the screenshot");
        assert!(png.starts_with(b"\x89PNG") && png.len() > 1_000);
    }
}
