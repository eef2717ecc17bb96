//! `watchtrace record`: capture to a file.

use std::{fs, io::BufWriter};

use anyhow::Context as _;

use crate::{
    agent::{Session, SessionOptions, until_stopped},
    cli::RecordArgs,
    clock, host,
    private_file::PrivateFile,
    recording::{Metadata, Writer},
};

pub async fn run(args: RecordArgs) -> anyhow::Result<()> {
    // First, so a refused path costs no attach.
    let (output, file) = PrivateFile::create(&args.output, args.force)?;
    let attached = async {
        let mut session =
            Session::start(SessionOptions::new(args.targets.clone(), args.ringbuf_size))?;
        // Attach before writing the file so its metadata lists the targets.
        let initial = session.rescan()?;
        if session.targets().is_empty() && !args.wait {
            anyhow::bail!(
                "no target process found ({}); start it first, pass --pid/--comm/--exe, or --wait",
                args.targets.describe()
            );
        }
        Ok((session, initial))
    };
    let (mut session, initial) = match attached.await {
        Ok(attached) => attached,
        Err(e) => {
            output.discard();
            return Err(e);
        }
    };
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
    output.finish()?;
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
