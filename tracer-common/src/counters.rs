//! Per-CPU counters kept by the kernel programs. Userspace sums the CPUs.

/// Index into the `COUNTERS` per-CPU array.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// `sock_send_length` events from a target process on a TCP socket.
    SockSends = 0,
    /// Bytes reported by those events (successful sends only).
    SockSendBytes = 1,
    /// `crypto/tls.(*Conn).Write` calls seen in a target process.
    TlsWrites = 2,
    /// Plaintext bytes passed to those calls.
    TlsWriteBytes = 3,
    /// Records that could not be reserved in the ring buffer (it was full).
    /// Every such record is lost; the count makes that loss explicit.
    RingbufDrops = 4,
    /// Tracepoint fields that could not be read (a bad layout or a fault).
    ReadErrors = 5,
    /// Payload bytes the kernel saw but could not deliver (ring buffer full,
    /// unreadable user memory, or a call over the per-call chunk limit).
    LostBytes = 6,
    /// Chunk records delivered.
    Chunks = 7,
    /// Payload bytes delivered.
    ChunkBytes = 8,
    /// TLS application-data records a target decrypted (Go's
    /// `readRecordOrCCS`), captured as plaintext.
    TlsRecords = 9,
    /// Byte streams the kernel started an offset for (first bytes of a
    /// connection direction, or a restart after its table entry was evicted).
    StreamStarts = 10,
    /// Bytes of readv/writev on sockets, not captured (counted in
    /// `LostBytes` too, and marked as gaps).
    VectoredSkippedBytes = 11,
    /// `sock_recv_length` events from a target process on a TCP socket.
    SockRecvs = 12,
    /// Bytes reported by those events.
    SockRecvBytes = 13,
    /// `tcp_probe` records emitted (ACK progress or window changes, full or
    /// compact).
    TcpSamples = 14,
    /// Sends that failed with EAGAIN: the socket's send buffer was full.
    SendBufferFull = 15,
    /// Plaintext bytes of those records.
    TlsRecordBytes = 16,
    /// Records that woke the consumer because the ring was filling up
    /// (the others wait for its timer).
    RingWakeups = 17,
    /// Go TLS Writes whose records did not add up to their plaintext when
    /// the next one began (their `t_sent` is unknown).
    TlsWriteDesyncs = 18,
    /// Plaintext of decrypted TLS records on a socket not known yet (read
    /// from buffers filled before watchtrace attached): not captured.
    TlsUnboundBytes = 19,
}

impl Counter {
    /// Every counter, in index order.
    pub const ALL: [Self; 20] = [
        Self::SockSends,
        Self::SockSendBytes,
        Self::TlsWrites,
        Self::TlsWriteBytes,
        Self::RingbufDrops,
        Self::ReadErrors,
        Self::LostBytes,
        Self::Chunks,
        Self::ChunkBytes,
        Self::TlsRecords,
        Self::StreamStarts,
        Self::VectoredSkippedBytes,
        Self::SockRecvs,
        Self::SockRecvBytes,
        Self::TcpSamples,
        Self::SendBufferFull,
        Self::TlsRecordBytes,
        Self::RingWakeups,
        Self::TlsWriteDesyncs,
        Self::TlsUnboundBytes,
    ];

    /// Stable snake_case name, used in `watchtrace check`, logs and metrics.
    pub const fn name(self) -> &'static str {
        match self {
            Self::SockSends => "sock_sends",
            Self::SockSendBytes => "sock_send_bytes",
            Self::TlsWrites => "tls_writes",
            Self::TlsWriteBytes => "tls_write_bytes",
            Self::RingbufDrops => "ringbuf_drops",
            Self::ReadErrors => "read_errors",
            Self::LostBytes => "lost_bytes",
            Self::Chunks => "chunks",
            Self::ChunkBytes => "chunk_bytes",
            Self::TlsRecords => "tls_records",
            Self::StreamStarts => "stream_starts",
            Self::VectoredSkippedBytes => "vectored_skipped_bytes",
            Self::SockRecvs => "sock_recvs",
            Self::SockRecvBytes => "sock_recv_bytes",
            Self::TcpSamples => "tcp_samples",
            Self::SendBufferFull => "send_buffer_full",
            Self::TlsRecordBytes => "tls_record_bytes",
            Self::RingWakeups => "ring_wakeups",
            Self::TlsWriteDesyncs => "tls_write_desyncs",
            Self::TlsUnboundBytes => "tls_unbound_bytes",
        }
    }
}

/// Number of entries of the `COUNTERS` map.
pub const COUNTER_SLOTS: u32 = Counter::ALL.len() as u32;
