//! A flush that cannot over-delete (issue 14, part 6): each refusal, and
//! an endpoint added mid-rollout, against the kernel's own list of entries
//! (`conntrack -L` before and after). The rules are loaded with the tools
//! kube-proxy uses into a namespace of the test's own; entries are made
//! with `conntrack -I`.

mod common;
mod stale_common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{json, stderr};
use ctdiag::lab::rules::ServiceRules;
use stale_common::{stale, Flow, Scratch};

const CLUSTER_IP: &str = "198.19.0.10";
const CLIENT: &str = "198.18.1.2";
/// Live in every read of the rules.
const A: &str = "198.18.2.2";
/// In some rules only (another mode's, or added mid-rollout).
const B: &str = "198.18.3.2";
/// An endpoint in no rules at all: its entries are stale.
const C: &str = "198.18.4.2";

fn ready() -> bool {
    common::require_root()
        && common::require_tool("conntrack", "conntrack")
        && common::require_tool("iptables-restore", "iptables")
        && common::require_tool("nft", "nftables")
}

/// kube-dns's rules with `endpoints` (port 53).
fn kube_dns(endpoints: &[&str]) -> ServiceRules {
    ServiceRules {
        service: "kube-system/kube-dns".into(),
        cluster_ip: CLUSTER_IP.parse().expect("address"),
        ports: vec![("dns".into(), "udp".into(), 53)],
        endpoints: endpoints
            .iter()
            .map(|e| format!("{e}:53").parse::<SocketAddr>().expect("endpoint"))
            .collect(),
        cluster_cidr: "198.18.0.0/15".into(),
        reject_without_endpoints: true,
    }
}

/// One entry from the client's port `port` towards `target`.
fn flow(port: u16, target: &str) -> Flow {
    Flow::udp(CLIENT, port, CLUSTER_IP, 53, target, 53)
}

/// Entries towards A (41001), B (41002) and C (41003).
fn three_flows(scratch: &Scratch) -> [Flow; 3] {
    let flows = [flow(41001, A), flow(41002, B), flow(41003, C)];
    for f in &flows {
        scratch.insert(f);
    }
    flows
}

#[test]
fn a_flush_with_an_empty_endpoint_list_is_refused() {
    if !ready() {
        return;
    }
    let scratch = Scratch::new("emptyep");
    let flows = three_flows(&scratch);
    scratch.insert(&flow(41004, CLUSTER_IP));
    let before = scratch.flows();
    assert_eq!(before.len(), 4);
    let out = stale(&[
        "--netns",
        &scratch.0,
        "--cluster-ip",
        CLUSTER_IP,
        "--endpoints",
        "",
        "--flush",
        "--yes",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("nothing was deleted"), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    assert_eq!(scratch.flows(), before, "the kernel's table is untouched");
    // The listing still works: every entry is stale by an empty list.
    let out = stale(&[
        "--netns",
        &scratch.0,
        "--cluster-ip",
        CLUSTER_IP,
        "--endpoints",
        "",
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(json(&out)["stale_count"], 4);
    assert!(before.contains(&flows[0]));
}

#[test]
fn rule_sources_that_disagree_refuse_the_flush_and_from_picks_one() {
    if !ready() {
        return;
    }
    let scratch = Scratch::new("twomodes");
    // kube-proxy's iptables mode says A and B, its nftables mode (leftover
    // rules of the other mode, or the mode it runs now) says A only.
    scratch.iptables_restore(&kube_dns(&[A, B]).iptables_restore_input(), false);
    scratch.nft(&kube_dns(&[A]).nft_input());
    let [to_a, to_b, to_c] = three_flows(&scratch);
    let before = scratch.flows();

    let out = stale(&["--netns", &scratch.0, "--flush", "--yes", "-o", "json"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let why = stderr(&out);
    for word in
        ["iptables rules", "nftables rules", "198.18.3.2:53", "--from", "nothing was deleted"]
    {
        assert!(why.contains(word), "{word:?} not in {why}");
    }
    assert!(out.stdout.is_empty());
    assert_eq!(scratch.flows(), before, "nothing deleted");

    // The listing: an entry is live when any source names its target.
    let out = stale(&["--netns", &scratch.0, "-o", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report = json(&out);
    assert_eq!(report["stale_count"], 1, "only C: {report:#}");
    let codes: Vec<&str> = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter_map(|f| f["code"].as_str())
        .collect();
    assert!(codes.contains(&"rule-sources-disagree"), "{codes:?}");

    // --from iptables: A and B are endpoints, only C goes.
    let out =
        stale(&["--netns", &scratch.0, "--from", "iptables", "--flush", "--yes", "-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json(&out)["flush"]["deleted"], 1);
    let after = scratch.flows();
    assert_eq!(after, BTreeSet::from([to_a.clone(), to_b.clone()]));
    // --from nftables: A only; B goes.
    let out =
        stale(&["--netns", &scratch.0, "--from", "nftables", "--flush", "--yes", "-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json(&out)["proxy_mode"], "nftables");
    assert_eq!(scratch.flows(), BTreeSet::from([to_a]));
    // A mode with no rules for it is a usage error.
    let out = stale(&["--netns", &scratch.0, "--from", "ipvs", "--flush", "--yes"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--from ipvs"), "{}", stderr(&out));
    let _ = (to_b, to_c);
}

/// kube-proxy's iptables-mode rules in both iptables backends (nf_tables
/// and legacy x_tables), disagreeing: the nf_tables copy says A and B, the
/// legacy copy A only.
#[test]
fn both_iptables_backends_that_disagree_refuse_the_flush() {
    if !ready()
        || !common::require_tool("iptables-nft-restore", "iptables")
        || !common::require_tool("iptables-legacy-restore", "iptables")
    {
        return;
    }
    let scratch = Scratch::new("backends");
    stale_common::pipe(
        &scratch.0,
        &["iptables-nft-restore"],
        &kube_dns(&[A, B]).iptables_restore_input(),
    );
    stale_common::pipe(
        &scratch.0,
        &["iptables-legacy-restore"],
        &kube_dns(&[A]).iptables_restore_input(),
    );
    let [to_a, to_b, to_c] = three_flows(&scratch);
    let before = scratch.flows();
    let out = stale(&["--netns", &scratch.0, "--flush", "--yes"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let why = stderr(&out);
    for word in ["iptables rules (legacy backend)", "198.18.3.2:53", "nothing was deleted"] {
        assert!(why.contains(word), "{word:?} not in {why}");
    }
    assert_eq!(scratch.flows(), before, "nothing deleted");
    // The listing: B is live by the nf_tables copy; only C is stale.
    let out = stale(&["--netns", &scratch.0, "-o", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report = json(&out);
    assert_eq!(report["stale_count"], 1, "{report:#}");
    assert!(report["findings"].to_string().contains("rule-sources-disagree"), "{report:#}");
    // Backends that agree again (the legacy copy updated): the flush runs
    // and deletes only C.
    stale_common::pipe(
        &scratch.0,
        &["iptables-legacy-restore"],
        &kube_dns(&[A, B]).iptables_restore_input(),
    );
    let out = stale(&["--netns", &scratch.0, "--flush", "--yes", "-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(scratch.flows(), BTreeSet::from([to_a, to_b]));
    let _ = to_c;
}

#[test]
fn skipped_rules_refuse_the_flush() {
    if !ready() {
        return;
    }
    let scratch = Scratch::new("skipped");
    // A DNAT without a port: ctdiag cannot read it, and it could be an
    // endpoint (kube-proxy always writes IP:PORT; a rule it did not write,
    // or a format this ctdiag does not know). The Service's chain jumps to
    // it, as to an endpoint's chain: it is on the Service's path, so the
    // read of that one Service meets it as well as the read of every one.
    let text = kube_dns(&[A]).iptables_restore_input().replacen(
        ":KUBE-SERVICES - [0:0]\n",
        ":KUBE-SERVICES - [0:0]\n:KUBE-SEP-CTCUNREADABLE0 - [0:0]\n-A KUBE-SEP-CTCUNREADABLE0 -p udp -m comment --comment \"kube-system/kube-dns:dns\" -m udp -j DNAT --to-destination 198.18.3.2\n",
        1,
    );
    let jump = text
        .lines()
        .find(|l| l.starts_with("-A KUBE-SVC-") && l.contains("kube-system/kube-dns:dns -> "))
        .expect("the UDP Service's jump to its endpoint")
        .to_string();
    let svc_chain = jump.split_whitespace().nth(1).expect("chain name");
    let text = text.replacen(
        &jump,
        &format!(
            "-A {svc_chain} -m comment --comment \"kube-system/kube-dns:dns -> 198.18.3.2\" -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-CTCUNREADABLE0\n{jump}"
        ),
        1,
    );
    scratch.iptables_restore(&text, false);
    three_flows(&scratch);
    let before = scratch.flows();
    let out = stale(&["--netns", &scratch.0, "--flush", "--yes"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("skipped"), "{}", stderr(&out));
    assert_eq!(scratch.flows(), before, "nothing deleted");
}

/// A pseudo-terminal: (master, slave).
fn openpty() -> (OwnedFd, OwnedFd) {
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty(3) writes two descriptors into the out-pointers; the
    // name, termios and winsize pointers may be null.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just opened and are owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) }
}

/// An endpoint added while the flush waits at its prompt (a rollout goes
/// on): the entry towards it, stale at the scan, is not deleted; the one
/// towards an endpoint in no read of the rules is.
#[test]
fn an_endpoint_added_while_the_flush_waits_is_never_flushed() {
    if !ready() {
        return;
    }
    let scratch = Scratch::new("rollout");
    scratch.iptables_restore(&kube_dns(&[A]).iptables_restore_input(), false);
    let [to_a, to_b, to_c] = three_flows(&scratch);
    let (master, slave) = openpty();
    let mut child = Command::new(common::CTDIAG)
        .args(["stale", "--netns", &scratch.0, "--flush", "-o", "json"])
        .stdin(Stdio::from(slave))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ctdiag");
    let mut err = child.stderr.take().expect("stderr");
    let mut out_pipe = child.stdout.take().expect("stdout");
    let stdout_reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = out_pipe.read_to_end(&mut text);
        text
    });
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok(n) = err.read(&mut buffer) {
            if n == 0 || tx.send(String::from_utf8_lossy(&buffer[..n]).into_owned()).is_err() {
                break;
            }
        }
    });
    // The prompt: B and C are stale by the rules it read.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut said = String::new();
    // The whole prompt, up to its "[y/N]": it may come in several reads.
    while !said.contains("[y/N]") {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(chunk) => said.push_str(&chunk),
            Err(_) => {
                let _ = child.kill();
                panic!("no prompt within 60 s: {said}");
            }
        }
    }
    assert!(said.contains("Delete these 2 stale"), "{said}");
    // Mid-rollout: kube-proxy adds B to the rules.
    scratch.iptables_restore(&kube_dns(&[A, B]).iptables_restore_input(), false);
    let mut master = std::fs::File::from(master);
    master.write_all(b"y\n").expect("answer the prompt");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the flush did not end within 60 s of the answer: {said}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let printed = stdout_reader.join().expect("stdout reader");
    let _ = reader.join();
    assert_eq!(status.code(), Some(0), "{said}");
    let report: serde_json::Value = serde_json::from_slice(&printed).expect("JSON report");
    assert_eq!(report["flush"]["deleted"], 1, "{report:#}");
    assert_eq!(report["flush"]["spared"], 1, "{report:#}");
    assert_eq!(report["flush"]["remaining"], 0, "{report:#}");
    assert_eq!(scratch.flows(), BTreeSet::from([to_a, to_b]), "C went, B stayed");
    let _ = to_c;
}
