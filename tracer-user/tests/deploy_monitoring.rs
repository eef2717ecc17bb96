//! deploy/monitoring: the Grafana dashboard is a well-formed dashboard, and
//! every metric (and label) its queries and the alerting rules use is one
//! docs/metrics.md documents; promtool accepts the rules, their unit tests
//! and every dashboard query; and (root) a live `watchtrace run` exports
//! every one of those metrics.

mod support;

use std::{
    collections::{BTreeMap, BTreeSet},
    env, fs,
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use serde::Deserialize as _;
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(relative: &str) -> String {
    let path = repo().join(relative);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn dashboard() -> Value {
    serde_json::from_str(&read("deploy/monitoring/grafana-dashboard.json")).expect("dashboard JSON")
}

fn rules() -> Value {
    Value::deserialize(
        yaml_serde::Deserializer::from_str(&read("deploy/monitoring/watchtrace.rules.yaml"))
            .next()
            .unwrap(),
    )
    .unwrap()
}

/// A documented metric: its type and labels.
#[derive(Debug)]
struct Metric {
    kind: String,
    labels: BTreeSet<String>,
}

/// The metrics table of docs/metrics.md: `| `name` | type | labels | meaning |`.
fn documented() -> BTreeMap<String, Metric> {
    let mut out = BTreeMap::new();
    for line in read("docs/metrics.md").lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // ["", name, type, labels, meaning, ""]
        if cells.len() < 6 {
            continue;
        }
        let Some(name) = cells[1]
            .strip_prefix("`watchtrace_")
            .and_then(|n| n.strip_suffix('`'))
        else {
            continue;
        };
        let labels = cells[3]
            .split(',')
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        out.insert(
            format!("watchtrace_{name}"),
            Metric {
                kind: cells[2].to_owned(),
                labels,
            },
        );
    }
    assert!(out.len() > 10, "docs/metrics.md table not found: {out:?}");
    out
}

/// Labels Prometheus attaches at scrape time (and the ServiceMonitor's
/// relabeling), valid on any series.
const TARGET_LABELS: [&str; 3] = ["instance", "job", "node"];

/// Checks one PromQL expression against the documented metrics: every
/// `watchtrace_*` name is documented (a histogram's `_bucket`, `_sum`,
/// `_count` series count as it), and every label it groups by or matches
/// on belongs to one of those metrics (or is `le` of a histogram, or a
/// target label). Returns the problems found.
fn check_expr(expr: &str, docs: &BTreeMap<String, Metric>) -> Vec<String> {
    let mut problems = Vec::new();
    let mut labels: BTreeSet<&str> = TARGET_LABELS.into_iter().collect();
    let mut used = 0;
    for name in tokens(expr).filter(|t| t.starts_with("watchtrace_")) {
        used += 1;
        let metric = docs.get(name).or_else(|| {
            ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
                let base = docs.get(name.strip_suffix(suffix)?)?;
                (base.kind == "histogram").then_some(base)
            })
        });
        match metric {
            Some(m) => {
                labels.extend(m.labels.iter().map(String::as_str));
                if m.kind == "histogram" {
                    labels.insert("le");
                }
            }
            None => problems.push(format!("`{name}` is not in docs/metrics.md")),
        }
    }
    // `up` is Prometheus' own series per target (the agent-down alerts).
    if used == 0 && !tokens(expr).any(|t| t == "up") {
        problems.push("uses no watchtrace metric".into());
    }
    for label in label_names(expr) {
        if !labels.contains(label.as_str()) {
            problems.push(format!("label `{label}` is on none of its metrics"));
        }
    }
    problems
}

/// Identifier-like tokens of an expression.
fn tokens(expr: &str) -> impl Iterator<Item = &str> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|t| !t.is_empty())
}

/// Label names in `by (...)`, `without (...)`, `on (...)`,
/// `ignoring (...)` and in selector braces `{name op "value", ...}`.
fn label_names(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = expr.as_bytes();
    for keyword in ["by", "without", "on", "ignoring"] {
        let mut from = 0;
        while let Some(at) = expr[from..].find(keyword) {
            let start = from + at;
            from = start + keyword.len();
            let before_ok = start == 0 || !is_ident(bytes[start - 1]);
            let rest = expr[from..].trim_start();
            if before_ok
                && rest.starts_with('(')
                && let Some(close) = rest.find(')')
            {
                out.extend(
                    rest[1..close]
                        .split(',')
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .map(str::to_owned),
                );
            }
        }
    }
    let mut from = 0;
    while let Some(open) = expr[from..].find('{') {
        let start = from + open + 1;
        let Some(close) = expr[start..].find('}') else {
            break;
        };
        let inner = &expr[start..start + close];
        from = start + close;
        // `{{label}}` in a legend is not a selector; grafana variables
        // (`${x}`) are not either.
        if start >= 2 && &expr[start - 2..start] == "${" {
            continue;
        }
        for matcher in split_matchers(inner) {
            let name: String = matcher
                .trim()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

/// Splits `a="x,y", b=~"z"` at the commas outside quotes.
fn split_matchers(inner: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut quoted, mut start) = (false, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Every PromQL expression of the dashboard (panel targets and variable
/// queries), with where it is.
fn dashboard_exprs(dash: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for panel in dash["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            out.push((
                format!("panel {} {}", panel["id"], panel["title"]),
                target["expr"].as_str().unwrap_or_default().to_owned(),
            ));
        }
    }
    for var in dash["templating"]["list"].as_array().unwrap() {
        if var["type"] == "query" {
            out.push((
                format!("variable {}", var["name"]),
                var["definition"].as_str().unwrap().to_owned(),
            ));
        }
    }
    out
}

fn rule_exprs(rules: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for group in rules["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            let name = rule["alert"].as_str().or(rule["record"].as_str()).unwrap();
            out.push((
                format!("rule {name}"),
                rule["expr"].as_str().unwrap().to_owned(),
            ));
        }
    }
    out
}

#[test]
fn the_expression_check_catches_unknown_metrics_and_labels() {
    let docs = documented();
    assert!(
        check_expr(
            "histogram_quantile(0.99, sum by (le, resource) (rate(watchtrace_apiserver_time_span_seconds_bucket{instance=~\"$instance\"}[5m])))",
            &docs
        )
        .is_empty()
    );
    // The histogram has no `client` label.
    assert_eq!(
        check_expr(
            "sum by (client) (rate(watchtrace_apiserver_time_span_seconds_bucket[1m]))",
            &docs
        ),
        ["label `client` is on none of its metrics"]
    );
    // `_bucket` only exists for histograms; a typo is caught.
    assert_eq!(
        check_expr("rate(watchtrace_goaways_total_bucket[1m])", &docs).len(),
        1
    );
    assert_eq!(
        check_expr("rate(watchtrace_goaway_total[1m])", &docs).len(),
        1
    );
    assert_eq!(
        check_expr(
            "sum(rate(watchtrace_stall_seconds_total{cause=\"x\", cuase=\"y\"}[1m]))",
            &docs
        ),
        ["label `cuase` is on none of its metrics"]
    );
}

#[test]
fn every_metric_the_dashboard_and_rules_use_is_documented() {
    let docs = documented();
    let dash = dashboard();
    let mut exprs = dashboard_exprs(&dash);
    exprs.extend(rule_exprs(&rules()));
    let mut problems = Vec::new();
    let mut used = BTreeSet::new();
    for (place, expr) in &exprs {
        for p in check_expr(expr, &docs) {
            problems.push(format!("{place}: {p}\n    {expr}"));
        }
        used.extend(tokens(expr).filter(|t| t.starts_with("watchtrace_")));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The panels the dashboard exists for.
    let all = exprs
        .iter()
        .map(|(_, e)| e.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    for needed in [
        "histogram_quantile(0.99, sum by (le) (rate(watchtrace_apiserver_time_span_seconds_bucket",
        "watchtrace_apiserver_time_span_p99_seconds",
        "sum by (resource, event_type) (rate(watchtrace_watch_events_total",
        "sum by (client) (rate(watchtrace_watch_events_total",
        "sum by (resource) (rate(watchtrace_watch_event_bytes_total",
        "sum by (client) (rate(watchtrace_watch_event_bytes_total",
        "sum by (cause) (rate(watchtrace_stall_seconds_total",
        "watchtrace_capture_lost_bytes_total",
        "watchtrace_ringbuf_drops_total",
        // Who is late now: by client, ongoing stalls, the error budget.
        "sum by (client) (rate(watchtrace_stall_delay_seconds_total",
        "sum by (cause) (watchtrace_stalls_ongoing",
        "sum by (cause) (watchtrace_stall_ongoing_seconds",
        "watchtrace_forced_closes_total",
        "watchtrace_watch_errors_total{code=\"410\"}",
        "watchtrace_degraded",
        "up{job=\"watchtrace\"}",
    ] {
        assert!(all.contains(needed), "no query contains `{needed}`");
    }
    // The error budget over each window of the multi-window burn rate.
    for window in ["[5m]", "[30m]", "[1h]", "[6h]", "[30d]"] {
        assert!(
            exprs.iter().any(|(_, e)| e.contains(&format!(
                "watchtrace_apiserver_time_span_seconds_count{{instance=~\"$instance\"}}{window}"
            )) || e.contains(&format!(
                "watchtrace_apiserver_time_span_seconds_count{window}"
            ))),
            "no error-budget query over {window}"
        );
    }
    eprintln!(
        "{} expressions use {} metrics, all documented",
        exprs.len(),
        used.len()
    );
}

/// Structural validity as Grafana reads a dashboard: the required fields
/// of the classic dashboard model (`Dashboard`, `Panel`, `RowPanel`,
/// `GridPos`, `VariableModel` in @grafana/schema 13.2.3,
/// raw/dashboard/x/types.gen), plus what makes it usable anywhere: a
/// datasource variable every query goes through, unique panel ids, panels
/// inside the 24-column grid without overlap.
#[test]
fn the_dashboard_is_a_well_formed_grafana_dashboard() {
    let dash = dashboard();
    assert!(dash["title"].as_str().is_some_and(|t| !t.is_empty()));
    let uid = dash["uid"].as_str().expect("uid");
    assert!(
        uid.len() <= 40
            && uid
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        "uid {uid}"
    );
    // 39 is Grafana 10.4 / 11.0; newer Grafana migrates it on load.
    let schema = dash["schemaVersion"].as_u64().expect("schemaVersion");
    assert!((39..=42).contains(&schema), "schemaVersion {schema}");
    assert!(dash["time"]["from"].is_string() && dash["time"]["to"].is_string());

    let vars = dash["templating"]["list"].as_array().expect("templating");
    let mut var_names = BTreeSet::new();
    for var in vars {
        let name = var["name"].as_str().expect("variable name");
        assert!(var_names.insert(name), "variable {name} twice");
        let kind = var["type"].as_str().expect("variable type");
        assert!(
            [
                "query",
                "adhoc",
                "groupby",
                "constant",
                "datasource",
                "interval",
                "textbox",
                "custom"
            ]
            .contains(&kind),
            "variable {name} type {kind}"
        );
    }
    let ds_var = vars
        .iter()
        .find(|v| v["type"] == "datasource")
        .expect("a datasource variable");
    assert_eq!(ds_var["query"], "prometheus");
    let ds_ref = serde_json::json!({"type": "prometheus", "uid": format!("${{{}}}", ds_var["name"].as_str().unwrap())});

    let panels = dash["panels"].as_array().expect("panels");
    assert!(panels.len() >= 10, "{} panels", panels.len());
    let mut ids = BTreeSet::new();
    let mut cells: BTreeMap<(u64, u64), u64> = BTreeMap::new();
    let mut rows = 0;
    for panel in panels {
        let id = panel["id"].as_u64().expect("panel id");
        assert!(id > 0 && ids.insert(id), "panel id {id} not unique");
        let kind = panel["type"].as_str().expect("panel type");
        let g = &panel["gridPos"];
        let (x, y, w, h) = (
            g["x"].as_u64().expect("gridPos.x"),
            g["y"].as_u64().expect("gridPos.y"),
            g["w"].as_u64().expect("gridPos.w"),
            g["h"].as_u64().expect("gridPos.h"),
        );
        assert!(w >= 1 && h >= 1 && x + w <= 24, "panel {id} gridPos {g}");
        for cx in x..x + w {
            for cy in y..y + h {
                if let Some(other) = cells.insert((cx, cy), id) {
                    panic!("panels {other} and {id} overlap at ({cx}, {cy})");
                }
            }
        }
        if kind == "row" {
            rows += 1;
            // RowPanel: collapsed and panels are required; an open row
            // holds none (its panels follow it at the top level).
            assert_eq!(panel["collapsed"], false, "row {id}");
            assert_eq!(panel["panels"], serde_json::json!([]), "row {id}");
            assert_eq!(w, 24, "row {id} spans the width");
            continue;
        }
        assert!(
            ["timeseries", "stat", "bargauge", "table", "gauge"].contains(&kind),
            "panel {id} type {kind}"
        );
        assert!(
            panel["title"].as_str().is_some_and(|t| !t.is_empty()),
            "panel {id} title"
        );
        assert_eq!(panel["datasource"], ds_ref, "panel {id} datasource");
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {id} has no query");
        let mut refs = BTreeSet::new();
        for t in targets {
            let r = t["refId"].as_str().expect("refId");
            assert!(refs.insert(r), "panel {id} refId {r} twice");
            assert_eq!(t["datasource"], ds_ref, "panel {id} target {r}");
            assert!(
                t["expr"].as_str().is_some_and(|e| !e.is_empty()),
                "panel {id} target {r} expr"
            );
        }
        // Every $variable a query uses is defined (or Grafana's own).
        for t in targets {
            let expr = t["expr"].as_str().unwrap();
            for var in expr.split('$').skip(1) {
                let name: String = var
                    .trim_start_matches('{')
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                assert!(
                    var_names.contains(name.as_str()) || name.starts_with("__"),
                    "panel {id} uses undefined ${name}"
                );
            }
        }
    }
    assert!(rows >= 3, "{rows} rows");
}

/// GitHub's anchor of a Markdown heading: lower case, punctuation other
/// than `-` and `_` dropped, spaces as `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The sections of a Markdown file: (anchor, text up to the next heading).
fn sections(markdown: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    for line in markdown.lines() {
        if line.starts_with('#') {
            if let Some((a, t)) = current.take() {
                out.insert(a, t);
            }
            current = Some((slug(line.trim_start_matches('#')), String::new()));
        } else if let Some((_, t)) = current.as_mut() {
            t.push_str(line);
            t.push('\n');
        }
    }
    if let Some((a, t)) = current {
        out.insert(a, t);
    }
    out
}

#[test]
fn every_alert_has_a_runbook_section_and_a_firing_and_a_quiet_promtool_case() {
    let runbooks = sections(&read("docs/troubleshooting.md"));
    let tests = Value::deserialize(
        yaml_serde::Deserializer::from_str(&read("deploy/monitoring/watchtrace.rules.test.yaml"))
            .next()
            .unwrap(),
    )
    .unwrap();
    // alertname -> (cases where it fires, cases where it stays quiet)
    let mut cases: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for test in tests["tests"].as_array().unwrap() {
        for case in test["alert_rule_test"].as_array().into_iter().flatten() {
            let entry = cases
                .entry(case["alertname"].as_str().unwrap().to_owned())
                .or_default();
            if case["exp_alerts"].as_array().is_some_and(|a| !a.is_empty()) {
                entry.0 += 1;
            } else {
                entry.1 += 1;
            }
        }
    }
    let mut alerts = BTreeSet::new();
    let mut problems = Vec::new();
    for group in rules()["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            let Some(alert) = rule["alert"].as_str() else {
                continue;
            };
            alerts.insert(alert.to_owned());
            let url = rule["annotations"]["runbook_url"]
                .as_str()
                .unwrap_or_default();
            match url.strip_prefix("docs/troubleshooting.md#") {
                Some(anchor) => match runbooks.get(anchor) {
                    // The section names the alert it is the runbook of.
                    Some(text) if text.contains(alert) || slug(alert) == anchor => {}
                    Some(_) => problems.push(format!("{alert}: section #{anchor} never names it")),
                    None => problems.push(format!(
                        "{alert}: no section #{anchor} in docs/troubleshooting.md"
                    )),
                },
                None => problems.push(format!(
                    "{alert}: runbook_url {url:?} is not a docs/troubleshooting.md section"
                )),
            }
            match cases.get(alert) {
                Some((fires, quiet)) if *fires > 0 && *quiet > 0 => {}
                other => problems.push(format!(
                    "{alert}: promtool cases (firing, quiet) = {other:?}"
                )),
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // Every alert the issue asks for exists.
    for alert in [
        "WatchtraceApiserverTimeSpanP99High",
        "WatchtraceErrorBudgetBurnFast",
        "WatchtraceErrorBudgetBurnSlow",
        "WatchtraceClientDeliveryDelayed",
        "WatchtraceStallOngoing",
        "WatchtraceForcedCloseBurst",
        "WatchtraceGoneBurst",
        "WatchtraceCaptureLoss",
        "WatchtraceAgentDown",
        "WatchtraceAgentAbsent",
        "WatchtraceAgentDegraded",
    ] {
        assert!(alerts.contains(alert), "no alert {alert}");
    }
    // No alert tells the reader to raise a CPU limit the DaemonSet does
    // not set.
    let text = read("deploy/monitoring/watchtrace.rules.yaml");
    assert!(
        !text
            .to_lowercase()
            .contains("raise --ringbuf-size or the cpu limit")
    );
    assert!(
        !text.contains("the CPU limit."),
        "a CPU limit is mentioned as if set"
    );
    eprintln!(
        "{} alerts, each with a runbook section and promtool cases",
        alerts.len()
    );
}

#[test]
fn the_who_is_late_now_row_shows_clients_ongoing_stalls_and_the_error_budget() {
    let dash = dashboard();
    let panels = dash["panels"].as_array().unwrap();
    let row = panels
        .iter()
        .position(|p| p["type"] == "row" && p["title"] == "Who is late now")
        .expect("a row \"Who is late now\"");
    let exprs: Vec<&str> = panels[row + 1..]
        .iter()
        .take_while(|p| p["type"] != "row")
        .flat_map(|p| p["targets"].as_array().unwrap())
        .map(|t| t["expr"].as_str().unwrap())
        .collect();
    let has = |what: &str| exprs.iter().any(|e| e.contains(what));
    assert!(
        has("sum by (client) (rate(watchtrace_stall_delay_seconds_total"),
        "{exprs:#?}"
    );
    // Delivery P99 by client, from the per-client histogram.
    assert!(
        has(
            "histogram_quantile(0.99, sum by (client, le) (rate(watchtrace_delivery_seconds_bucket"
        ),
        "{exprs:#?}"
    );
    assert!(has("watchtrace_stalls_ongoing"), "{exprs:#?}");
    assert!(has("watchtrace_stall_ongoing_seconds"), "{exprs:#?}");
    for window in ["[1h]", "[6h]", "[30d]"] {
        assert!(
            exprs.iter().any(
                |e| e.contains("watchtrace_apiserver_time_span_seconds_bucket")
                    && e.contains("le=~\"1(\\\\.0)?\"")
                    && e.contains(window)
                    && e.contains("/ 0.01")
            ),
            "no burn rate over {window}: {exprs:#?}"
        );
    }
    // Right below the SLO row: the second row of the dashboard.
    let rows: Vec<&str> = panels
        .iter()
        .filter(|p| p["type"] == "row")
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    assert_eq!(rows[1], "Who is late now", "{rows:?}");
}

fn promtool() -> PathBuf {
    env::var_os("WATCHTRACE_PROMTOOL")
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("WATCHTRACE_PROMTOOL is not set: run through `cargo xtask test`"))
}

fn run_promtool(args: &[&str], dir: &Path) -> String {
    let out = Command::new(promtool())
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}:\n{text}");
    text
}

#[test]
#[ignore = "needs promtool: run through `cargo xtask test`"]
fn promtool_accepts_the_rules_their_tests_and_every_dashboard_query() {
    let monitoring = repo().join("deploy/monitoring");
    let out = run_promtool(&["check", "rules", "watchtrace.rules.yaml"], &monitoring);
    assert!(out.contains("SUCCESS"), "{out}");
    // Each alert fires on the series that should fire it, and not on
    // healthy ones (the test file's cases).
    let out = run_promtool(
        &["test", "rules", "watchtrace.rules.test.yaml"],
        &monitoring,
    );
    assert!(out.contains("SUCCESS"), "{out}");
    // The dashboard's queries parse as PromQL: each becomes a recording
    // rule, with Grafana's variables given plausible values.
    let dash = dashboard();
    let exprs = dashboard_exprs(&dash);
    let mut file = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, (_, expr)) in exprs.iter().enumerate() {
        // A variable's `label_values(SELECTOR, label)` is Grafana's, not
        // PromQL: its selector is what Prometheus evaluates.
        let expr = match expr
            .strip_prefix("label_values(")
            .and_then(|rest| rest.rsplit_once(','))
        {
            Some((selector, _)) => selector.to_owned(),
            None => expr.clone(),
        };
        let expr = expr
            .replace("$__range", "1h")
            .replace("$instance", ".*")
            .replace("${instance}", ".*");
        file.push_str(&format!(
            "      - record: watchtrace:dashboard_query_{i}\n        expr: {}\n",
            serde_json::to_string(&expr).unwrap()
        ));
    }
    let dir = env::temp_dir().join(format!("watchtrace-dashboard-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let path = dir.join("dashboard.rules.yaml");
    fs::write(&path, file).unwrap();
    let out = run_promtool(&["check", "rules", path.to_str().unwrap()], &dir);
    let _ = fs::remove_dir_all(&dir);
    assert!(
        out.contains(&format!("SUCCESS: {} rules found", exprs.len())),
        "{out}"
    );
    eprintln!(
        "promtool: rules, rule tests and {} dashboard queries pass",
        exprs.len()
    );
}

/// One HTTP/1.1 GET: (status, body).
fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    Some((head.split(' ').nth(1)?.parse().ok()?, body.to_owned()))
}

/// `# TYPE name kind` lines of an exposition.
fn exported_families(body: &str) -> BTreeMap<String, String> {
    body.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(n, k)| (n.to_owned(), k.trim().to_owned()))
        .collect()
}

/// Whether a sample line of `series` (a family or `_bucket` etc.) exists.
fn has_samples(body: &str, series: &str) -> bool {
    body.lines().any(|l| {
        l.strip_prefix(series)
            .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
    })
}

#[test]
#[ignore = "needs root: run through `cargo xtask test`"]
fn a_live_agent_exports_every_metric_the_dashboard_and_rules_use() {
    let docs = documented();
    let mut exprs = dashboard_exprs(&dashboard());
    exprs.extend(rule_exprs(&rules()));
    let used: BTreeSet<String> = exprs
        .iter()
        .flat_map(|(_, e)| {
            tokens(e)
                .filter(|t| t.starts_with("watchtrace_"))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();

    let dir = env::temp_dir().join(format!("watchtrace-dash-live-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let log = dir.join("agent.log");
    // As the DaemonSet runs it: JSON logs, metrics on an address. Killed
    // if the test fails on the way, so it traces no later test.
    let mut agent = support::KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_watchtrace"))
            .args(["run", "--log-format", "json", "--exe"])
            .arg(support::testbed_bin("fake-apiserver"))
            .arg("--metrics-addr")
            .arg(addr.to_string())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let started = Instant::now();
    while http_get(addr, "/healthz").map(|r| r.0) != Some(200) {
        assert!(started.elapsed() < Duration::from_secs(20), "no /healthz");
        thread::sleep(Duration::from_millis(200));
    }
    let mut testbed = support::testbed_run(&dir)
        .args(["-load-delay", "3s", "-duration", "6s", "--"])
        .args(["-conns", "3", "-watches-per-conn", "3", "-write-rate", "60"])
        .args(["-resources", "configmaps,secrets", "-drain", "1s"])
        .spawn()
        .unwrap();
    // Scrape while the load runs, once watch events are counted.
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut body = String::new();
    while Instant::now() < deadline {
        thread::sleep(Duration::from_secs(1));
        let (status, text) = http_get(addr, "/metrics").expect("scrape");
        assert_eq!(status, 200);
        if has_samples(&text, "watchtrace_watch_events_total")
            && has_samples(&text, "watchtrace_watch_event_bytes_total")
        {
            body = text;
            break;
        }
    }
    let _ = testbed.wait();
    // SAFETY: plain kill(2) on a child we own.
    unsafe { libc::kill(agent.id() as i32, libc::SIGTERM) };
    let status = agent.wait().unwrap();
    assert!(!body.is_empty(), "no watch events in /metrics within 40 s");

    let families = exported_families(&body);
    let mut problems = Vec::new();
    for name in &used {
        let histogram = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .filter(|base| families.get(*base).is_some_and(|k| k == "histogram"));
        let family = histogram.unwrap_or(name.as_str());
        match (families.get(family), docs.get(family)) {
            (None, _) => problems.push(format!("{family} is not exported")),
            (Some(kind), Some(doc)) if *kind != doc.kind => {
                problems.push(format!("{family} is a {kind}, documented as {}", doc.kind));
            }
            _ => {}
        }
        // A histogram with observations has all three series.
        if let Some(base) = histogram
            && has_samples(&body, &format!("{base}_count"))
        {
            for suffix in ["_bucket", "_sum", "_count"] {
                if !has_samples(&body, &format!("{base}{suffix}")) {
                    problems.push(format!("{base}{suffix} has no sample"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The traffic-driven families the dashboard's first rows read.
    for series in [
        "watchtrace_watch_events_total",
        "watchtrace_watch_event_bytes_total",
        "watchtrace_targets",
        "watchtrace_build_info",
    ] {
        assert!(has_samples(&body, series), "{series} has no sample");
    }
    // The agent stopped on SIGTERM cleanly, and every log line was JSON.
    assert!(status.success(), "agent exit {status:?}");
    let logs = fs::read_to_string(&log).unwrap();
    let mut lines = 0;
    for line in logs.lines() {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["level"].is_string() && v["message"].is_string(), "{line}");
        lines += 1;
    }
    assert!(logs.contains("SIGTERM"), "{logs}");
    let _ = fs::remove_dir_all(&dir);
    eprintln!(
        "{} metrics used by the dashboard and rules, all exported ({} families); {lines} JSON log lines",
        used.len(),
        families.len()
    );
}
