//! What a pod writes is hostile: its files are read only inside its root,
//! never followed to the host and never waited on; its text reaches the
//! admin's terminal escaped; and as root the tools ctdiag runs come from a
//! fixed PATH, not the caller's.
//!
//! The pods here are real processes in namespaces of their own: a mount
//! namespace (`unshare -m`) whose /etc is what the test put there, so that
//! /proc/PID/root/etc/resolv.conf is that pod's file exactly as the kernel
//! shows it to any reader; a UTS namespace for a hostname.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Running, TestLab};

/// A directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("ctdiag-{}-{tag}", common::unique_prefix()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Starts `program args` and waits until it has exec'd `sleep` (the end of
/// every pod set-up script here), so its namespaces and mounts are final.
fn start_pod(program: &str, args: &[&str]) -> Running {
    let mut pod = common::spawn(program, args);
    let pid = pod.id();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
        if exe.file_name().is_some_and(|n| n == "sleep") {
            return pod;
        }
        assert!(pod.is_running(), "the pod set-up failed: {args:?}");
        assert!(Instant::now() < deadline, "the pod never started: {args:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Characters that must never reach a terminal from a pod: C0 controls
/// but newline and tab, DEL and the C1 controls (U+009B is CSI).
fn raw_controls(text: &str, allow_cr: bool) -> Vec<char> {
    text.chars()
        .filter(|c| c.is_control() && !matches!(c, '\n' | '\t'))
        .filter(|c| !(allow_cr && *c == '\r'))
        .collect()
}

/// `text` without SGR sequences (`ESC [ digits;digits m`, colors); any
/// other escape is left in place.
fn without_colors(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('\x1b') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let sgr = after.strip_prefix('[').and_then(|r| {
            let end = r.find(|c: char| !(c.is_ascii_digit() || c == ';'))?;
            r[end..].starts_with('m').then_some(end + 2)
        });
        match sgr {
            Some(len) => rest = &after[len..],
            None => {
                out.push('\x1b');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Stdout and stderr as text, after checking the raw bytes: no ESC, no
/// BEL, and (as UTF-8) no C1 control.
fn terminal_text(out: &std::process::Output) -> String {
    for (name, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        for forbidden in [0x1b_u8, 0x07] {
            assert!(
                !bytes.contains(&forbidden),
                "byte {forbidden:#04x} reached the terminal on {name}: {}",
                String::from_utf8_lossy(bytes)
            );
        }
        let text = String::from_utf8_lossy(bytes);
        assert!(!text.contains('\u{9b}'), "a C1 CSI reached {name}: {text}");
        assert_eq!(raw_controls(&text, false), Vec::<char>::new(), "{name}: {text}");
    }
    format!("{}{}", common::stdout(out), common::stderr(out))
}

/// A pod whose /etc/resolv.conf is an absolute symlink to a host file, a
/// FIFO, or a symlink to /dev/zero. `probe --netns PID` (which reads the
/// pod's resolv.conf to find the server when none is given) reads nothing
/// of the host, returns at once, and says why. The pod's network namespace
/// is new and empty (`unshare -n`): nothing could be sent anywhere even if
/// a server were taken from the host's file.
#[test]
fn a_pods_resolv_conf_symlink_fifo_or_dev_zero_is_never_followed_on_the_host() {
    if !common::require_root() {
        return;
    }
    let dir = TempDir::new("hostfile");
    let marker = format!("HOST-SECRET-{}", common::unique_prefix());
    let secret = dir.path("secret-resolv.conf");
    std::fs::write(&secret, format!("nameserver 198.18.77.77\n# {marker}\n")).unwrap();
    for (kind, make, why) in [
        (
            "absolute symlink to a host file",
            format!("ln -s {secret} /etc/resolv.conf"),
            "not found inside the container's root",
        ),
        ("FIFO", "mkfifo /etc/resolv.conf".to_string(), "not a regular file"),
        ("link to /dev/zero", "ln -s /dev/zero /etc/resolv.conf".to_string(), "not a regular file"),
    ] {
        // /etc and the directory of the host's file are the pod's own
        // (empty tmpfs): inside the pod's root the host file does not
        // exist, as in a container whose root is its image.
        let script = format!(
            "mount -t tmpfs ctdiag-pod /etc && mount -t tmpfs ctdiag-pod {} && {make} && exec sleep 120",
            dir.0.display()
        );
        let pod =
            start_pod("unshare", &["-m", "-n", "--propagation", "private", "sh", "-c", &script]);
        let pid = pod.id().to_string();
        let path = format!("/proc/{pid}/root/etc/resolv.conf");
        // The hazard is real: read the ordinary way, the symlink leads to
        // the host's file.
        if kind.starts_with("absolute") {
            let plain = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(plain.contains(&marker), "{kind}: the set-up is wrong: {plain:?}");
        }
        let started = Instant::now();
        let out = common::run_with_timeout(
            common::CTDIAG,
            &["probe", "--netns", &pid, "--count", "1", "-o", "json", "-v"],
            Duration::from_secs(30),
        );
        let took = started.elapsed();
        drop(pod);
        let text = format!("{}{}", common::stdout(&out), common::stderr(&out));
        assert_eq!(out.status.code(), Some(2), "{kind}: {text}");
        assert!(
            text.contains(&path) && text.contains(why),
            "{kind}: the reason is not said: {text}"
        );
        assert!(
            !text.contains(&marker) && !text.contains("198.18.77.77"),
            "{kind}: the host's file was read: {text}"
        );
        // Why 10 s: a run that reads nothing and probes nothing takes well
        // under a second even on a loaded machine; a blocked open of a FIFO
        // would take the 30 s harness limit.
        assert!(took < Duration::from_secs(10), "{kind}: took {took:?}");
    }
}

/// The escaped form of `text` as ctdiag shows it (`\x1b`, `\u{9b}`).
fn shown(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        match u32::from(c) {
            code if c.is_control() && code < 0x80 => out.push_str(&format!("\\x{code:02x}")),
            code if c.is_control() => out.push_str(&format!("\\u{{{code:x}}}")),
            _ => out.push(c),
        }
    }
    out
}

/// A lab client pod with a hostname and a resolv.conf that carry escape
/// sequences (an OSC title, BEL, erase-display, a C1 CSI, carriage return
/// and backspace). `doctor` and `stale` tables, and the `stale --flush`
/// prompt on a terminal, show them escaped: no ESC, BEL or CSI byte
/// reaches the terminal; JSON keeps the values as the pod wrote them.
#[test]
fn a_pods_hostname_and_resolv_conf_reach_the_terminal_escaped() {
    if !common::require_root() || !common::require_tool("script", "bsdutils") {
        return;
    }
    let mut lab = TestLab::up(&["--endpoints", "2"]);
    let (node, client) = (lab.node_ns(), lab.client_ns());
    for key in ["nf_conntrack_udp_timeout", "nf_conntrack_udp_timeout_stream"] {
        let setting = format!("net.netfilter.{key}=600");
        common::assert_success(&common::exec(&node, &["sysctl", "-q", "-w", &setting]), "sysctl");
    }
    let hostname = "p\x1b]0;PWN\x07\x1b[2J\u{9b}1m\r\x08z";
    // No `;` in it: resolv.conf comments start there.
    let search = "evil\x1b[2J\x07\u{9b}5n.svc.cluster.local";
    let dir = TempDir::new("hostile-pod");
    let resolv = dir.path("resolv.conf");
    std::fs::write(
        &resolv,
        format!(
            "nameserver {}\nsearch {search} cluster.local\noptions ndots:5\n",
            lab.cluster_ip()
        ),
    )
    .unwrap();
    // The pod: its own UTS namespace with the hostname, its own mount
    // namespace with the resolv.conf, in the lab's client namespace. It is
    // started before the sticky clients, so it is the namespace's lowest
    // PID, whose hostname `stale` shows.
    let pod = start_pod(
        "ip",
        &[
            "netns",
            "exec",
            &client,
            "unshare",
            "-u",
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            "printf %s \"$1\" > /proc/sys/kernel/hostname && mount --bind \"$2\" /etc/resolv.conf && exec sleep 300",
            "sh",
            hostname,
            &resolv,
        ],
    );
    let pid = pod.id();
    let uts =
        common::run("nsenter", &["-u", "-t", &pid.to_string(), "cat", "/proc/sys/kernel/hostname"]);
    assert_eq!(common::stdout(&uts).trim_end_matches('\n'), hostname, "the pod's hostname");

    // doctor, before the sticky clients exist: the pod's search list is
    // the namespace's only one, so its finding shows it.
    let doctor = ["doctor", "--netns", &node, "--probe-netns", &client, "--pods", &client];
    let out = common::ctdiag(&doctor);
    let text = terminal_text(&out);
    assert!(text.contains(&shown(search)), "the search domain is not shown escaped: {text}");
    let mut with_json = doctor.to_vec();
    with_json.extend(["-o", "json"]);
    let report = common::json(&common::ctdiag(&with_json));
    let evidence: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["evidence"].as_str())
        .collect();
    assert!(evidence.iter().any(|e| e.contains(search)), "JSON keeps the words: {evidence:?}");

    // stale: entries of clients in the pod's namespace, named by the pod's
    // hostname.
    lab.scenario("stale-endpoint", &["--endpoint", "2"]);
    let report = common::json(&common::ctdiag(&["stale", "--netns", &node, "-o", "json"]));
    let entries = report["entries"].as_array().cloned().unwrap_or_default();
    assert!(!entries.is_empty(), "no stale entries: {report:#}");
    for entry in &entries {
        assert_eq!(entry["client"]["hostname"], hostname, "JSON keeps the hostname: {entry:#}");
    }
    let out = common::ctdiag(&["stale", "--netns", &node, "-v"]);
    assert_eq!(out.status.code(), Some(1), "{}", common::stderr(&out));
    let text = terminal_text(&out);
    assert!(text.contains(&shown(hostname)), "the hostname is not shown escaped: {text}");
    // With colors, ctdiag's own SGR sequences are the only escapes.
    let out = common::ctdiag(&["stale", "--netns", &node, "--color", "always"]);
    let colored = common::stdout(&out);
    assert!(colored.contains(&shown(hostname)), "{colored}");
    assert_eq!(raw_controls(&without_colors(&colored), false), Vec::<char>::new(), "{colored:?}");

    // The flush prompt, on a terminal (a pty from `script`), answered no.
    let command = format!("{} stale --netns {node} --flush", common::CTDIAG);
    let out =
        common::run("sh", &["-c", "printf 'n\\n' | script -qec \"$1\" /dev/null", "sh", &command]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("Delete these") && text.contains("[y/N]"), "no prompt: {text}");
    assert!(text.contains(&shown(hostname)), "{text}");
    // The pty turns every newline into \r\n: carriage returns are the
    // terminal's own here, everything else is checked.
    // On a terminal ctdiag colors the findings: its SGR sequences are the
    // only escapes.
    assert_eq!(raw_controls(&without_colors(&text), true), Vec::<char>::new(), "{text:?}");
    let report = common::json(&common::ctdiag(&["stale", "--netns", &node, "-o", "json"]));
    assert_eq!(report["stale_count"], entries.len(), "declined: nothing deleted");
    drop(pod);
}

/// As root, the tools come from the fixed root PATH: with PATH empty, and
/// with a fake `iptables-save` first on PATH, `services` reading the rules
/// with the listing tools gives what the real tool gives, and the fake
/// never runs.
#[test]
fn as_root_the_callers_path_is_not_used() {
    if !common::require_root() {
        return;
    }
    let lab = TestLab::up(&[]);
    let node = lab.node_ns();
    let services = |path: &str| {
        let path = format!("PATH={path}");
        common::run(
            "/usr/bin/env",
            &[
                &path,
                "CTDIAG_RULES_FROM=tools",
                common::CTDIAG,
                "services",
                "--netns",
                &node,
                "-o",
                "json",
            ],
        )
    };
    let real = services(&std::env::var("PATH").unwrap_or_default());
    assert_eq!(real.status.code(), Some(0), "{}", common::stderr(&real));
    let real = common::json(&real);
    let listed: Vec<String> = real
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["name"] == "kube-dns")
        .flat_map(|s| {
            s["endpoints"].as_array().unwrap().iter().map(|e| e.as_str().unwrap().to_string())
        })
        .collect();
    for endpoint in lab.endpoints() {
        assert!(listed.contains(&endpoint), "{endpoint} not in {real:#}");
    }

    let empty = services("");
    assert_eq!(empty.status.code(), Some(0), "empty PATH: {}", common::stderr(&empty));
    assert_eq!(common::json(&empty), real, "empty PATH");

    let dir = TempDir::new("fake-tools");
    let ran = dir.path("fake-ran");
    let fake = dir.path("iptables-save");
    std::fs::write(&fake, format!("#!/bin/sh\ntouch {ran}\necho '*filter'\necho COMMIT\n"))
        .unwrap();
    common::run("chmod", &["755", &fake]);
    let path = format!("{}:{}", dir.0.display(), std::env::var("PATH").unwrap_or_default());
    let faked = services(&path);
    assert_eq!(faked.status.code(), Some(0), "{}", common::stderr(&faked));
    assert_eq!(common::json(&faked), real, "a fake first on PATH");
    assert!(!Path::new(&ran).exists(), "the caller's iptables-save ran as root");
}

/// On a terminal that reports 0 columns (the pty `script` makes when its
/// own input is no terminal, `stty size` says "0 0"), tables are laid out
/// in 80 columns, not squashed to a letter per column.
#[test]
fn a_terminal_without_a_size_gets_80_columns() {
    if !common::require_tool("script", "bsdutils") {
        return;
    }
    let command = format!(
        "stty size; {} services --cluster-ip 198.19.0.10 --endpoints 198.18.2.2:53,198.18.3.2:53",
        common::CTDIAG
    );
    let out = common::run("script", &["-qec", &command, "/dev/null"]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let text = common::stdout(&out).replace('\r', "");
    assert_eq!(text.lines().next(), Some("0 0"), "the pty has a size: {text}");
    let table: Vec<&str> = text.lines().filter(|l| l.starts_with(['┌', '│', '╞', '└'])).collect();
    assert!(!table.is_empty(), "{text}");
    let widest = table.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    assert!((60..=80).contains(&widest), "table width {widest}:\n{text}");
    for word in ["cluster IPs", "198.19.0.10", "198.18.3.2:53", "manual"] {
        assert!(table.iter().any(|l| l.contains(word)), "{word:?} broken up:\n{text}");
    }
}
