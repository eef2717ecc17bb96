//! A recording through the pipeline: what `watchtrace replay` writes, as
//! a function of the file alone.
//!
//! Damage the reader finds (a frame that fails its checksum, one missing,
//! duplicated or out of order) comes out as a `recording_damage` line where
//! it was found, never as changed events; the records it cost show as gaps
//! in their connections. The pipeline is flushed before such a line, so
//! the lines come in the same order for any number of decoding workers.

use std::io::Read;

use serde::{Serialize, Serializer};

use crate::{
    capture::StreamStats,
    pipeline::{OutputEvent, Pipeline, PipelineConfig, PipelineStats},
    recording::{Damage, DamageKind, Reader, RecordingError},
};

/// One output line of a replay.
#[derive(Clone, Debug, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "nearly every line is an event: boxing it would allocate per event for the rare damage line's sake"
)]
pub enum Line {
    Event(OutputEvent),
    Damage(Damage),
}

impl Serialize for Line {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        /// A `recording_damage` line.
        #[derive(Serialize)]
        struct RecordingDamage {
            kind: &'static str,
            what: DamageKind,
            at: u64,
            bytes: u64,
            frames: u64,
        }
        match self {
            Self::Event(event) => event.serialize(serializer),
            Self::Damage(d) => RecordingDamage {
                kind: "recording_damage",
                what: d.what,
                at: d.at,
                bytes: d.bytes,
                frames: d.frames,
            }
            .serialize(serializer),
        }
    }
}

/// What a replay read and wrote.
#[derive(Debug)]
pub struct Summary {
    /// Records delivered by the reader.
    pub records: u64,
    /// Lines written (events and damage).
    pub lines: u64,
    /// `gap` lines, and the bytes they say were lost.
    pub gaps: u64,
    pub gap_bytes: u64,
    /// `undecodable` lines.
    pub undecodable: u64,
    /// `recording_damage` lines.
    pub damage: u64,
    /// Frames those lines say were lost.
    pub lost_frames: u64,
    /// The file has checksums (else its damage cannot be seen).
    pub verified: bool,
    pub pipeline: PipelineStats,
    pub streams: StreamStats,
    /// How reading ended: an error (a truncated last frame, an I/O error)
    /// after everything before it was processed.
    pub end: Result<(), RecordingError>,
}

/// Replays `reader` through a pipeline made with `config`, each line to
/// `emit`.
pub fn replay<R: Read>(
    reader: &mut Reader<R>,
    config: PipelineConfig,
    mut emit: impl FnMut(Line),
) -> Summary {
    let mut pipeline = Pipeline::new(config, reader.metadata().realtime_offset_ns);
    let (mut records, mut lines, mut damage, mut lost_frames) = (0, 0, 0, 0);
    let (mut gaps, mut gap_bytes, mut undecodable) = (0, 0, 0);
    // The summary counts what the lines say, so the two always agree.
    let mut write = |line: Line| {
        lines += 1;
        match &line {
            Line::Event(OutputEvent::Gap { len, .. }) => {
                gaps += 1;
                gap_bytes += len;
            }
            Line::Event(OutputEvent::Undecodable { .. }) => undecodable += 1,
            _ => {}
        }
        emit(line);
    };
    let end = loop {
        let next = reader.advance();
        // Damage found on the way to this record (or to the end) comes
        // before it, after everything before it.
        if reader.has_damage() {
            pipeline.flush(&mut |e| write(Line::Event(e)));
            for d in reader.take_damage() {
                damage += 1;
                lost_frames += d.frames;
                write(Line::Damage(d));
            }
        }
        match next {
            Ok(true) => {
                records += 1;
                pipeline.on_record(reader.record(), &mut |e| write(Line::Event(e)));
            }
            Ok(false) => break Ok(()),
            // Everything before a damaged tail has been processed.
            Err(e) => break Err(e),
        }
    };
    pipeline.finish(&mut |e| write(Line::Event(e)));
    Summary {
        records,
        lines,
        gaps,
        gap_bytes,
        undecodable,
        damage,
        lost_frames,
        verified: reader.verified(),
        pipeline: pipeline.stats(),
        streams: pipeline.stream_stats(),
        end,
    }
}
