//! The `h2` crate's side: an h2 client connection reading the same server
//! bytes from an in-memory duplex pipe, on a single-threaded tokio
//! runtime (one core, like our decoder).
//!
//! A mock server on the other end of the pipe sends the capture's SETTINGS
//! preamble, reads the client's bytes (and keeps draining them: the
//! client's WINDOW_UPDATEs), and once the client has sent one HEADERS per
//! watch, writes the capture's responses. The client reads every DATA
//! frame through each stream's `RecvStream`, releasing the capacity it
//! consumed, as an application does. The windows are set to the maximum
//! (2^31 - 1) because the mock replays bytes without waiting for window
//! updates.
//!
//! The time (CPU time of the runtime's one thread) runs from the first
//! response byte written to the last stream ended. It includes the pipe's copies (written once, read once), which
//! [`transport_only`] measures alone.

use std::{future::Future, time::Duration};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _, DuplexStream},
    sync::oneshot,
};

use crate::{
    CpuTime,
    capture::{Capture, MAX_FRAME, MAX_WINDOW},
};

/// Capacity of the in-memory pipe, each way.
const PIPE: usize = 1 << 20;
/// Bytes per write of the mock server.
const WRITE: usize = 64 * 1024;

/// Reads the client's bytes until EOF; says when `expected` HEADERS frames
/// have arrived.
async fn read_client(
    mut rd: tokio::io::ReadHalf<DuplexStream>,
    expected: usize,
    mut ready: Option<oneshot::Sender<()>>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut pending = Vec::new();
    let mut skip_preface = 24;
    let mut headers = 0;
    loop {
        let n = match rd.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if ready.is_none() {
            continue;
        }
        pending.extend_from_slice(&buf[..n]);
        let skip = skip_preface.min(pending.len());
        pending.drain(..skip);
        skip_preface -= skip;
        while pending.len() >= 9 {
            let len = usize::from(pending[0]) << 16
                | usize::from(pending[1]) << 8
                | usize::from(pending[2]);
            if pending.len() < 9 + len {
                break;
            }
            headers += usize::from(pending[3] == 1);
            pending.drain(..9 + len);
        }
        if headers >= expected {
            let _ = ready.take().expect("checked").send(());
            pending.clear();
        }
    }
}

/// Runs `f` on a fresh single-threaded runtime.
fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}

/// h2 reading every DATA byte of the capture; returns the time and the
/// DATA bytes read.
pub(crate) fn framing(capture: &Capture) -> (Duration, u64) {
    block_on(async {
        let (client_io, server_io) = tokio::io::duplex(PIPE);
        let (server_rd, mut server_wr) = tokio::io::split(server_io);
        let (ready_tx, ready_rx) = oneshot::channel();
        let reader = tokio::spawn(read_client(
            server_rd,
            capture.watches.len(),
            Some(ready_tx),
        ));
        let preamble = capture.server_preamble.clone();
        let body = capture.server_body.clone();
        let writer = tokio::spawn(async move {
            server_wr.write_all(&preamble).await.expect("preamble");
            ready_rx.await.expect("requests sent");
            let start = CpuTime::now();
            for piece in body.chunks(WRITE) {
                server_wr.write_all(piece).await.expect("body");
            }
            (start, server_wr)
        });

        let (mut send, conn) = h2::client::Builder::new()
            .initial_window_size(MAX_WINDOW)
            .initial_connection_window_size(MAX_WINDOW)
            .max_frame_size(MAX_FRAME as u32)
            .handshake::<_, bytes::Bytes>(client_io)
            .await
            .expect("h2 handshake");
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut responses = Vec::new();
        for w in &capture.watches {
            send = send.ready().await.expect("h2 ready");
            let request = http::Request::get(format!("http://127.0.0.1:6443{}", w.path))
                .body(())
                .expect("request");
            let (response, _) = send.send_request(request, true).expect("send_request");
            responses.push(tokio::spawn(async move {
                let mut body = response.await.expect("response").into_body();
                let mut n = 0u64;
                while let Some(chunk) = body.data().await {
                    let chunk = chunk.expect("DATA");
                    n += chunk.len() as u64;
                    body.flow_control()
                        .release_capacity(chunk.len())
                        .expect("release capacity");
                }
                n
            }));
        }
        let mut bytes = 0;
        for r in responses {
            bytes += r.await.expect("stream task");
        }
        let end = CpuTime::now();
        let (start, _wr) = writer.await.expect("writer");
        drop(send);
        driver.abort();
        reader.abort();
        (end.since(start), bytes)
    })
}

/// The pipe alone: the mock's writes read back in 64 KiB reads and
/// dropped, to show what of h2's time is the transport.
pub(crate) fn transport_only(capture: &Capture) -> Duration {
    block_on(async {
        let (mut client_io, mut server_io) = tokio::io::duplex(PIPE);
        let body = capture.server_body.clone();
        let total = body.len();
        let writer = tokio::spawn(async move {
            let start = CpuTime::now();
            for piece in body.chunks(WRITE) {
                server_io.write_all(piece).await.expect("body");
            }
            (start, server_io)
        });
        let mut buf = vec![0u8; 64 * 1024];
        let mut n = 0;
        while n < total {
            n += client_io.read(&mut buf).await.expect("read");
        }
        let end = CpuTime::now();
        let (start, _io) = writer.await.expect("writer");
        end.since(start)
    })
}
