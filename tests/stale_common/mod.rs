//! A namespace of the test's own for the stale tests of issue 14
//! (kube_proxy_parity.rs, flush_safety.rs): nothing connected to it, rules
//! loaded with the tools kube-proxy uses, entries made with `conntrack -I`,
//! and the kernel's own list of them (`conntrack -L`) to compare with.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::process::{Command, Output};

use super::common::{self, assert_success, exec, stdout};

/// One conntrack entry as `conntrack -L` prints it: protocol, the original
/// tuple, the reply source.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Flow {
    pub proto: String,
    pub src: String,
    pub sport: u16,
    pub dst: String,
    pub dport: u16,
    pub reply_src: String,
    pub reply_sport: u16,
}

impl Flow {
    /// A UDP flow.
    pub fn udp(src: &str, sport: u16, dst: &str, dport: u16, reply: &str, rport: u16) -> Flow {
        Flow {
            proto: "udp".into(),
            src: src.into(),
            sport,
            dst: dst.into(),
            dport,
            reply_src: reply.into(),
            reply_sport: rport,
        }
    }
}

/// A scratch network namespace, deleted on drop.
pub struct Scratch(pub String);

impl Scratch {
    /// `<unique prefix>-<what>`, with a veth pair whose end holds
    /// 198.18.0.1/15 and 2001:db8::1/32, so that every lab address is
    /// routed (and counts as reachable); no packet is ever sent.
    pub fn new(what: &str) -> Scratch {
        let name = format!("{}-{what}", common::unique_prefix());
        let scratch = Scratch(name.clone());
        assert_success(&common::run("ip", &["netns", "add", &name]), "ip netns add");
        for args in [
            &["link", "add", "ep", "type", "veth", "peer", "name", "ep-peer"][..],
            &["link", "set", "ep", "up"],
            &["link", "set", "ep-peer", "up"],
            &["addr", "add", "198.18.0.1/15", "dev", "ep"],
            &["addr", "add", "2001:db8::1/32", "dev", "ep", "nodad"],
        ] {
            let mut full = vec!["-n", name.as_str()];
            full.extend_from_slice(args);
            assert_success(&common::run("ip", &full), "ip in the scratch namespace");
        }
        scratch
    }

    /// `conntrack -I` of `flow` (the reply goes back to the client's
    /// address and port), 600 s; TCP and SCTP entries ESTABLISHED.
    pub fn insert(&self, flow: &Flow) {
        let (sport, dport, rport) =
            (flow.sport.to_string(), flow.dport.to_string(), flow.reply_sport.to_string());
        let mut args = vec![
            "conntrack",
            "-I",
            "-p",
            flow.proto.as_str(),
            "-s",
            &flow.src,
            "-d",
            &flow.dst,
            "--sport",
            &sport,
            "--dport",
            &dport,
            "-r",
            &flow.reply_src,
            "-q",
            &flow.src,
            "--reply-port-src",
            &rport,
            "--reply-port-dst",
            &sport,
            "-t",
            "600",
        ];
        if flow.proto != "udp" {
            args.extend_from_slice(&["--state", "ESTABLISHED"]);
        }
        if flow.proto == "sctp" {
            // conntrack-tools wants SCTP's verification tags.
            args.extend_from_slice(&["--orig-vtag", "1", "--reply-vtag", "2"]);
        }
        assert_success(&exec(&self.0, &args), &format!("conntrack -I {flow:?}"));
    }

    /// Every entry of the table, as `conntrack -L` lists it (TCP, UDP and
    /// SCTP; both families).
    pub fn flows(&self) -> BTreeSet<Flow> {
        let mut all = BTreeSet::new();
        for family in ["ipv4", "ipv6"] {
            let out = exec(&self.0, &["conntrack", "-L", "-f", family]);
            assert_success(&out, "conntrack -L");
            all.extend(stdout(&out).lines().filter(|l| !l.trim().is_empty()).map(parse_line));
        }
        all
    }

    /// `iptables-restore` (or `ip6tables-restore`) of `text` here.
    pub fn iptables_restore(&self, text: &str, v6: bool) {
        let tool = if v6 { "ip6tables-restore" } else { "iptables-restore" };
        pipe(&self.0, &[tool], text);
    }

    /// `nft -f -` of `text` here.
    pub fn nft(&self, text: &str) {
        pipe(&self.0, &["nft", "-f", "-"], text);
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

/// Runs `cmd` in `ns` with `input` on its stdin; it must succeed.
pub fn pipe(ns: &str, cmd: &[&str], input: &str) {
    use std::io::Write;
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(cmd)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write");
    let out: Output = child.wait_with_output().expect("wait");
    assert_success(&out, &cmd.join(" "));
}

/// One `conntrack -L` line: `PROTO NUM [TIMEOUT] [STATE] src= dst= sport=
/// dport= [flags] src= dst= sport= dport= ...`.
fn parse_line(line: &str) -> Flow {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let nth = |key: &str, n: usize| -> &str {
        fields
            .iter()
            .filter_map(|f| f.strip_prefix(key))
            .nth(n)
            .unwrap_or_else(|| panic!("no {key}#{n} in {line}"))
    };
    let port = |text: &str| -> u16 { text.parse().unwrap_or_else(|_| panic!("{line}")) };
    Flow {
        proto: fields.first().copied().unwrap_or_default().to_string(),
        src: nth("src=", 0).to_string(),
        sport: port(nth("sport=", 0)),
        dst: nth("dst=", 0).to_string(),
        dport: port(nth("dport=", 0)),
        reply_src: nth("src=", 1).to_string(),
        reply_sport: port(nth("sport=", 1)),
    }
}

/// `ctdiag stale ARGS` (stdin closed).
pub fn stale(args: &[&str]) -> Output {
    let mut full = vec!["stale"];
    full.extend_from_slice(args);
    common::ctdiag(&full)
}
