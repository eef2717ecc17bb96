//! Root-only: the image `cargo xtask image` builds (deploy/Containerfile),
//! run by podman as the DaemonSet runs it. The podman flags are derived
//! from deploy/base/daemonset.yaml (host PID and network namespaces, uid,
//! capabilities, no privilege escalation, read-only root, seccomp
//! RuntimeDefault, AppArmor, the hostPath mounts, the memory limit, the
//! env and args); a field this test does not know how to translate fails
//! it, so the container is exactly the pod. In it, the agent traces the
//! testbed's fake-apiserver on the host: every watch event the ground
//! truth says was written comes out on the agent's stdout, and /metrics
//! (served on the IPv6 loopback, as `$(POD_IP):9464` becomes on an IPv6
//! node) counts the same events.
//!
//! `cargo xtask test` builds the image and names it in WATCHTRACE_IMAGE.

mod support;

use std::{
    collections::{BTreeMap, BTreeSet},
    env, fs,
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use serde::Deserialize as _;
use serde_json::Value;
use support::ground_truth::{self, Events};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The image under test, built by `cargo xtask test` (or `cargo xtask image`).
fn image() -> String {
    env::var("WATCHTRACE_IMAGE").unwrap_or_else(|_| {
        panic!(
            "WATCHTRACE_IMAGE is not set: run through `cargo xtask test`, which builds the image"
        )
    })
}

/// The default seccomp profile of the containers-common stack: podman's,
/// and CRI-O's RuntimeDefault. It admits bpf(2) and perf_event_open(2) to
/// a process holding CAP_SYS_ADMIN (containerd's default does too).
const RUNTIME_DEFAULT_SECCOMP: &str = "/usr/share/containers/seccomp.json";

/// `podman` on runc, the runtime Kubernetes nodes commonly use (crun 1.8
/// refuses this machine's hybrid cgroup layout).
fn podman() -> Command {
    let mut cmd = Command::new("podman");
    cmd.args(["--runtime", "runc"]);
    cmd
}

/// Resource limits podman can set here: this machine's root lacks
/// CAP_SYS_RESOURCE, so podman's defaults (1048576 files) cannot be raised
/// to; podman itself lowers its process limit to 32768 before starting the
/// runtime. A kubelet's runtime has no such limit; this is not part of the
/// pod spec.
fn ulimit_flags() -> Vec<String> {
    let hard = |resource| {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the struct we own.
        assert_eq!(unsafe { libc::getrlimit(resource, &raw mut limit) }, 0);
        limit.rlim_max
    };
    let files = hard(libc::RLIMIT_NOFILE);
    let procs = hard(libc::RLIMIT_NPROC).min(32_768);
    vec![
        format!("--ulimit=nofile={files}:{files}"),
        format!("--ulimit=nproc={procs}:{procs}"),
    ]
}

/// A container removed (forcibly) when dropped, so a failing test leaves no
/// agent tracing the next tests' processes.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman()
            .args(["rm", "--force", "--time", "2", &self.0])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn yaml(relative: &str) -> Value {
    let path = repo().join(relative);
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Value::deserialize(yaml_serde::Deserializer::from_str(&text).next().unwrap()).unwrap()
}

/// `512Mi` -> `512m` (podman's binary suffixes are lower-case letters).
fn podman_quantity(q: &str) -> String {
    for (k8s, podman) in [("Ki", "k"), ("Mi", "m"), ("Gi", "g")] {
        if let Some(n) = q.strip_suffix(k8s) {
            return format!("{n}{podman}");
        }
    }
    panic!("memory quantity {q}: add its suffix here");
}

/// The podman flags that make a container what the DaemonSet's pod is,
/// with `pod_ip` for `status.podIP`; and the container's args, `$(VAR)`
/// expanded as the kubelet does. Panics on a field it cannot translate.
fn pod_as_podman(ds: &Value, pod_ip: &str) -> (Vec<String>, Vec<String>) {
    let pod = &ds["spec"]["template"]["spec"];
    let containers = pod["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    let mut flags = Vec::new();
    if pod["hostPID"] == true {
        flags.push("--pid=host".to_owned());
    }
    if pod["hostNetwork"] == true {
        flags.push("--network=host".to_owned());
    }
    let security = c["securityContext"].as_object().expect("securityContext");
    for (key, value) in security {
        match key.as_str() {
            "runAsUser" => flags.push(format!("--user={value}:0")),
            "runAsNonRoot" | "privileged" => {
                assert_eq!(value, false, "{key}");
                if key == "privileged" {
                    flags.push("--privileged=false".into());
                }
            }
            "allowPrivilegeEscalation" => {
                assert_eq!(value, false);
                flags.push("--security-opt=no-new-privileges".into());
            }
            "readOnlyRootFilesystem" => {
                assert_eq!(value, true);
                // Kubernetes mounts no tmpfs for a read-only root; podman
                // would on /tmp, /run and /var/tmp.
                flags.extend(["--read-only".into(), "--read-only-tmpfs=false".into()]);
            }
            "capabilities" => {
                for cap in value["drop"].as_array().unwrap() {
                    flags.push(format!("--cap-drop={}", cap.as_str().unwrap()));
                }
                for cap in value["add"].as_array().unwrap() {
                    flags.push(format!("--cap-add=CAP_{}", cap.as_str().unwrap()));
                }
            }
            "seccompProfile" => {
                assert_eq!(value["type"], "RuntimeDefault");
                assert!(Path::new(RUNTIME_DEFAULT_SECCOMP).is_file());
                flags.push(format!("--security-opt=seccomp={RUNTIME_DEFAULT_SECCOMP}"));
            }
            "appArmorProfile" => {
                assert_eq!(value["type"], "Unconfined");
                flags.push("--security-opt=apparmor=unconfined".into());
            }
            other => panic!("securityContext.{other}: teach this test its podman flag"),
        }
    }
    let volumes: BTreeMap<&str, &Value> = pod["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| (v["name"].as_str().unwrap(), v))
        .collect();
    for m in c["volumeMounts"].as_array().into_iter().flatten() {
        let volume = volumes[m["name"].as_str().unwrap()];
        let host = volume["hostPath"]["path"]
            .as_str()
            .expect("only hostPath volumes are translated");
        let ro = if m["readOnly"] == true { ":ro" } else { "" };
        flags.push(format!(
            "--volume={host}:{}{ro}",
            m["mountPath"].as_str().unwrap()
        ));
    }
    if let Some(memory) = c["resources"]["limits"]["memory"].as_str() {
        flags.push(format!("--memory={}", podman_quantity(memory)));
    }
    let mut vars = BTreeMap::new();
    for e in c["env"].as_array().into_iter().flatten() {
        let name = e["name"].as_str().unwrap();
        let value = match (&e["value"], &e["valueFrom"]["fieldRef"]["fieldPath"]) {
            (Value::String(v), _) => v.clone(),
            (_, Value::String(field)) if field == "status.podIP" => pod_ip.to_owned(),
            other => panic!("env {name}: {other:?}: teach this test its value"),
        };
        flags.push(format!("--env={name}={value}"));
        vars.insert(name.to_owned(), value);
    }
    let args = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let mut a = a.as_str().unwrap().to_owned();
            for (name, value) in &vars {
                a = a.replace(&format!("$({name})"), value);
            }
            a
        })
        .collect();
    (flags, args)
}

/// Capability numbers (linux/capability.h) of the names the DaemonSet uses.
fn capability_mask(names: &[&str]) -> u64 {
    names
        .iter()
        .map(|n| match *n {
            "DAC_READ_SEARCH" => 2,
            "SYS_PTRACE" => 19,
            "SYS_ADMIN" => 21,
            "PERFMON" => 38,
            "BPF" => 39,
            other => panic!("capability {other}: add its number"),
        })
        .fold(0, |mask, bit| mask | 1 << bit)
}

/// One HTTP/1.1 GET: (status, body).
fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    Some((head.split(' ').nth(1)?.parse().ok()?, body.to_owned()))
}

/// The samples of a scrape, each parsed (a line that does not parse fails).
fn scrape(addr: SocketAddr) -> prometheus_parse::Scrape {
    let (status, body) = http_get(addr, "/metrics").expect("GET /metrics");
    assert_eq!(status, 200);
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        assert!(
            matches!(
                prometheus_parse::LineInfo::parse(line),
                prometheus_parse::LineInfo::Sample { .. }
            ),
            "unreadable sample line {line:?}"
        );
    }
    prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).expect("parses")
}

fn total(scrape: &prometheus_parse::Scrape, metric: &str) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => panic!("{metric} is not a plain sample"),
        })
        .sum::<f64>()
        + 0.0
}

/// The watch events of the agent's JSON lines, by request path, as
/// [`ground_truth::writes`] reads the ground truth; and how many events
/// (sent by the traced process) belonged to no seen request.
fn watch_events_of_lines(lines: &[Value]) -> (Events, usize, usize) {
    let mut paths = BTreeMap::new();
    for v in lines.iter().filter(|v| v["kind"] == "request") {
        paths.insert(
            (v["conn"].as_u64().unwrap(), v["stream"].as_u64().unwrap()),
            v["path"].as_str().unwrap().to_owned(),
        );
    }
    let mut streams: BTreeMap<(u64, u64), Vec<ground_truth::Event>> = BTreeMap::new();
    let (mut sent, mut unmatched) = (0, 0);
    for v in lines
        .iter()
        .filter(|v| v["kind"] == "watch_event" && v["direction"] != "in")
    {
        sent += 1;
        let key = (v["conn"].as_u64().unwrap(), v["stream"].as_u64().unwrap());
        if !paths.contains_key(&key) {
            unmatched += 1;
            continue;
        }
        streams.entry(key).or_default().push((
            v["event_type"].as_str().unwrap().to_owned(),
            v["resource_version"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            v["bytes"].as_u64().unwrap(),
        ));
    }
    let events = ground_truth::by_path(
        streams
            .into_iter()
            .map(|(key, events)| (paths[&key].clone(), events)),
    );
    (events, sent, unmatched)
}

/// `/proc/PID/status` fields.
fn proc_status(pid: u32) -> BTreeMap<String, String> {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect()
}

#[test]
#[ignore = "needs root and the image: run through `cargo xtask test`"]
fn the_image_holds_the_binary_and_exactly_the_libraries_it_loads() {
    let image = image();
    let inspect = Command::new("podman")
        .args(["image", "inspect", &image])
        .output()
        .unwrap();
    assert!(inspect.status.success(), "podman image inspect {image}");
    let v: Value = serde_json::from_slice(&inspect.stdout).unwrap();
    let config = &v[0]["Config"];
    assert_eq!(
        config["Entrypoint"],
        serde_json::json!(["/usr/local/bin/watchtrace"])
    );
    // Not root by default: the DaemonSet chooses uid 0 explicitly.
    assert_eq!(config["User"], "65532:65532");
    let labels = &v[0]["Labels"];
    for key in [
        "title",
        "description",
        "version",
        "revision",
        "created",
        "licenses",
    ] {
        let value = labels[format!("org.opencontainers.image.{key}")].as_str();
        assert!(
            value.is_some_and(|s| !s.is_empty()),
            "label {key}: {labels}"
        );
    }
    let revision = labels["org.opencontainers.image.revision"]
        .as_str()
        .unwrap();
    let sha = revision.trim_end_matches("-dirty");
    assert!(
        sha.len() == 40 && sha.chars().all(|c| c.is_ascii_hexdigit()),
        "revision {revision}"
    );

    // Its files: the binary, and every library `ldd` resolves for it here.
    let ldd = Command::new("ldd")
        .arg(repo().join("target/release/watchtrace"))
        .output()
        .unwrap();
    let mut want: BTreeSet<String> = String::from_utf8_lossy(&ldd.stdout)
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
        .map(|w| w.trim_start_matches('/').to_owned())
        .collect();
    assert!(want.iter().any(|p| p.ends_with("libc.so.6")), "{want:?}");
    want.insert("usr/local/bin/watchtrace".into());
    let mount = Command::new("podman")
        .args(["image", "mount", &image])
        .output()
        .unwrap();
    assert!(mount.status.success(), "podman image mount");
    let root = PathBuf::from(String::from_utf8(mount.stdout).unwrap().trim());
    let mut files = BTreeSet::new();
    let mut dirs = vec![root.clone()];
    let mut bytes = 0;
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                dirs.push(entry.path());
                continue;
            }
            assert!(
                meta.is_file(),
                "{}: not a plain file",
                entry.path().display()
            );
            use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
            // Usable by any uid, owned by root.
            assert_eq!(
                meta.permissions().mode() & 0o555,
                0o555,
                "{}",
                entry.path().display()
            );
            assert_eq!((meta.uid(), meta.gid()), (0, 0));
            bytes += meta.len();
            let rel = entry
                .path()
                .strip_prefix(&root)
                .unwrap()
                .display()
                .to_string();
            files.insert(rel);
        }
    }
    let _ = Command::new("podman")
        .args(["image", "unmount", &image])
        .output();
    assert_eq!(files, want, "the image's files");
    println!(
        "image {image}: {} files, {bytes} bytes: {files:?}",
        files.len()
    );
}

#[test]
#[ignore = "needs root and the image: run through `cargo xtask test`"]
fn the_image_runs_as_its_default_non_root_user() {
    // The loader, libraries and binary work for an unprivileged uid; it
    // lacks the privileges and `check` says which.
    let out = podman()
        .args(["run", "--rm", "--network=none"])
        .args(ulimit_flags())
        .args([&image(), "check"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("uid 65532 lacks CAP_BPF"), "{stdout}");
    assert!(
        stdout.contains(
            "capabilities needed without root: BPF, PERFMON, SYS_ADMIN, DAC_READ_SEARCH, SYS_PTRACE"
        ),
        "{stdout}"
    );
}

#[test]
#[ignore = "needs root and the image: run through `cargo xtask test`"]
fn the_daemonset_pod_traces_the_host_apiserver_from_the_container() {
    let image = image();
    let ds = yaml("deploy/base/daemonset.yaml");
    let (_turn, dir) = support::testbed_turn("watchtrace-container");
    // The pod IP is the node's (hostNetwork); the IPv6 loopback stands in
    // for an IPv6 node, so `$(POD_IP):9464` arrives as `::1:PORT`.
    let port = TcpListener::bind("[::1]:0")
        .expect("an IPv6 loopback")
        .local_addr()
        .unwrap()
        .port();
    let (flags, mut args) = pod_as_podman(&ds, "::1");
    let at = args.iter().position(|a| a == "--metrics-addr").unwrap() + 1;
    assert_eq!(args[at], "::1:9464", "the DaemonSet's address, expanded");
    // A free port rather than 9464 (another agent may use it), and this
    // checkout's fake-apiserver (by path) rather than kube-apiserver; the
    // events on stdout to score them.
    args[at] = format!("::1:{port}");
    args.extend([
        "--exe".to_owned(),
        support::fake_apiserver_exe(),
        "--events".into(),
        "-".into(),
    ]);
    let addr: SocketAddr = format!("[::1]:{port}").parse().unwrap();
    let name = format!("watchtrace-deploy-test-{}", std::process::id());
    let log = dir.join("agent.log");
    let mut agent = support::KillOnDrop(
        podman()
            .args(["run", "--rm", "--name", &name])
            .args(ulimit_flags())
            .args(&flags)
            .arg(&image)
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let container = Container(name.clone());
    eprintln!("podman run {} {image} {}", flags.join(" "), args.join(" "));
    // Events are read as they come (a full pipe would block the agent).
    let stdout = agent.stdout.take().unwrap();
    let reader = thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<String>>()
    });
    let started = Instant::now();
    while http_get(addr, "/healthz").map(|r| r.0) != Some(200) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no /healthz from the container within 60 s:\n{}",
            fs::read_to_string(&log).unwrap_or_default()
        );
        assert!(
            agent.try_wait().unwrap().is_none(),
            "the container exited:\n{}",
            fs::read_to_string(&log).unwrap_or_default()
        );
        thread::sleep(Duration::from_millis(250));
    }

    // The running agent holds what the manifest says, and nothing more.
    let pid = Command::new("podman")
        .args(["inspect", "--format", "{{.State.Pid}}", &name])
        .output()
        .unwrap();
    let pid: u32 = String::from_utf8_lossy(&pid.stdout).trim().parse().unwrap();
    let status = proc_status(pid);
    let caps: Vec<&str> =
        ds["spec"]["template"]["spec"]["containers"][0]["securityContext"]["capabilities"]["add"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
    let mask = format!("{:016x}", capability_mask(&caps));
    for set in ["CapEff", "CapPrm", "CapBnd"] {
        assert_eq!(status[set], mask, "{set}");
    }
    assert_eq!(status["NoNewPrivs"], "1");
    assert_eq!(status["Seccomp"], "2", "a seccomp filter is on");
    assert!(status["Uid"].starts_with("0\t"), "uid {}", status["Uid"]);
    let mountinfo = fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    let root_mount = mountinfo
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/"))
        .unwrap();
    assert!(
        root_mount
            .split(' ')
            .nth(5)
            .unwrap()
            .split(',')
            .any(|o| o == "ro"),
        "root filesystem read-only: {root_mount}"
    );

    // The load starts 3 s after fake-apiserver, so the agent (rescanning
    // every second) sees every request from its HEADERS.
    let mut testbed = support::KillOnDrop(
        support::testbed_run(&dir)
            .args(["-load-delay", "3s", "-duration", "6s", "--"])
            .args(["-conns", "3", "-watches-per-conn", "3", "-write-rate", "60"])
            .args(["-resources", "configmaps,secrets", "-drain", "1s"])
            .spawn()
            .unwrap(),
    );
    // While the load runs: one target traced, events counted.
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut during = None;
    while during.is_none() && Instant::now() < deadline {
        thread::sleep(Duration::from_secs(1));
        let s = scrape(addr);
        if total(&s, "watchtrace_watch_events_total") > 0.0 {
            during = Some((
                total(&s, "watchtrace_targets"),
                total(&s, "watchtrace_watch_streams"),
            ));
        }
    }
    assert_eq!(
        during,
        Some((1.0, 9.0)),
        "while the load runs: (targets, watch streams) in /metrics"
    );
    assert!(testbed.wait().unwrap().success(), "testbed-run failed");
    // The agent drains and writes the last events within a second or two.
    let mut fin = None;
    for _ in 0..20 {
        thread::sleep(Duration::from_secs(1));
        let s = scrape(addr);
        if total(&s, "watchtrace_watch_events_total") > 0.0
            && total(&s, "watchtrace_watch_streams") == 0.0
        {
            fin = Some(s);
            break;
        }
    }
    let fin = fin.expect("/metrics counts the events and the streams closed");
    assert_eq!(http_get(addr, "/healthz").map(|r| r.0), Some(200));
    // SIGTERM, as the kubelet stops a pod; the agent writes its last lines.
    let stop = Command::new("podman")
        .args(["stop", "--time", "20", &name])
        .output()
        .unwrap();
    assert!(stop.status.success(), "podman stop");
    let exit = agent.wait().unwrap();
    drop(container);
    let lines = reader.join().unwrap();
    let logs = fs::read_to_string(&log).unwrap();
    assert!(exit.success(), "agent exit {exit:?}:\n{logs}");

    let events: Vec<Value> = lines
        .iter()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let (seen, sent, unmatched) = watch_events_of_lines(&events);
    let truth = ground_truth::writes(&ground_truth::records(
        &dir.join("bed/state/ground-truth.jsonl"),
    ));
    assert_eq!(
        unmatched, 0,
        "every event belongs to a request that was seen"
    );
    assert_eq!(
        truth.values().map(Vec::len).sum::<usize>(),
        9,
        "3 connections x 3 watches"
    );
    let mut matched = 0;
    for (path, expected) in &truth {
        let got = seen
            .get(path)
            .unwrap_or_else(|| panic!("no events decoded for {path}"));
        assert_eq!(got, expected, "events of {path}");
        matched += expected.iter().map(Vec::len).sum::<usize>();
    }
    assert!(matched > 100, "a meaningful number of events ({matched})");
    assert_eq!(matched, sent, "no event beyond the ground truth's");
    let gaps = events.iter().filter(|v| v["kind"] == "gap").count();
    assert_eq!(gaps, 0, "no capture loss");

    // /metrics counted the same events, traced one process, fully.
    let families: BTreeSet<&str> = fin.samples.iter().map(|s| s.metric.as_str()).collect();
    assert_eq!(total(&fin, "watchtrace_watch_events_total"), sent as f64);
    assert_eq!(
        total(&fin, "watchtrace_targets"),
        0.0,
        "the testbed's apiserver exited"
    );
    assert_eq!(
        total(&fin, "watchtrace_degraded"),
        0.0,
        "no privilege missing"
    );
    assert_eq!(total(&fin, "watchtrace_capture_lost_bytes_total"), 0.0);
    assert_eq!(total(&fin, "watchtrace_build_info"), 1.0);
    // Every log line is JSON, and the agent saw its target.
    for line in logs.lines() {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["level"].is_string(), "{line}");
    }
    assert!(logs.contains("attached Go TLS probes"), "{logs}");
    let _ = fs::remove_dir_all(&dir);
    println!(
        "container {image}: {matched} watch events on 9 watches matched the ground truth; \
         /metrics on [::1]: {} samples in {} series names, watch_events_total {sent}",
        fin.samples.len(),
        families.len()
    );
}
