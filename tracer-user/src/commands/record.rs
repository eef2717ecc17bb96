//! `watchtrace record`: capture to a file.

use std::{
    fs::{self, OpenOptions},
    io::BufWriter,
    os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _},
};

use anyhow::Context as _;

use crate::{
    agent::{Session, SessionOptions, until_stopped},
    cli::RecordArgs,
    clock, host,
    recording::{Metadata, Writer},
};

pub async fn run(args: RecordArgs) -> anyhow::Result<()> {
    let mut session = Session::start(SessionOptions::new(args.targets.clone(), args.ringbuf_size))?;
    // Attach before opening the file so its metadata lists the targets.
    let initial = session.rescan()?;
    if session.targets().is_empty() && !args.wait {
        anyhow::bail!(
            "no target process found ({}); start it first, pass --pid/--comm/--exe, or --wait",
            args.targets.describe()
        );
    }
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&args.output)
        .with_context(|| format!("creating {}", args.output.display()))?;
    // An existing file keeps its old mode through open(2): enforce 0600.
    fs::set_permissions(&args.output, fs::Permissions::from_mode(0o600))
        .with_context(|| format!("chmod 0600 {}", args.output.display()))?;
    let meta = Metadata {
        realtime_offset_ns: clock::realtime_offset_ns(),
        hostname: fs::read_to_string("/proc/sys/kernel/hostname")
            .unwrap_or_default()
            .trim()
            .to_owned(),
        kernel: host::kernel_release(),
        watchtrace_version: env!("CARGO_PKG_VERSION").to_owned(),
        ringbuf_bytes: args.ringbuf_size,
        targets: session.targets(),
    };
    let mut writer = Writer::new(BufWriter::with_capacity(1 << 20, file), &meta)?;
    let mut write_error = None;
    for record in &initial {
        writer.record(record)?;
    }
    let stop = until_stopped(args.duration);
    tracing::info!(output = %args.output.display(), "recording (the file holds plaintext: keep it private)");
    let mut sink = |record: &[u8]| {
        if write_error.is_none()
            && let Err(e) = writer.record(record)
        {
            write_error = Some(e);
        }
    };
    session.run(&mut sink, stop).await?;
    if let Some(e) = write_error {
        return Err(e).context("writing the recording");
    }
    let (records, bytes) = writer.totals();
    writer.finish().context("flushing the recording")?;
    let counters = session.counters()?;
    let counters: Vec<String> = counters
        .iter()
        .map(|(c, v)| format!("{}={v}", c.name()))
        .collect();
    eprintln!(
        "recorded {records} records ({bytes} bytes) to {}",
        args.output.display()
    );
    eprintln!("kernel counters: {}", counters.join(" "));
    Ok(())
}
