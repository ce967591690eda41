//! iptables mode over netlink, where the rules were written by iptables-nft
//! (the `nf_tables` backend): the `nat` and `filter` tables of the `ip` and
//! `ip6` families read as kernel objects ([`crate::netfilter::nf_tables`]),
//! each rule turned back into the options `iptables-save` would print for
//! it ([`Rule`]) and handed to the same [`Parser::rule`] the text goes
//! through, so one piece of code turns iptables-mode rules into Services.
//!
//! How iptables-nft writes what matters here (seen with iptables 1.8.9 on
//! Linux 6.18, `nft --debug=netlink list table ip nat`):
//! - `-d 198.19.0.10/32`: `payload load 4b @ network header + 16`, `cmp eq`
//!   (a shorter prefix: fewer bytes, or a `bitwise` mask; IPv6: 16 bytes at
//!   offset 24); `!` makes the `cmp` `neq`.
//! - `-p udp`: `meta load l4proto`, `cmp eq` (older versions: the IPv4
//!   header's protocol byte, `payload load 1b @ network header + 9`).
//! - `--dport 53`: `payload load 2b @ transport header + 2`, `cmp eq`; or
//!   the xtables `udp`/`tcp`/`sctp` match with its port range.
//! - `-m comment --comment "..."`: the xtables `comment` match (some
//!   versions kept it in the rule's userdata instead).
//! - `-j CHAIN`: `immediate reg 0 jump -> CHAIN`; `-j DNAT
//!   --to-destination`: the xtables `DNAT` target, revision 0
//!   (`nf_nat_ipv4_multi_range_compat`), 1 (`nf_nat_range`) or 2
//!   (`nf_nat_range2`); other targets (`REJECT`, `MARK`, `MASQUERADE`) by
//!   name.
//!
//! Matches that say nothing about which Service or endpoint a rule is for
//! (`statistic`, `recent`, `mark`, `addrtype`, `conntrack`, counters) are
//! passed over, as the text parser passes over their options.

use std::net::IpAddr;

use super::{port_rule, Parser, Rule};
use crate::netfilter::nf_tables::{
    consistent, follow, Data, Expr, Family, Field, NftError, NftRule, Registers, Source, Value,
    Verdict, NFT_META_L4PROTO, NFT_NAT_DNAT, NFT_PAYLOAD_NETWORK_HEADER,
    NFT_PAYLOAD_TRANSPORT_HEADER, REGISTER_NEUTRAL,
};
use crate::service::ListingParser;
use crate::service::Parsed;

mod targeted;

pub use targeted::read_service_family;

/// The chain whose presence says kube-proxy's iptables rules are here.
const KUBE_SERVICES: &str = "KUBE-SERVICES";

/// `NFT_CMP_EQ`.
const NFT_CMP_EQ: u32 = 0;

/// `NF_NAT_RANGE_MAP_IPS` (include/uapi/linux/netfilter/nf_nat.h).
const NF_NAT_RANGE_MAP_IPS: u32 = 1;
/// `NF_NAT_RANGE_PROTO_SPECIFIED`.
const NF_NAT_RANGE_PROTO_SPECIFIED: u32 = 2;

/// `XT_UDP_INV_DSTPT` / `XT_TCP_INV_DSTPT`: `! --dport`.
const XT_INV_DSTPT: u8 = 0x02;
/// `XT_SCTP_DEST_PORTS`: the sctp match's `--dport` flag (and inversion bit).
const XT_SCTP_DEST_PORTS: u32 = 0x02;

/// The rules of `family` that iptables-nft wrote for kube-proxy, read over
/// netlink in one consistent generation and parsed; `None` when neither
/// its `nat` nor its `filter` table has a `KUBE-SERVICES` chain (no
/// kube-proxy rules in the nf_tables backend: another mode, or the legacy
/// backend).
pub fn read_family<S: Source + ?Sized>(
    source: &mut S,
    family: Family,
) -> Result<Option<Parsed>, NftError> {
    consistent(source, |reader| {
        // Why one chain first: a GET of one chain answers in microseconds,
        // so a node without iptables-mode rules costs no table dump.
        let nat = reader.chain_exists(family, "nat", KUBE_SERVICES)?;
        let filter = reader.chain_exists(family, "filter", KUBE_SERVICES)?;
        if !nat && !filter {
            return Ok(None);
        }
        let mut parser = Parser::default();
        if nat {
            // Why KUBE- chains only: the text parser's rules from other
            // chains can only add jumps that no Service's chain reaches.
            kube_rules(reader, family, WHOLE_TABLE_CHAINS, &mut |rules| {
                rules.iter().try_for_each(|rule| feed(&mut parser, family, "nat", rule).map(drop))
            })?;
        }
        if filter {
            // Only filter's KUBE-SERVICES holds ClusterIPs (the REJECTs of
            // Services without endpoints); the kernel filters by chain.
            let rules = reader.rules(family, "filter", Some(KUBE_SERVICES), &|_| true)?;
            for rule in &rules {
                feed(&mut parser, family, "filter", rule)?;
            }
        }
        Ok(Some(parser.finish()))
    })
}

/// The rules of the `nat` table's `KUBE-*` chains, in the table's order,
/// handed to `take` a chain at a time (so they need not all be held at
/// once): one rule dump per chain where the source lists chains (as
/// `iptables-save` does) and they are many, else one dump of the whole
/// table. Why per chain:
/// a dump goes on where it stopped by walking the rules it asks for from
/// the first again for every datagram, so one dump of a table costs the
/// square of its rules, and the dumps of its chains each only the square
/// of theirs (BENCHMARKS.md).
fn kube_rules<S: Source + ?Sized>(
    reader: &mut S,
    family: Family,
    whole_table_chains: usize,
    take: &mut dyn FnMut(&[NftRule]) -> Result<(), NftError>,
) -> Result<(), NftError> {
    let is_kube = |chain: &str| chain.starts_with("KUBE-");
    let chains = reader.chain_names(family, "nat")?;
    match chains {
        Some(chains) if chains.len() > whole_table_chains => {
            for chain in chains.iter().filter(|c| is_kube(c)) {
                take(&reader.chain_rules(family, "nat", chain, None)?)?;
            }
            Ok(())
        }
        _ => take(&reader.rules(family, "nat", None, &is_kube)?),
    }
}

/// Up to how many chains the `nat` table is read in one dump ([`kube_rules`]). Why: each
/// chain's dump is a round trip to the kernel (tens of microseconds on a
/// busy node), which costs more than the square of a small table's rules;
/// the two meet at about 5,000 Services (20,000 chains) on this project's
/// machine (BENCHMARKS.md).
const WHOLE_TABLE_CHAINS: usize = 16_000;

/// Hands one kernel rule to the parser, as `iptables-save` would have
/// printed it; the rule as the parser read it.
fn feed(parser: &mut Parser, family: Family, table: &str, nft: &NftRule) -> Result<Rule, NftError> {
    let at = format!("{} {table} chain {} rule {}", family.as_str(), nft.chain, nft.handle);
    let rule = to_rule(family, nft).map_err(|why| NftError::Unexpected(format!("{at}: {why}")))?;
    // A ClusterIP rule that does not read, in a rule with an expression
    // not followed here: the listing tool may read it; the text parser's
    // verdict counts, not this reader's.
    if rule.chain == KUBE_SERVICES {
        for suffix in [" cluster IP", " has no endpoints"] {
            if let (Err(why), Some(name)) = (port_rule(&rule, suffix), unfollowed(nft)) {
                return Err(NftError::Unexpected(format!("{at}: {why}, and a {name} expression")));
            }
        }
    }
    parser.rule(table, &rule, &at);
    Ok(rule)
}

/// The first expression of a rule that could match on what the parser
/// reads (address, protocol, port) in a form not followed here.
fn unfollowed(rule: &NftRule) -> Option<&str> {
    rule.exprs.iter().find_map(|expr| match expr {
        Expr::Other(name) if !REGISTER_NEUTRAL.contains(&name.as_str()) && name != "ct" => {
            Some(name.as_str())
        }
        Expr::Lookup { .. } => Some("lookup"),
        _ => None,
    })
}

/// The options `iptables-save` prints for `nft`, as far as the parser
/// reads them. `Err`: something that must be read but cannot be (an xtables
/// extension of an unknown revision or size).
pub(crate) fn to_rule(family: Family, nft: &NftRule) -> Result<Rule, String> {
    let mut rule =
        Rule { chain: nft.chain.clone(), comment: nft.comment.clone(), ..Rule::default() };
    let mut registers = Registers::default();
    for expr in &nft.exprs {
        match expr {
            Expr::Cmp { sreg, op, data } => {
                if let Some((Value::Field { field, len, mask }, 0)) = registers.read(*sreg) {
                    compare(&mut rule, family, *field, *len, mask.as_deref(), *op, data);
                }
            }
            Expr::Immediate { dreg: 0, data: Data::Verdict(verdict) } => {
                rule.target = match verdict {
                    Verdict::Jump(chain) => Some(chain.clone()),
                    Verdict::Accept => Some("ACCEPT".into()),
                    Verdict::Drop => Some("DROP".into()),
                    Verdict::Return => Some("RETURN".into()),
                    // `-g CHAIN`: the text parser reads `-j` only.
                    Verdict::Goto(_) | Verdict::Continue | Verdict::Other(_) => None,
                }
            }
            Expr::Match { name, info, .. } => match name.as_str() {
                "comment" => rule.comment = Some(c_string(info)),
                // struct xt_udp: invflags right after the ports; struct
                // xt_tcp: after option, flg_mask and flg_cmp.
                "udp" => rule.dport = xt_port_match(info, 8).or(rule.dport.take()),
                "tcp" => rule.dport = xt_port_match(info, 11).or(rule.dport.take()),
                "sctp" => rule.dport = xt_sctp_match(info).or(rule.dport.take()),
                _ => {}
            },
            Expr::Target { name, revision, info } => {
                if name == "DNAT" {
                    rule.to_destination = Some(xt_dnat(family, *revision, info)?);
                }
                rule.target = Some(name.clone());
            }
            Expr::Nat { kind: NFT_NAT_DNAT, addr, proto, flags, .. } => {
                rule.to_destination = Some(native_dnat(family, &registers, *addr, *proto, *flags)?);
                rule.target = Some("DNAT".into());
            }
            _ => {}
        }
        follow(&mut registers, expr, &|_| 0);
    }
    Ok(rule)
}

/// What a `cmp` on a loaded field means in iptables' terms.
fn compare(
    rule: &mut Rule,
    family: Family,
    field: Field,
    len: usize,
    mask: Option<&[u8]>,
    op: u32,
    data: &[u8],
) {
    // `!` options are left out, as the text parser leaves them out.
    if op != NFT_CMP_EQ {
        return;
    }
    let destination_offset = match family {
        Family::Ip => 16,
        Family::Ip6 => 24,
    };
    match field {
        Field::Payload { base: NFT_PAYLOAD_NETWORK_HEADER, offset }
            if offset == destination_offset && len <= family.address_len() =>
        {
            // The cmp compares as many bytes as its data has.
            let compared = data.len().min(len);
            let mut bytes = data[..compared].to_vec();
            bytes.resize(family.address_len(), 0);
            let prefix = match mask {
                Some(mask) => mask.iter().take(compared).map(|b| b.count_ones()).sum::<u32>(),
                None => compared as u32 * 8,
            };
            if let Some(ip) = family.address(&bytes) {
                rule.destination = Some(format!("{ip}/{prefix}"));
            }
        }
        Field::Payload { base: NFT_PAYLOAD_NETWORK_HEADER, offset: 9 }
            if family == Family::Ip && len == 1 && mask.is_none() =>
        {
            rule.protocol = data.first().map(|n| protocol_name(*n));
        }
        Field::Meta(NFT_META_L4PROTO) if mask.is_none() => {
            rule.protocol = data.first().map(|n| protocol_name(*n));
        }
        Field::Payload { base: NFT_PAYLOAD_TRANSPORT_HEADER, offset: 2 }
            if len == 2 && mask.is_none() =>
        {
            if let [a, b, ..] = data {
                rule.dport = Some(u16::from_be_bytes([*a, *b]).to_string());
            }
        }
        _ => {}
    }
}

/// iptables-save's name for an IP protocol number.
fn protocol_name(number: u8) -> String {
    match number {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        58 => "ipv6-icmp".into(),
        132 => "sctp".into(),
        n => n.to_string(),
    }
}

/// A NUL-terminated C string of a fixed-size field.
fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

fn host_u16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

/// `--dport` of `struct xt_udp` / `struct xt_tcp` (`__u16 spts[2], dpts[2]`
/// in host order, then for udp `__u8 invflags`, for tcp `__u8 option,
/// flg_mask, flg_cmp, invflags`; `invflags_at` says where), as
/// iptables-save prints it: `N` or `N:M`; `None` for the full range
/// (no `--dport`) and when negated.
fn xt_port_match(info: &[u8], invflags_at: usize) -> Option<String> {
    let (low, high) = (host_u16(info, 4)?, host_u16(info, 6)?);
    if info.get(invflags_at)? & XT_INV_DSTPT != 0 {
        return None;
    }
    port_range(low, high)
}

/// `--dport` of `struct xt_sctp_info` (`__u16 dpts[2], spts[2]; __u32
/// chunkmap[64]; __u32 chunk_match_type; struct xt_sctp_flag_info
/// flag_info[4]; int flag_count; __u32 flags, invflags`).
fn xt_sctp_match(info: &[u8]) -> Option<String> {
    const FLAGS_AT: usize = 4 + 4 + 256 + 4 + 4 * 3 + 4;
    let flags = u32::from_ne_bytes(info.get(FLAGS_AT..FLAGS_AT + 4)?.try_into().ok()?);
    let inverted = u32::from_ne_bytes(info.get(FLAGS_AT + 4..FLAGS_AT + 8)?.try_into().ok()?);
    if flags & XT_SCTP_DEST_PORTS == 0 || inverted & XT_SCTP_DEST_PORTS != 0 {
        return None;
    }
    port_range(host_u16(info, 0)?, host_u16(info, 2)?)
}

fn port_range(low: u16, high: u16) -> Option<String> {
    match (low, high) {
        (0, 0xffff) => None,
        (low, high) if low == high => Some(low.to_string()),
        (low, high) => Some(format!("{low}:{high}")),
    }
}

/// One address/port range of a NAT target, as the kernel holds it.
struct Range {
    flags: u32,
    min: IpAddr,
    max: IpAddr,
    min_port: u16,
    max_port: u16,
}

/// `--to-destination` of the xtables `DNAT` target, by revision:
/// 0 `struct nf_nat_ipv4_multi_range_compat` (`unsigned int rangesize;
/// { unsigned int flags; __be32 min_ip, max_ip; __be16 min, max; }`),
/// 1 `struct nf_nat_range` (`unsigned int flags; union nf_inet_addr
/// min_addr, max_addr; __be16 min_proto, max_proto`), 2 `struct
/// nf_nat_range2` (the same and `__be16 base_proto`).
fn xt_dnat(family: Family, revision: u32, info: &[u8]) -> Result<String, String> {
    let u32_at =
        |at: usize| info.get(at..at + 4).map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
    let be16_at = |at: usize| info.get(at..at + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    let address = |at: usize, len: usize| info.get(at..at + len).and_then(|b| family.address(b));
    let short = || format!("DNAT revision {revision}: {} bytes of info", info.len());
    let range = match revision {
        0 if family == Family::Ip => {
            if u32_at(0).ok_or_else(short)? != 1 {
                return Err("DNAT revision 0 with more than one range".into());
            }
            Range {
                flags: u32_at(4).ok_or_else(short)?,
                min: address(8, 4).ok_or_else(short)?,
                max: address(12, 4).ok_or_else(short)?,
                min_port: be16_at(16).ok_or_else(short)?,
                max_port: be16_at(18).ok_or_else(short)?,
            }
        }
        1 | 2 => {
            let alen = family.address_len();
            Range {
                flags: u32_at(0).ok_or_else(short)?,
                min: address(4, alen).ok_or_else(short)?,
                max: address(20, alen).ok_or_else(short)?,
                min_port: be16_at(36).ok_or_else(short)?,
                max_port: be16_at(38).ok_or_else(short)?,
            }
        }
        _ => return Err(format!("DNAT revision {revision} is not one ctdiag reads")),
    };
    Ok(to_destination(&range))
}

/// A DNAT written natively (`nat` expression, registers loaded by
/// `immediate`), as a `--to-destination`.
fn native_dnat(
    family: Family,
    registers: &Registers,
    addr: Option<(u32, Option<u32>)>,
    proto: Option<(u32, Option<u32>)>,
    flags: u32,
) -> Result<String, String> {
    let constant = |register: u32, len: usize| match registers.read(register) {
        Some((Value::Const(bytes), offset)) => bytes.get(offset..offset + len).map(<[u8]>::to_vec),
        _ => None,
    };
    let unfollowed = || "a native dnat from registers not loaded by immediate".to_string();
    let alen = family.address_len();
    let (mut min, mut max) = (IpAddr::from([0u8; 4]), IpAddr::from([0u8; 4]));
    if let Some((lo, hi)) = addr {
        min = constant(lo, alen).and_then(|b| family.address(&b)).ok_or_else(unfollowed)?;
        max = constant(hi.unwrap_or(lo), alen)
            .and_then(|b| family.address(&b))
            .ok_or_else(unfollowed)?;
    }
    let (mut min_port, mut max_port) = (0, 0);
    if let Some((lo, hi)) = proto {
        let port = |register| {
            constant(register, 2).map(|b| u16::from_be_bytes([b[0], b[1]])).ok_or_else(unfollowed)
        };
        min_port = port(lo)?;
        max_port = port(hi.unwrap_or(lo))?;
    }
    let flags = flags | if addr.is_some() { NF_NAT_RANGE_MAP_IPS } else { 0 };
    Ok(to_destination(&Range { flags, min, max, min_port, max_port }))
}

/// What iptables-save prints after `--to-destination` (libxt_DNAT's
/// `print_range`): `ADDR[-ADDR][:PORT[-PORT]]`, IPv6 addresses in brackets
/// when a port follows.
fn to_destination(range: &Range) -> String {
    let mut text = String::new();
    let ports = range.flags & NF_NAT_RANGE_PROTO_SPECIFIED != 0;
    if range.flags & NF_NAT_RANGE_MAP_IPS != 0 {
        let bracket = |ip: &IpAddr| match ip {
            IpAddr::V6(_) if ports => format!("[{ip}]"),
            _ => ip.to_string(),
        };
        text.push_str(&bracket(&range.min));
        if range.max != range.min {
            text.push('-');
            text.push_str(&bracket(&range.max));
        }
    }
    if ports {
        text.push_str(&format!(":{}", range.min_port));
        if range.max_port != range.min_port {
            text.push_str(&format!("-{}", range.max_port));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netfilter::nf_tables::Recorded;

    fn rule(chain: &str, exprs: Vec<Expr>) -> NftRule {
        NftRule { chain: chain.into(), handle: 7, exprs, comment: None }
    }

    fn load(base: u32, offset: u32, len: u32) -> Expr {
        Expr::Payload { base, offset, len, dreg: 1 }
    }

    fn eq(data: &[u8]) -> Expr {
        Expr::Cmp { sreg: 1, op: NFT_CMP_EQ, data: data.to_vec() }
    }

    fn jump(chain: &str) -> Expr {
        Expr::Immediate { dreg: 0, data: Data::Verdict(Verdict::Jump(chain.into())) }
    }

    fn comment(text: &str) -> Expr {
        let mut info = text.as_bytes().to_vec();
        info.resize(256, 0);
        Expr::Match { name: "comment".into(), revision: 0, info }
    }

    /// `-d 198.19.0.10/32 -p udp -m comment --comment C --dport 53 -j
    /// KUBE-SVC-A` the way iptables-nft 1.8.9 writes it.
    fn cluster_ip_rule(comment_text: &str) -> NftRule {
        rule(
            "KUBE-SERVICES",
            vec![
                Expr::Meta { key: NFT_META_L4PROTO, dreg: 1 },
                eq(&[17]),
                load(NFT_PAYLOAD_NETWORK_HEADER, 16, 4),
                eq(&[198, 19, 0, 10]),
                comment(comment_text),
                load(NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2),
                eq(&[0, 53]),
                Expr::Other("counter".into()),
                jump("KUBE-SVC-A"),
            ],
        )
    }

    #[test]
    fn a_cluster_ip_rule_reads_as_iptables_save_prints_it() {
        let r =
            to_rule(Family::Ip, &cluster_ip_rule("kube-system/kube-dns:dns cluster IP")).unwrap();
        assert_eq!(
            r,
            Rule {
                chain: "KUBE-SERVICES".into(),
                destination: Some("198.19.0.10/32".into()),
                protocol: Some("udp".into()),
                dport: Some("53".into()),
                comment: Some("kube-system/kube-dns:dns cluster IP".into()),
                target: Some("KUBE-SVC-A".into()),
                to_destination: None,
            }
        );
    }

    #[test]
    fn prefixes_negations_and_the_ip_header_protocol() {
        // ! -s is not read at all; ! -d leaves the destination out; a
        // masked load is a prefix; 3 bytes are a /24.
        let neq = Expr::Cmp { sreg: 1, op: 1, data: vec![198, 19, 0, 10] };
        let r = to_rule(
            Family::Ip,
            &rule("X", vec![load(NFT_PAYLOAD_NETWORK_HEADER, 16, 4), neq, jump("Y")]),
        )
        .unwrap();
        assert_eq!((r.destination, r.target.as_deref()), (None, Some("Y")));
        let masked = vec![
            load(NFT_PAYLOAD_NETWORK_HEADER, 16, 4),
            Expr::Bitwise { sreg: 1, dreg: 1, mask: vec![255, 255, 240, 0], xor: vec![0; 4] },
            eq(&[198, 19, 0, 0]),
        ];
        let r = to_rule(Family::Ip, &rule("X", masked)).unwrap();
        assert_eq!(r.destination.as_deref(), Some("198.19.0.0/20"));
        let short = vec![load(NFT_PAYLOAD_NETWORK_HEADER, 16, 3), eq(&[198, 19, 0])];
        assert_eq!(
            to_rule(Family::Ip, &rule("X", short)).unwrap().destination.as_deref(),
            Some("198.19.0.0/24")
        );
        let v6 = vec![
            load(NFT_PAYLOAD_NETWORK_HEADER, 24, 16),
            eq(&[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xa]),
        ];
        assert_eq!(
            to_rule(Family::Ip6, &rule("X", v6)).unwrap().destination.as_deref(),
            Some("2001:db8::a/128")
        );
        // Older iptables-nft: the IPv4 header's protocol byte.
        let old = vec![load(NFT_PAYLOAD_NETWORK_HEADER, 9, 1), eq(&[6])];
        assert_eq!(to_rule(Family::Ip, &rule("X", old)).unwrap().protocol.as_deref(), Some("tcp"));
        let icmp = vec![Expr::Meta { key: NFT_META_L4PROTO, dreg: 1 }, eq(&[1])];
        assert_eq!(
            to_rule(Family::Ip, &rule("X", icmp)).unwrap().protocol.as_deref(),
            Some("icmp")
        );
        // -g is not -j.
        let goto = Expr::Immediate { dreg: 0, data: Data::Verdict(Verdict::Goto("Z".into())) };
        assert_eq!(to_rule(Family::Ip, &rule("X", vec![goto])).unwrap().target, None);
    }

    fn xt_ports(spts: [u16; 2], dpts: [u16; 2], tail: &[u8]) -> Vec<u8> {
        let mut info = Vec::new();
        for port in spts.into_iter().chain(dpts) {
            info.extend_from_slice(&port.to_ne_bytes());
        }
        info.extend_from_slice(tail);
        info.resize(16, 0);
        info
    }

    #[test]
    fn xtables_port_matches() {
        let udp = |dpts, invflags| Expr::Match {
            name: "udp".into(),
            revision: 0,
            info: xt_ports([0, 0xffff], dpts, &[invflags]),
        };
        let dport = |e| to_rule(Family::Ip, &rule("X", vec![e])).unwrap().dport;
        assert_eq!(dport(udp([53, 53], 0)), Some("53".into()));
        assert_eq!(dport(udp([1000, 2000], 0)), Some("1000:2000".into()));
        assert_eq!(dport(udp([0, 0xffff], 0)), None);
        assert_eq!(dport(udp([53, 53], XT_INV_DSTPT)), None);
        // tcp: invflags after option, flg_mask, flg_cmp.
        let tcp = |invflags| Expr::Match {
            name: "tcp".into(),
            revision: 0,
            info: xt_ports([0, 0xffff], [443, 443], &[XT_INV_DSTPT, 0, 0, invflags]),
        };
        assert_eq!(dport(tcp(0)), Some("443".into()));
        assert_eq!(dport(tcp(XT_INV_DSTPT)), None);
        // sctp: dpts first, then the flags and invflags words at the end.
        let mut sctp = vec![0u8; 4 + 4 + 256 + 4 + 12 + 4 + 8];
        sctp[0..2].copy_from_slice(&9000u16.to_ne_bytes());
        sctp[2..4].copy_from_slice(&9000u16.to_ne_bytes());
        let flags_at = sctp.len() - 8;
        sctp[flags_at..flags_at + 4].copy_from_slice(&XT_SCTP_DEST_PORTS.to_ne_bytes());
        let m = |info: Vec<u8>| Expr::Match { name: "sctp".into(), revision: 0, info };
        assert_eq!(dport(m(sctp.clone())), Some("9000".into()));
        sctp[flags_at + 4..].copy_from_slice(&XT_SCTP_DEST_PORTS.to_ne_bytes());
        assert_eq!(dport(m(sctp)), None);
        // Short structs read as no port, never a panic.
        assert_eq!(dport(Expr::Match { name: "udp".into(), revision: 0, info: vec![1, 2] }), None);
    }

    fn range_v1(flags: u32, min: &[u8], max: &[u8], ports: [u16; 2], rev2: bool) -> Vec<u8> {
        let mut info = flags.to_ne_bytes().to_vec();
        for addr in [min, max] {
            let mut a = addr.to_vec();
            a.resize(16, 0);
            info.extend_from_slice(&a);
        }
        info.extend_from_slice(&ports[0].to_be_bytes());
        info.extend_from_slice(&ports[1].to_be_bytes());
        if rev2 {
            info.extend_from_slice(&[0; 8]);
        }
        info
    }

    #[test]
    fn dnat_targets_of_every_revision_and_family() {
        let both = NF_NAT_RANGE_MAP_IPS | NF_NAT_RANGE_PROTO_SPECIFIED;
        let v4 = [198, 18, 2, 2];
        assert_eq!(
            xt_dnat(Family::Ip, 2, &range_v1(both, &v4, &v4, [53, 53], true)).unwrap(),
            "198.18.2.2:53"
        );
        assert_eq!(
            xt_dnat(Family::Ip, 1, &range_v1(both, &v4, &v4, [53, 53], false)).unwrap(),
            "198.18.2.2:53"
        );
        let mut rev0 = 1u32.to_ne_bytes().to_vec();
        rev0.extend_from_slice(&both.to_ne_bytes());
        rev0.extend_from_slice(&v4);
        rev0.extend_from_slice(&v4);
        rev0.extend_from_slice(&53u16.to_be_bytes());
        rev0.extend_from_slice(&53u16.to_be_bytes());
        assert_eq!(xt_dnat(Family::Ip, 0, &rev0).unwrap(), "198.18.2.2:53");
        // Ranges and a missing port read as iptables-save prints them.
        let other = [198, 18, 2, 9];
        assert_eq!(
            xt_dnat(Family::Ip, 2, &range_v1(both, &v4, &other, [53, 60], true)).unwrap(),
            "198.18.2.2-198.18.2.9:53-60"
        );
        assert_eq!(
            xt_dnat(Family::Ip, 2, &range_v1(NF_NAT_RANGE_MAP_IPS, &v4, &v4, [0, 0], true))
                .unwrap(),
            "198.18.2.2"
        );
        let v6 = [0x20, 1, 0xd, 0xb8, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
        assert_eq!(
            xt_dnat(Family::Ip6, 2, &range_v1(both, &v6, &v6, [53, 53], true)).unwrap(),
            "[2001:db8:2::2]:53"
        );
        // Unknown revisions and short structs: not read, and said.
        assert!(xt_dnat(Family::Ip, 3, &[0; 48]).unwrap_err().contains("revision 3"));
        assert!(xt_dnat(Family::Ip, 2, &[0; 10]).is_err());
        assert!(xt_dnat(Family::Ip6, 0, &rev0).is_err());
    }

    #[test]
    fn a_native_dnat_from_immediates() {
        let exprs = vec![
            Expr::Immediate { dreg: 1, data: Data::Value(vec![198, 18, 2, 2]) },
            Expr::Immediate { dreg: 2, data: Data::Value(vec![0, 53]) },
            Expr::Nat {
                kind: NFT_NAT_DNAT,
                family: 2,
                addr: Some((1, Some(1))),
                proto: Some((2, Some(2))),
                flags: NF_NAT_RANGE_PROTO_SPECIFIED,
            },
        ];
        let r = to_rule(Family::Ip, &rule("KUBE-SEP-A", exprs.clone())).unwrap();
        assert_eq!(
            (r.target.as_deref(), r.to_destination.as_deref()),
            (Some("DNAT"), Some("198.18.2.2:53"))
        );
        // From a register nothing wrote: not followed.
        let mut unwritten = exprs;
        unwritten.remove(0);
        assert!(to_rule(Family::Ip, &rule("KUBE-SEP-A", unwritten)).is_err());
    }

    /// Chain by chain or in one dump: the same rules in the same order.
    #[test]
    fn the_nat_rules_chain_by_chain_are_the_whole_tables() {
        use crate::netfilter::nf_tables::captures::recorded;
        let collect = |threshold: usize| {
            let mut rules = Vec::new();
            kube_rules(&mut recorded(), Family::Ip, threshold, &mut |some| {
                rules.extend_from_slice(some);
                Ok(())
            })
            .unwrap();
            rules
        };
        let whole = collect(usize::MAX);
        assert!(whole.iter().any(|r| r.chain.starts_with("KUBE-SEP-")), "{whole:?}");
        assert_eq!(collect(0), whole);
    }

    /// A ClusterIP rule that does not read, with an expression not followed
    /// here: the reading is refused (the listing tool reads the mode); the
    /// same rule without such an expression is skipped as the text parser
    /// skips it.
    #[test]
    fn an_unreadable_cluster_ip_rule_with_an_unknown_expression_is_unexpected() {
        let family = Family::Ip;
        let mut source = Recorded::default();
        source.chains.push((family, "nat".into(), "KUBE-SERVICES".into()));
        let mut broken = cluster_ip_rule("default/web:http cluster IP");
        broken
            .exprs
            .retain(|e| !matches!(e, Expr::Payload { base: NFT_PAYLOAD_TRANSPORT_HEADER, .. }));
        broken.exprs.push(Expr::Other("range".into()));
        source.rules.insert((family, "nat".into()), vec![broken.clone()]);
        let error = read_family(&mut source, family).unwrap_err();
        assert!(matches!(&error, NftError::Unexpected(why) if why.contains("range")), "{error:?}");

        broken.exprs.pop();
        source.rules.insert((family, "nat".into()), vec![broken]);
        let parsed = read_family(&mut source, family).unwrap().unwrap();
        assert_eq!(parsed.services, []);
        assert_eq!(parsed.skipped.len(), 1, "{:?}", parsed.skipped);
        assert!(
            parsed.skipped[0].starts_with("ip nat chain KUBE-SERVICES rule 7: "),
            "{:?}",
            parsed.skipped
        );
    }
}
