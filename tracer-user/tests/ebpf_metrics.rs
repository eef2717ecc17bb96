//! Root-only: `watchtrace run --metrics-addr` against the testbed. /metrics
//! is scraped while the load runs and after it ended and the agent drained;
//! both scrapes parse, and the final one's counters agree exactly with the
//! JSON lines the same run wrote: watch events and their bytes by
//! resource, LIST/WATCH requests by resourceVersion kind, bookmarks, ERROR
//! events by code, GOAWAYs and lost bytes by direction. A clean stop under
//! load loses nothing.

mod support;

use std::{
    collections::{BTreeMap, BTreeSet},
    fs::File,
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    path::Path,
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use support::testbed_bin;

const WATCHTRACE: &str = env!("CARGO_BIN_EXE_watchtrace");

/// Counters keyed by `(metric, label values joined by /)`.
type Counts = BTreeMap<(String, String), f64>;

/// A free port on loopback, for the agent to listen on.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP/1.1 GET: (status, body).
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").expect("a response head");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

/// `/metrics`, parsed; every sample line must be readable, and the body
/// passes `promtool check metrics` (under load and after it).
fn scrape(addr: SocketAddr) -> prometheus_parse::Scrape {
    let (status, body) = get(addr, "/metrics");
    assert_eq!(status, 200);
    let (clean, said) = support::metrics_checks::promtool_check(&body);
    assert!(
        clean,
        "promtool check metrics on the live agent's /metrics:\n{said}"
    );
    let scrape =
        prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).expect("parses");
    let sample_lines = body.lines().filter(|l| !l.starts_with('#')).count();
    assert!(sample_lines > 0);
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        assert!(
            matches!(
                prometheus_parse::LineInfo::parse(line),
                prometheus_parse::LineInfo::Sample { .. }
            ),
            "unreadable sample line {line:?}"
        );
    }
    scrape
}

/// The sum of `metric`'s samples grouped by the values of `by`.
fn sum_by(scrape: &prometheus_parse::Scrape, metric: &str, by: &[&str]) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for s in scrape.samples.iter().filter(|s| s.metric == metric) {
        let value = match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => panic!("{metric} is not a plain sample"),
        };
        let key: Vec<&str> = by.iter().map(|l| s.labels.get(l).unwrap_or("")).collect();
        *out.entry(key.join("/")).or_default() += value;
    }
    out
}

/// The counters this test compares, from a scrape.
fn scraped_counts(scrape: &prometheus_parse::Scrape) -> Counts {
    let mut out = Counts::new();
    let mut put = |metric: &str, by: &[&str]| {
        for (k, v) in sum_by(scrape, metric, by) {
            out.insert((metric.to_owned(), k), v);
        }
    };
    put("watchtrace_watch_events_total", &["resource"]);
    put("watchtrace_watch_event_bytes_total", &["resource"]);
    put("watchtrace_watch_events_received_total", &["resource"]);
    put(
        "watchtrace_requests_total",
        &["verb", "resource_version_kind"],
    );
    put("watchtrace_bookmarks_total", &["resource"]);
    put("watchtrace_watch_errors_total", &["resource", "code"]);
    put("watchtrace_capture_lost_bytes_total", &["direction"]);
    put("watchtrace_goaways_total", &[]);
    // A zero counter and a missing series say the same.
    out.retain(|_, v| *v != 0.0);
    out
}

/// The same counters, from the JSON lines.
fn counted_from_events(path: &Path) -> (Counts, usize) {
    let mut out = Counts::new();
    let mut lines = 0;
    let mut goaways = BTreeSet::new();
    let mut add = |metric: &str, key: String, n: f64| {
        *out.entry((metric.to_owned(), key)).or_default() += n;
    };
    for line in BufReader::new(File::open(path).unwrap()).lines() {
        let v: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
        lines += 1;
        let s = |field: &str| v[field].as_str().unwrap_or_default().to_owned();
        match v["kind"].as_str().unwrap() {
            "watch_event" if s("direction") == "in" => {
                add("watchtrace_watch_events_received_total", s("resource"), 1.0);
            }
            "watch_event" => {
                let resource = s("resource");
                add("watchtrace_watch_events_total", resource.clone(), 1.0);
                add(
                    "watchtrace_watch_event_bytes_total",
                    resource.clone(),
                    v["bytes"].as_f64().unwrap(),
                );
                match v["event_type"].as_str().unwrap() {
                    "BOOKMARK" => add("watchtrace_bookmarks_total", resource, 1.0),
                    "ERROR" => {
                        let code = v["error_code"]
                            .as_i64()
                            .map_or("unknown".to_owned(), |c| c.to_string());
                        add(
                            "watchtrace_watch_errors_total",
                            format!("{resource}/{code}"),
                            1.0,
                        );
                    }
                    _ => {}
                }
            }
            "request" => {
                let verb = s("verb");
                if verb == "list" || verb == "watch" {
                    add(
                        "watchtrace_requests_total",
                        format!("{verb}/{}", s("resource_version_kind")),
                        1.0,
                    );
                }
            }
            "gap" => add(
                "watchtrace_capture_lost_bytes_total",
                s("direction"),
                v["len"].as_f64().unwrap(),
            ),
            // One GOAWAY ends its streams at one instant: count it once.
            "stream_end"
                if v["how"] == "goaway"
                    && goaways.insert((v["conn"].as_u64(), v["ts"].as_u64())) =>
            {
                add("watchtrace_goaways_total", String::new(), 1.0);
            }
            _ => {}
        }
    }
    (out, lines)
}

/// The agent's stdout once it has exited (successfully).
fn finish(mut agent: support::KillOnDrop) -> String {
    let mut stdout = String::new();
    agent
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    assert!(agent.wait().unwrap().success());
    stdout
}

/// The `key=value` counters of the agent's closing summary.
fn summary(stdout: &str) -> BTreeMap<&str, f64> {
    stdout
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| Some((k, v.parse().ok()?)))
        .collect()
}

#[test]
#[ignore = "needs root: run through `cargo xtask test`"]
fn metrics_agree_with_the_events_of_the_same_run() {
    let (_turn, dir) = support::testbed_turn("watchtrace-metrics");
    let events = dir.join("events.jsonl");
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    // By executable, not by comm: only this test's apiserver, even if
    // another testbed runs on the machine.
    let agent = support::KillOnDrop(
        Command::new(WATCHTRACE)
            .arg("run")
            .arg("--exe")
            .arg(testbed_bin("fake-apiserver"))
            .arg("--metrics-addr")
            .arg(addr.to_string())
            .arg("--events")
            .arg(&events)
            .stdout(Stdio::piped())
            .stderr(File::create(dir.join("agent.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    // The agent serves health as soon as its loop runs.
    let started = Instant::now();
    loop {
        if TcpStream::connect(addr).is_ok() && get(addr, "/healthz") == (200, "ok\n".to_owned()) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no /healthz from the agent"
        );
        thread::sleep(Duration::from_millis(200));
    }

    // The load starts 3 s after fake-apiserver, so the agent (rescanning
    // every second) sees every request from its HEADERS.
    let mut testbed = support::testbed_run(&dir)
        .args(["-load-delay", "3s", "-duration", "6s", "--"])
        .args(["-conns", "3", "-watches-per-conn", "3", "-write-rate", "60"])
        .args(["-resources", "configmaps,secrets", "-drain", "1s"])
        .spawn()
        .unwrap();

    // While the load runs: the scrape parses and already counts events,
    // and the target and probes are there.
    let mut during = None;
    let deadline = Instant::now() + Duration::from_secs(40);
    while during.is_none() && Instant::now() < deadline {
        thread::sleep(Duration::from_secs(1));
        let s = scrape(addr);
        let events: f64 = sum_by(&s, "watchtrace_watch_events_total", &[])
            .values()
            .sum();
        let targets = sum_by(&s, "watchtrace_targets", &[])[""];
        // Capture figures are refreshed each second: wait for the first
        // refresh after the apiserver was found.
        if events > 0.0 && targets > 0.0 {
            assert_eq!(targets, 1.0);
            assert_eq!(
                sum_by(&s, "watchtrace_watch_streams", &[])[""],
                9.0,
                "3 connections x 3 watches"
            );
            let runs: f64 = sum_by(&s, "watchtrace_probe_runs_total", &[])
                .values()
                .sum();
            assert!(runs > 0.0, "probe run counts are read");
            during = Some(scraped_counts(&s));
        }
    }
    let during = during.expect("watch events show up in /metrics while the load runs");
    assert!(testbed.wait().unwrap().success(), "testbed-run failed");

    // After the load: the agent drains, closes the streams and connections
    // of the exited apiserver, and flushes the events file each second.
    // Compare once both sides have settled.
    let mut last = None;
    for _ in 0..15 {
        thread::sleep(Duration::from_millis(1500));
        let scraped = scraped_counts(&scrape(addr));
        let (counted, lines) = counted_from_events(&events);
        if scraped == counted {
            last = Some((scraped, lines));
            break;
        }
        last = None;
        eprintln!("not settled yet:\n scraped {scraped:?}\n counted {counted:?}");
    }
    let (fin, lines) = last.expect("/metrics agrees with the JSON lines");
    assert_eq!(get(addr, "/healthz").0, 200, "the loop is still alive");

    // Counters only grow.
    for (key, v) in &during {
        assert!(
            fin.get(key).copied().unwrap_or(0.0) >= *v,
            "{key:?} went back"
        );
    }
    let events_by_resource: BTreeMap<&str, f64> = fin
        .iter()
        .filter(|((m, _), _)| m == "watchtrace_watch_events_total")
        .map(|((_, r), v)| (r.as_str(), *v))
        .collect();
    assert_eq!(
        events_by_resource.keys().copied().collect::<Vec<_>>(),
        ["configmaps", "secrets"]
    );
    assert!(events_by_resource.values().sum::<f64>() > 100.0);
    let lists = fin
        .get(&("watchtrace_requests_total".into(), "list/zero".into()))
        .copied();
    assert_eq!(lists, Some(9.0), "client-go style LIST rv=0 per watch");

    // SIGINT: the agent stops as it would at Ctrl-C and prints its counters.
    // SAFETY: kill has no memory preconditions; the pid is our child's.
    let rc = unsafe { libc::kill(agent.id() as i32, libc::SIGINT) };
    assert_eq!(rc, 0);
    let stdout = finish(agent);
    let printed = summary(&stdout);
    let lost: f64 = fin
        .iter()
        .filter(|((m, _), _)| m == "watchtrace_capture_lost_bytes_total")
        .map(|(_, v)| v)
        .sum::<f64>()
        + 0.0; // an empty sum is -0
    assert!(lost <= printed["gap_bytes"], "{lost} vs {stdout}");
    println!(
        "{} event lines; /metrics at the end: {} watch events ({:?}), lost bytes {lost}",
        lines,
        events_by_resource.values().sum::<f64>(),
        events_by_resource
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
#[ignore = "needs root: run through `cargo xtask test`"]
fn a_clean_stop_under_load_reports_no_loss() {
    // The agent stops (its --duration) while the apiserver writes some
    // thousand events a second: what it wrote after the last drain is
    // still in the ring, not lost, so the summary and the events file show
    // no gap.
    let (_turn, dir) = support::testbed_turn("watchtrace-stop");
    let events = dir.join("events.jsonl");
    let mut testbed = support::testbed_run(&dir)
        .args(["-duration", "9s", "--"])
        .args([
            "-conns",
            "10",
            "-watches-per-conn",
            "10",
            "-write-rate",
            "150",
        ])
        .args(["-resources", "configmaps", "-namespaces", "ns-0"])
        .args([
            "-write-resources",
            "configmaps",
            "-write-namespaces",
            "ns-0",
        ])
        .args(["-object-size", "1000"])
        .spawn()
        .unwrap();
    let agent = support::KillOnDrop(
        Command::new(WATCHTRACE)
            .args(["run", "--exe", &support::fake_apiserver_exe()])
            .args(["--duration", "5", "--events"])
            .arg(&events)
            .stdout(Stdio::piped())
            .stderr(File::create(dir.join("agent.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let output = finish(agent);
    assert!(testbed.wait().unwrap().success(), "testbed-run failed");
    let summary = summary(&output);
    assert!(summary["tls_writes"] > 10_000.0, "under load: {output}");
    assert_eq!(
        (summary["gaps"], summary["gap_bytes"], summary["lost_bytes"]),
        (0.0, 0.0, 0.0),
        "{output}"
    );
    let (counted, _) = counted_from_events(&events);
    assert!(
        !counted
            .keys()
            .any(|(m, _)| m == "watchtrace_capture_lost_bytes_total"),
        "gap lines: {counted:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Before any traffic (no target running yet), `/metrics` already has
/// every family docs/metrics.md documents, with its type: a dashboard or
/// an alert on a fresh agent reads 0, never "No data".
#[test]
#[ignore = "needs root: run through `cargo xtask test`"]
fn before_any_traffic_every_documented_family_is_scraped() {
    let dir = std::env::temp_dir().join(format!("watchtrace-metrics-idle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    // A target that does not run: the agent waits for it, serving.
    let agent = support::KillOnDrop(
        Command::new(WATCHTRACE)
            .args(["run", "--comm", "wt-not-running"])
            .arg("--metrics-addr")
            .arg(addr.to_string())
            .stdout(Stdio::piped())
            .stderr(File::create(dir.join("agent.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let started = Instant::now();
    while !(TcpStream::connect(addr).is_ok() && get(addr, "/healthz").0 == 200) {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no /healthz from the agent"
        );
        thread::sleep(Duration::from_millis(200));
    }
    let (status, body) = get(addr, "/metrics");
    assert_eq!(status, 200);
    let (clean, said) = support::metrics_checks::promtool_check(&body);
    assert!(clean, "promtool check metrics before any traffic:\n{said}");
    let served: BTreeMap<&str, &str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .collect();
    let documented = support::metrics_checks::documented_families();
    assert!(documented.len() > 40, "the docs' table was read");
    let missing: Vec<&String> = documented
        .iter()
        .filter(|(name, kind)| served.get(name.as_str()) != Some(&kind.as_str()))
        .map(|(name, _)| name)
        .collect();
    println!(
        "{} documented families, {} served before any traffic",
        documented.len(),
        served.len()
    );
    assert!(
        missing.is_empty(),
        "families missing (or of another type) before any traffic: {missing:?}"
    );
    // The counters a dashboard sums are there at 0 for every known label.
    for line in [
        "watchtrace_stalls_total{cause=\"peer_zero_window\"} 0",
        "watchtrace_stalls_ongoing{cause=\"send_buffer_full\"} 0",
        "watchtrace_capture_lost_bytes_total{direction=\"out\"} 0",
    ] {
        assert!(body.contains(line), "{line} missing:\n{body}");
    }
    drop(agent);
    std::fs::remove_dir_all(&dir).unwrap();
}
