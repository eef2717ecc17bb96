//! One etcd KV call (a unary gRPC call: one HTTP/2 stream, one request
//! message, one response message) on a traced process's etcd connection:
//! its messages reassembled, decoded to metadata, and timed.
//!
//! A message is held until whole; one larger than [`MAX_MESSAGE_BYTES`]
//! (a LIST's Range over a large resource) is counted and not decoded, so
//! memory stays bounded.

use crate::etcd::{
    KvOp, KvRequestInfo, KvResponseInfo, WireError, decode_kv_request, decode_kv_response,
    guess_kv_op,
};

/// The largest KV message decoded: objects are at most 1.5 MiB in etcd,
/// so a write's request fits; a Range reading a whole resource may not.
pub(crate) const MAX_MESSAGE_BYTES: usize = 4 << 20;
/// The gRPC length prefix: compressed flag (1) and length (4, BE).
const PREFIX: usize = 5;

/// How one direction's message stands.
#[derive(Clone, Debug, Default)]
enum Message<T> {
    /// Bytes of a message not yet whole (the prefix included).
    #[default]
    Empty,
    Partial(Vec<u8>),
    /// Larger than the cap: `left` bytes of it still to come.
    Skipping {
        left: usize,
    },
    Decoded(T),
    /// Why it gave nothing: bytes lost, compressed, oversized, malformed.
    Failed(KvFailure),
}

/// Why a KV message gave nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KvFailure {
    CutByGap,
    Compressed,
    Oversized,
    Malformed,
}

/// One KV call being read.
#[derive(Clone, Debug)]
pub(crate) struct EtcdCall {
    /// `None` until the request tells it, when the `:path` was not known
    /// (an HPACK entry from before the capture).
    pub(crate) op: Option<KvOp>,
    /// When its request HEADERS were written (the records' clock).
    pub(crate) t_request: u64,
    /// When its response message's last byte was read.
    pub(crate) t_response: Option<u64>,
    request: Message<KvRequestInfo>,
    response: Message<KvResponseInfo>,
    /// The call's `grpc-status` (trailers), when read.
    pub(crate) grpc_status: Option<u32>,
}

impl EtcdCall {
    pub(crate) fn new(op: KvOp, t_request: u64) -> Self {
        Self::with(Some(op), t_request)
    }

    /// A call whose method the request's content will tell (or show it is
    /// no KV call: [`EtcdCall::is_kv`]).
    pub(crate) fn guessing(t_request: u64) -> Self {
        Self::with(None, t_request)
    }

    fn with(op: Option<KvOp>, t_request: u64) -> Self {
        Self {
            op,
            t_request,
            t_response: None,
            request: Message::Empty,
            response: Message::Empty,
            grpc_status: None,
        }
    }

    /// Bytes of the request (`response` false) or response body, read at
    /// `ts`.
    pub(crate) fn push(&mut self, response: bool, bytes: &[u8], ts: u64) {
        if response {
            let Some(op) = self.op else {
                return;
            };
            if push(&mut self.response, bytes, false, |m| {
                decode_kv_response(op, m)
            }) {
                self.t_response = Some(ts);
            }
        } else {
            let op = &mut self.op;
            let guessing = op.is_none();
            push(&mut self.request, bytes, guessing, |m| {
                let known = op.or_else(|| guess_kv_op(m)).ok_or(WireError::Oneof)?;
                *op = Some(known);
                decode_kv_request(known, m)
            });
        }
    }

    /// Still possibly a KV call: its method is known, or its request is
    /// not whole yet.
    pub(crate) fn is_kv(&self) -> bool {
        self.op.is_some() || matches!(self.request, Message::Empty | Message::Partial(_))
    }

    /// Bytes of one direction were lost.
    pub(crate) fn gap(&mut self, response: bool) {
        if response {
            fail(&mut self.response, KvFailure::CutByGap);
        } else {
            fail(&mut self.request, KvFailure::CutByGap);
        }
    }

    pub(crate) fn request(&self) -> Option<&KvRequestInfo> {
        match &self.request {
            Message::Decoded(r) => Some(r),
            _ => None,
        }
    }

    pub(crate) fn response(&self) -> Option<&KvResponseInfo> {
        match &self.response {
            Message::Decoded(r) => Some(r),
            _ => None,
        }
    }

    /// Why a message gave nothing, if one did (the request's first).
    pub(crate) fn failure(&self) -> Option<KvFailure> {
        self.request.failure().or_else(|| self.response.failure())
    }
}

impl<T> Message<T> {
    fn failure(&self) -> Option<KvFailure> {
        match self {
            Self::Failed(f) => Some(*f),
            Self::Skipping { .. } => Some(KvFailure::Oversized),
            _ => None,
        }
    }
}

/// A failed message stays failed; a decoded one is kept.
fn fail<T>(slot: &mut Message<T>, why: KvFailure) {
    if !matches!(slot, Message::Decoded(_)) {
        *slot = Message::Failed(why);
    }
}

/// Adds `bytes` to a message; `true` when this completed it (decoded).
///
/// `guessing`: the message may be no KV request at all (a watch stream
/// seen mid-way): nothing is reserved ahead, and a body not opening with
/// a field a KV request opens with (1, 2 or 3, length-delimited) fails at
/// once rather than be buffered whole.
fn push<T>(
    slot: &mut Message<T>,
    mut bytes: &[u8],
    guessing: bool,
    decode: impl FnOnce(&[u8]) -> Result<T, WireError>,
) -> bool {
    loop {
        match slot {
            Message::Decoded(_) | Message::Failed(_) => return false,
            Message::Skipping { left } => {
                let n = (*left).min(bytes.len());
                *left -= n;
                if *left == 0 {
                    *slot = Message::Failed(KvFailure::Oversized);
                }
                return false;
            }
            Message::Empty => {
                if bytes.is_empty() {
                    return false;
                }
                *slot = Message::Partial(Vec::new());
            }
            Message::Partial(buf) => {
                if buf.len() < PREFIX {
                    let n = (PREFIX - buf.len()).min(bytes.len());
                    buf.extend_from_slice(&bytes[..n]);
                    bytes = &bytes[n..];
                    if buf.len() < PREFIX {
                        return false;
                    }
                    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
                    if buf[0] != 0 {
                        *slot = Message::Failed(KvFailure::Compressed);
                        return false;
                    }
                    if len > MAX_MESSAGE_BYTES {
                        *slot = Message::Skipping { left: len };
                        continue;
                    }
                    if !guessing {
                        buf.reserve_exact(len);
                    }
                }
                let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
                let want = PREFIX + len - buf.len();
                let n = want.min(bytes.len());
                buf.extend_from_slice(&bytes[..n]);
                if guessing && buf.len() > PREFIX && !matches!(buf[PREFIX], 0x0a | 0x12 | 0x1a) {
                    *slot = Message::Failed(KvFailure::Malformed);
                    return false;
                }
                if buf.len() < PREFIX + len {
                    return false;
                }
                *slot = match decode(&buf[PREFIX..]) {
                    Ok(m) => Message::Decoded(m),
                    Err(_) => Message::Failed(KvFailure::Malformed),
                };
                return matches!(slot, Message::Decoded(_));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watch::fixture::ProtoWriter;

    fn grpc(body: &[u8]) -> Vec<u8> {
        let mut out = vec![0];
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    fn put_response(revision: u64) -> Vec<u8> {
        let mut w = ProtoWriter::new();
        w.message(1, |h| {
            h.varint(3, revision);
        });
        grpc(&w.buf)
    }

    #[test]
    fn a_call_split_anywhere_reads_the_same() {
        let mut w = ProtoWriter::new();
        w.string(1, "/registry/leases/kube-node-lease/n1")
            .bytes(2, b"value");
        let request = grpc(&w.buf);
        let response = put_response(99);
        for cut in 0..=request.len().max(response.len()) {
            let mut call = EtcdCall::new(KvOp::Put, 10);
            let (a, b) = request.split_at(cut.min(request.len()));
            call.push(false, a, 11);
            call.push(false, b, 12);
            let (a, b) = response.split_at(cut.min(response.len()));
            call.push(true, a, 20);
            call.push(true, b, 30);
            assert_eq!(
                call.request().unwrap().key,
                "/registry/leases/kube-node-lease/n1"
            );
            assert_eq!(call.response().unwrap().revision, 99);
            let last = if cut >= response.len() { 20 } else { 30 };
            assert_eq!(call.t_response, Some(last), "cut {cut}");
            assert_eq!(call.failure(), None);
        }
    }

    #[test]
    fn a_call_whose_path_was_not_known_is_told_by_its_request() {
        let mut w = ProtoWriter::new();
        w.message(1, |c| {
            c.varint(2, 2)
                .string(3, "/registry/configmaps/a/b")
                .varint(6, 7);
        });
        let mut call = EtcdCall::guessing(10);
        assert!(call.is_kv());
        call.push(false, &grpc(&w.buf), 11);
        call.push(true, &put_response(8), 20);
        assert_eq!(call.op, Some(KvOp::Txn));
        assert_eq!(call.response().unwrap().revision, 8);

        // A Watch stream's request: no KV call.
        let mut w = ProtoWriter::new();
        w.message(1, |c| {
            c.string(1, "/registry/pods/");
        });
        let mut call = EtcdCall::guessing(10);
        call.push(false, &grpc(&w.buf), 11);
        assert!(!call.is_kv());

        // A protobuf watch stream joined at a frame: its 4-byte length and
        // type field read as a gRPC prefix of 1 MiB. Ruled out at its
        // first body byte, not buffered.
        let mut call = EtcdCall::guessing(10);
        call.push(false, &[0, 0, 0x10, 0, 0x0a, 5, b'A', b'D', b'D'], 11);
        assert!(!call.is_kv());
    }

    #[test]
    fn lost_compressed_and_oversized_messages_say_why() {
        let response = put_response(5);
        let mut call = EtcdCall::new(KvOp::Put, 0);
        call.push(true, &response[..3], 1);
        call.gap(true);
        call.push(true, &response[3..], 2);
        assert_eq!(call.failure(), Some(KvFailure::CutByGap));
        assert!(call.response().is_none() && call.t_response.is_none());

        let mut call = EtcdCall::new(KvOp::Put, 0);
        let mut compressed = response.clone();
        compressed[0] = 1;
        call.push(true, &compressed, 1);
        assert_eq!(call.failure(), Some(KvFailure::Compressed));

        let mut call = EtcdCall::new(KvOp::Range, 0);
        let len = (MAX_MESSAGE_BYTES + 10) as u32;
        let mut big = vec![0];
        big.extend_from_slice(&len.to_be_bytes());
        call.push(true, &big, 1);
        call.push(true, &vec![0; 1 << 20], 2);
        assert_eq!(call.failure(), Some(KvFailure::Oversized));
        assert!(call.response().is_none());

        let mut call = EtcdCall::new(KvOp::Txn, 0);
        call.push(true, &grpc(&[0x0a, 0x05, 0x01]), 1);
        assert_eq!(call.failure(), Some(KvFailure::Malformed));
    }
}
