//! deploy/: the node-problem-detector custom plugin monitor config, the
//! DaemonSet that runs it and the images, parsed with real parsers
//! (serde_json, saphyr for YAML) and checked against each other, against
//! what `ctdiag doctor --npd` does, and against a real container runtime:
//! podman builds deploy/Containerfile and runs doctor from it against a
//! lab with exactly the DaemonSet's privileges.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::report::check;
use common::TestLab;
use saphyr::{LoadableYamlNode, Scalar, Yaml};
use serde_json::Value;

/// NPD's own default ports (its `--port` server and `--prometheus-port`
/// endpoint, kubernetes/node-problem-detector cmd/options/options.go): an
/// NPD the node already runs holds them.
const NPD_DEFAULT_PORTS: [u64; 2] = [20256, 20257];

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn deploy(file: &str) -> String {
    let path = repo("deploy").join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// NPD's durations: `60s`, `5m`, `500ms`.
fn duration(text: &str) -> Duration {
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap());
    let n: u64 = number.parse().unwrap_or_else(|_| panic!("{text}"));
    match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(60 * n),
        _ => panic!("{text}: unit"),
    }
}

fn monitor() -> Value {
    serde_json::from_str(&deploy("ctdiag-doctor-monitor.json")).expect("monitor config is JSON")
}

/// A YAML node as JSON (the manifests use plain scalars, sequences and
/// string-keyed mappings only; anything else is a failure to look at).
fn yaml_to_json(node: &Yaml) -> Value {
    match node {
        Yaml::Value(Scalar::Null) => Value::Null,
        Yaml::Value(Scalar::Boolean(b)) => Value::Bool(*b),
        Yaml::Value(Scalar::Integer(i)) => Value::from(*i),
        Yaml::Value(Scalar::FloatingPoint(f)) => Value::from(f.into_inner()),
        Yaml::Value(Scalar::String(s)) => Value::String(s.to_string()),
        Yaml::Sequence(items) => Value::Array(items.iter().map(yaml_to_json).collect()),
        Yaml::Mapping(map) => Value::Object(
            map.iter()
                .map(|(k, v)| match k {
                    Yaml::Value(Scalar::String(key)) => (key.to_string(), yaml_to_json(v)),
                    other => {
                        panic!("daemonset.yaml: a mapping key that is not a string: {other:?}")
                    }
                })
                .collect(),
        ),
        Yaml::Tagged(_, inner) => yaml_to_json(inner),
        other => panic!("daemonset.yaml: a node this test does not read: {other:?}"),
    }
}

/// The YAML documents of daemonset.yaml, as JSON values.
fn manifests() -> Vec<Value> {
    let text = deploy("daemonset.yaml");
    let docs = Yaml::load_from_str(&text).unwrap_or_else(|e| panic!("daemonset.yaml: {e}"));
    docs.iter().map(yaml_to_json).collect()
}

fn kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter().find(|d| d["kind"] == kind).unwrap_or_else(|| panic!("no {kind} in daemonset.yaml"))
}

/// The value after `flag` in `args`.
fn flag<'a>(args: &'a [Value], flag: &str) -> Option<&'a str> {
    args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).and_then(Value::as_str)
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {value}"))
        .iter()
        .map(|v| v.as_str().unwrap_or_else(|| panic!("not a string: {v}")).to_string())
        .collect()
}

/// The DaemonSet's pod spec and its one container.
fn pod_and_container(docs: &[Value]) -> (Value, Value) {
    let pod = kind(docs, "DaemonSet")["spec"]["template"]["spec"].clone();
    let containers = pod["containers"].as_array().expect("containers").clone();
    assert_eq!(containers.len(), 1, "one container: NPD, which runs ctdiag");
    (pod, containers[0].clone())
}

/// The capabilities the DaemonSet adds (it drops ALL first).
fn added_capabilities(container: &Value) -> Vec<String> {
    strings(&container["securityContext"]["capabilities"]["add"])
}

/// (host path, mount path, read-only) of every hostPath volume mounted.
fn host_path_mounts(pod: &Value, container: &Value) -> Vec<(String, String, bool, Value)> {
    let volumes = pod["volumes"].as_array().expect("volumes");
    container["volumeMounts"]
        .as_array()
        .expect("volumeMounts")
        .iter()
        .filter_map(|mount| {
            let volume = volumes.iter().find(|v| v["name"] == mount["name"])?;
            let host = volume["hostPath"]["path"].as_str()?;
            Some((
                host.to_string(),
                mount["mountPath"].as_str()?.to_string(),
                mount["readOnly"] == true,
                mount["mountPropagation"].clone(),
            ))
        })
        .collect()
}

#[test]
fn the_monitor_config_is_a_custom_plugin_that_runs_doctor_npd_within_its_timeout() {
    let config = monitor();
    assert_eq!(config["plugin"], "custom");
    let plugin = &config["pluginConfig"];
    assert_eq!(plugin["max_output_length"], 80, "doctor --npd prints at most 80 characters");
    assert_eq!(plugin["concurrency"], 1);
    let interval = duration(plugin["invoke_interval"].as_str().unwrap());
    let plugin_timeout = duration(plugin["timeout"].as_str().unwrap());
    assert!(plugin_timeout < interval, "one run ends before the next starts");
    assert!(!config["source"].as_str().unwrap().is_empty());
    let condition = config["conditions"][0]["type"].as_str().unwrap();
    let rules = config["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 1);
    let rule = &rules[0];
    assert_eq!(rule["type"], "permanent");
    assert_eq!(rule["condition"], condition, "the rule sets the declared condition");
    let args = rule["args"].as_array().unwrap();
    assert_eq!(args[0], "doctor");
    assert!(args.iter().any(|a| a == "--npd"), "{args:?}");
    let budget = duration(flag(args, "--budget").unwrap_or("15s"));
    let rule_timeout = duration(rule["timeout"].as_str().unwrap());
    assert!(rule_timeout >= budget, "NPD must not kill doctor before its budget ends");
    assert!(plugin_timeout >= budget);
    // The arguments are ones ctdiag accepts (parsed, not run: --help stops
    // after parsing the flags before it).
    let mut probe: Vec<&str> = args.iter().map(|a| a.as_str().unwrap()).collect();
    probe.push("--help");
    let out = common::ctdiag(&probe);
    common::assert_success(&out, "ctdiag with the rule's args");
}

#[test]
fn the_daemonset_gives_doctor_the_node_and_the_plugin_config() {
    let docs = manifests();
    let config_map = kind(&docs, "ConfigMap");
    let (pod, container) = pod_and_container(&docs);
    assert_eq!(pod["hostNetwork"], true, "conntrack and the rules of the node's namespace");
    assert_eq!(pod["hostPID"], true, "the node's processes in /proc");
    assert_eq!(pod["serviceAccountName"], kind(&docs, "ServiceAccount")["metadata"]["name"]);
    // /run/netns of the node, mounted where ctdiag looks for it.
    let mounts = host_path_mounts(&pod, &container);
    assert!(
        mounts.iter().any(|(host, at, _, _)| host == "/run/netns" && at == "/run/netns"),
        "{mounts:?}"
    );
    // The plugin config NPD is pointed at is the ConfigMap's key, mounted.
    let command = strings(&container["command"]);
    let path = command
        .iter()
        .find_map(|c| c.strip_prefix("--config.custom-plugin-monitor="))
        .expect("--config.custom-plugin-monitor");
    let (dir, file) = path.rsplit_once('/').unwrap();
    let volumes = pod["volumes"].as_array().unwrap();
    let config_volume = volumes
        .iter()
        .find(|v| v["configMap"]["name"] == config_map["metadata"]["name"])
        .expect("a volume of the ConfigMap");
    let config_mount = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == config_volume["name"])
        .unwrap();
    assert_eq!(config_mount["mountPath"], dir);
    let embedded =
        config_map["data"][file].as_str().expect("the ConfigMap holds the file NPD reads");
    let embedded: Value = serde_json::from_str(embedded).expect("embedded monitor config is JSON");
    assert_eq!(
        embedded,
        monitor(),
        "daemonset.yaml's ConfigMap and ctdiag-doctor-monitor.json differ"
    );
}

#[test]
fn the_daemonset_runs_with_least_privilege() {
    let docs = manifests();
    let (pod, container) = pod_and_container(&docs);
    let security = &container["securityContext"];
    assert_ne!(security["privileged"], true);
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    let seccomp = if security["seccompProfile"].is_object() {
        &security["seccompProfile"]
    } else {
        &pod["securityContext"]["seccompProfile"]
    };
    assert_eq!(seccomp["type"], "RuntimeDefault", "{pod:#}");
    assert_eq!(strings(&security["capabilities"]["drop"]), ["ALL"]);
    // Kubernetes rejects allowPrivilegeEscalation: false next to
    // CAP_SYS_ADMIN; and no check of `doctor --npd` needs it or raw
    // sockets. That the rest are needed and enough, the podman test shows.
    let caps = added_capabilities(&container);
    for absent in ["SYS_ADMIN", "NET_RAW", "ALL"] {
        assert!(!caps.iter().any(|c| c.trim_start_matches("CAP_") == absent), "{caps:?}");
    }
    // Every hostPath volume is mounted, read-only, and none is a device.
    let volumes = pod["volumes"].as_array().unwrap();
    let mounts = host_path_mounts(&pod, &container);
    let host_paths = volumes.iter().filter(|v| v["hostPath"].is_object()).count();
    assert_eq!(host_paths, mounts.len(), "a hostPath volume nobody mounts: {volumes:?}");
    for (host, _, read_only, _) in &mounts {
        assert!(*read_only, "{host} is mounted writable");
        assert!(!host.starts_with("/dev"), "{host}: no device is read");
    }
    // NPD's own server and Prometheus endpoint share the node's network:
    // not on the ports an NPD already on the node holds, not on each other.
    let command = strings(&container["command"]);
    let port = |name: &str| -> u64 {
        let prefix = format!("--{name}=");
        command
            .iter()
            .find_map(|c| c.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("--{name} is not set: NPD would take its default"))
            .parse()
            .unwrap_or_else(|e| panic!("--{name}: {e}"))
    };
    let ports = [port("port"), port("prometheus-port")];
    assert_ne!(ports[0], ports[1]);
    for p in ports {
        assert!(!NPD_DEFAULT_PORTS.contains(&p), "{p} is NPD's default port");
    }
    for address in ["address", "prometheus-address"] {
        let prefix = format!("--{address}=");
        let value = command.iter().find_map(|c| c.strip_prefix(&prefix));
        assert_eq!(value, Some("127.0.0.1"), "--{address}: only the node itself");
    }
}

/// `registry/path/name:tag`: a registry host (it has a dot or a port, or is
/// localhost) and an explicit tag other than `latest`.
fn assert_registry_qualified_and_tagged(image: &str) {
    let (name, tag) = image.rsplit_once(':').unwrap_or_else(|| panic!("{image}: no tag"));
    assert!(!tag.contains('/'), "{image}: no tag");
    assert_ne!(tag, "latest", "{image}");
    let registry = name.split('/').next().unwrap();
    assert!(
        name.contains('/') && (registry.contains('.') || registry == "localhost"),
        "{image}: not registry-qualified"
    );
}

#[test]
fn the_images_put_ctdiag_where_it_is_run_under_a_pinned_name() {
    let plugin_path = monitor()["rules"][0]["path"].as_str().unwrap().to_string();
    let npd = deploy("npd.Containerfile");
    let copy = npd
        .lines()
        .find(|l| l.starts_with("COPY ") && l.contains("ctdiag"))
        .expect("a COPY of the ctdiag binary");
    assert!(copy.ends_with(&format!(" {plugin_path}")), "{copy} vs {plugin_path}");
    let from = npd.lines().find_map(|l| l.strip_prefix("FROM ")).expect("FROM");
    assert_registry_qualified_and_tagged(from.trim());
    // The DaemonSet runs the image npd.Containerfile says to build, named
    // after the version of ctdiag it holds.
    let (_, container) = pod_and_container(&manifests());
    let image = container["image"].as_str().unwrap().to_string();
    assert_registry_qualified_and_tagged(&image);
    assert!(image.ends_with(&format!(":{}", env!("CARGO_PKG_VERSION"))), "{image}");
    assert!(npd.contains(&format!("-t {image} ")), "npd.Containerfile builds {image}");
    // deploy/Containerfile: the binary and nothing else.
    let scratch = deploy("Containerfile");
    let instructions: Vec<&str> =
        scratch.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).collect();
    assert_eq!(
        instructions,
        ["FROM scratch", "COPY ctdiag /ctdiag", "ENTRYPOINT [\"/ctdiag\"]"],
        "{scratch}"
    );
}

/// How long `./install.sh --build-only` may take. Measured on a 2-core
/// machine: 1 min 47 s from cold at load average 1.5, 222-234 s for the
/// rebuild after a source change (thin LTO) at load average 8-10; 15 min
/// leaves a cold build on a machine that busy about four times its idle
/// time, and still ends a hung build.
const STATIC_BUILD_TIMEOUT: Duration = Duration::from_secs(900);
/// A podman command: building FROM scratch takes under a second and a
/// doctor run its budget; container setup on a loaded machine adds seconds.
const PODMAN_TIMEOUT: Duration = Duration::from_secs(90);
/// The flags every podman command here needs on these machines: crun
/// refuses the hybrid cgroup layout, so runc; and raising the open-file
/// and process limits above the caller's is not permitted.
const PODMAN_RUNTIME: [&str; 6] =
    ["--runtime", "runc", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"];

/// Removes what the test made with podman, also when it panics.
struct PodmanCleanup {
    image: String,
    containers: Vec<String>,
    context: PathBuf,
}

impl Drop for PodmanCleanup {
    fn drop(&mut self) {
        for name in &self.containers {
            let _ = common::try_run("podman", &["rm", "--force", name], PODMAN_TIMEOUT);
        }
        let _ = common::try_run("podman", &["rmi", "--force", &self.image], PODMAN_TIMEOUT);
        let _ = std::fs::remove_dir_all(&self.context);
    }
}

/// The static binary install.sh builds: its path, after checking with
/// `ldd` that it needs no loader (it must run in an image with no libc).
fn static_binary() -> PathBuf {
    let script = repo("install.sh");
    let out = common::run_with_timeout(
        "bash",
        &[script.to_str().unwrap(), "--build-only"],
        STATIC_BUILD_TIMEOUT,
    );
    common::assert_success(&out, "./install.sh --build-only");
    let path = PathBuf::from(common::stdout(&out).trim());
    assert!(path.is_file(), "install.sh printed {path:?}\n{}", common::stderr(&out));
    let ldd = common::run("ldd", &[path.to_str().unwrap()]);
    let said = format!("{}{}", common::stdout(&ldd), common::stderr(&ldd));
    assert!(said.contains("not a dynamic executable"), "{path:?} is not static: {said}");
    path
}

/// Runs the doctor of the lab's node as `doctor_args` say, from the image
/// in a container with the DaemonSet's privileges minus `without`: its
/// capabilities only (`--cap-drop ALL --cap-add ...`), a read-only root
/// with no tmpfs added, no privilege escalation, the runtime's default
/// seccomp profile, uid 0, its hostPath mounts, and the node's network
/// namespace and PID namespace (hostNetwork: the lab's node namespace is
/// the node; hostPID).
fn doctor_in_container(
    cleanup: &mut PodmanCleanup,
    lab: &TestLab,
    docs: &[Value],
    without: Option<&str>,
    doctor_args: &[&str],
) -> std::process::Output {
    let (pod, container) = pod_and_container(docs);
    assert_eq!(pod["hostNetwork"], true);
    assert_eq!(pod["hostPID"], true);
    let security = &container["securityContext"];
    let name = format!("ctdiag-test-{}-{}", std::process::id(), cleanup.containers.len());
    cleanup.containers.push(name.clone());
    let network = format!("ns:/run/netns/{}", lab.node_ns());
    let mut args: Vec<String> = ["run", "--rm", "--name", &name, "--pull=never"]
        .iter()
        .chain(PODMAN_RUNTIME.iter())
        .chain(["--network", &network, "--pid", "host"].iter())
        .map(|s| s.to_string())
        .collect();
    if security["readOnlyRootFilesystem"] == true {
        args.extend(["--read-only", "--read-only-tmpfs=false"].map(String::from));
    }
    if security["allowPrivilegeEscalation"] == false {
        args.extend(["--security-opt", "no-new-privileges"].map(String::from));
    }
    let uid = security["runAsUser"].as_u64().expect("runAsUser");
    args.extend(["--user".to_string(), uid.to_string(), "--cap-drop".into(), "ALL".into()]);
    for cap in added_capabilities(&container) {
        if Some(cap.as_str()) != without {
            args.extend(["--cap-add".to_string(), cap]);
        }
    }
    for (host, at, read_only, propagation) in host_path_mounts(&pod, &container) {
        let mut options = vec![if read_only { "ro" } else { "rw" }];
        if propagation == "HostToContainer" {
            options.push("rslave");
        }
        args.extend(["--volume".to_string(), format!("{host}:{at}:{}", options.join(","))]);
    }
    args.push(cleanup.image.clone());
    args.extend(doctor_args.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    common::run_with_timeout("podman", &args, PODMAN_TIMEOUT)
}

/// The same doctor on the host, in the lab's node namespace.
fn doctor_on_host(binary: &Path, lab: &TestLab, doctor_args: &[&str]) -> std::process::Output {
    let mut command = vec![binary.to_str().unwrap()];
    command.extend_from_slice(doctor_args);
    common::exec(&lab.node_ns(), &command)
}

/// (name, status) of each check, or (code, severity) of each finding.
type Pairs = Vec<(String, String)>;

/// What two runs must agree on: the verdict, each check's status, and the
/// findings (code and severity), sorted.
fn outcome(report: &Value) -> (String, Pairs, Pairs) {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let checks = report["checks"]
        .as_array()
        .unwrap_or_else(|| panic!("no checks: {report:#}"))
        .iter()
        .map(|c| (text(&c["check"]), text(&c["status"])))
        .collect();
    let mut findings: Vec<(String, String)> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (text(&f["code"]), text(&f["severity"])))
        .collect();
    findings.sort();
    (text(&report["verdict"]), checks, findings)
}

fn pods_seen(report: &Value) -> usize {
    check(report, "resolvers")["data"]["pods"].as_array().map_or(0, Vec::len)
}

/// Whether the running kernel resolves the clashes of queued packets
/// (>= 6.12), from `uname -r`: then doctor's dns-path check reaches a
/// verdict without the listing tools the image lacks.
fn kernel_at_least_6_12() -> bool {
    let release = common::stdout(&common::run("uname", &["-r"]));
    let mut parts = release.trim().split(|c: char| !c.is_ascii_digit());
    let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (major, minor) >= (6, 12)
}

#[test]
fn the_scratch_image_with_the_daemonsets_privileges_reaches_the_host_binarys_verdict() {
    if !common::require_root()
        || !common::require_tool("podman", "podman")
        || !common::require_tool("runc", "runc")
        || !common::require_tool("ldd", "libc-bin")
    {
        return;
    }
    let started = Instant::now();
    let binary = static_binary();
    let built_at = started.elapsed();
    // A build context holding only the binary, as deploy/Containerfile says.
    let context = std::env::temp_dir().join(format!("ctdiag-image-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&context);
    std::fs::create_dir_all(&context).unwrap();
    std::fs::copy(&binary, context.join("ctdiag")).unwrap();
    let image = format!("localhost/ctdiag-test:{}", std::process::id());
    let mut cleanup = PodmanCleanup { image: image.clone(), containers: Vec::new(), context };
    let containerfile = repo("deploy/Containerfile");
    let mut build = vec!["build", "--network", "none", "--pull=never"];
    build.extend_from_slice(&PODMAN_RUNTIME);
    build.extend([
        "-f",
        containerfile.to_str().unwrap(),
        "-t",
        &image,
        cleanup.context.to_str().unwrap(),
    ]);
    common::assert_success(
        &common::run_with_timeout("podman", &build, PODMAN_TIMEOUT),
        "podman build",
    );

    let docs = manifests();
    let mut lab = TestLab::up(&[]);
    let client = lab.client_ns();
    // A pod: a process in the client namespace with a root of its own,
    // where `ip netns exec` binds the pod's resolv.conf over
    // /etc/resolv.conf, as a container runtime does. Killed when dropped.
    let pod = common::spawn("ip", &["netns", "exec", &client, "sleep", "600"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !common::stdout(&common::run("ip", &["netns", "pids", &client]))
        .contains(&pod.id().to_string())
    {
        assert!(Instant::now() < deadline, "the pod process never entered {client}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The plugin's own arguments, with the resolver scan kept to the lab's
    // pod: this machine runs other labs and other people's processes, which
    // come and go between the two runs; both runs get the same flags.
    let rule = monitor()["rules"][0]["args"].clone();
    let mut npd_args: Vec<String> = strings(&rule);
    npd_args.extend(["--pods".to_string(), client.clone()]);
    let npd_args: Vec<&str> = npd_args.iter().map(String::as_str).collect();
    let mut json_args: Vec<&str> = npd_args.iter().copied().filter(|a| *a != "--npd").collect();
    json_args.extend(["-o", "json"]);
    let rules_readable = kernel_at_least_6_12();

    // Healthy lab, then a dead endpoint (the world: the lab built each).
    for state in ["healthy", "dead-endpoint"] {
        if state == "dead-endpoint" {
            lab.scenario("dead-endpoint", &["--endpoint", "2"]);
        }
        let host_out = doctor_on_host(&binary, &lab, &json_args);
        let host = common::json(&host_out);
        let boxed_out = doctor_in_container(&mut cleanup, &lab, &docs, None, &json_args);
        let boxed = common::json(&boxed_out);
        let (host_verdict, host_checks, host_findings) = outcome(&host);
        match state {
            "healthy" => assert_eq!(host_verdict, "ok", "{host:#}"),
            _ => assert!(
                host_findings.contains(&("endpoint-dead".into(), "critical".into())),
                "{host:#}"
            ),
        }
        let (verdict, mut checks, findings) = outcome(&boxed);
        let (mut host_checks, mut host_findings) = (host_checks, host_findings);
        // What the image goes without, each gap said in the container's own
        // report; everything else must agree.
        let mut gaps = Vec::new();
        if !rules_readable {
            // Before 6.12 dns-path needs the listing tools to judge NFQUEUE
            // rules: unknown, saying why.
            let dns_path = check(&boxed, "dns-path");
            assert_eq!(dns_path["status"], "unknown", "{dns_path:#}");
            assert!(dns_path["evidence"].as_str().unwrap().contains("none is installed"));
            gaps.push(("dns-path", None));
        }
        let stale_notes = check(&boxed, "stale")["data"]["notes"].to_string();
        if stale_notes.contains("`ip` (iproute2) is not installed") {
            // The stale scan asks `ip route get` / `ip neigh` whether each
            // endpoint can be reached: without `ip`, no endpoint-unreachable.
            gaps.push(("stale", Some("endpoint-unreachable")));
        }
        for (gap_check, gap_code) in &gaps {
            match gap_code {
                Some(code) => {
                    // The host's status of that check without that finding.
                    host_findings.retain(|(c, _)| c != code);
                    let rest: Vec<&Value> = host["findings"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter(|f| f["check"] == *gap_check && f["code"] != *code)
                        .collect();
                    let status = ["critical", "warning"]
                        .into_iter()
                        .find(|s| rest.iter().any(|f| f["severity"] == *s))
                        .unwrap_or("ok");
                    for (name, st) in host_checks.iter_mut() {
                        if name == gap_check && st != "unknown" {
                            *st = status.to_string();
                        }
                    }
                }
                None => {
                    checks.retain(|(name, _)| name != gap_check);
                    host_checks.retain(|(name, _)| name != gap_check);
                    // NFQUEUE rules are what it could not read.
                    host_findings.retain(|(code, _)| code != "nfqueue-on-dns-path");
                }
            }
        }
        assert_eq!(
            (&checks, &findings),
            (&host_checks, &host_findings),
            "{state} (image gaps {gaps:?}): in the container\n{boxed:#}\non the host\n{host:#}\n{}",
            common::stderr(&boxed_out)
        );
        if rules_readable {
            assert_eq!(verdict, host_verdict, "{state}: {boxed:#}\n{host:#}");
        }
        // The same pod seen through /proc/PID/root, and named through the
        // node's /run/netns the DaemonSet mounts.
        assert_eq!(pods_seen(&boxed), pods_seen(&host), "{boxed:#}\n{host:#}");
        let pods = check(&boxed, "resolvers")["data"]["pods"].clone();
        assert!(
            pods.as_array()
                .unwrap()
                .iter()
                .any(|p| p["pid"] == pod.id() && p["netns_name"] == client),
            "{pods:#}"
        );
        // What NPD itself sees: the exit status and the line's first word.
        let host_npd = doctor_on_host(&binary, &lab, &npd_args);
        let boxed_npd = doctor_in_container(&mut cleanup, &lab, &docs, None, &npd_args);
        let first_word = |o: &std::process::Output| -> String {
            common::stdout(o).split(':').next().unwrap_or_default().to_string()
        };
        if rules_readable {
            assert_eq!(
                (boxed_npd.status.code(), first_word(&boxed_npd)),
                (host_npd.status.code(), first_word(&host_npd)),
                "{state}: container {:?} {}host {:?} {}",
                boxed_npd.status,
                common::stdout(&boxed_npd),
                host_npd.status,
                common::stdout(&host_npd)
            );
        }
        if state == "healthy" {
            // And no more: without any one of the capabilities the
            // DaemonSet adds, doctor sees less than with all of them (a
            // check's status, or the pods it could look into).
            for cap in added_capabilities(&pod_and_container(&docs).1) {
                let out = doctor_in_container(&mut cleanup, &lab, &docs, Some(&cap), &json_args);
                let report = common::json(&out);
                let less = outcome(&report).1 != outcome(&boxed).1
                    || pods_seen(&report) != pods_seen(&boxed);
                assert!(
                    less,
                    "without {cap} doctor sees what it sees with it: the DaemonSet need not add it\n{report:#}"
                );
            }
        }
    }
    eprintln!(
        "podman test: static build {:.1} s, whole test {:.1} s",
        built_at.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
