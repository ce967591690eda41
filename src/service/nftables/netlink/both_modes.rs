//! The readers of both proxy modes on the nf_tables objects captured from
//! a kernel with kube-proxy's rules in both forms
//! ([`crate::netfilter::nf_tables::captures`]): the Services they make,
//! a ruleset that changes underneath, and broken or arbitrary objects.

use std::net::SocketAddr;

use crate::netfilter::nf_tables::captures::*;
use crate::netfilter::nf_tables::{
    decode_elements, decode_rule, raw_rule_chain, Data, Expr, Family, NftElement, NftError,
    NftRule, NftSet, Recorded, Source, Verdict, SNAPSHOT_ATTEMPTS,
};
use crate::service::nftables::read_family;
use crate::service::{iptables, Protocol, ProxyMode};

#[test]
fn captured_objects_make_the_services_of_both_modes() {
    let endpoint: SocketAddr = "198.18.2.2:53".parse().unwrap();
    let nft = read_family(&mut recorded(), Family::Ip).unwrap().unwrap();
    assert_eq!(nft.skipped, Vec::<String>::new());
    // 198.19.0.11 of no-endpoint-services is not in cluster-ips here: not a
    // ClusterIP (an external IP, as far as kube-proxy's sets say).
    assert_eq!(nft.services.len(), 1, "{nft:?}");
    let dns = &nft.services[0];
    assert_eq!((dns.name.as_str(), dns.port_name.as_str()), ("kube-dns", "dns"));
    assert_eq!(dns.cluster_ips, ["198.19.0.10".parse::<std::net::IpAddr>().unwrap()]);
    assert_eq!((dns.endpoints.as_slice(), dns.proxy_mode), (&[endpoint][..], ProxyMode::Nftables));
    // Without the cluster-ips set (kube-proxy before 1.31) an element that
    // goes to the reject chain is a ClusterIP without endpoints.
    let mut older = recorded();
    older.elements.retain(|(_, _, set), _| set != "cluster-ips");
    let nft = read_family(&mut older, Family::Ip).unwrap().unwrap();
    assert_eq!(nft.services.len(), 2, "{nft:?}");
    let empty = &nft.services[0];
    assert_eq!((empty.name.as_str(), empty.port, empty.protocol), ("empty", 80, Protocol::Tcp));
    assert_eq!(empty.endpoints, []);

    let ipt = iptables::read_family(&mut recorded(), Family::Ip).unwrap().unwrap();
    assert_eq!(ipt.skipped, Vec::<String>::new());
    assert_eq!(ipt.services.len(), 1, "{ipt:?}");
    assert_eq!((ipt.services[0].port, ipt.services[0].protocol), (53, Protocol::Udp));
    assert_eq!(ipt.services[0].endpoints, [endpoint]);

    // No such table, no such chain: nothing, not an error.
    assert_eq!(read_family(&mut recorded(), Family::Ip6).unwrap(), None);
    assert_eq!(iptables::read_family(&mut recorded(), Family::Ip6).unwrap(), None);
}

/// The targeted read of the captured objects: kube-dns as the full read
/// makes it, in both modes; a Service that is not there, nothing; without
/// a spec, every port's name and address without its endpoints.
#[test]
fn captured_objects_read_one_service_as_the_full_read() {
    use crate::service::nftables::read_service_family;
    use crate::service::select::ServiceSpec;
    let dns = ServiceSpec::kube_dns();
    let nowhere = ServiceSpec { namespace: "x".into(), name: "y".into(), port: None };
    let full = read_family(&mut recorded(), Family::Ip).unwrap().unwrap();
    let one = read_service_family(&mut recorded(), Family::Ip, Some(&dns)).unwrap().unwrap();
    assert_eq!(one.services, full.services);
    let none = read_service_family(&mut recorded(), Family::Ip, Some(&nowhere)).unwrap().unwrap();
    assert_eq!(none.services, []);
    let names = read_service_family(&mut recorded(), Family::Ip, None).unwrap().unwrap();
    assert_eq!(names.services.len(), 1);
    assert_eq!(names.services[0].cluster_ips, full.services[0].cluster_ips);
    assert_eq!(names.services[0].endpoints, []);

    let full = iptables::read_family(&mut recorded(), Family::Ip).unwrap().unwrap();
    let one = iptables::read_service_family(&mut recorded(), Family::Ip, Some(&dns));
    assert_eq!(one.unwrap().unwrap().services, full.services);
    let none = iptables::read_service_family(&mut recorded(), Family::Ip, Some(&nowhere));
    assert_eq!(none.unwrap().unwrap().services, []);
    // No such table, no such chain: nothing, not an error.
    assert_eq!(read_service_family(&mut recorded(), Family::Ip6, Some(&dns)).unwrap(), None);
    let v6 = iptables::read_service_family(&mut recorded(), Family::Ip6, Some(&dns));
    assert_eq!(v6.unwrap(), None);
}

/// A source whose generation moves between every two questions: the
/// readers give up instead of mixing two states of the rules.
#[test]
fn a_ruleset_changing_underneath_is_never_mixed() {
    struct Moving(Recorded);
    impl Source for Moving {
        fn generation(&mut self) -> Result<u32, NftError> {
            self.0.generation += 1;
            Ok(self.0.generation)
        }
        fn chain_exists(&mut self, f: Family, t: &str, c: &str) -> Result<bool, NftError> {
            self.0.chain_exists(f, t, c)
        }
        fn sets(&mut self, f: Family, t: &str) -> Result<Option<Vec<NftSet>>, NftError> {
            self.0.sets(f, t)
        }
        fn elements(&mut self, f: Family, t: &str, s: &str) -> Result<Vec<NftElement>, NftError> {
            self.0.elements(f, t, s)
        }
        fn rules(
            &mut self,
            f: Family,
            t: &str,
            c: Option<&str>,
            keep: &dyn Fn(&str) -> bool,
        ) -> Result<Vec<NftRule>, NftError> {
            self.0.rules(f, t, c, keep)
        }
    }
    let error = read_family(&mut Moving(recorded()), Family::Ip).unwrap_err();
    assert!(matches!(error, NftError::Changing { attempts: SNAPSHOT_ATTEMPTS }), "{error:?}");
    assert!(error.to_string().contains("no partial reading"), "{error}");
}

#[test]
fn truncated_and_garbled_messages_never_panic() {
    for datagram in [
        &NFT_RULES_DATAGRAM[..],
        &NAT_RULES_DATAGRAM[..],
        &SERVICE_IPS_DATAGRAM[..],
        &NO_ENDPOINTS_DATAGRAM[..],
        &MAP0_DATAGRAM[..],
    ] {
        let body = &datagram[20..];
        for cut in 0..body.len() {
            let _ = decode_rule(&body[..cut]);
            let _ = decode_elements(&body[..cut], &mut Vec::new());
            let _ = raw_rule_chain(&body[..cut]);
        }
        // Every byte flipped in turn.
        let mut bytes = body.to_vec();
        for i in 0..bytes.len() {
            bytes[i] ^= 0xff;
            if let Ok(rule) = decode_rule(&bytes) {
                let _ = iptables::netlink_rule(Family::Ip, &rule);
            }
            let _ = decode_elements(&bytes, &mut Vec::new());
            bytes[i] ^= 0xff;
        }
    }
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Captured rule and element messages with bytes changed anywhere
    /// (lengths, types, values) and cut anywhere: decoding gives an error
    /// or objects, and the readers of both modes take whatever decodes,
    /// never panicking.
    fn mutated() -> impl Strategy<Value = Vec<u8>> {
        let captures: Vec<&'static [u8]> = vec![
            &NFT_RULES_DATAGRAM[20..],
            &NAT_RULES_DATAGRAM[20..],
            &SERVICE_IPS_DATAGRAM[20..],
            &NO_ENDPOINTS_DATAGRAM[20..],
            &MAP0_DATAGRAM[20..],
        ];
        (
            proptest::sample::select(captures),
            prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
            any::<prop::sample::Index>(),
        )
            .prop_map(|(bytes, edits, cut)| {
                let mut bytes = bytes.to_vec();
                for (at, value) in edits {
                    let i = at.index(bytes.len());
                    bytes[i] = value;
                }
                let keep = bytes.len() - cut.index(bytes.len() / 4 + 1);
                bytes.truncate(keep);
                bytes
            })
    }

    /// Any expression, with registers and bytes drawn from small ranges so
    /// that expressions meet each other's registers.
    fn expression() -> impl Strategy<Value = Expr> {
        let register = prop_oneof![0u32..=4, 8u32..=24];
        let bytes = prop::collection::vec(any::<u8>(), 0..24);
        let verdict = prop_oneof![
            Just(Verdict::Accept),
            Just(Verdict::Drop),
            Just(Verdict::Return),
            Just(Verdict::Other(3)),
            "(KUBE-SEP-A|KUBE-SVC-A|endpoint-x|service-x)".prop_map(Verdict::Jump),
            "(endpoint-x|KUBE-SEP-A)".prop_map(Verdict::Goto),
        ];
        let data =
            prop_oneof![bytes.clone().prop_map(Data::Value), verdict.prop_map(Data::Verdict)];
        prop_oneof![
            (0u32..4, 0u32..30, 0u32..20, register.clone())
                .prop_map(|(base, offset, len, dreg)| Expr::Payload { base, offset, len, dreg }),
            (0u32..20, register.clone()).prop_map(|(key, dreg)| Expr::Meta { key, dreg }),
            (register.clone(), 0u32..6, bytes.clone()).prop_map(|(sreg, op, data)| Expr::Cmp {
                sreg,
                op,
                data
            }),
            (register.clone(), register.clone(), bytes.clone(), bytes.clone())
                .prop_map(|(sreg, dreg, mask, xor)| Expr::Bitwise { sreg, dreg, mask, xor }),
            (register.clone(), data).prop_map(|(dreg, data)| Expr::Immediate { dreg, data }),
            ("(__map0|service-ips|nope)", register.clone(), prop::option::of(register.clone()))
                .prop_map(|(set, sreg, dreg)| Expr::Lookup { set, sreg, dreg, flags: 0 }),
            (
                0u32..2,
                prop::option::of((register.clone(), prop::option::of(register.clone()))),
                prop::option::of((register.clone(), prop::option::of(register))),
                0u32..8,
            )
                .prop_map(|(kind, addr, proto, flags)| Expr::Nat {
                    kind,
                    family: 2,
                    addr,
                    proto,
                    flags
                }),
            (
                "(comment|udp|tcp|sctp|statistic)",
                0u32..3,
                prop::collection::vec(any::<u8>(), 0..300)
            )
                .prop_map(|(name, revision, info)| Expr::Match {
                    name,
                    revision,
                    info
                }),
            ("(DNAT|REJECT|MARK)", 0u32..4, prop::collection::vec(any::<u8>(), 0..60))
                .prop_map(|(name, revision, info)| Expr::Target { name, revision, info }),
            "(counter|numgen|ct|fib)".prop_map(Expr::Other),
        ]
    }

    fn rule() -> impl Strategy<Value = NftRule> {
        (
            "(KUBE-SERVICES|KUBE-SVC-A|KUBE-SEP-A|service-AAAAAAAA-kube-system/kube-dns/udp/dns|endpoint-x)",
            prop::collection::vec(expression(), 0..8),
        )
            .prop_map(|(chain, exprs)| NftRule { chain, handle: 1, exprs, comment: None })
    }

    proptest! {
        /// Rules of any expressions, in both modes' tables next to the
        /// captured ones: the readers never panic.
        #[test]
        fn any_expressions_never_panic(rules in prop::collection::vec(rule(), 0..12)) {
            let mut source = recorded();
            for rule in &rules {
                let _ = iptables::netlink_rule(Family::Ip, rule);
                let _ = iptables::netlink_rule(Family::Ip6, rule);
            }
            for table in ["kube-proxy", "nat"] {
                source.rules.entry((Family::Ip, table.to_string())).or_default().extend(rules.iter().cloned());
            }
            let _ = read_family(&mut source.clone(), Family::Ip);
            let _ = iptables::read_family(&mut source, Family::Ip);
        }

        #[test]
        fn mutated_captures_never_panic(bytes in mutated()) {
            let mut source = recorded();
            if let Ok(rule) = decode_rule(&bytes) {
                let _ = iptables::netlink_rule(Family::Ip, &rule);
                for table in ["kube-proxy", "nat"] {
                    source.rules.entry((Family::Ip, table.to_string())).or_default().push(rule.clone());
                }
            }
            let mut elements = Vec::new();
            if decode_elements(&bytes, &mut elements).is_ok() {
                for set in ["service-ips", "no-endpoint-services", "cluster-ips", "__map0"] {
                    let key = (Family::Ip, "kube-proxy".to_string(), set.to_string());
                    source.elements.entry(key).or_default().extend(elements.iter().cloned());
                }
            }
            let _ = read_family(&mut source.clone(), Family::Ip);
            let _ = iptables::read_family(&mut source, Family::Ip);
        }
    }
}
