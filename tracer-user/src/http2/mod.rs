//! HTTP/2 framing, HPACK and flow control (pure; see docs/architecture.md).
