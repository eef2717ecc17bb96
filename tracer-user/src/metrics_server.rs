//! The agent's HTTP edge: `/metrics` (Prometheus text 0.0.4, or OpenMetrics
//! when the scraper asks for it) and the probes, `/livez` (the drain loop
//! runs) and `/readyz` (live and not degraded; `/healthz` is the same), on
//! hyper's HTTP/1.1 server over the tokio runtime the agent runs on. One
//! request per connection.
//!
//! The endpoint may face the host network (the DaemonSet), so it is bounded:
//! a request head of at most 8 KiB and 32 headers, 5 s to send it, no
//! request body, 10 s for a whole exchange, and at most 64 connections at
//! once. A new connection at the cap evicts the oldest one that has not
//! sent its request head yet (or, failing that, one stuck writing its
//! response), so idle or slow clients cannot keep a scrape out: a scraper
//! sends its head at once and is then never the one evicted.

use std::{
    collections::VecDeque,
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use http_body_util::Full;
use hyper::{
    Method, Request, Response, StatusCode,
    body::{Body as _, Bytes, Incoming},
    header::{ACCEPT, CONTENT_TYPE, HeaderValue},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{net::TcpListener, task::AbortHandle};

/// Connections served at once; a new one beyond evicts an idle one.
const MAX_CONNECTIONS: usize = 64;
/// The longest request head accepted (hyper's smallest read buffer).
const MAX_HEAD: usize = 8 * 1024;
/// The most header fields accepted in a request.
const MAX_HEADERS: usize = 32;
/// A client has this long to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// A whole exchange (head, rendering, writing the response) ends by then.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection writing its response for longer than this may be evicted
/// when every slot is taken and none is waiting for its head.
const SLOW_WRITE: Duration = Duration::from_secs(1);

/// Whether the ring-buffer drain loop is alive: it says so when it starts,
/// beats at least once a second while it runs, and says when it stops.
#[derive(Debug)]
pub struct Health {
    started: Instant,
    running: AtomicBool,
    /// Milliseconds after `started` of the last beat.
    last_beat_ms: AtomicU64,
    /// A loop silent for longer than this is stuck.
    stale_after: Duration,
    /// What the agent does without for lack of a privilege: not healthy.
    degraded: Mutex<Option<String>>,
}

impl Health {
    pub fn new(stale_after: Duration) -> Self {
        Self {
            started: Instant::now(),
            running: AtomicBool::new(false),
            last_beat_ms: AtomicU64::new(0),
            stale_after,
            degraded: Mutex::new(None),
        }
    }

    /// The agent traces without something it was asked for (`None`: no
    /// longer).
    pub fn set_degraded(&self, why: Option<String>) {
        *self.degraded.lock().unwrap_or_else(PoisonError::into_inner) = why;
    }

    /// Live (`/livez`), or why not: the drain loop runs. A degraded agent
    /// is live: a restart gives it no privilege, only a crash loop.
    pub fn live(&self) -> Result<(), String> {
        if self.is_alive() {
            Ok(())
        } else {
            Err("the ring-buffer drain loop is not running".to_owned())
        }
    }

    /// Ready (`/readyz`, and `/healthz`), or why not: live and traces
    /// everything it was asked to.
    pub fn ready(&self) -> Result<(), String> {
        self.live()?;
        match &*self.degraded.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(why) => Err(format!("degraded: {why}")),
            None => Ok(()),
        }
    }

    /// The loop is running (or stopped, with `false`).
    pub fn set_running(&self, running: bool) {
        self.beat();
        self.running.store(running, Ordering::Release);
    }

    /// The loop made progress.
    pub fn beat(&self) {
        let ms = self.started.elapsed().as_millis() as u64;
        self.last_beat_ms.store(ms, Ordering::Release);
    }

    /// Running, and beat recently.
    pub fn is_alive(&self) -> bool {
        let last = Duration::from_millis(self.last_beat_ms.load(Ordering::Acquire));
        self.running.load(Ordering::Acquire)
            && self.started.elapsed().saturating_sub(last) <= self.stale_after
    }
}

/// What `/metrics` is asked for, by the request's `Accept` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4 (the default).
    Text,
    /// OpenMetrics text 1.0.0.
    OpenMetrics,
}

/// Renders the metrics in a format: its `Content-Type` and body.
pub type Render = Arc<dyn Fn(Format) -> (&'static str, String) + Send + Sync>;

/// Serves `/metrics` (what `render` returns) and `/healthz` on `listener`
/// until the task is dropped.
pub async fn serve(listener: TcpListener, render: Render, health: Arc<Health>) {
    let conns = Arc::new(Conns::default());
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of fds and the like: back off rather than spin.
                tracing::warn!("metrics listener: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if !conns.make_room() {
            // Every slot is rendering or has just begun writing: this is
            // over in moments, and the client may retry.
            tracing::debug!(%peer, "metrics request refused: every connection busy");
            continue;
        }
        let state = Arc::new(ConnState::default());
        let service = {
            let (render, health, state) = (render.clone(), health.clone(), state.clone());
            service_fn(move |request| {
                state.head_read();
                let response = respond(&request, &*render, &health);
                async move { Ok::<_, Infallible>(response) }
            })
        };
        let guard = ConnGuard {
            conns: conns.clone(),
            id: Arc::as_ptr(&state) as usize,
        };
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEAD_TIMEOUT)
            .max_buf_size(MAX_HEAD)
            .max_headers(MAX_HEADERS)
            .keep_alive(false)
            .title_case_headers(true)
            .serve_connection(TokioIo::new(stream), service);
        let task = tokio::spawn(async move {
            let _guard = guard;
            match tokio::time::timeout(EXCHANGE_TIMEOUT, connection).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!(%peer, "metrics request: {e}"),
                Err(_) => tracing::debug!(%peer, "metrics request: timed out"),
            }
        });
        conns.add(state, task.abort_handle());
    }
}

/// Binds the listener; its address (with the port the kernel chose for
/// port 0) is logged.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let listener = TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "serving /metrics and /healthz");
    Ok(listener)
}

/// The connections being served, oldest first.
#[derive(Default)]
struct Conns {
    live: Mutex<VecDeque<(Arc<ConnState>, AbortHandle)>>,
}

/// One connection's progress, for choosing whom to evict.
#[derive(Default)]
struct ConnState {
    /// Milliseconds after `EPOCH` its request head was read (0: not yet).
    head_at_ms: AtomicU64,
}

/// Removes a connection from [`Conns`] when its task ends or is aborted.
struct ConnGuard {
    conns: Arc<Conns>,
    id: usize,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.conns
            .lock()
            .retain(|(state, _)| Arc::as_ptr(state) as usize != self.id);
    }
}

impl ConnState {
    fn head_read(&self) {
        self.head_at_ms.store(now_ms().max(1), Ordering::Release);
    }
}

/// A monotonic clock in milliseconds, for [`ConnState`].
fn now_ms() -> u64 {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64
}

impl Conns {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(Arc<ConnState>, AbortHandle)>> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn add(&self, state: Arc<ConnState>, task: AbortHandle) {
        let mut live = self.lock();
        // The task may be over already (its guard found nothing to remove).
        if !task.is_finished() {
            live.push_back((state, task));
        }
    }

    /// Whether a new connection may be served, after evicting one if every
    /// slot is taken: the oldest still waiting for its request head, else
    /// the oldest writing its response for over [`SLOW_WRITE`].
    fn make_room(&self) -> bool {
        let mut live = self.lock();
        live.retain(|(_, task)| !task.is_finished());
        if live.len() < MAX_CONNECTIONS {
            return true;
        }
        let now = now_ms();
        let slow = SLOW_WRITE.as_millis() as u64;
        let victim = live
            .iter()
            .position(|(s, _)| s.head_at_ms.load(Ordering::Acquire) == 0)
            .or_else(|| {
                live.iter().position(|(s, _)| {
                    now.saturating_sub(s.head_at_ms.load(Ordering::Acquire)) > slow
                })
            });
        match victim.and_then(|i| live.remove(i)) {
            Some((_, task)) => {
                task.abort();
                true
            }
            None => false,
        }
    }
}

/// The response to one request.
fn respond(
    request: &Request<Incoming>,
    render: &(dyn Fn(Format) -> (&'static str, String) + Send + Sync),
    health: &Health,
) -> Response<Full<Bytes>> {
    const PLAIN: &str = "text/plain; charset=utf-8";
    // hyper answers a HEAD with the GET's headers (its Content-Length
    // too) and no body.
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        return reply(StatusCode::METHOD_NOT_ALLOWED, PLAIN, "GET only\n".into());
    }
    // A GET or HEAD has no use for a body, and none is read.
    if !request.body().is_end_stream() {
        return reply(
            StatusCode::PAYLOAD_TOO_LARGE,
            PLAIN,
            "no request body\n".into(),
        );
    }
    match request.uri().path() {
        "/metrics" => {
            let accept = request.headers().get(ACCEPT).and_then(|v| v.to_str().ok());
            let (content_type, body) = render(negotiate(accept.unwrap_or_default()));
            reply(StatusCode::OK, content_type, body)
        }
        "/livez" => probe(health.live()),
        "/readyz" | "/healthz" => probe(health.ready()),
        _ => reply(StatusCode::NOT_FOUND, PLAIN, "not found\n".into()),
    }
}

/// A probe's answer: `200 ok`, or `503` with the reason.
fn probe(status: Result<(), String>) -> Response<Full<Bytes>> {
    const PLAIN: &str = "text/plain; charset=utf-8";
    match status {
        Ok(()) => reply(StatusCode::OK, PLAIN, "ok\n".into()),
        Err(why) => reply(StatusCode::SERVICE_UNAVAILABLE, PLAIN, format!("{why}\n")),
    }
}

/// The format an `Accept` header prefers: OpenMetrics when it ranks
/// `application/openmetrics-text` above (or with) `text/plain` and `*/*`, as
/// Prometheus' scrapes do by default; else text 0.0.4.
fn negotiate(accept: &str) -> Format {
    let mut best: Option<(f32, Format)> = None;
    for range in accept.split(',') {
        let mut params = range.split(';').map(str::trim);
        let format = match params
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase()
            .as_str()
        {
            "application/openmetrics-text" => Format::OpenMetrics,
            "text/plain" | "text/*" | "*/*" => Format::Text,
            _ => continue,
        };
        let q = params
            .filter_map(|p| p.strip_prefix("q="))
            .find_map(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        if q > 0.0 && best.is_none_or(|(b, _)| q > b) {
            best = Some((q, format));
        }
    }
    best.map_or(Format::Text, |(_, f)| f)
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

#[cfg(test)]
mod tests {
    use tokio::{
        io::{AsyncReadExt as _, AsyncWriteExt as _},
        net::TcpStream,
    };

    use super::*;

    #[test]
    fn accept_headers_choose_the_format() {
        assert_eq!(negotiate(""), Format::Text);
        assert_eq!(negotiate("*/*"), Format::Text);
        assert_eq!(negotiate("text/plain;version=0.0.4"), Format::Text);
        // Prometheus 2's and 3's default scrape Accept headers.
        assert_eq!(
            negotiate(
                "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
            ),
            Format::OpenMetrics
        );
        assert_eq!(
            negotiate(
                "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1"
            ),
            Format::OpenMetrics
        );
        // A scraper that ranks text first, or refuses OpenMetrics.
        assert_eq!(
            negotiate("text/plain;q=0.9, application/openmetrics-text;q=0.5"),
            Format::Text
        );
        assert_eq!(
            negotiate("application/openmetrics-text;q=0, */*;q=0.1"),
            Format::Text
        );
        assert_eq!(negotiate("application/json"), Format::Text);
    }

    #[test]
    fn health_needs_a_running_loop_that_beats() {
        let h = Health::new(Duration::from_millis(50));
        assert!(!h.is_alive(), "not started");
        h.set_running(true);
        assert!(h.is_alive());
        std::thread::sleep(Duration::from_millis(80));
        assert!(!h.is_alive(), "silent for too long");
        h.beat();
        assert!(h.is_alive());
        h.set_running(false);
        assert!(!h.is_alive(), "stopped");
    }

    #[test]
    fn a_degraded_agent_is_live_but_not_ready_and_says_why() {
        let h = Health::new(Duration::from_secs(10));
        h.set_running(true);
        assert_eq!((h.live(), h.ready()), (Ok(()), Ok(())));
        h.set_degraded(Some("no_tls_probes: cannot read /proc/1/exe".into()));
        assert_eq!(h.live(), Ok(()), "a restart would give it no privilege");
        assert_eq!(
            h.ready(),
            Err("degraded: no_tls_probes: cannot read /proc/1/exe".into())
        );
        h.set_degraded(None);
        assert_eq!(h.ready(), Ok(()));
        h.set_running(false);
        assert!(h.live().is_err() && h.ready().is_err());
    }

    /// A raw HTTP/1.1 exchange with the server.
    async fn get(addr: SocketAddr, request: &str) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    /// A server on a free port, rendering `m 1` in the format asked.
    async fn start(health: Arc<Health>) -> (SocketAddr, AbortOnDrop) {
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let render: Render = Arc::new(|format| match format {
            Format::Text => ("text/plain; version=0.0.4", "m 1\n".to_owned()),
            Format::OpenMetrics => ("application/openmetrics-text", "m 1\n# EOF\n".to_owned()),
        });
        (
            addr,
            AbortOnDrop(tokio::spawn(serve(listener, render, health))),
        )
    }

    struct AbortOnDrop(tokio::task::JoinHandle<()>);

    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            self.0.abort();
        }
    }

    #[tokio::test]
    async fn serves_metrics_and_health() {
        let health = Arc::new(Health::new(Duration::from_secs(60)));
        let (addr, _server) = start(health.clone()).await;
        let metrics = get(addr, "GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n").await;
        assert!(metrics.starts_with("HTTP/1.1 200 OK\r\n"), "{metrics}");
        assert!(metrics.contains("Content-Type: text/plain; version=0.0.4\r\n"));
        assert!(metrics.contains("Content-Length: 4\r\n"));
        assert!(metrics.contains("Connection: close\r\n"));
        assert!(metrics.ends_with("\r\n\r\nm 1\n"));
        let om = get(
            addr,
            "GET /metrics?x=1 HTTP/1.1\r\nAccept: application/openmetrics-text;version=1.0.0\r\n\r\n",
        )
        .await;
        assert!(
            om.contains("Content-Type: application/openmetrics-text\r\n"),
            "{om}"
        );
        assert!(om.ends_with("\r\n\r\nm 1\n# EOF\n"), "{om}");
        let down = get(addr, "GET /healthz HTTP/1.1\r\n\r\n").await;
        assert!(down.starts_with("HTTP/1.1 503 "), "{down}");
        assert!(
            down.ends_with("the ring-buffer drain loop is not running\n"),
            "{down}"
        );
        health.set_running(true);
        let up = get(addr, "GET /healthz HTTP/1.1\r\n\r\n").await;
        assert!(
            up.starts_with("HTTP/1.1 200 OK\r\n") && up.ends_with("\r\n\r\nok\n"),
            "{up}"
        );
        let up10 = get(addr, "HEAD /healthz?x=1 HTTP/1.0\r\n\r\n").await;
        assert!(up10.starts_with("HTTP/1.0 200 OK\r\n"), "{up10}");
        health.set_degraded(Some("no_anchors".into()));
        let live = get(addr, "GET /livez HTTP/1.1\r\n\r\n").await;
        assert!(live.starts_with("HTTP/1.1 200 OK\r\n"), "{live}");
        for path in ["/readyz", "/healthz"] {
            let ready = get(addr, &format!("GET {path} HTTP/1.1\r\n\r\n")).await;
            assert!(ready.starts_with("HTTP/1.1 503 "), "{path}: {ready}");
            assert!(ready.ends_with("degraded: no_anchors\n"), "{path}: {ready}");
        }
        health.set_degraded(None);
        let head = get(addr, "HEAD /metrics HTTP/1.1\r\n\r\n").await;
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.contains("Content-Length: 4\r\n"), "{head}");
        assert!(head.ends_with("\r\n\r\n"), "no body: {head}");
        let missing = get(addr, "GET /nope HTTP/1.1\r\n\r\n").await;
        assert!(missing.starts_with("HTTP/1.1 404 "), "{missing}");
        let root = get(addr, "GET / HTTP/1.1\r\n\r\n").await;
        assert!(root.starts_with("HTTP/1.1 404 "), "{root}");
        let post = get(addr, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n").await;
        assert!(post.starts_with("HTTP/1.1 405 "), "{post}");
        let body = get(
            addr,
            "GET /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
        )
        .await;
        assert!(body.starts_with("HTTP/1.1 413 "), "{body}");
        let garbage = get(addr, "\u{ff}\u{fe} nonsense\r\n\r\n").await;
        assert!(
            garbage.starts_with("HTTP/1.1 400 ") || garbage.is_empty(),
            "{garbage}"
        );
    }

    #[tokio::test]
    async fn an_oversized_request_head_is_refused() {
        let (addr, _server) = start(Arc::new(Health::new(Duration::from_secs(60)))).await;
        let big = format!(
            "GET /metrics HTTP/1.1\r\nX-Big: {}\r\n\r\n",
            "a".repeat(MAX_HEAD + 1)
        );
        let answer = get(addr, &big).await;
        assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: 1\r\n")).collect();
        let answer = get(addr, &format!("GET /metrics HTTP/1.1\r\n{many}\r\n")).await;
        assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_scrape_answers_within_a_second_with_200_idle_and_slow_clients_connected() {
        let (addr, _server) = start(Arc::new(Health::new(Duration::from_secs(60)))).await;
        let mut held = Vec::new();
        // 100 clients that connect and say nothing...
        for _ in 0..100 {
            held.push(TcpStream::connect(addr).await.unwrap());
        }
        // ...and 100 that send part of a head and then dribble a byte at a
        // time, as a slowloris would.
        let mut slow = Vec::new();
        for _ in 0..100 {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(b"GET /metrics HTTP/1.1\r\nX-Slow: ")
                .await
                .unwrap();
            slow.push(s);
        }
        let dribble = tokio::spawn(async move {
            loop {
                for s in &mut slow {
                    let _ = s.write_all(b"a").await;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        for scrape in 0..5 {
            let began = Instant::now();
            let answer = tokio::time::timeout(
                Duration::from_secs(1),
                get(addr, "GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n"),
            )
            .await
            .unwrap_or_else(|_| panic!("scrape {scrape} took over 1 s"));
            assert!(answer.ends_with("\r\n\r\nm 1\n"), "{answer}");
            eprintln!(
                "scrape {scrape}: {:?} with 200 idle or slow clients",
                began.elapsed()
            );
            // More idle clients arrive between scrapes.
            for _ in 0..20 {
                held.push(TcpStream::connect(addr).await.unwrap());
            }
        }
        dribble.abort();
    }
}
