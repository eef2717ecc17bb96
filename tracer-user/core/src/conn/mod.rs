//! Per-socket accounting from the kernel's socket records (pure): bytes
//! each way, retransmits, TCP samples, send-stall episodes, and which
//! written bytes the peer has acknowledged.

mod acks;
mod episode;
mod sockets;
mod stalls;

pub use acks::{AckTracker, Acked};
pub(crate) use episode::Episode;
pub(crate) use sockets::anchor_key;
pub use sockets::{SocketEvent, SocketInfo, Sockets};
pub use stalls::{MIN_STALL_NS, QUIET_NS, SocketStall, StallKind};
