//! The agent's HTTP edge: `/metrics` (Prometheus text) and `/healthz`, a
//! minimal HTTP/1.1 responder on a tokio listener (one request per
//! connection, `Connection: close`). Bounded: a few connections at a time,
//! a small request head, a read deadline.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
    sync::Semaphore,
};

/// Connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 8;
/// The longest request head accepted.
const MAX_HEAD: usize = 8 * 1024;
/// A client has this long to send its request head.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

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
    degraded: std::sync::Mutex<Option<String>>,
}

impl Health {
    pub fn new(stale_after: Duration) -> Self {
        Self {
            started: Instant::now(),
            running: AtomicBool::new(false),
            last_beat_ms: AtomicU64::new(0),
            stale_after,
            degraded: std::sync::Mutex::new(None),
        }
    }

    /// The agent traces without something it was asked for (`None`: no
    /// longer).
    pub fn set_degraded(&self, why: Option<String>) {
        *self
            .degraded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = why;
    }

    /// Healthy, or why not.
    pub fn status(&self) -> Result<(), String> {
        if !self.is_alive() {
            return Err("the ring-buffer drain loop is not running".to_owned());
        }
        match &*self
            .degraded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
        {
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

/// Serves `/metrics` (the body `render` returns, as `content_type`) and
/// `/healthz` on `listener` until the task is dropped.
pub async fn serve(
    listener: TcpListener,
    render: Arc<dyn Fn() -> String + Send + Sync>,
    content_type: &'static str,
    health: Arc<Health>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of fds and the like: back off rather than spin.
                tracing::warn!("metrics listener: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let render = render.clone();
        let health = health.clone();
        tokio::spawn(async move {
            if let Err(e) = respond(stream, &*render, content_type, &health).await {
                tracing::debug!(%peer, "metrics request: {e}");
            }
            drop(permit);
        });
    }
}

/// Binds the listener; its address (with the port the kernel chose for
/// port 0) is logged.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let listener = TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "serving /metrics and /healthz");
    Ok(listener)
}

async fn respond(
    mut stream: TcpStream,
    render: &(dyn Fn() -> String + Send + Sync),
    content_type: &str,
    health: &Health,
) -> std::io::Result<()> {
    let head = match tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream)).await {
        Ok(head) => head?,
        Err(_) => return Ok(()),
    };
    let response = match route(&head) {
        Route::Metrics { head_only } => reply(200, "OK", content_type, &render(), head_only),
        Route::Health { head_only } => match health.status() {
            Ok(()) => reply(200, "OK", "text/plain; charset=utf-8", "ok\n", head_only),
            Err(why) => reply(
                503,
                "Service Unavailable",
                "text/plain; charset=utf-8",
                &format!("{why}\n"),
                head_only,
            ),
        },
        Route::NotFound => reply(404, "Not Found", "text/plain", "not found\n", false),
        Route::BadMethod => reply(405, "Method Not Allowed", "text/plain", "GET only\n", false),
        Route::BadRequest => reply(400, "Bad Request", "text/plain", "bad request\n", false),
    };
    stream.write_all(&response).await?;
    stream.shutdown().await
}

/// Reads up to the blank line that ends the request head.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    Ok(head)
}

#[derive(Debug, PartialEq, Eq)]
enum Route {
    Metrics { head_only: bool },
    Health { head_only: bool },
    NotFound,
    BadMethod,
    BadRequest,
}

/// What the request line asks for (the query string is ignored).
fn route(head: &[u8]) -> Route {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let Ok(line) = std::str::from_utf8(line) else {
        return Route::BadRequest;
    };
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Route::BadRequest;
    };
    if !version.starts_with("HTTP/1.") {
        return Route::BadRequest;
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Route::BadMethod,
    };
    match target.split('?').next().unwrap_or_default() {
        "/metrics" => Route::Metrics { head_only },
        "/healthz" => Route::Health { head_only },
        _ => Route::NotFound,
    }
}

fn reply(status: u16, reason: &str, content_type: &str, body: &str, head_only: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(
            route(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Metrics { head_only: false }
        );
        assert_eq!(
            route(b"HEAD /healthz?x=1 HTTP/1.0\r\n\r\n"),
            Route::Health { head_only: true }
        );
        assert_eq!(route(b"GET / HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(route(b"POST /metrics HTTP/1.1\r\n\r\n"), Route::BadMethod);
        assert_eq!(route(b"GET /metrics\r\n\r\n"), Route::BadRequest);
        assert_eq!(route(b"\xff\xfe"), Route::BadRequest);
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
    fn a_degraded_agent_is_not_healthy_and_says_why() {
        let h = Health::new(Duration::from_secs(10));
        h.set_running(true);
        assert_eq!(h.status(), Ok(()));
        h.set_degraded(Some("no_tls_probes: cannot read /proc/1/exe".into()));
        assert_eq!(
            h.status(),
            Err("degraded: no_tls_probes: cannot read /proc/1/exe".into())
        );
        h.set_degraded(None);
        assert_eq!(h.status(), Ok(()));
    }

    /// A raw HTTP/1.1 exchange with the server.
    async fn get(addr: SocketAddr, request: &str) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn serves_metrics_and_health() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let health = Arc::new(Health::new(Duration::from_secs(60)));
        let server = tokio::spawn(serve(
            listener,
            Arc::new(|| "m 1\n".to_owned()),
            "text/plain; version=0.0.4",
            health.clone(),
        ));
        let metrics = get(addr, "GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n").await;
        assert!(metrics.starts_with("HTTP/1.1 200 OK\r\n"), "{metrics}");
        assert!(metrics.contains("Content-Type: text/plain; version=0.0.4\r\n"));
        assert!(metrics.contains("Content-Length: 4\r\n"));
        assert!(metrics.ends_with("\r\n\r\nm 1\n"));
        let down = get(addr, "GET /healthz HTTP/1.1\r\n\r\n").await;
        assert!(down.starts_with("HTTP/1.1 503 "), "{down}");
        health.set_running(true);
        let up = get(addr, "GET /healthz HTTP/1.1\r\n\r\n").await;
        assert!(
            up.starts_with("HTTP/1.1 200 OK\r\n") && up.ends_with("\r\n\r\nok\n"),
            "{up}"
        );
        let head = get(addr, "HEAD /metrics HTTP/1.1\r\n\r\n").await;
        assert!(
            head.ends_with("Content-Length: 4\r\nConnection: close\r\n\r\n"),
            "{head}"
        );
        let missing = get(addr, "GET /nope HTTP/1.1\r\n\r\n").await;
        assert!(missing.starts_with("HTTP/1.1 404 "));
        server.abort();
    }
}
