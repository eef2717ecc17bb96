//! `watchtrace top`: the live view. Live, a [`Session`] drains the ring
//! buffer into the pipeline and the model on the runtime while a UI thread
//! owns the terminal, takes a snapshot each second and handles keys. With
//! `--replay`, one thread reads a recording paced by its timestamps.

use std::{
    fs::{self, File, OpenOptions},
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
    tui::{Action, App, ReplayControl, terminal::Tty},
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
pub(super) struct Pump {
    /// When there is more to do (`None`: nothing until the next refresh).
    pub(super) next_due: Option<Instant>,
    /// Show a snapshot now (the recording just ended, or a replay paused).
    pub(super) refresh_now: bool,
    /// The data side has stopped: leave.
    pub(super) stop: bool,
}

/// The data side of the view.
pub(super) trait Feed {
    /// Does what is due, until `deadline` at the latest.
    fn pump(&mut self, deadline: Instant) -> anyhow::Result<Pump>;
    fn snapshot(&mut self) -> Snapshot;
    fn status(&self) -> Option<String>;
    /// How many processes are traced (live only).
    fn targets(&self) -> Option<usize> {
        None
    }
    /// A recording (the replay keys work).
    fn replay(&self) -> bool {
        false
    }
    /// A replay key.
    fn control(&mut self, control: ReplayControl) {
        let _ = control;
    }
    /// The replay is paused.
    fn paused(&self) -> bool {
        false
    }
}

/// Enters the terminal, runs the view until `q` (or the feed stops), and
/// restores the terminal (also on error or panic, by the guard).
pub(super) fn run_ui(source: String, feed: &mut impl Feed) -> anyhow::Result<()> {
    use std::io::IsTerminal as _;
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "`top` needs a terminal (stdin and stdout); without one, use `watchtrace run --events -` \
             for JSON lines, or `watchtrace run` for Prometheus metrics"
        );
    }
    let mut tty = Tty::enter().context("setting up the terminal")?;
    let mut app = App::new(source);
    app.set_replay(feed.replay());
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
        if feed.paused() != app.paused() {
            app.set_paused(feed.paused());
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
                match app.on_key(key) {
                    Action::Quit => return Ok(()),
                    Action::Replay(control) => {
                        feed.control(control);
                        // Show where a step or a pause left the replay.
                        next_refresh = Instant::now();
                    }
                    Action::Continue => {}
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
