//! Throughput of the decoders on realistic events (run with
//! `cargo test --release --test watch_throughput -- --ignored --nocapture`).
//! Not a pass/fail benchmark: it prints MB/s per format and split size.

use std::time::Instant;

use watchtrace::{
    etcd::{
        EtcdDecoderConfig, EtcdWatchDecoder, Flow,
        fixture::{encode_grpc, response_with_puts},
    },
    watch::{
        DecoderConfig, WatchStreamDecoder, WireFormat,
        fixture::{ObjectSpec, encode_cbor_item, encode_json_line, encode_protobuf_frame},
    },
};

/// About 64 MiB of Pod events of about 4 KiB each.
fn body(format: WireFormat) -> Vec<u8> {
    let mut spec = ObjectSpec::pod("MODIFIED", "production", "web-7d9c5b6f4-abcde", "123456789");
    spec.payload = vec![b'p'; 3500];
    spec.annotations = vec![("deployment.kubernetes.io/revision".into(), "12".into())];
    let one = match format {
        WireFormat::Json => encode_json_line(&spec),
        WireFormat::Protobuf => encode_protobuf_frame(&spec),
        WireFormat::Cbor => encode_cbor_item(&spec),
    };
    one.repeat((64 << 20) / one.len())
}

#[test]
#[ignore = "measurement, run by hand in release mode"]
fn watch_decoder_throughput() {
    for format in [WireFormat::Protobuf, WireFormat::Json, WireFormat::Cbor] {
        let b = body(format);
        for piece in [1 << 20, 16 << 10, 1500] {
            let mut d = WatchStreamDecoder::from_start(format, DecoderConfig::default());
            let mut out = Vec::with_capacity(1 << 16);
            let t = Instant::now();
            let mut n = 0;
            for c in b.chunks(piece) {
                d.push(c, 0, &mut out);
                n += out.len();
                out.clear();
            }
            let s = t.elapsed().as_secs_f64();
            println!(
                "{format:>8} piece {piece:>7}: {:>7.0} MB/s, {:>8.0} events/s ({n} events)",
                b.len() as f64 / s / 1e6,
                n as f64 / s
            );
        }
    }
}

#[test]
#[ignore = "measurement, run by hand in release mode"]
fn etcd_decoder_throughput() {
    let keys: Vec<String> = (0..20)
        .map(|i| format!("/registry/pods/default/web-{i}"))
        .collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let one = encode_grpc(&response_with_puts(1, 1000, &keys));
    let b = one.repeat((32 << 20) / one.len());
    for piece in [1 << 20, 16 << 10, 1500] {
        let mut d =
            EtcdWatchDecoder::from_start(Flow::ServerToClient, EtcdDecoderConfig::default());
        let mut out = Vec::new();
        let t = Instant::now();
        for c in b.chunks(piece) {
            d.push(c, 0, &mut out);
            out.clear();
        }
        let s = t.elapsed().as_secs_f64();
        println!(
            "etcd piece {piece:>7}: {:>7.0} MB/s",
            b.len() as f64 / s / 1e6
        );
    }
}
