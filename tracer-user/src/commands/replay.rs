//! `watchtrace replay`: a recording through the userspace pipeline.

use std::{fs::File, io::BufReader};

use anyhow::Context as _;

use crate::{
    capture::{Record, Streams, decode},
    cli::ReplayArgs,
    recording::Reader,
};

pub fn run(args: &ReplayArgs) -> anyhow::Result<()> {
    let file =
        File::open(&args.input).with_context(|| format!("opening {}", args.input.display()))?;
    let mut reader = Reader::new(BufReader::with_capacity(1 << 20, file))
        .with_context(|| format!("reading {}", args.input.display()))?;
    let mut streams = Streams::new(1 << 16);
    let mut closes = Vec::new();
    let mut records = 0u64;
    let mut undecodable = 0u64;
    while let Some(bytes) = reader.next_record()? {
        records += 1;
        match decode(bytes) {
            Ok(Record::Chunk(header, data)) => {
                let mut events = Vec::new();
                streams.on_chunk(&header, &data, &mut events);
            }
            Ok(Record::FdClose(close)) => {
                closes.clear();
                streams.on_close(&close, &mut closes);
            }
            Ok(_) => {}
            Err(e) => {
                undecodable += 1;
                tracing::warn!("record {records}: {e}");
            }
        }
    }
    let stats = streams.stats();
    println!(
        "records={records} undecodable={undecodable} captured_bytes={} gaps={} gap_bytes={} reordered_bytes={} evicted_streams={}",
        stats.captured_bytes,
        stats.gaps,
        stats.gap_bytes,
        stats.reordered_bytes,
        stats.evicted_streams
    );
    Ok(())
}
