//! `watchtrace top`: the live view. Live, a [`Session`] drains the ring
//! buffer into the pipeline and the model on the runtime while a UI thread
//! owns the terminal, takes a snapshot each second and handles keys. With
//! `--replay`, one thread reads a recording paced by its timestamps.

use std::{
    fs::{self, File, OpenOptions},
    io::{BufReader, Read},
    os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _},
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, anyhow};
use ratatui::crossterm::event::Event;

use crate::{
    agent::{Consumer, Session, SessionOptions},
    cli::TopArgs,
    clock,
    commands::run::{capture_figures, unix_now},
    model::{Model, ModelConfig, Snapshot},
    pipeline::{Pipeline, PipelineConfig},
    recording::Reader,
    tui::{Action, App, Pacer, terminal::Tty},
};

/// How often the screen shows a new snapshot.
const REFRESH: Duration = Duration::from_secs(1);
/// The longest a key press waits to be handled, and the longest a replay
/// feeds records before looking at the keys again.
const SLICE: Duration = Duration::from_millis(50);

/// The log file: `--log-file`, else under $XDG_STATE_HOME (or
/// ~/.local/state), else a per-user file in /tmp.
pub fn log_path(arg: Option<&Path>) -> PathBuf {
    if let Some(path) = arg {
        return path.to_path_buf();
    }
    let state = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|home| PathBuf::from(home).join(".local/state"))
        });
    match state {
        Some(dir) => dir.join("watchtrace/top.log"),
        None => {
            // SAFETY: getuid has no preconditions and cannot fail.
            let uid = unsafe { libc::getuid() };
            PathBuf::from(format!("/tmp/watchtrace-top-{uid}.log"))
        }
    }
}

/// Opens the log for appending, mode 0600, never through a symlink (the
/// default may be in /tmp, and `top` usually runs as root).
pub fn open_log(path: &Path) -> anyhow::Result<File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .with_context(|| format!("opening the log file {}", path.display()))
}

/// What one turn of the UI loop got from the data side.
#[derive(Clone, Copy, Debug, Default)]
struct Pump {
    /// When there is more to do (`None`: nothing until the next refresh).
    next_due: Option<Instant>,
    /// Show a snapshot now (the recording just ended).
    refresh_now: bool,
    /// The data side has stopped: leave.
    stop: bool,
}

/// The data side of the view.
trait Feed {
    /// Does what is due, until `deadline` at the latest.
    fn pump(&mut self, deadline: Instant) -> anyhow::Result<Pump>;
    fn snapshot(&mut self) -> Snapshot;
    fn status(&self) -> Option<String>;
    /// How many processes are traced (live only).
    fn targets(&self) -> Option<usize> {
        None
    }
}

/// Enters the terminal, runs the view until `q` (or the feed stops), and
/// restores the terminal (also on error or panic, by the guard).
fn run_ui(source: String, feed: &mut impl Feed) -> anyhow::Result<()> {
    use std::io::IsTerminal as _;
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "`top` needs a terminal (stdin and stdout); without one, use `watchtrace run --events -` \
             for JSON lines, or `watchtrace run` for Prometheus metrics"
        );
    }
    let mut tty = Tty::enter().context("setting up the terminal")?;
    let mut app = App::new(source);
    let mut next_refresh = Instant::now();
    let mut dirty = true;
    loop {
        let pump = feed.pump(Instant::now() + SLICE)?;
        if pump.stop {
            return Ok(());
        }
        let status = feed.status();
        if status.as_deref() != app.status() {
            app.set_status(status);
            dirty = true;
        }
        if pump.refresh_now || Instant::now() >= next_refresh {
            app.on_snapshot(feed.snapshot());
            app.set_targets(feed.targets());
            next_refresh = Instant::now() + REFRESH;
            dirty = true;
        }
        if dirty {
            tty.draw(&app).context("drawing")?;
            dirty = false;
        }
        let now = Instant::now();
        let wake = pump
            .next_due
            .unwrap_or(next_refresh)
            .min(next_refresh)
            .min(now + SLICE);
        match tty
            .next_event(wake.saturating_duration_since(now))
            .context("reading the terminal")?
        {
            Some(Event::Key(key)) => {
                if app.on_key(key) == Action::Quit {
                    return Ok(());
                }
                dirty = true;
            }
            Some(Event::Resize(..)) => dirty = true,
            _ => {}
        }
    }
}

/// `watchtrace top` on the live targets.
pub async fn live(args: TopArgs) -> anyhow::Result<()> {
    let mut session = Session::start(SessionOptions::new(args.targets.clone(), args.ringbuf_size))?;
    session.sample_probe_stats();
    let source = format!("live: {}", args.targets.describe());
    tracing::info!(targets = %args.targets.describe(), "top: running; waiting for targets");
    let model = Arc::new(Mutex::new(Model::new(ModelConfig::default())));
    let stopping = Arc::new(AtomicBool::new(false));
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let ui = {
        let mut feed = LiveFeed {
            model: Arc::clone(&model),
            stopping: Arc::clone(&stopping),
            status: None,
            targets: None,
        };
        std::thread::Builder::new()
            .name("top-ui".into())
            .spawn(move || {
                let result = run_ui(source, &mut feed);
                let _ = done_tx.send(());
                result
            })
            .context("starting the view")?
    };
    let offset = clock::realtime_offset_ns();
    let mut pipeline = Pipeline::new(PipelineConfig::default(), offset);
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("handling SIGTERM")?;
    // Raw mode turns Ctrl-C into a key; SIGINT and SIGTERM from elsewhere
    // still end the view cleanly instead of killing it mid-screen.
    let stop = async move {
        tokio::select! {
            _ = done_rx => {}
            _ = terminate.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    let mut view = LiveModel {
        pipeline: &mut pipeline,
        model: &model,
        offset,
        batch: Vec::new(),
    };
    let result = session.run(&mut view, stop).await;
    stopping.store(true, Ordering::Relaxed);
    let ui_result = ui
        .join()
        .map_err(|_| anyhow!("the view panicked (see the message above)"))?;
    let stats = pipeline.stats();
    tracing::info!(records = stats.records, "top: stopped");
    result.and(ui_result)
}

/// The drain loop's consumer: records through the pipeline into the model
/// the view reads, whose lock is taken once a batch.
struct LiveModel<'a> {
    pipeline: &'a mut Pipeline,
    model: &'a Mutex<Model>,
    offset: i128,
    batch: Vec<crate::pipeline::OutputEvent>,
}

impl Consumer for LiveModel<'_> {
    fn record(&mut self, bytes: &[u8]) {
        let batch = &mut self.batch;
        self.pipeline
            .on_record(bytes, &mut |event| batch.push(event));
    }

    fn batch_done(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let mut model = lock(self.model);
        for event in self.batch.drain(..) {
            model.on_event(&event);
        }
    }

    fn tick(&mut self, session: &Session) {
        let mut model = lock(self.model);
        let figures = capture_figures(session, model.capture().ringbuf_drops);
        model.set_capture(figures);
        // Rates fall to zero while the targets are quiet.
        model.advance(unix_now(self.offset));
    }
}

/// The live data: the model the session fills.
struct LiveFeed {
    model: Arc<Mutex<Model>>,
    stopping: Arc<AtomicBool>,
    /// What the header says about the capture itself.
    status: Option<String>,
    targets: Option<usize>,
}

/// The model, even if a panic elsewhere poisoned its lock.
fn lock(model: &Mutex<Model>) -> MutexGuard<'_, Model> {
    model.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Feed for LiveFeed {
    fn pump(&mut self, _deadline: Instant) -> anyhow::Result<Pump> {
        Ok(Pump {
            stop: self.stopping.load(Ordering::Relaxed),
            ..Pump::default()
        })
    }

    fn snapshot(&mut self) -> Snapshot {
        let model = lock(&self.model);
        let capture = model.capture();
        self.status = Some(format!(
            "targets {}  ring drops {}",
            capture.targets, capture.ringbuf_drops
        ));
        self.targets = Some(capture.targets);
        model.snapshot()
    }

    fn status(&self) -> Option<String> {
        self.status.clone()
    }

    fn targets(&self) -> Option<usize> {
        self.targets
    }
}

/// `watchtrace top --replay FILE`: a recording, paced by its timestamps
/// (`speed` 0: as fast as possible), its final screen held until `q`.
pub fn replay(path: &Path, speed: f64) -> anyhow::Result<()> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let reader = Reader::new(BufReader::with_capacity(1 << 20, file))
        .with_context(|| format!("reading {}", path.display()))?;
    let offset_ns = reader.metadata().realtime_offset_ns;
    let speed_text = if speed > 0.0 {
        format!("x{speed}")
    } else {
        "unpaced".to_owned()
    };
    let source = format!("replay: {} ({speed_text})", path.display());
    let mut feed = ReplayFeed {
        reader,
        pipeline: Pipeline::new(PipelineConfig::default(), offset_ns),
        model: Model::new(ModelConfig::default()),
        pacer: Pacer::new(speed),
        offset_ns,
        start: Instant::now(),
        held: None,
        records: 0,
        end: None,
    };
    let result = run_ui(source, &mut feed);
    tracing::info!(records = feed.records, "top: replay stopped");
    result
}

/// A recording fed at its own pace.
struct ReplayFeed<R: Read> {
    reader: Reader<R>,
    pipeline: Pipeline,
    model: Model,
    pacer: Pacer,
    offset_ns: i128,
    start: Instant,
    /// A record read but not due yet, with when it is due.
    held: Option<(Duration, Vec<u8>)>,
    records: u64,
    /// Why the replay ended (end of file, or a damaged tail).
    end: Option<String>,
}

/// A record's CLOCK_MONOTONIC stamp (the header's first field).
fn record_ts(bytes: &[u8]) -> u64 {
    bytes
        .get(..8)
        .map_or(0, |b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
}

impl<R: Read> Feed for ReplayFeed<R> {
    fn pump(&mut self, deadline: Instant) -> anyhow::Result<Pump> {
        if self.end.is_some() {
            return Ok(Pump::default());
        }
        let model = &mut self.model;
        let mut emit = |event: crate::pipeline::OutputEvent| model.on_event(&event);
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Ok(Pump {
                    next_due: Some(now),
                    ..Pump::default()
                });
            }
            if let Some((due, bytes)) = self.held.take() {
                if self.start + due > now {
                    self.held = Some((due, bytes));
                    return Ok(Pump {
                        next_due: Some(self.start + due),
                        ..Pump::default()
                    });
                }
                self.pipeline.on_record(&bytes, &mut emit);
                self.records += 1;
                continue;
            }
            let next = self.reader.advance();
            for d in self.reader.take_damage() {
                tracing::warn!(at = d.at, bytes = d.bytes, frames = d.frames, what = ?d.what, "damaged recording");
            }
            match next.map(|more| more.then(|| self.reader.record())) {
                Ok(Some(bytes)) => {
                    let due = self.pacer.due(record_ts(bytes));
                    if self.start + due > now {
                        self.held = Some((due, bytes.to_vec()));
                        continue;
                    }
                    self.pipeline.on_record(bytes, &mut emit);
                    self.records += 1;
                }
                Ok(None) => {
                    self.end = Some(format!("end of recording ({} records)", self.records));
                    return Ok(Pump {
                        refresh_now: true,
                        ..Pump::default()
                    });
                }
                Err(e) => {
                    tracing::warn!("replay stopped early: {e}");
                    self.end = Some(format!(
                        "recording damaged after {} records: {e}",
                        self.records
                    ));
                    return Ok(Pump {
                        refresh_now: true,
                        ..Pump::default()
                    });
                }
            }
        }
    }

    fn snapshot(&mut self) -> Snapshot {
        // While playing, the recording's clock moves on between records, so
        // rates fall over its quiet spells as they did live. At the end the
        // clock stops: the final screen shows the last second's figures.
        if self.end.is_none()
            && let Some(position) = self.pacer.position(self.start.elapsed())
        {
            let unix = (i128::from(position) + self.offset_ns).max(0) as u64;
            self.model.advance(unix);
        }
        self.model.snapshot()
    }

    fn status(&self) -> Option<String> {
        self.end.clone()
    }
}
