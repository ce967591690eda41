//! deploy/: the node-problem-detector custom plugin monitor config, the
//! DaemonSet that runs it and the image it runs, parsed with real parsers
//! (serde_json, saphyr for YAML) and checked against each other and against
//! what `ctdiag doctor --npd` does.

mod common;

use std::path::Path;
use std::time::Duration;

use saphyr::{LoadableYamlNode, Scalar, Yaml};
use serde_json::Value;

fn deploy(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy").join(file);
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
fn the_daemonset_gives_doctor_the_node_its_capabilities_and_the_plugin_config() {
    let docs = manifests();
    let config_map = kind(&docs, "ConfigMap");
    let daemon_set = kind(&docs, "DaemonSet");
    let pod = &daemon_set["spec"]["template"]["spec"];
    assert_eq!(pod["hostNetwork"], true, "conntrack and the rules of the node's namespace");
    assert_eq!(pod["hostPID"], true, "the node's processes in /proc");
    assert_eq!(pod["serviceAccountName"], kind(&docs, "ServiceAccount")["metadata"]["name"]);
    let container = &pod["containers"][0];
    let caps: Vec<&str> = container["securityContext"]["capabilities"]["add"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for needed in ["NET_ADMIN", "SYS_ADMIN", "SYS_PTRACE"] {
        assert!(caps.contains(&needed), "{needed} missing from {caps:?}");
    }
    // /run/netns of the node, mounted where ctdiag looks for it.
    let volumes = pod["volumes"].as_array().unwrap();
    let mounts = container["volumeMounts"].as_array().unwrap();
    let host_path_mounted_at = |host: &str| -> Option<String> {
        let volume = volumes.iter().find(|v| v["hostPath"]["path"] == host)?;
        let mount = mounts.iter().find(|m| m["name"] == volume["name"])?;
        mount["mountPath"].as_str().map(str::to_string)
    };
    assert_eq!(host_path_mounted_at("/run/netns").as_deref(), Some("/run/netns"));
    // The plugin config NPD is pointed at is the ConfigMap's key, mounted.
    let command: Vec<&str> =
        container["command"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    let path = command
        .iter()
        .find_map(|c| c.strip_prefix("--config.custom-plugin-monitor="))
        .expect("--config.custom-plugin-monitor");
    let (dir, file) = path.rsplit_once('/').unwrap();
    let config_volume = volumes
        .iter()
        .find(|v| v["configMap"]["name"] == config_map["metadata"]["name"])
        .expect("a volume of the ConfigMap");
    let config_mount = mounts.iter().find(|m| m["name"] == config_volume["name"]).unwrap();
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
fn the_image_puts_ctdiag_where_the_plugin_runs_it_with_the_tools_it_needs() {
    let plugin_path = monitor()["rules"][0]["path"].as_str().unwrap().to_string();
    let dockerfile = deploy("Dockerfile");
    let copy = dockerfile
        .lines()
        .find(|l| l.starts_with("COPY ") && l.contains("ctdiag"))
        .expect("a COPY of the ctdiag binary");
    assert!(copy.ends_with(&format!(" {plugin_path}")), "{copy} vs {plugin_path}");
    for package in ["iptables", "nftables"] {
        assert!(dockerfile.contains(package), "the image needs {package}");
    }
    let image = kind(&manifests(), "DaemonSet")["spec"]["template"]["spec"]["containers"][0]
        ["image"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(dockerfile.contains(&format!("-t {}", image.trim_end_matches(":latest"))), "{image}");
}
