//! The kernel's list of conntrack entries, as conntrack-tools (a peer tool
//! nobody here wrote) prints it: `conntrack -L` and `conntrack -C` in a
//! namespace. (`conntrack -S` is parsed in `kernel.rs`, shared with the
//! unit tests.)

use super::{assert_success, exec, stdout};

/// One line of `conntrack -L -p udp -o id`: the original and reply tuples,
/// the seconds left, whether a reply was seen, the zone and the id.
///
/// Two lines are equal when they name the same entry (tuples, zone, id):
/// the seconds left count down and `[UNREPLIED]` goes with the first reply,
/// so two listings of unchanged entries compare equal.
#[derive(Debug, Clone)]
pub struct CtLine {
    pub timeout: u64,
    pub src: String,
    pub sport: u16,
    pub dst: String,
    pub dport: u16,
    pub reply_src: String,
    pub reply_sport: u16,
    pub unreplied: bool,
    pub zone: u16,
    pub id: u64,
}

impl PartialEq for CtLine {
    fn eq(&self, other: &Self) -> bool {
        (&self.src, self.sport, &self.dst, self.dport, &self.reply_src, self.reply_sport)
            == (
                &other.src,
                other.sport,
                &other.dst,
                other.dport,
                &other.reply_src,
                other.reply_sport,
            )
            && (self.zone, self.id) == (other.zone, other.id)
    }
}

impl Eq for CtLine {}

/// Parses `conntrack -L -o id` lines (`udp 17 29 src=.. dst=.. sport=..
/// dport=.. [UNREPLIED] src=.. dst=.. sport=.. dport=.. [zone=N] ...
/// id=N`); a line that is not an entry of that shape panics with it.
pub fn parse_conntrack(text: &str) -> Vec<CtLine> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let values = |key: &str| -> Vec<&str> {
                fields.iter().filter_map(|f| f.strip_prefix(key)).collect()
            };
            let nth = |key: &str, n: usize| -> &str {
                values(key).get(n).copied().unwrap_or_else(|| panic!("no {key}#{n} in {line}"))
            };
            let number = |text: &str| -> u64 { text.parse().unwrap_or_else(|_| panic!("{line}")) };
            CtLine {
                timeout: number(fields.get(2).copied().unwrap_or_default()),
                src: nth("src=", 0).to_string(),
                sport: number(nth("sport=", 0)) as u16,
                dst: nth("dst=", 0).to_string(),
                dport: number(nth("dport=", 0)) as u16,
                reply_src: nth("src=", 1).to_string(),
                reply_sport: number(nth("sport=", 1)) as u16,
                unreplied: fields.contains(&"[UNREPLIED]"),
                zone: values("zone=").first().map_or(0, |z| number(z) as u16),
                id: number(nth("id=", 0)),
            }
        })
        .collect()
}

/// `conntrack -L -p udp -o id ARGS` in `ns`, which must succeed, parsed.
pub fn conntrack_list(ns: &str, args: &[&str]) -> Vec<CtLine> {
    let mut cmd = vec!["conntrack", "-L", "-p", "udp", "-o", "id"];
    cmd.extend_from_slice(args);
    let out = exec(ns, &cmd);
    assert_success(&out, &cmd.join(" "));
    parse_conntrack(&stdout(&out))
}

/// `conntrack -C` in `ns`: the number of entries.
pub fn conntrack_count(ns: &str) -> u64 {
    let out = exec(ns, &["conntrack", "-C"]);
    assert_success(&out, "conntrack -C");
    stdout(&out)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("conntrack -C printed {:?}", stdout(&out)))
}
