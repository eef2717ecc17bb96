//! From a write to its watchers, from records: a client's PUT to the
//! traced apiserver, the apiserver's etcd Txn committing revision 42, the
//! etcd watch response carrying it, and a watcher's event of it. The
//! `write` line gets its revision, commit time and etcd round trip; the
//! watch event its writer and the delays from the commit; the revision's
//! `write_fanout` counts its watchers. A conflict is counted on the write
//! that retried.

#[path = "record_support.rs"]
mod records;
#[path = "http2_support.rs"]
mod support;

use records::{listening, run_to_the_end, sock_close, syscall_chunk_on_fd, tcp_sample};
use support::{Enc, data, headers, preface, settings};
use watchtrace::{
    etcd::fixture::{encode_grpc, response_with_puts},
    watch::fixture::{ObjectSpec, ProtoWriter, encode_json_line},
};

const MS: u64 = 1_000_000;
const KEY: &str = "/registry/configmaps/ns-0/a";
/// The writer's, the etcd and the watcher's sockets, and their fds.
const WRITER: (u64, i32) = (0xffff_8880_0000_a000, 10);
const ETCD: (u64, i32) = (0xffff_8880_0000_b000, 11);
const WATCHER: (u64, i32) = (0xffff_8880_0000_c000, 12);

/// One direction of a connection: its records at increasing offsets.
struct Side {
    sock: (u64, i32),
    egress: bool,
    offset: u64,
}

impl Side {
    fn new(sock: (u64, i32), egress: bool) -> Self {
        Self {
            sock,
            egress,
            offset: 0,
        }
    }

    fn at(&mut self, ms: u64, bytes: &[u8]) -> Vec<u8> {
        let (sock, fd) = self.sock;
        let r = syscall_chunk_on_fd(sock, fd, ms * MS, self.egress, self.offset, bytes);
        self.offset += bytes.len() as u64;
        r
    }
}

/// A watcher's opening (preface, SETTINGS, its watch of configmaps on
/// stream 1) and the server's (SETTINGS, the response's headers).
fn watcher_opening() -> (Vec<u8>, Vec<u8>) {
    let mut request = preface();
    request.extend(settings(&[]));
    request.extend(headers(
        1,
        &request_block(
            "GET",
            "/api/v1/namespaces/ns-0/configmaps?watch=true",
            "kube-controller-manager/v1.36.0",
        ),
        true,
    ));
    let mut response = settings(&[]);
    let block = Enc::default()
        .indexed(8)
        .literal("content-type", "application/json")
        .build();
    response.extend(headers(1, &block, false));
    (request, response)
}

fn request_block(method: &str, path: &str, user_agent: &str) -> Vec<u8> {
    Enc::default()
        .literal_idx_name(2, method)
        .indexed(6)
        .literal(":authority", "10.0.0.1:6443")
        .literal(":path", path)
        .literal("user-agent", user_agent)
        .build()
}

/// kube-apiserver's update: compare mod_revision = 41, put; else get.
fn txn_request() -> Vec<u8> {
    let mut w = ProtoWriter::new();
    w.message(1, |c| {
        c.varint(2, 2).string(3, KEY).varint(6, 41);
    })
    .message(2, |op| {
        op.message(2, |p| {
            p.string(1, KEY).bytes(2, b"k8s\0value");
        });
    })
    .message(3, |op| {
        op.message(1, |r| {
            r.string(1, KEY);
        });
    });
    encode_grpc(&w.buf)
}

fn txn_response(succeeded: bool, revision: u64) -> Vec<u8> {
    let mut w = ProtoWriter::new();
    w.message(1, |h| {
        h.varint(3, revision);
    });
    if succeeded {
        w.varint(2, 1);
    }
    encode_grpc(&w.buf)
}

/// The records, in time order, of one PUT whose first Txn conflicts (at
/// 2-3 ms) and whose second commits revision 42 (read at 5 ms); etcd's
/// watch response is read at 6 ms, the watcher's event written at 7 ms,
/// the PUT answered at 8 ms; the watcher's socket closes at 20 ms.
fn records() -> Vec<Vec<u8>> {
    let mut writer_in = Side::new(WRITER, false);
    let mut writer_out = Side::new(WRITER, true);
    let mut etcd_out = Side::new(ETCD, true);
    let mut etcd_in = Side::new(ETCD, false);
    let mut watcher_in = Side::new(WATCHER, false);
    let mut watcher_out = Side::new(WATCHER, true);

    // The etcd watch (stream 1) and the watcher's watch, opened first.
    let mut b = preface();
    b.extend(settings(&[]));
    let watch = Enc::default()
        .indexed(3)
        .indexed(6)
        .literal(":authority", "127.0.0.1:2379")
        .literal(":path", "/etcdserverpb.Watch/Watch")
        .build();
    b.extend(headers(1, &watch, false));
    let mut etcd_head = settings(&[]);
    etcd_head.extend(headers(1, &Enc::default().indexed(8).build(), false));
    let (w, watcher_head) = watcher_opening();

    // The PUT (stream 1 of the writer's connection), its Txns on etcd
    // streams 3 and 5.
    let mut put = preface();
    put.extend(settings(&[]));
    put.extend(headers(
        1,
        &request_block(
            "PUT",
            "/api/v1/namespaces/ns-0/configmaps/a",
            "kubectl/v1.32.0 (linux/amd64)",
        ),
        false,
    ));
    put.extend(data(1, b"{\"kind\":\"ConfigMap\"}", true));
    let txn_call = |stream: u32| {
        let block = Enc::default()
            .indexed(3)
            .indexed(6)
            .literal(":authority", "127.0.0.1:2379")
            .literal(":path", "/etcdserverpb.KV/Txn")
            .build();
        let mut b = headers(stream, &block, false);
        b.extend(data(stream, &txn_request(), true));
        b
    };
    let txn_answer = |stream: u32, succeeded: bool, revision: u64| {
        let mut b = headers(stream, &Enc::default().indexed(8).build(), false);
        b.extend(data(stream, &txn_response(succeeded, revision), false));
        b.extend(headers(
            stream,
            &Enc::default().literal("grpc-status", "0").build(),
            true,
        ));
        b
    };
    let mut put_answer = settings(&[]);
    let block = Enc::default()
        .indexed(8)
        .literal("content-type", "application/json")
        .build();
    put_answer.extend(headers(1, &block, false));
    put_answer.extend(data(1, b"{\"kind\":\"ConfigMap\"}", true));
    let event = encode_json_line(&ObjectSpec::pod("MODIFIED", "ns-0", "a", "42"));

    vec![
        etcd_out.at(990, &b),
        etcd_in.at(991, &etcd_head),
        watcher_in.at(992, &w),
        watcher_out.at(993, &watcher_head),
        writer_in.at(1000, &put),
        etcd_out.at(1002, &txn_call(3)),
        etcd_in.at(1003, &txn_answer(3, false, 41)),
        etcd_out.at(1004, &txn_call(5)),
        etcd_in.at(1005, &txn_answer(5, true, 42)),
        etcd_in.at(
            1006,
            &data(1, &encode_grpc(&response_with_puts(0, 42, &[KEY])), false),
        ),
        watcher_out.at(1007, &data(1, &event, false)),
        writer_out.at(1008, &put_answer),
        sock_close(
            1020 * MS,
            WATCHER.0,
            WATCHER.1,
            watcher_out.offset,
            watcher_in.offset,
        ),
    ]
}

#[test]
fn a_write_is_joined_to_its_commit_and_to_every_watch_event_of_its_revision() {
    for workers in [1, 2] {
        let (out, _) = run_to_the_end(&records(), workers);
        let lines: Vec<serde_json::Value> = out
            .iter()
            .map(|e| serde_json::to_value(e).unwrap())
            .collect();
        let of = |kind: &str| -> Vec<&serde_json::Value> {
            lines.iter().filter(|l| l["kind"] == kind).collect()
        };

        let write = of("write");
        assert_eq!(write.len(), 1, "{lines:#?}");
        let w = write[0];
        assert_eq!(w["verb"], "update");
        assert_eq!(w["resource"], "configmaps");
        assert_eq!(w["name"], "a");
        assert_eq!(w["client"], "kubectl");
        assert_eq!(w["status"], 200);
        assert_eq!(w["revision"], 42);
        assert_eq!(w["t_request"], 1000 * MS);
        assert_eq!(w["t_committed"], 1005 * MS);
        assert_eq!(w["t_responded"], 1008 * MS);
        assert_eq!(w["etcd_rtt_ns"], MS);
        assert_eq!(
            (w["etcd_calls"].as_u64(), w["etcd_conflicts"].as_u64()),
            (Some(2), Some(1))
        );

        let events = of("watch_event");
        assert_eq!(events.len(), 1, "{lines:#?}");
        let e = events[0];
        assert_eq!(e["resource_version"], "42");
        assert_eq!(e["writer"], "kubectl");
        assert_eq!(e["t_committed"], 1005 * MS);
        assert_eq!(e["t_source"], 1006 * MS);
        assert_eq!(e["etcd_watch_delay_ns"], MS);
        assert_eq!(e["commit_to_send_ns"], 2 * MS);
        assert_eq!(e["write_to_ack_ns"], serde_json::Value::Null, "no ack seen");

        let fanout = of("write_fanout");
        assert_eq!(fanout.len(), 1, "{lines:#?}");
        assert_eq!(fanout[0]["revision"], 42);
        assert_eq!(fanout[0]["watchers"], 1);
        assert_eq!(fanout[0]["writer"], "kubectl");
        assert_eq!(fanout[0]["etcd_watch_delay_ns"], MS);

        let calls: Vec<_> = of("etcd_request")
            .iter()
            .map(|l| l["result"].clone())
            .collect();
        assert_eq!(calls, ["conflict", "ok"], "workers {workers}");
    }
}

#[test]
fn a_watch_event_written_before_its_etcd_read_was_decoded_still_gets_its_source() {
    // The etcd connection was open before attach: its first bytes read
    // (at 1006 ms, carrying revision 42) are a frame's tail, the watch
    // response and the start of a header, which decode only when the next
    // read (1010 ms) confirms the boundary. The watcher's event of 42 was
    // written at 1007 ms and its connection closed at 1008 ms, before that.
    let mut etcd_in = Side::new(ETCD, false);
    etcd_in.offset = 4096;
    let mut watcher_in = Side::new(WATCHER, false);
    let mut watcher_out = Side::new(WATCHER, true);
    let (w, watcher_head) = watcher_opening();
    let mut first = vec![0x55; 30];
    first.extend(data(
        1,
        &encode_grpc(&response_with_puts(0, 42, &[KEY])),
        false,
    ));
    let next = data(1, &encode_grpc(&response_with_puts(0, 43, &[KEY])), false);
    first.extend(&next[..4]);
    let mut second = next[4..].to_vec();
    second.extend(data(
        1,
        &encode_grpc(&response_with_puts(0, 44, &[KEY])),
        false,
    ));
    let event = encode_json_line(&ObjectSpec::pod("MODIFIED", "ns-0", "a", "42"));
    let records = vec![
        listening(900 * MS, 6443),
        tcp_sample(901 * MS, ETCD, 40_000, 2379),
        watcher_in.at(992, &w),
        watcher_out.at(993, &watcher_head),
        etcd_in.at(1006, &first),
        watcher_out.at(1007, &data(1, &event, false)),
        sock_close(
            1008 * MS,
            WATCHER.0,
            WATCHER.1,
            watcher_out.offset + data(1, &event, false).len() as u64,
            watcher_in.offset,
        ),
        etcd_in.at(1010, &second),
    ];
    let mut outputs = Vec::new();
    for workers in [1, 2] {
        let (out, stats) = run_to_the_end(&records, workers);
        assert_eq!(stats.late_sources.filled, 1, "workers {workers}");
        outputs.push(out);
    }
    assert_eq!(outputs[0], outputs[1], "the same for any number of workers");
    let lines: Vec<serde_json::Value> = outputs[0]
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect();
    let etcd: Vec<_> = lines.iter().filter(|l| l["kind"] == "etcd_event").collect();
    assert_eq!(etcd[0]["revision"], 42, "{lines:#?}");
    assert_eq!(etcd[0]["t_received"], 1006 * MS, "read at 1006, not 1010");
    let events: Vec<_> = lines
        .iter()
        .filter(|l| l["kind"] == "watch_event")
        .collect();
    assert_eq!(events.len(), 1, "{lines:#?}");
    assert_eq!(events[0]["t_source"], 1006 * MS, "{lines:#?}");
    assert_eq!(events[0]["apiserver_time_span_ns"], MS);
    assert!(
        !events[0]["missing"]
            .as_array()
            .unwrap()
            .contains(&"t_source".into())
    );
}
