//! Which connection a record belongs to, by any name the kernel gives it:
//! the socket (`struct sock` address), the process's fd, the Go
//! `*tls.Conn`, or (for a socket that existed before attach) the fd
//! `sock_diag` reported it under. The connections themselves, with their
//! ids, are in the [`ConnTable`]; this index holds the names that lead to
//! them, each table bounded.
//!
//! An fd is reused as soon as it is closed, so an fd names the socket
//! last seen on it and nothing else: a socket newly seen on an fd replaces
//! whatever the fd named, and a close forgets the fd. A socket anchored
//! before attach (known by fd, with its addresses) is adopted by the first
//! socket the probes see on that fd, and by no later one.

use std::{collections::VecDeque, hash::Hash};

use foldhash::{HashMap, HashMapExt as _};

use super::conn_table::{ConnKey, ConnTable};

/// What an fd names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FdTarget {
    /// A socket the probes have seen.
    Socket(u64),
    /// A socket that existed before attach, by its table key in `Sockets`
    /// (see `conn::sockets::anchor_key`), not yet seen by the probes.
    Anchor(u64),
}

/// Counters of the index.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct AttributionStats {
    /// Names forgotten because their table was full (oldest first).
    pub(crate) evicted_names: u64,
}

/// The index.
pub(crate) struct Attribution {
    pub(crate) conns: ConnTable,
    /// What each (process, fd) names now.
    fds: Fifo<(u32, i32), FdTarget>,
    /// The socket each (process, `*tls.Conn`) is bound to.
    tls: Fifo<(u32, u64), u64>,
    /// Sockets that adopted an anchor: where their addresses are known
    /// before the probes see them.
    adopted: Fifo<u64, u64>,
    /// The ports each process listened on at attach (sock_diag), at most
    /// [`MAX_LISTENING`] each: a connection joined mid-way on one of them
    /// was accepted, on any other port it was dialled.
    listening: Fifo<u32, Listening>,
    stats: AttributionStats,
}

/// Listening ports remembered per process.
const MAX_LISTENING: usize = 16;

/// A process's listening ports.
#[derive(Clone, Copy, Debug, Default)]
struct Listening {
    ports: [u16; MAX_LISTENING],
    len: u8,
}

/// TCP_LISTEN, as sock_diag reports a socket's state.
const TCP_LISTEN: u8 = 10;

impl Attribution {
    /// `max_connections` connections; `max_names` names of each kind.
    pub(crate) fn new(max_connections: usize, max_names: usize) -> Self {
        Self {
            conns: ConnTable::new(max_connections),
            fds: Fifo::new(max_names),
            tls: Fifo::new(max_names),
            adopted: Fifo::new(max_names),
            listening: Fifo::new(max_names),
            stats: AttributionStats::default(),
        }
    }

    pub(crate) fn stats(&self) -> AttributionStats {
        self.stats
    }

    /// `fd` of process `tgid` names `sock` now (a record saw it used so).
    pub(crate) fn on_fd(&mut self, tgid: u32, fd: i32, sock: u64) {
        if fd < 0 || sock == 0 {
            return;
        }
        match self.fds.get(&(tgid, fd)) {
            Some(FdTarget::Socket(known)) if known == sock => {}
            Some(FdTarget::Anchor(anchor)) => {
                if self.adopted.insert(sock, anchor) {
                    self.stats.evicted_names += 1;
                }
                self.set_fd(tgid, fd, FdTarget::Socket(sock));
            }
            // Never seen, or reused: the fd's previous socket is gone.
            _ => self.set_fd(tgid, fd, FdTarget::Socket(sock)),
        }
    }

    /// A socket that existed before attach, reported on `fd` in TCP
    /// `state` with local port `port`, and kept in `Sockets` under
    /// `anchor`. A socket the probes already saw on that fd is newer: it
    /// stays. A listening socket names a port the process accepts on.
    pub(crate) fn on_anchor(&mut self, tgid: u32, fd: i32, anchor: u64, state: u8, port: u16) {
        if state == TCP_LISTEN {
            let mut listening = self.listening.get(&tgid).unwrap_or_default();
            let len = usize::from(listening.len);
            if !listening.ports[..len].contains(&port) && len < MAX_LISTENING {
                listening.ports[len] = port;
                listening.len += 1;
                if self.listening.insert(tgid, listening) {
                    self.stats.evicted_names += 1;
                }
            }
            return;
        }
        if fd >= 0 && !matches!(self.fds.get(&(tgid, fd)), Some(FdTarget::Socket(_))) {
            self.set_fd(tgid, fd, FdTarget::Anchor(anchor));
        }
    }

    /// Whether a connection of `tgid` on local port `port` was accepted
    /// (`Some(true)`) or dialled (`Some(false)`), from the ports it
    /// listened on at attach; `None` when those are not known.
    pub(crate) fn accepted(&self, tgid: u32, port: u16) -> Option<bool> {
        let listening = self.listening.get(&tgid)?;
        Some(listening.ports[..usize::from(listening.len)].contains(&port))
    }

    /// A Go `*tls.Conn` turned out to be `sock`'s, on `fd`.
    pub(crate) fn on_tls_bind(&mut self, tgid: u32, tls_conn: u64, sock: u64, fd: i32) {
        if tls_conn != 0
            && self.tls.get(&(tgid, tls_conn)) != Some(sock)
            && self.tls.insert((tgid, tls_conn), sock)
        {
            self.stats.evicted_names += 1;
        }
        self.on_fd(tgid, fd, sock);
    }

    /// A socket (or a Go TLS conn never bound to one: `sock` 0) closed:
    /// its names are forgotten, the fd first of all (it is free for reuse).
    pub(crate) fn on_close(&mut self, tgid: u32, fd: i32, tls_conn: u64, sock: u64) {
        let sock = match (sock, tls_conn) {
            (0, 0) => return,
            (0, conn) => match self.sock_of_tls(tgid, conn) {
                Some(sock) => sock,
                None => return,
            },
            (sock, _) => sock,
        };
        if tls_conn != 0 {
            self.tls.remove(&(tgid, tls_conn));
        }
        if fd >= 0 && self.fds.get(&(tgid, fd)) == Some(FdTarget::Socket(sock)) {
            self.fds.remove(&(tgid, fd));
        }
        self.adopted.remove(&sock);
    }

    /// What `fd` of `tgid` names now.
    pub(crate) fn fd(&self, tgid: u32, fd: i32) -> Option<FdTarget> {
        self.fds.get(&(tgid, fd))
    }

    /// The socket a Go `*tls.Conn` is bound to.
    pub(crate) fn sock_of_tls(&self, tgid: u32, tls_conn: u64) -> Option<u64> {
        self.tls.get(&(tgid, tls_conn))
    }

    /// The anchor whose addresses `sock` adopted, if any.
    pub(crate) fn adopted_anchor(&self, sock: u64) -> Option<u64> {
        self.adopted.get(&sock)
    }

    /// The connection a socket carries (its Go TLS plaintext, else its own
    /// payload).
    pub(crate) fn conn_of_sock(&self, tgid: u32, sock: u64) -> Option<ConnKey> {
        self.conns.of_sock(tgid, sock)
    }

    fn set_fd(&mut self, tgid: u32, fd: i32, target: FdTarget) {
        if self.fds.insert((tgid, fd), target) {
            self.stats.evicted_names += 1;
        }
    }
}

/// A map bounded to `cap` entries that forgets the oldest insertion when
/// full: the same entries go for any hash seed.
struct Fifo<K, V> {
    map: HashMap<K, (V, u64)>,
    order: VecDeque<(K, u64)>,
    next: u64,
    cap: usize,
}

impl<K: Copy + Eq + Hash, V: Copy> Fifo<K, V> {
    fn new(cap: usize) -> Self {
        Self {
            map: HashMap::new(),
            order: VecDeque::new(),
            next: 0,
            cap: cap.max(1),
        }
    }

    fn get(&self, key: &K) -> Option<V> {
        self.map.get(key).map(|(v, _)| *v)
    }

    fn remove(&mut self, key: &K) {
        // Its place in `order` is skipped when reached.
        self.map.remove(key);
    }

    /// Sets `key`; returns whether an entry was evicted to make room.
    fn insert(&mut self, key: K, value: V) -> bool {
        let seq = self.next;
        self.next += 1;
        let replaced = self.map.insert(key, (value, seq)).is_some();
        self.order.push_back((key, seq));
        let mut evicted = false;
        if !replaced && self.map.len() > self.cap {
            while let Some((old, at)) = self.order.pop_front() {
                if self.map.get(&old).is_some_and(|(_, s)| *s == at) {
                    self.map.remove(&old);
                    evicted = true;
                    break;
                }
            }
        }
        // Places of removed or replaced entries: dropped once they are
        // most of the queue, so it stays bounded too.
        if self.order.len() > 2 * self.cap.max(self.map.len()) {
            let map = &self.map;
            self.order
                .retain(|(k, at)| map.get(k).is_some_and(|(_, s)| s == at));
        }
        evicted
    }
}

#[cfg(test)]
mod tests {
    use tracer_common::record::ChunkSource;

    use super::*;
    use crate::capture::ConnId;

    const PID: u32 = 7;

    fn key(source: ChunkSource, sock: u64) -> ConnKey {
        ConnId {
            tgid: PID,
            source: source as u8,
            key: sock,
        }
    }

    /// The connection `fd` leads to.
    fn by_fd(index: &Attribution, fd: i32) -> Option<ConnKey> {
        match index.fd(PID, fd)? {
            FdTarget::Socket(sock) => index.conn_of_sock(PID, sock),
            FdTarget::Anchor(_) => None,
        }
    }

    /// The connection a `*tls.Conn` leads to.
    fn by_tls(index: &Attribution, tgid: u32, tls_conn: u64) -> Option<ConnKey> {
        index.conn_of_sock(tgid, index.sock_of_tls(tgid, tls_conn)?)
    }

    #[test]
    fn a_tls_conn_bound_late_leads_to_its_plaintext_connection_by_every_name() {
        let mut index = Attribution::new(8, 8);
        // Plaintext seen before the conn's socket was known (no fd yet),
        // and the socket's ciphertext as a connection of its own.
        index.conns.open(key(ChunkSource::GoTls, 0x100), 0);
        index.conns.open(key(ChunkSource::Syscall, 0x100), 0);
        assert_eq!(by_tls(&index, PID, 0xc0de), None);
        assert_eq!(by_fd(&index, 5), None);
        index.on_tls_bind(PID, 0xc0de, 0x100, 5);
        let plaintext = Some(key(ChunkSource::GoTls, 0x100));
        assert_eq!(by_tls(&index, PID, 0xc0de), plaintext);
        assert_eq!(by_fd(&index, 5), plaintext);
        assert_eq!(index.conn_of_sock(PID, 0x100), plaintext);
        assert_eq!(by_tls(&index, PID + 1, 0xc0de), None, "another process");
        index.on_close(PID, 5, 0xc0de, 0x100);
        assert_eq!(by_tls(&index, PID, 0xc0de), None);
        assert_eq!(index.fd(PID, 5), None, "its socket's fd is free");
        // A conn swept without a socket: its close names the conn only.
        index.on_tls_bind(PID, 0xbeef, 0x200, -1);
        assert_eq!(index.sock_of_tls(PID, 0xbeef), Some(0x200));
        index.on_close(PID, -1, 0xbeef, 0);
        assert_eq!(index.sock_of_tls(PID, 0xbeef), None);
    }

    #[test]
    fn a_reused_fd_names_the_new_socket_and_never_the_old_one() {
        let mut index = Attribution::new(8, 8);
        index.conns.open(key(ChunkSource::Syscall, 0xa), 0);
        index.on_fd(PID, 7, 0xa);
        assert_eq!(by_fd(&index, 7), Some(key(ChunkSource::Syscall, 0xa)));
        // Closed, and the fd reused at once by another socket.
        index.on_close(PID, 7, 0, 0xa);
        assert_eq!(by_fd(&index, 7), None);
        index.conns.open(key(ChunkSource::Syscall, 0xb), 0);
        index.on_fd(PID, 7, 0xb);
        assert_eq!(by_fd(&index, 7), Some(key(ChunkSource::Syscall, 0xb)));
        // A late record of the old socket on the fd does not undo it...
        index.on_close(PID, 7, 0, 0xa);
        assert_eq!(index.fd(PID, 7), Some(FdTarget::Socket(0xb)));
        // ...and a reuse whose close was never seen still replaces it.
        index.on_fd(PID, 7, 0xc);
        assert_eq!(index.fd(PID, 7), Some(FdTarget::Socket(0xc)));
    }

    #[test]
    fn a_socket_anchored_before_attach_lends_its_addresses_to_the_first_socket_on_its_fd_only() {
        let mut index = Attribution::new(8, 8);
        let anchor = 0xffff_ffff_0000_0042;
        index.on_anchor(PID, 9, anchor, 1, 6443);
        assert_eq!(index.fd(PID, 9), Some(FdTarget::Anchor(anchor)));
        // The probes name it when it is first used: its addresses were
        // learnt before that, from sock_diag.
        index.on_fd(PID, 9, 0xa);
        assert_eq!(index.adopted_anchor(0xa), Some(anchor));
        assert_eq!(index.fd(PID, 9), Some(FdTarget::Socket(0xa)));
        // It closes; the fd's next socket is new, with no addresses yet.
        index.on_close(PID, 9, 0, 0xa);
        index.on_fd(PID, 9, 0xb);
        assert_eq!(index.adopted_anchor(0xb), None);
        assert_eq!(index.adopted_anchor(0xa), None);
        // An anchor reported after the probes saw a socket on the fd is
        // older news.
        index.on_anchor(PID, 9, anchor, 1, 6443);
        assert_eq!(index.fd(PID, 9), Some(FdTarget::Socket(0xb)));
    }

    #[test]
    fn a_port_the_process_listened_on_at_attach_means_accepted_any_other_dialled() {
        let mut index = Attribution::new(8, 8);
        assert_eq!(index.accepted(PID, 6443), None, "nothing known");
        index.on_anchor(PID, 3, 0xffff_ffff_0000_0001, TCP_LISTEN, 6443);
        index.on_anchor(PID, 4, 0xffff_ffff_0000_0002, TCP_LISTEN, 6443);
        assert_eq!(index.accepted(PID, 6443), Some(true));
        assert_eq!(
            index.accepted(PID, 40_000),
            Some(false),
            "dialled out (etcd)"
        );
        assert_eq!(index.accepted(PID + 1, 6443), None, "another process");
        assert_eq!(index.fd(PID, 3), None, "a listener is no connection's fd");
    }

    #[test]
    fn names_are_bounded_and_the_oldest_go_first() {
        let mut index = Attribution::new(8, 2);
        index.on_fd(PID, 1, 0xa);
        index.on_fd(PID, 2, 0xb);
        // Refreshing a name keeps the count.
        index.on_fd(PID, 1, 0xa);
        assert_eq!(index.stats().evicted_names, 0);
        index.on_fd(PID, 3, 0xc);
        assert_eq!(index.stats().evicted_names, 1);
        assert_eq!(index.fd(PID, 1), None, "the oldest insertion went");
        assert_eq!(index.fd(PID, 2), Some(FdTarget::Socket(0xb)));
        assert_eq!(index.fd(PID, 3), Some(FdTarget::Socket(0xc)));
        for fd in 0..1000 {
            index.on_fd(PID, 4 + fd % 3, 0x100 + fd as u64);
        }
        assert!(
            index.fds.order.len() <= 4,
            "the insertion queue is bounded too"
        );
    }
}
