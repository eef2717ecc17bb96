//! `/metrics` as the agent serves it: the model of a committed recording's
//! replay, encoded by the `prometheus-client` registry
//! (`watchtrace::exposition`) and served by the hyper endpoint, scraped over
//! TCP in both formats. The text 0.0.4 body has every documented family and
//! the same samples as the core's own rendering, and passes `promtool check
//! metrics` (ignored without promtool: `cargo xtask test` sets
//! WATCHTRACE_PROMTOOL; promtool reads text 0.0.4 only, so the OpenMetrics
//! body is checked here against the format's rules).

#[path = "support/metrics_checks.rs"]
mod metrics_checks;

use std::{
    collections::BTreeMap,
    fs::File,
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use watchtrace::{
    exposition::Exposition,
    metrics,
    metrics_server::{self, Format, Health, Render},
    model::{Model, ModelConfig},
    pipeline::PipelineConfig,
    recording::Reader,
    replay::{Line, replay},
};

/// The model after replaying a committed recording (TLS watches, etcd in
/// cleartext: watch events, timelines, etcd requests, stalls).
fn replayed_model() -> Model {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/recordings/tls-watches-cleartext-etcd.wtrec");
    let mut reader = Reader::new(File::open(&path).expect("the recording")).expect("a recording");
    let mut model = Model::new(ModelConfig::default());
    let summary = replay(&mut reader, PipelineConfig::default(), |line| {
        if let Line::Event(event) = line {
            model.on_event(&event);
        }
    });
    assert!(summary.end.is_ok(), "{:?}", summary.end);
    model
}

/// A GET of `/metrics` with this `Accept` header: (head, body).
async fn scrape(addr: SocketAddr, accept: Option<&str>) -> (String, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let accept = accept.map_or_else(String::new, |a| format!("Accept: {a}\r\n"));
    s.write_all(format!("GET /metrics HTTP/1.1\r\nHost: t\r\n{accept}\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out))
        .await
        .expect("an answer within 5 s")
        .unwrap();
    let (head, body) = out.split_once("\r\n\r\n").expect("a response head");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    (head.to_owned(), body.to_owned())
}

/// Both scrapes of a live endpoint, and the core's own text of the model.
fn scrapes() -> (String, String, String) {
    let model = Arc::new(Mutex::new(replayed_model()));
    let core_text = metrics::render(&model.lock().unwrap());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let listener = metrics_server::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let exposition = Exposition::new(model);
        let render: Render = Arc::new(move |format| exposition.render(format));
        let health = Arc::new(Health::new(Duration::from_secs(60)));
        let server = tokio::spawn(metrics_server::serve(listener, render, health));
        let (head, text) = scrape(addr, None).await;
        assert!(
            head.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8"),
            "{head}"
        );
        let (head, om) = scrape(
            addr,
            Some("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"),
        )
        .await;
        assert!(
            head.contains("Content-Type: application/openmetrics-text; version=1.0.0"),
            "{head}"
        );
        server.abort();
        (text, om, core_text)
    })
}

type Samples = BTreeMap<(String, Vec<(String, String)>), String>;

/// Every sample of a text exposition, keyed by name and sorted labels, its
/// value normalised (`1.0` and `1` are the same number).
fn samples(text: &str) -> Samples {
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .expect("parses as text 0.0.4");
    let mut out = BTreeMap::new();
    for s in scrape.samples {
        let mut labels: Vec<(String, String)> = s
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let value = match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => format!("{v:?}"),
            prometheus_parse::Value::Histogram(buckets) => {
                for b in buckets {
                    let mut l = labels.clone();
                    l.push(("le".into(), format!("{:?}", b.less_than)));
                    l.sort();
                    out.insert(
                        (format!("{}_bucket", s.metric), l),
                        format!("{:?}", b.count),
                    );
                }
                continue;
            }
            prometheus_parse::Value::Summary(_) => panic!("no summaries"),
        };
        labels.sort();
        out.insert((s.metric, labels), value);
    }
    out
}

/// `# TYPE` lines: family name to type.
fn types(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| {
            let (name, kind) = l.split_once(' ').unwrap();
            (name.to_owned(), kind.to_owned())
        })
        .collect()
}

#[test]
fn the_served_text_has_every_documented_family_and_the_cores_samples() {
    let (text, _, core_text) = scrapes();
    let documented = metrics_checks::documented_families();
    assert_eq!(types(&text), documented, "families and types as documented");
    assert_eq!(types(&text), types(&core_text));
    let (served, core) = (samples(&text), samples(&core_text));
    assert!(served.len() > 100, "a rich model: {} samples", served.len());
    assert_eq!(
        served, core,
        "the crate's encoding reads back as the core's"
    );
    // Counters start at 0 for every cause, served like the rest.
    for cause in [
        "send_buffer_full",
        "peer_zero_window",
        "connection_window",
        "stream_window",
    ] {
        let key = (
            "watchtrace_stalls_total".to_owned(),
            vec![("cause".to_owned(), cause.to_owned())],
        );
        assert!(served.contains_key(&key), "{key:?}");
    }
}

#[test]
fn openmetrics_has_the_same_families_and_ends_with_eof() {
    let (text, om, _) = scrapes();
    assert!(
        om.ends_with("# EOF\n"),
        "{}",
        &om[om.len().saturating_sub(200)..]
    );
    // OpenMetrics names a counter's family without `_total`; its samples
    // keep it.
    let om_types: BTreeMap<String, String> = types(&om)
        .into_iter()
        .map(|(name, kind)| match kind.as_str() {
            "counter" => (format!("{name}_total"), kind),
            _ => (name, kind),
        })
        .collect();
    assert_eq!(om_types, types(&text));
    assert!(
        om.contains("\nwatchtrace_goaways_total "),
        "counter samples keep _total"
    );
    assert!(om.contains("\nwatchtrace_apiserver_time_span_p99_seconds "));
    // Every sample belongs to the family described last, by the suffixes
    // its type allows; one `# EOF`, last.
    let mut family: Option<(String, String)> = None;
    for line in om.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            family = Some((name.to_owned(), kind.to_owned()));
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (name, kind) = family.as_ref().expect("a sample after its TYPE");
        let sample = line.split(['{', ' ']).next().unwrap();
        let suffix = sample.strip_prefix(name.as_str()).expect(line);
        let allowed: &[&str] = match kind.as_str() {
            "counter" => &["_total", "_created"],
            "histogram" => &["_bucket", "_sum", "_count", "_created"],
            _ => &[""],
        };
        assert!(allowed.contains(&suffix), "{line} in a {kind}");
    }
    assert_eq!(om.matches("# EOF").count(), 1);
}

#[test]
#[ignore = "needs promtool: run through `cargo xtask test`"]
fn promtool_checks_the_served_text_clean() {
    let (text, _, _) = scrapes();
    let (ok, out) = metrics_checks::promtool_check(&text);
    eprintln!(
        "promtool check metrics (text 0.0.4, {} bytes): {out:?}",
        text.len()
    );
    assert!(ok, "text 0.0.4:\n{out}");
    // The check can fail: a counter without `_total` is linted.
    let (ok, out) =
        metrics_checks::promtool_check("# HELP x_count A.\n# TYPE x_count counter\nx_count 1\n");
    assert!(!ok, "{out}");
}

#[test]
fn a_label_value_that_needs_escaping_survives_both_encoders() {
    use watchtrace::metrics::{Family, Kind, Sample, Value};
    let family = || {
        vec![Family {
            name: "watchtrace_watch_streams",
            help: "Open watch streams.",
            kind: Kind::Gauge,
            samples: vec![Sample {
                labels: vec![("client", "a\"b\\c\nd".to_owned())],
                value: Value::U64(3),
            }],
        }]
    };
    let exposition = Exposition::of(family);
    // As the format escapes them (prometheus-parse does not unescape).
    let escaped = r#"watchtrace_watch_streams{client="a\"b\\c\nd"} 3"#;
    let (_, text) = exposition.render(Format::Text);
    assert!(text.contains(escaped), "{text}");
    let (_, om) = exposition.render(Format::OpenMetrics);
    assert!(om.contains(escaped), "{om}");
}
