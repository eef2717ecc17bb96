//! deploy/: the Kubernetes manifests say what watchtrace needs and nothing
//! more. The capability list is the one `watchtrace check` names; the
//! DaemonSet runs on control-plane nodes only; its pieces (Service,
//! ServiceMonitor, probes) point at the same port; the rendered manifests
//! validate against the pinned Kubernetes JSON schemas.

use std::{
    collections::BTreeSet,
    env, fs,
    path::{Path, PathBuf},
    process::Command,
};

use clap::Parser as _;
use serde::Deserialize as _;
use serde_json::Value;
use watchtrace::{
    check::REQUIRED_CAPABILITIES,
    cli::{Cli, Command as Sub, LogFormat, MetricsAddr},
};

const WATCHTRACE: &str = env!("CARGO_BIN_EXE_watchtrace");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every document of a (multi-document) YAML text, as JSON values.
fn yaml_docs(text: &str) -> Vec<Value> {
    yaml_serde::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).expect("YAML document"))
        .filter(|v| !v.is_null())
        .collect()
}

fn yaml_file(relative: &str) -> Vec<Value> {
    let path = repo().join(relative);
    yaml_docs(&fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

fn one(relative: &str) -> Value {
    let mut docs = yaml_file(relative);
    assert_eq!(docs.len(), 1, "{relative} holds one object");
    docs.remove(0)
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| s.as_str().expect("string").to_owned())
        .collect()
}

fn container(daemonset: &Value) -> &Value {
    let containers = daemonset["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers");
    assert_eq!(containers.len(), 1, "one container");
    &containers[0]
}

/// The capability list printed by `watchtrace check` (the line
/// `capabilities needed without root: A, B, ...`), whatever the verdict.
fn capabilities_check_prints() -> Vec<String> {
    let out = Command::new(WATCHTRACE)
        .arg("check")
        .output()
        .expect("run watchtrace check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| {
            l.trim_start()
                .strip_prefix("capabilities needed without root:")
        })
        .unwrap_or_else(|| panic!("no capability line in:\n{stdout}"));
    line.split(',').map(|c| c.trim().to_owned()).collect()
}

/// The DaemonSet adds exactly the capabilities `watchtrace check` says are
/// needed (tests/check_cli.rs proves them enough: uid 65534 holding only
/// these passes `check`), after dropping all.
fn assert_capabilities_are_the_checked_set(security: &Value) {
    let add = strings(&security["capabilities"]["add"]);
    let unique: BTreeSet<&String> = add.iter().collect();
    assert_eq!(unique.len(), add.len(), "duplicate capability in {add:?}");
    let want: BTreeSet<String> = capabilities_check_prints().into_iter().collect();
    let library: BTreeSet<String> = REQUIRED_CAPABILITIES
        .iter()
        .map(|c| (*c).to_owned())
        .collect();
    assert_eq!(
        want, library,
        "`watchtrace check` prints the library's list"
    );
    assert_eq!(
        add.into_iter().collect::<BTreeSet<_>>(),
        want,
        "deploy/base/daemonset.yaml capabilities.add"
    );
    assert_eq!(strings(&security["capabilities"]["drop"]), ["ALL"]);
    assert_eq!(security["privileged"], false);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["readOnlyRootFilesystem"], true);
}

#[test]
fn daemonset_adds_exactly_the_capabilities_watchtrace_check_names() {
    let ds = one("deploy/base/daemonset.yaml");
    assert_capabilities_are_the_checked_set(&container(&ds)["securityContext"]);
}

#[test]
fn daemonset_runs_only_on_control_plane_nodes_with_host_pids() {
    let ds = one("deploy/base/daemonset.yaml");
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(
        pod["nodeSelector"],
        serde_json::json!({"node-role.kubernetes.io/control-plane": ""})
    );
    let tolerated: BTreeSet<(&str, &str)> = pod["tolerations"]
        .as_array()
        .expect("tolerations")
        .iter()
        .map(|t| {
            assert_eq!(t["operator"], "Exists", "{t}");
            (t["key"].as_str().unwrap(), t["effect"].as_str().unwrap())
        })
        .collect();
    assert!(tolerated.contains(&("node-role.kubernetes.io/control-plane", "NoSchedule")));
    // Without hostPID the agent sees only its own container's processes.
    assert_eq!(pod["hostPID"], true);
    // The apiserver's sockets live in the host's network namespace, which
    // the sock_diag dump reads.
    assert_eq!(pod["hostNetwork"], true);
    assert_eq!(pod["automountServiceAccountToken"], false);
    let c = container(&ds);
    // BTF from the host, read-only; nothing else of the host's /sys (the
    // programs attach to raw tracepoints: no tracefs).
    let mounts: BTreeSet<(&str, bool)> = c["volumeMounts"]
        .as_array()
        .expect("volumeMounts")
        .iter()
        .map(|m| {
            (
                m["mountPath"].as_str().unwrap(),
                m["readOnly"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    assert_eq!(
        mounts,
        BTreeSet::from([("/sys/kernel/btf", true)]),
        "{mounts:?}"
    );
    let resources = &c["resources"];
    for key in ["cpu", "memory"] {
        assert!(resources["requests"][key].is_string(), "requests.{key}");
    }
    assert!(resources["limits"]["memory"].is_string(), "limits.memory");
}

#[test]
fn probes_service_and_servicemonitor_use_the_metrics_port() {
    let ds = one("deploy/base/daemonset.yaml");
    let c = container(&ds);
    let port = &c["ports"][0];
    assert_eq!(port["name"], "metrics");
    assert_eq!(port["containerPort"], 9464);
    // `run` serves its probes and /metrics at --metrics-addr; in the pod it
    // must listen on the pod IP, on the probed port.
    let args = strings(&c["args"]);
    assert_eq!(args[0], "run");
    let addr = args
        .windows(2)
        .find(|w| w[0] == "--metrics-addr")
        .map(|w| w[1].clone())
        .expect("--metrics-addr in args");
    assert_eq!(addr, "$(POD_IP):9464");
    assert!(c["env"].as_array().unwrap().iter().any(
        |e| e["name"] == "POD_IP" && e["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    ));
    // A degraded agent is live, not ready: restarting it gives it no
    // privilege.
    for (probe, path) in [
        ("startupProbe", "/livez"),
        ("livenessProbe", "/livez"),
        ("readinessProbe", "/readyz"),
    ] {
        let get = &c[probe]["httpGet"];
        assert_eq!(get["path"], path, "{probe}");
        assert_eq!(get["port"], "metrics", "{probe}");
    }
    let pod_labels = ds["spec"]["template"]["metadata"]["labels"]
        .as_object()
        .unwrap();
    let service = one("deploy/base/service.yaml");
    for (k, v) in service["spec"]["selector"].as_object().unwrap() {
        assert_eq!(pod_labels.get(k), Some(v), "Service selector {k}");
    }
    assert_eq!(service["spec"]["ports"][0]["name"], "metrics");
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "metrics");
    let monitor = one("deploy/overlays/prometheus-operator/servicemonitor.yaml");
    let endpoint = &monitor["spec"]["endpoints"][0];
    assert_eq!(endpoint["port"], "metrics");
    assert_eq!(endpoint["path"], "/metrics");
    let service_labels = service["metadata"]["labels"].as_object().cloned();
    for (k, v) in monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap()
    {
        // Kustomize adds the common labels to the Service; the one the
        // monitor selects on is also written in the base.
        let in_base = service_labels.as_ref().and_then(|l| l.get(k));
        assert!(
            in_base == Some(v) || pod_labels.get(k) == Some(v),
            "ServiceMonitor selects {k}={v}"
        );
    }
}

#[test]
fn daemonset_args_are_accepted_by_this_watchtrace() {
    let ds = one("deploy/base/daemonset.yaml");
    // Kubernetes expands $(POD_IP) from the env entry before exec.
    let args: Vec<String> = strings(&container(&ds)["args"])
        .into_iter()
        .map(|a| a.replace("$(POD_IP)", "10.0.0.7"))
        .collect();
    let cli = Cli::try_parse_from(std::iter::once("watchtrace".to_owned()).chain(args))
        .unwrap_or_else(|e| panic!("the DaemonSet's args are rejected:\n{e}"));
    assert_eq!(cli.log_format, LogFormat::Json);
    let Sub::Run(run) = cli.command else {
        panic!("the DaemonSet runs `watchtrace run`");
    };
    assert_eq!(
        run.metrics_addr,
        MetricsAddr::At("10.0.0.7:9464".parse().unwrap())
    );
    // No selector: the default, kube-apiserver.
    assert!(run.targets.is_empty());
    // On an IPv6 node the same args become `fd00::7:9464`: still the pod
    // IP and the metrics port.
    let args = strings(&container(&ds)["args"])
        .into_iter()
        .map(|a| a.replace("$(POD_IP)", "fd00::7"));
    let cli = Cli::try_parse_from(std::iter::once("watchtrace".to_owned()).chain(args))
        .unwrap_or_else(|e| panic!("the DaemonSet's args on an IPv6 node are rejected:\n{e}"));
    let Sub::Run(run) = cli.command else {
        panic!("the DaemonSet runs `watchtrace run`");
    };
    assert_eq!(
        run.metrics_addr,
        MetricsAddr::At("[fd00::7]:9464".parse().unwrap())
    );
}

#[test]
fn upgrades_roll_one_node_at_a_time_as_install_md_says() {
    let ds = one("deploy/base/daemonset.yaml");
    let strategy = &ds["spec"]["updateStrategy"];
    assert_eq!(strategy["type"], "RollingUpdate");
    assert_eq!(strategy["rollingUpdate"]["maxUnavailable"], 1);
    let install = fs::read_to_string(repo().join("docs/install.md")).unwrap();
    for needed in [
        "## Upgrade",
        "maxUnavailable: 1",
        "kubectl -n watchtrace rollout status ds/watchtrace",
        "## Uninstall",
        "kubectl delete -k deploy/overlays/prometheus-operator",
    ] {
        assert!(install.contains(needed), "docs/install.md lacks `{needed}`");
    }
}

#[test]
fn the_servicemonitor_comment_says_what_its_relabeling_sets() {
    let text =
        fs::read_to_string(repo().join("deploy/overlays/prometheus-operator/servicemonitor.yaml"))
            .unwrap();
    let monitor = one("deploy/overlays/prometheus-operator/servicemonitor.yaml");
    let relabel = &monitor["spec"]["endpoints"][0]["relabelings"][0];
    assert_eq!(relabel["targetLabel"], "node");
    assert!(
        !text.contains("as the instance label"),
        "the comment claims `instance`"
    );
    assert!(text.contains("`node` label"));
    // The agent-down alerts select job="watchtrace".
    assert_eq!(monitor["spec"]["jobLabel"], "app.kubernetes.io/name");
    let service = one("deploy/base/service.yaml");
    assert_eq!(
        service["spec"]["selector"]["app.kubernetes.io/name"],
        "watchtrace"
    );
}

#[test]
fn prometheus_rule_carries_the_rules_file_groups() {
    let plain = one("deploy/monitoring/watchtrace.rules.yaml");
    let rule = one("deploy/overlays/prometheus-operator/prometheusrule.yaml");
    assert_eq!(rule["kind"], "PrometheusRule");
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(rule["spec"]["groups"], plain["groups"]);
    assert!(!plain["groups"].as_array().unwrap().is_empty());
}

/// `kubectl kustomize DIR` (offline: rendering needs no server).
fn kustomize(dir: &str) -> Vec<Value> {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(repo().join(dir))
        .output()
        .expect("kubectl (part of this machine's image) must be on PATH");
    assert!(
        out.status.success(),
        "kubectl kustomize {dir}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    yaml_docs(&String::from_utf8(out.stdout).unwrap())
}

/// The strict schemas of one Kubernetes version, from the
/// kubernetes-validate wheel that `cargo xtask setup` installs.
struct Schemas {
    dir: PathBuf,
    definitions: Value,
}

impl Schemas {
    fn load(version: &str) -> Self {
        let root = env::var_os("WATCHTRACE_K8S_SCHEMAS").unwrap_or_else(|| {
            panic!("WATCHTRACE_K8S_SCHEMAS is not set: run through `cargo xtask test`")
        });
        let dir = Path::new(&root).join(format!("v{version}-local-strict"));
        let definitions = read_json(&dir.join("_definitions.json"));
        Self { dir, definitions }
    }

    /// The schema file for an object, named as kubernetes-validate names
    /// them: `<kind>-<group prefix>-<version>.json` (`daemonset-apps-v1`).
    fn validate(&self, object: &Value) -> Result<(), String> {
        let kind = object["kind"].as_str().unwrap().to_lowercase();
        let api = object["apiVersion"].as_str().unwrap();
        let api = match api.split_once('/') {
            Some((group, version)) => {
                format!("{}-{version}", group.split('.').next().unwrap())
            }
            None => api.to_owned(),
        };
        let schema = read_json(&self.dir.join(format!("{kind}-{api}.json")));
        // Every object schema refers into the one definitions document, by
        // its $id; registered here, nothing is fetched.
        let registry = jsonschema::Registry::new()
            .add(
                "https://kubernetes.io/api/_definitions.json",
                &self.definitions,
            )
            .and_then(|r| r.prepare())
            .map_err(|e| format!("definitions: {e}"))?;
        let validator = jsonschema::options()
            .with_registry(&registry)
            .build(&schema)
            .map_err(|e| format!("schema {kind}-{api}: {e}"))?;
        let errors: Vec<String> = validator
            .iter_errors(object)
            .map(|e| format!("{}: {e}", e.instance_path()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("\n"))
        }
    }
}

fn read_json(path: &Path) -> Value {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Kubernetes versions validated against: the oldest the manifests support
/// (`securityContext.appArmorProfile` is GA in 1.30) and the newest the
/// pinned schemas cover.
const KUBERNETES_VERSIONS: [&str; 2] = ["1.30.0", "1.37.0"];

#[test]
#[ignore = "needs the pinned schemas and kubectl: run through `cargo xtask test`"]
fn rendered_manifests_validate_against_the_pinned_kubernetes_schemas() {
    let mut validated = BTreeSet::new();
    for version in KUBERNETES_VERSIONS {
        let schemas = Schemas::load(version);
        // Strictness works: a misspelt field is rejected, so a pass below
        // means the objects really conform.
        let mut broken = kustomize("deploy")
            .into_iter()
            .find(|o| o["kind"] == "DaemonSet")
            .unwrap();
        broken["spec"]["template"]["spec"]["hostPid"] = Value::Bool(true);
        assert!(
            schemas.validate(&broken).is_err(),
            "strict schema {version} accepted an unknown field"
        );
        for dir in [
            "deploy",
            "deploy/overlays/privileged",
            "deploy/overlays/prometheus-operator",
        ] {
            for object in kustomize(dir) {
                let kind = object["kind"].as_str().unwrap().to_owned();
                let api = object["apiVersion"].as_str().unwrap();
                if api.starts_with("monitoring.coreos.com/") {
                    // No schema for the Prometheus Operator's CRDs is to be
                    // had offline; their content is checked by the other
                    // tests in this file and by promtool.
                    continue;
                }
                schemas
                    .validate(&object)
                    .unwrap_or_else(|e| panic!("{dir}: {kind} against Kubernetes {version}:\n{e}"));
                validated.insert((dir, kind, version));
            }
        }
    }
    for dir in ["deploy", "deploy/overlays/privileged"] {
        for kind in ["Namespace", "ServiceAccount", "Service", "DaemonSet"] {
            for version in KUBERNETES_VERSIONS {
                assert!(
                    validated.contains(&(dir, kind.to_owned(), version)),
                    "{dir} {kind} {version} not validated"
                );
            }
        }
    }
    eprintln!("validated {} objects: {validated:?}", validated.len());
    // The rendered default still holds the checked capability set, and the
    // privileged fallback really is privileged.
    let rendered = |dir| {
        kustomize(dir)
            .into_iter()
            .find(|o| o["kind"] == "DaemonSet")
            .unwrap()
    };
    assert_capabilities_are_the_checked_set(&container(&rendered("deploy"))["securityContext"]);
    let privileged = rendered("deploy/overlays/privileged");
    assert_eq!(
        container(&privileged)["securityContext"]["privileged"],
        true
    );
    let kinds: BTreeSet<String> = kustomize("deploy/overlays/prometheus-operator")
        .iter()
        .map(|o| o["kind"].as_str().unwrap().to_owned())
        .collect();
    assert!(kinds.contains("ServiceMonitor") && kinds.contains("PrometheusRule"));
}

/// A copy of deploy/ in a scratch directory, for tests that edit it.
fn copy_deploy(to: &Path) {
    let _ = fs::remove_dir_all(to);
    let mut dirs = vec![PathBuf::new()];
    while let Some(rel) = dirs.pop() {
        let from = repo().join("deploy").join(&rel);
        fs::create_dir_all(to.join(&rel)).unwrap();
        for entry in fs::read_dir(&from).unwrap() {
            let entry = entry.unwrap();
            let rel = rel.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                dirs.push(rel);
            } else {
                fs::copy(entry.path(), to.join(&rel)).unwrap();
            }
        }
    }
}

/// What `kustomize edit set image watchtrace=NAME:TAG` does to the
/// kustomization.yaml of `dir` (no kustomize binary here: `kubectl
/// kustomize` renders, it does not edit): the `images` entry named
/// `watchtrace` gets `newName` and `newTag`, added if missing.
fn set_image(dir: &Path, new_name: &str, new_tag: &str) {
    let path = dir.join("kustomization.yaml");
    let mut k = yaml_docs(&fs::read_to_string(&path).unwrap()).remove(0);
    let images = k
        .as_object_mut()
        .unwrap()
        .entry("images")
        .or_insert_with(|| Value::Array(vec![]))
        .as_array_mut()
        .unwrap();
    if !images.iter().any(|i| i["name"] == "watchtrace") {
        images.push(serde_json::json!({"name": "watchtrace"}));
    }
    let entry = images
        .iter_mut()
        .find(|i| i["name"] == "watchtrace")
        .unwrap();
    entry["newName"] = new_name.into();
    entry["newTag"] = new_tag.into();
    // JSON is YAML.
    fs::write(&path, serde_json::to_string_pretty(&k).unwrap()).unwrap();
}

/// `kubectl kustomize` of a directory anywhere.
fn kustomize_path(dir: &Path) -> Vec<Value> {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .expect("kubectl (part of this machine's image) must be on PATH");
    assert!(
        out.status.success(),
        "kubectl kustomize {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    yaml_docs(&String::from_utf8(out.stdout).unwrap())
}

/// The image of the DaemonSet `kubectl kustomize` renders for `dir`.
fn rendered_image(dir: &Path) -> String {
    let ds = kustomize_path(dir)
        .into_iter()
        .find(|o| o["kind"] == "DaemonSet")
        .unwrap();
    container(&ds)["image"].as_str().unwrap().to_owned()
}

/// Every directory of deploy/ that `kubectl apply -k` takes.
const APPLIED: [&str; 3] = ["", "overlays/privileged", "overlays/prometheus-operator"];

#[test]
#[ignore = "needs kubectl: run through `cargo xtask test`"]
fn an_image_set_once_in_base_reaches_every_overlay() {
    let scratch = env::temp_dir().join(format!("watchtrace-deploy-image-{}", std::process::id()));
    copy_deploy(&scratch);
    for dir in APPLIED {
        assert_eq!(
            rendered_image(&scratch.join(dir)),
            "watchtrace:0.1.0",
            "{dir}"
        );
    }
    // Where docs/install.md says to set it.
    let install = fs::read_to_string(repo().join("docs/install.md")).unwrap();
    let edit = install
        .lines()
        .find(|l| l.contains("kustomize edit set image"))
        .expect("docs/install.md sets the image");
    let cd = edit
        .split("cd ")
        .nth(1)
        .and_then(|rest| rest.split([' ', '&', ')', ';']).next())
        .unwrap_or_else(|| panic!("no `cd DIR` before the edit: {edit}"));
    let dir = cd
        .strip_prefix("deploy/")
        .unwrap_or_else(|| panic!("{cd} is not under deploy/"));
    set_image(
        &scratch.join(dir),
        "registry.example.com/watchtrace",
        "0.2.0",
    );
    for dir in APPLIED {
        assert_eq!(
            rendered_image(&scratch.join(dir)),
            "registry.example.com/watchtrace:0.2.0",
            "deploy/{dir} after editing deploy/{cd}"
        );
    }
    // The trap this guards against: set in deploy/ itself, the image
    // would reach `kubectl apply -k deploy/` only, never the overlays.
    copy_deploy(&scratch);
    set_image(&scratch, "registry.example.com/watchtrace", "0.2.0");
    assert_eq!(
        rendered_image(&scratch),
        "registry.example.com/watchtrace:0.2.0"
    );
    assert_eq!(
        rendered_image(&scratch.join("overlays/prometheus-operator")),
        "watchtrace:0.1.0"
    );
    fs::remove_dir_all(&scratch).unwrap();
    // Every `kubectl apply -k PATH` in docs/install.md names a directory
    // from the repository root (no `cd` left in effect before it).
    let mut applied = 0;
    for line in install.lines() {
        if let Some(rest) = line.trim_start().strip_prefix("kubectl apply -k ") {
            let path = rest.split_whitespace().next().unwrap();
            assert!(
                repo().join(path).join("kustomization.yaml").is_file(),
                "docs/install.md applies {path}, not a kustomization from the repository root"
            );
            applied += 1;
        }
    }
    assert!(applied >= 3, "{applied} `kubectl apply -k` lines");
}

#[test]
#[ignore = "needs kubectl: run through `cargo xtask test`"]
fn the_prometheus_operator_objects_carry_kube_prometheus_stacks_release_label() {
    let objects = kustomize("deploy/overlays/prometheus-operator");
    let mut labelled = BTreeSet::new();
    for o in &objects {
        let release = &o["metadata"]["labels"]["release"];
        if o["apiVersion"]
            .as_str()
            .unwrap()
            .starts_with("monitoring.coreos.com/")
        {
            assert_eq!(release, "kube-prometheus-stack", "{}", o["kind"]);
            labelled.insert(o["kind"].as_str().unwrap().to_owned());
        } else {
            // Only what the Prometheus selects is labelled.
            assert!(release.is_null(), "{} has a release label", o["kind"]);
        }
    }
    assert_eq!(
        labelled,
        BTreeSet::from(["PrometheusRule".to_owned(), "ServiceMonitor".to_owned()])
    );
    // Set in one place: the overlay's kustomization, which says how.
    let text =
        fs::read_to_string(repo().join("deploy/overlays/prometheus-operator/kustomization.yaml"))
            .unwrap();
    assert_eq!(text.matches("value: kube-prometheus-stack").count(), 1);
    assert!(text.contains("serviceMonitorSelector"));
}
