//! The decoders on nf_tables replies captured from this kernel
//! ([`super::captures`]), and on broken and arbitrary bytes; the reader's
//! dump restarts and deadline.

use netlink_packet_netfilter::nftables::{
    GenAttribute, NfTablesMessage, RuleAttribute, RuleMessage,
};
use netlink_packet_netfilter::NetfilterProtoFamily;

use super::captures::*;
use super::decode::set_from;
use super::reader::rule_consumer;
use super::*;
use crate::netfilter::attributes::walk;
use crate::netfilter::{Expect, NetfilterError, ReplyReader};

#[test]
fn the_generation_reply_decodes_with_the_crate() {
    let replies = messages(&[&GEN_REPLY, &GEN_ACK], 1_700_000_100, PORT_1, Expect::Ack);
    assert_eq!(replies.len(), 1);
    let message = decode("gen", &GEN_REPLY).unwrap();
    let NfTablesMessage::NewGen(gen) = message else { panic!("{message:?}") };
    assert!(gen.attributes.contains(&GenAttribute::Id(3)), "{gen:?}");
}

#[test]
fn sets_decode_with_names_flags_and_lengths() {
    let sets: Vec<NftSet> =
        messages(&[&SETS_DATAGRAM, &SETS_DONE], 1_700_000_101, PORT_2, Expect::Done)
            .into_iter()
            .map(|(kind, _)| kind)
            .zip(split_messages(&SETS_DATAGRAM))
            .map(|(kind, bytes)| {
                assert_eq!(kind, message_type(NFT_MSG_NEWSET));
                let NfTablesMessage::NewSet(set) = decode("sets", bytes).unwrap() else { panic!() };
                set_from(&set).unwrap()
            })
            .collect();
    let names: Vec<&str> = sets.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["cluster-ips", "service-ips", "no-endpoint-services", "__map0"]);
    let service_ips = &sets[1];
    // ipv4_addr . inet_proto . inet_service, each padded to 4 bytes.
    assert_eq!((service_ips.key_len, service_ips.is_anonymous()), (12, false));
    assert!(sets[3].is_anonymous(), "{:?}", sets[3]);
    assert_eq!(sets[0].data_len, 0);
}

#[test]
fn service_ips_element_key_and_verdict() {
    let elements = elements_of(&[&SERVICE_IPS_DATAGRAM, &SERVICE_IPS_DONE], PORT_3);
    assert_eq!(elements.len(), 1);
    let element = &elements[0];
    assert_eq!(element.key, [198, 19, 0, 10, 17, 0, 0, 0, 0, 53, 0, 0]);
    assert_eq!(
        element.data,
        Some(Data::Verdict(Verdict::Goto("service-AAAAAAAA-kube-system/kube-dns/udp/dns".into())))
    );
    assert_eq!((element.flags, element.comment.as_deref()), (0, None));
}

#[test]
fn element_comments_come_from_userdata() {
    let elements = elements_of(&[&NO_ENDPOINTS_DATAGRAM, &NO_ENDPOINTS_DONE], PORT_4);
    assert_eq!(elements.len(), 1);
    assert_eq!(elements[0].comment.as_deref(), Some("default/empty:http"));
    assert_eq!(elements[0].data, Some(Data::Verdict(Verdict::Goto("reject-chain".into()))));

    let cluster_ips = elements_of(&[&CLUSTER_IPS_DATAGRAM, &CLUSTER_IPS_DONE], PORT_5);
    assert_eq!(cluster_ips.len(), 1);
    assert_eq!(
        (cluster_ips[0].key.as_slice(), &cluster_ips[0].data),
        (&[198, 19, 0, 10][..], &None)
    );
}

#[test]
fn nftables_rules_decode_to_expressions() {
    let rules = rules_of(&NFT_RULES_DATAGRAM, PORT_7);
    assert_eq!(rules.len(), 3);
    assert_eq!(rules[0].chain, "reject-chain");
    assert_eq!(rules[0].exprs, [Expr::Other("reject".into())]);
    let endpoint = &rules[1];
    assert_eq!(endpoint.chain, "endpoint-BBBBBBBB-kube-system/kube-dns/udp/dns__198.18.2.2/53");
    assert_eq!(
        endpoint.exprs,
        [
            Expr::Meta { key: NFT_META_L4PROTO, dreg: 1 },
            Expr::Cmp { sreg: 1, op: 0, data: vec![17] },
            Expr::Immediate { dreg: 1, data: Data::Value(vec![198, 18, 2, 2]) },
            Expr::Immediate { dreg: 2, data: Data::Value(vec![0, 53]) },
            Expr::Nat {
                kind: NFT_NAT_DNAT,
                family: 2,
                addr: Some((1, Some(1))),
                proto: Some((2, Some(2))),
                flags: 3,
            },
        ]
    );
    assert_eq!(
        rules[2].exprs,
        [
            Expr::Other("numgen".into()),
            Expr::Lookup { set: "__map0".into(), sreg: 1, dreg: Some(0), flags: 0 },
        ]
    );
    // The chain is found without decoding the rest.
    let raw = messages(
        &[&NFT_RULES_DATAGRAM, &SETS_DONE_FOR_RULES(PORT_7)],
        1_700_000_103,
        PORT_7,
        Expect::Done,
    );
    assert_eq!(raw_rule_chain(&raw[0].1), Some("reject-chain"));
}

#[test]
fn iptables_nft_rules_decode_to_compat_matches_and_targets() {
    let rules = rules_of(&NAT_RULES_DATAGRAM, PORT_8);
    let chains: Vec<&str> = rules.iter().map(|r| r.chain.as_str()).collect();
    assert_eq!(chains, ["KUBE-SERVICES", "KUBE-SVC-A", "KUBE-SEP-A"]);
    let names: Vec<String> = rules[0]
        .exprs
        .iter()
        .map(|e| match e {
            Expr::Match { name, .. } => format!("match {name}"),
            Expr::Other(name) => name.clone(),
            other => format!("{other:?}").split([' ', '{']).next().unwrap_or("").to_string(),
        })
        .collect();
    assert_eq!(
        names,
        [
            "Meta",
            "Cmp",
            "Payload",
            "Cmp",
            "match comment",
            "Payload",
            "Cmp",
            "counter",
            "Immediate"
        ]
    );
    let Expr::Target { name, revision, info } = &rules[2].exprs[rules[2].exprs.len() - 1] else {
        panic!("{:?}", rules[2].exprs)
    };
    assert_eq!((name.as_str(), *revision, info.len()), ("DNAT", 2, 48));
}

#[test]
fn the_chain_reply_and_enoent() {
    let found = messages(&[&CHAIN_REPLY, &CHAIN_ACK], 1_700_000_104, PORT_9, Expect::Ack);
    assert_eq!(found.len(), 1);
    let mut reader = ReplyReader::new("chain", 1_700_000_104, PORT_10, Expect::Ack);
    let error = reader.feed(&CHAIN_ENOENT, &mut |_| Ok(())).unwrap_err();
    assert!(matches!(error, NetfilterError::Kernel { errno: libc::ENOENT, .. }), "{error:?}");
}

#[test]
fn registers_follow_writes_and_overlaps() {
    let mut registers = Registers::default();
    // NFT_REG_1 is NFT_REG32_00..03: a 16-byte write there covers reg32 01.
    registers.write(1, 16, Value::Const(vec![7; 16]));
    assert_eq!(registers.read(9).map(|(_, offset)| offset), Some(4));
    // A write to NFT_REG32_01 clobbers the 16-byte value.
    registers.write(9, 2, Value::Const(vec![0, 53]));
    assert_eq!(registers.read(1), None);
    assert_eq!(registers.read(9), Some((&Value::Const(vec![0, 53]), 0)));
    registers.forget();
    assert_eq!(registers.read(9), None);
    assert_eq!(register_slot(0), None);
    assert_eq!(register_slot(24), None);
    // Writes to no register are ignored.
    registers.write(0, 4, Value::Const(vec![1; 4]));
    registers.write(99, 4, Value::Const(vec![1; 4]));
    assert_eq!(registers.read(1), None);
}

#[test]
fn udata_comments() {
    assert_eq!(udata_comment(b"\x00\x04abc\x00").as_deref(), Some("abc"));
    assert_eq!(udata_comment(b"\x01\x01x\x00\x02hi").as_deref(), Some("hi"));
    assert_eq!(udata_comment(b"\x00\x09abc"), None);
    assert_eq!(udata_comment(b""), None);
}

/// The shared dump loop of the socket code, driven by the captured rule
/// dump: the first attempt carries `NLM_F_DUMP_INTR` on its first rule, so
/// the dump is made again, and what the rule consumer keeps is the second
/// attempt's rules only (no rule of the abandoned attempt, none twice).
#[test]
fn an_interrupted_rule_dump_restarts_and_keeps_one_attempt() {
    use crate::netfilter::dump::{dump_with, Deadline, Received, Transport};
    use netlink_packet_core::NLM_F_DUMP_INTR;
    use std::time::Duration;

    struct Replay {
        attempts: Vec<Vec<Vec<u8>>>,
        queue: Vec<Vec<u8>>,
        buffer: Vec<u8>,
        sequence: u32,
        sent: usize,
    }
    impl Transport for Replay {
        fn port(&self) -> u32 {
            PORT_7
        }
        fn send(&mut self, bytes: &[u8]) -> Result<(), NetfilterError> {
            self.sequence = u32::from_ne_bytes(bytes[8..12].try_into().unwrap());
            self.queue = self.attempts.remove(0);
            self.queue.reverse();
            self.sent += 1;
            Ok(())
        }
        fn recv(&mut self, _: Duration) -> Result<Received<'_>, NetfilterError> {
            let Some(mut datagram) = self.queue.pop() else { return Ok(Received::TimedOut) };
            // The kernel echoes the request's sequence number.
            let mut at = 0;
            while at + 16 <= datagram.len() {
                let len = u32::from_ne_bytes(datagram[at..at + 4].try_into().unwrap()) as usize;
                datagram[at + 8..at + 12].copy_from_slice(&self.sequence.to_ne_bytes());
                at += (len + 3) & !3;
            }
            self.buffer = datagram;
            Ok(Received::Datagram(&self.buffer))
        }
        fn drain(&mut self) {}
    }

    let done = SETS_DONE_FOR_RULES(PORT_7);
    let mut interrupted = NFT_RULES_DATAGRAM.to_vec();
    // nlmsg_flags of the first message (bytes 6-7).
    interrupted[6] |= NLM_F_DUMP_INTR as u8;
    let mut transport = Replay {
        attempts: vec![vec![interrupted, done.clone()], vec![NFT_RULES_DATAGRAM.to_vec(), done]],
        queue: Vec::new(),
        buffer: Vec::new(),
        sequence: 0,
        sent: 0,
    };
    let mut rules = Vec::new();
    let keep = |_: &str| true;
    let message = NfTablesMessage::GetRule(RuleMessage {
        attributes: vec![RuleAttribute::Table("kube-proxy".into())],
    });
    let summary = dump_with(
        &mut transport,
        &mut 1,
        "nf_tables rule dump",
        NetfilterProtoFamily::IPv4,
        &message,
        Deadline::after(Duration::from_secs(5)),
        Duration::from_secs(1),
        rule_consumer(&mut rules, &keep),
    )
    .unwrap();
    assert_eq!((summary.attempts, transport.sent), (2, 2));
    let chains: Vec<&str> = rules.iter().map(|r| r.chain.as_str()).collect();
    assert_eq!(chains.len(), 3, "{chains:?}");
    assert_eq!(chains[0], "reject-chain");
}

/// Every question a reader asks shares one deadline: once it has passed,
/// the next one is refused at once with the budget named.
#[test]
fn one_deadline_bounds_a_whole_reading() {
    let mut reader = Reader::with_budget(std::time::Duration::from_millis(1)).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    let started = std::time::Instant::now();
    for error in [
        reader.generation().unwrap_err(),
        reader.sets(Family::Ip, "kube-proxy").unwrap_err(),
        reader.rules(Family::Ip, "nat", None, &|_| true).unwrap_err(),
        reader.elements(Family::Ip, "kube-proxy", "service-ips").unwrap_err(),
        reader.chain_exists(Family::Ip, "nat", "KUBE-SERVICES").unwrap_err(),
    ] {
        assert!(matches!(error, NftError::Netlink(NetfilterError::Deadline { .. })), "{error:?}");
        assert!(error.to_string().contains("1ms"), "{error}");
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any bytes at all: the decoders give an error or objects, never
        /// a panic, and the walker never finds more attributes than fit.
        #[test]
        fn any_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
            let _ = decode_rule(&bytes);
            let _ = decode_elements(&bytes, &mut Vec::new());
            let _ = raw_rule_chain(&bytes);
            let _ = udata_comment(&bytes);
            prop_assert!(walk(&bytes).count() <= bytes.len() / 4);
        }
    }
}
