//! TCP sockets that existed before watchtrace attached, from the kernel's
//! sock_diag netlink interface, with their `tcp_info` counters.
//!
//! The probes only see a socket once it is used; a long-lived watch
//! connection may be quiet for a while. At attach, each target's socket fds
//! (`/proc/PID/fd` -> `socket:[inode]`) are matched to the dump by inode, so
//! every pre-existing connection is known at once, with its 4-tuple and its
//! byte counters as of that moment.

use std::{collections::HashMap, fs, io, mem::size_of, net::IpAddr};

/// One TCP socket from the dump.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiagSocket {
    pub family: u8,
    pub state: u8,
    pub local: (IpAddr, u16),
    pub peer: (IpAddr, u16),
    pub inode: u32,
    pub uid: u32,
    /// Bytes in the send queue not yet acknowledged (idiag_wqueue).
    pub send_queue: u32,
    pub receive_queue: u32,
    pub info: Option<TcpInfo>,
}

/// The `tcp_info` counters watchtrace uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpInfo {
    pub rtt_us: u32,
    pub snd_cwnd: u32,
    pub bytes_sent: u64,
    pub bytes_acked: u64,
    pub bytes_received: u64,
    pub total_retrans: u32,
}

const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const INET_DIAG_INFO: u16 = 2;
const IPPROTO_TCP: u8 = 6;
/// Size of `struct inet_diag_msg`.
const DIAG_MSG_LEN: usize = 72;

/// Dumps every TCP socket of both families.
pub fn dump_tcp() -> io::Result<Vec<DiagSocket>> {
    let mut all = dump_family(libc::AF_INET as u8)?;
    all.extend(dump_family(libc::AF_INET6 as u8)?);
    Ok(all)
}

fn dump_family(family: u8) -> io::Result<Vec<DiagSocket>> {
    // SAFETY: plain socket(2) call; the result is checked.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_SOCK_DIAG,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a socket we own; OwnedFd closes it on every path.
    let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
    let request = dump_request(family);
    // SAFETY: the buffer is valid for its length; the kernel is the peer.
    let sent = unsafe { libc::send(raw, request.as_ptr().cast(), request.len(), 0) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut sockets = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        // SAFETY: the buffer is valid and writable for its length.
        let n = unsafe { libc::recv(raw, buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let (batch, done) = parse_dump(&buf[..n as usize])?;
        sockets.extend(batch);
        if done || n == 0 {
            return Ok(sockets);
        }
    }
}

/// An `SOCK_DIAG_BY_FAMILY` dump request for every TCP socket of `family`,
/// asking for `tcp_info`.
fn dump_request(family: u8) -> Vec<u8> {
    let len = NLMSG_HDRLEN + 56;
    let mut msg = Vec::with_capacity(len);
    msg.extend_from_slice(&(len as u32).to_ne_bytes());
    msg.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    msg.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes()); // seq
    msg.extend_from_slice(&0u32.to_ne_bytes()); // pid
    // struct inet_diag_req_v2
    msg.push(family);
    msg.push(IPPROTO_TCP);
    msg.push(1 << (INET_DIAG_INFO - 1)); // idiag_ext
    msg.push(0);
    msg.extend_from_slice(&u32::MAX.to_ne_bytes()); // every state
    msg.resize(len, 0); // inet_diag_sockid: zero = any
    msg
}

/// Parses one netlink datagram of a dump: the sockets in it, and whether it
/// ended the dump.
pub fn parse_dump(mut data: &[u8]) -> io::Result<(Vec<DiagSocket>, bool)> {
    let mut out = Vec::new();
    while data.len() >= NLMSG_HDRLEN {
        let len = u32::from_ne_bytes(data[0..4].try_into().expect("4 bytes")) as usize;
        let kind = u16::from_ne_bytes(data[4..6].try_into().expect("2 bytes"));
        if len < NLMSG_HDRLEN || len > data.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "malformed netlink message",
            ));
        }
        let body = &data[NLMSG_HDRLEN..len];
        match kind {
            NLMSG_DONE => return Ok((out, true)),
            NLMSG_ERROR => {
                let errno = body
                    .get(0..4)
                    .map_or(0, |b| i32::from_ne_bytes(b.try_into().expect("4 bytes")));
                return Err(io::Error::from_raw_os_error(-errno));
            }
            SOCK_DIAG_BY_FAMILY => {
                if let Some(socket) = parse_diag_msg(body) {
                    out.push(socket);
                }
            }
            _ => {}
        }
        let aligned = (len + 3) & !3;
        data = data.get(aligned..).unwrap_or_default();
    }
    Ok((out, false))
}

fn parse_diag_msg(body: &[u8]) -> Option<DiagSocket> {
    if body.len() < DIAG_MSG_LEN {
        return None;
    }
    let u32_at = |o: usize| u32::from_ne_bytes(body[o..o + 4].try_into().expect("4 bytes"));
    let family = body[0];
    let address = |o: usize| -> IpAddr {
        if family == libc::AF_INET as u8 {
            IpAddr::from([body[o], body[o + 1], body[o + 2], body[o + 3]])
        } else {
            let mut raw = [0u8; 16];
            raw.copy_from_slice(&body[o..o + 16]);
            IpAddr::from(raw)
        }
    };
    // inet_diag_sockid at 4: sport(be16) dport(be16) src[16] dst[16] if cookie
    let sport = u16::from_be_bytes([body[4], body[5]]);
    let dport = u16::from_be_bytes([body[6], body[7]]);
    let mut socket = DiagSocket {
        family,
        state: body[1],
        local: (address(8), sport),
        peer: (address(24), dport),
        receive_queue: u32_at(56),
        send_queue: u32_at(60),
        uid: u32_at(64),
        inode: u32_at(68),
        info: None,
    };
    let mut attrs = &body[DIAG_MSG_LEN..];
    while attrs.len() >= 4 {
        let len = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
        let kind = u16::from_ne_bytes([attrs[2], attrs[3]]);
        if len < 4 || len > attrs.len() {
            break;
        }
        if kind == INET_DIAG_INFO {
            socket.info = Some(parse_tcp_info(&attrs[4..len]));
        }
        attrs = attrs.get((len + 3) & !3..).unwrap_or_default();
    }
    Some(socket)
}

/// Reads the fields watchtrace uses from a (possibly shorter or longer)
/// `struct tcp_info`, by copying it over a zeroed one.
fn parse_tcp_info(raw: &[u8]) -> TcpInfo {
    // SAFETY: tcp_info is plain integers, valid when zeroed.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let n = raw.len().min(size_of::<libc::tcp_info>());
    // SAFETY: n is within both the source and the destination.
    unsafe { std::ptr::copy_nonoverlapping(raw.as_ptr(), (&raw mut info).cast::<u8>(), n) };
    TcpInfo {
        rtt_us: info.tcpi_rtt,
        snd_cwnd: info.tcpi_snd_cwnd,
        bytes_sent: info.tcpi_bytes_sent,
        bytes_acked: info.tcpi_bytes_acked,
        bytes_received: info.tcpi_bytes_received,
        total_retrans: info.tcpi_total_retrans,
    }
}

/// Socket fds of a process: inode -> fd, from /proc/PID/fd (another
/// user's process needs CAP_DAC_READ_SEARCH: `PermissionDenied`).
pub fn socket_fds(pid: u32) -> io::Result<HashMap<u32, i32>> {
    let entries = fs::read_dir(format!("/proc/{pid}/fd"))?;
    Ok(entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let fd: i32 = e.file_name().to_str()?.parse().ok()?;
            let target = fs::read_link(e.path()).ok()?;
            let inode = target
                .to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()?;
            Some((inode, fd))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dump datagram with one IPv4 socket 127.0.0.1:443 -> 127.0.0.1:5000
    /// (ESTABLISHED, inode 777) carrying a tcp_info, then NLMSG_DONE.
    fn datagram() -> Vec<u8> {
        let mut info = vec![0u8; size_of::<libc::tcp_info>()];
        // SAFETY: writing one field of a zeroed tcp_info image.
        let mut parsed: libc::tcp_info = unsafe { std::mem::zeroed() };
        parsed.tcpi_bytes_acked = 123_456;
        parsed.tcpi_rtt = 42;
        // SAFETY: copying the struct's bytes into a buffer of its size.
        unsafe {
            std::ptr::copy_nonoverlapping(
                (&raw const parsed).cast::<u8>(),
                info.as_mut_ptr(),
                info.len(),
            )
        };
        let mut body = vec![0u8; DIAG_MSG_LEN];
        body[0] = libc::AF_INET as u8;
        body[1] = 1; // ESTABLISHED
        body[4..6].copy_from_slice(&443u16.to_be_bytes());
        body[6..8].copy_from_slice(&5000u16.to_be_bytes());
        body[8..12].copy_from_slice(&[127, 0, 0, 1]);
        body[24..28].copy_from_slice(&[127, 0, 0, 1]);
        body[60..64].copy_from_slice(&17u32.to_ne_bytes());
        body[68..72].copy_from_slice(&777u32.to_ne_bytes());
        body.extend_from_slice(&((4 + info.len()) as u16).to_ne_bytes());
        body.extend_from_slice(&INET_DIAG_INFO.to_ne_bytes());
        body.extend_from_slice(&info);
        while !body.len().is_multiple_of(4) {
            body.push(0);
        }
        let mut msg = Vec::new();
        msg.extend_from_slice(&((NLMSG_HDRLEN + body.len()) as u32).to_ne_bytes());
        msg.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        msg.extend_from_slice(&[0; 10]);
        msg.extend_from_slice(&body);
        msg.extend_from_slice(&(NLMSG_HDRLEN as u32 + 4).to_ne_bytes());
        msg.extend_from_slice(&NLMSG_DONE.to_ne_bytes());
        msg.extend_from_slice(&[0; 14]);
        msg
    }

    #[test]
    fn parses_a_socket_with_tcp_info_and_the_end_of_dump() {
        let (sockets, done) = parse_dump(&datagram()).unwrap();
        assert!(done);
        assert_eq!(sockets.len(), 1);
        let s = &sockets[0];
        assert_eq!(s.local, ("127.0.0.1".parse().unwrap(), 443));
        assert_eq!(s.peer.1, 5000);
        assert_eq!((s.inode, s.send_queue), (777, 17));
        assert_eq!(s.info.unwrap().bytes_acked, 123_456);
        assert_eq!(s.info.unwrap().rtt_us, 42);
    }

    #[test]
    fn malformed_lengths_are_an_error_not_a_panic() {
        let mut bad = datagram();
        bad[0..4].copy_from_slice(&9999u32.to_ne_bytes());
        assert!(parse_dump(&bad).is_err());
    }

    #[test]
    fn the_live_dump_finds_a_connection_of_this_process() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let fds = socket_fds(std::process::id()).unwrap();
        let sockets = dump_tcp().unwrap();
        let ours = sockets
            .iter()
            .find(|s| s.peer.1 == port && s.state == 1)
            .expect("our connection in the dump");
        let fd = fds.get(&ours.inode).copied();
        assert_eq!(fd, Some(std::os::fd::AsRawFd::as_raw_fd(&client)));
    }
}
