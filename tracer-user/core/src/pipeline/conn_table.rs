//! Which connection a record belongs to: the table of tracked connections,
//! keyed by socket and source, with their ids, and eviction at its cap.

use foldhash::{HashMap, HashMapExt as _};
use tracer_common::record::ChunkSource;

use super::output::Role;
use crate::capture::ConnId;

/// A connection's identity: its socket, with where its bytes come from.
pub(crate) type ConnKey = ConnId;

/// One tracked connection.
pub(crate) struct Tracked {
    pub(crate) id: u64,
    pub(crate) pid: u32,
    /// The process's role on it: its decoder's, or for a connection
    /// joined mid-way, inferred from the socket's ports.
    pub(crate) role: Role,
    /// The decoder guessed the role wrong: its events name the sides the
    /// other way round.
    pub(crate) flip_roles: bool,
    pub(crate) bytes_out: u64,
    pub(crate) bytes_in: u64,
    pub(crate) last_ns: u64,
    /// The client's program name (its user-agent up to the first `/`).
    pub(crate) client: Option<crate::watch::MetaString>,
    /// When a `conn_sample` was last written.
    pub(crate) last_sample_ns: u64,
    /// Its addresses were written (in `conn_open` or `conn_address`).
    pub(crate) addressed: bool,
    /// The fd, once known.
    pub(crate) fd: Option<i32>,
    /// A Go TLS connection's latest Write is not reported sent yet.
    pub(crate) write_unsent: bool,
}

/// The tracked connections, at most `cap`.
pub(crate) struct ConnTable {
    conns: HashMap<ConnKey, Tracked>,
    next_id: u64,
    cap: usize,
}

impl ConnTable {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            conns: HashMap::new(),
            next_id: 1,
            cap,
        }
    }

    pub(crate) fn get(&self, key: &ConnKey) -> Option<&Tracked> {
        self.conns.get(key)
    }

    pub(crate) fn get_mut(&mut self, key: &ConnKey) -> Option<&mut Tracked> {
        self.conns.get_mut(key)
    }

    pub(crate) fn contains(&self, key: &ConnKey) -> bool {
        self.conns.contains_key(key)
    }

    pub(crate) fn remove(&mut self, key: &ConnKey) -> Option<Tracked> {
        self.conns.remove(key)
    }

    /// Starts tracking `key` with the next id. At the cap the connection
    /// idle longest (the oldest id among equals) makes room: it is
    /// returned for its owner to close.
    pub(crate) fn open(&mut self, key: ConnKey, ts_ns: u64) -> Option<Tracked> {
        let mut evicted = None;
        if self.conns.len() >= self.cap
            && let Some(idle) = self
                .conns
                .iter()
                .min_by_key(|(_, t)| (t.last_ns, t.id))
                .map(|(k, _)| *k)
        {
            evicted = self.conns.remove(&idle);
        }
        self.conns.insert(
            key,
            Tracked {
                id: self.next_id,
                pid: key.tgid,
                role: Role::Server,
                flip_roles: false,
                bytes_out: 0,
                bytes_in: 0,
                last_ns: ts_ns,
                client: None,
                last_sample_ns: 0,
                addressed: false,
                fd: None,
                write_unsent: false,
            },
        );
        self.next_id += 1;
        evicted
    }

    /// The connection a socket carries, if one carries captured bytes: its
    /// Go TLS plaintext, else its own payload.
    pub(crate) fn of_sock(&self, tgid: u32, sock: u64) -> Option<ConnKey> {
        [ChunkSource::GoTls, ChunkSource::Syscall]
            .into_iter()
            .map(|source| ConnId {
                tgid,
                source: source as u8,
                key: sock,
            })
            .find(|key| self.conns.contains_key(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(source: ChunkSource, sock: u64) -> ConnKey {
        ConnId {
            tgid: 7,
            source: source as u8,
            key: sock,
        }
    }

    #[test]
    fn ids_count_up_and_the_idlest_connection_makes_room_at_the_cap() {
        let mut t = ConnTable::new(2);
        assert!(t.open(key(ChunkSource::Syscall, 1), 50).is_none());
        assert!(t.open(key(ChunkSource::Syscall, 2), 50).is_none());
        t.get_mut(&key(ChunkSource::Syscall, 1)).unwrap().last_ns = 90;
        // Socket 2 idles longest.
        let evicted = t.open(key(ChunkSource::Syscall, 3), 100).unwrap();
        assert_eq!(evicted.id, 2);
        assert_eq!(t.get(&key(ChunkSource::Syscall, 3)).unwrap().id, 3);
        // Equally idle: the older id goes.
        t.get_mut(&key(ChunkSource::Syscall, 1)).unwrap().last_ns = 100;
        let evicted = t.open(key(ChunkSource::Syscall, 4), 100).unwrap();
        assert_eq!(evicted.id, 1);
    }

    #[test]
    fn a_socket_with_go_tls_plaintext_is_that_connection() {
        let mut t = ConnTable::new(8);
        t.open(key(ChunkSource::Syscall, 1), 0);
        assert_eq!(t.of_sock(7, 1), Some(key(ChunkSource::Syscall, 1)));
        t.open(key(ChunkSource::GoTls, 1), 0);
        assert_eq!(t.of_sock(7, 1), Some(key(ChunkSource::GoTls, 1)));
        assert_eq!(t.of_sock(8, 1), None, "another process's socket");
    }
}
