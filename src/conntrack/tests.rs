//! Decoding tests on real ctnetlink replies.
//!
//! The bytes were captured on Linux 6.18 (x86_64, little-endian nlmsghdr
//! fields) with `strace -x -s 2000 -e trace=recvfrom,recvmsg` around
//! `conntrack -S` and `ctdiag stats`, run in a lab node namespace after
//! parallel A/AAAA lookups (clash_resolve 25 on CPU 0, 35 on CPU 1); the
//! EPERM reply is from a run without CAP_NET_ADMIN
//! (`setpriv --bounding-set -net_admin`).

#![cfg(target_endian = "little")]

use super::socket::{parse_replies, Reply};
use super::stats::{
    counter_name, decode_cpu_stats, decode_global_stats, CTA_STATS_CLASH_RESOLVE, CTA_STATS_FOUND,
};
use super::ConntrackError;

/// Reply to `IPCTNL_MSG_CT_GET_STATS_CPU`: one message per CPU, both in
/// one 200-byte `recvmsg`.
const STATS_CPU_REPLY: &[u8] = &[
    0x64, 0x00, 0x00, 0x00, // nlmsg_len = 100
    0x04, 0x01, // nlmsg_type = NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_GET_STATS_CPU
    0x02, 0x00, // nlmsg_flags = NLM_F_MULTI
    0x76, 0x89, 0x03, 0x6b, // nlmsg_seq = 1795393910
    0xb0, 0x5e, 0x00, 0x00, // nlmsg_pid = 24240
    0x00, 0x00, 0x00, 0x00, // nfgenmsg: family AF_UNSPEC, version 0, res_id = htons(0): CPU 0
    0x08, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00,
    0x00, // nla_len 8, CTA_STATS_FOUND (2) = 0, big-endian
    0x08, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00,
    0x00, // nla_len 8, CTA_STATS_INVALID (4) = 0, big-endian
    0x08, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00,
    0x00, // nla_len 8, CTA_STATS_INSERT (8) = 0, big-endian
    0x08, 0x00, 0x09, 0x00, 0x00, 0x00, 0x00,
    0x00, // nla_len 8, CTA_STATS_INSERT_FAILED (9) = 0, big-endian
    0x08, 0x00, 0x0a, 0x00, 0x00, 0x00, 0x00,
    0x00, // nla_len 8, CTA_STATS_DROP (10) = 0, big-endian
    0x08, 0x00, 0x0b, 0x00, 0x00, 0x00, 0x00,
    0x00, // nla_len 8, CTA_STATS_EARLY_DROP (11) = 0, big-endian
    0x08, 0x00, 0x0c, 0x00, 0x00, 0x00, 0x00,
    0x00, // nla_len 8, CTA_STATS_ERROR (12) = 0, big-endian
    0x08, 0x00, 0x0d, 0x00, 0x00, 0x00, 0x00,
    0x00, // nla_len 8, CTA_STATS_SEARCH_RESTART (13) = 0, big-endian
    0x08, 0x00, 0x0e, 0x00, 0x00, 0x00, 0x00,
    0x19, // nla_len 8, CTA_STATS_CLASH_RESOLVE (14) = 25, big-endian
    0x08, 0x00, 0x0f, 0x00, 0x00, 0x00, 0x00,
    0x00, // nla_len 8, CTA_STATS_CHAIN_TOOLONG (15) = 0, big-endian
    0x64, 0x00, 0x00, 0x00, // nlmsg_len = 100
    0x04, 0x01, // nlmsg_type = NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_GET_STATS_CPU
    0x02, 0x00, // nlmsg_flags = NLM_F_MULTI
    0x76, 0x89, 0x03, 0x6b, // nlmsg_seq = 1795393910
    0xb0, 0x5e, 0x00, 0x00, // nlmsg_pid = 24240
    0x00, 0x00, 0x00, 0x01, // nfgenmsg: family AF_UNSPEC, version 0, res_id = htons(1): CPU 1
    0x08, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00,
    0x00, // nla_len 8, CTA_STATS_FOUND (2) = 0, big-endian
    0x08, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00,
    0x00, // nla_len 8, CTA_STATS_INVALID (4) = 0, big-endian
    0x08, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00,
    0x00, // nla_len 8, CTA_STATS_INSERT (8) = 0, big-endian
    0x08, 0x00, 0x09, 0x00, 0x00, 0x00, 0x00,
    0x00, // nla_len 8, CTA_STATS_INSERT_FAILED (9) = 0, big-endian
    0x08, 0x00, 0x0a, 0x00, 0x00, 0x00, 0x00,
    0x00, // nla_len 8, CTA_STATS_DROP (10) = 0, big-endian
    0x08, 0x00, 0x0b, 0x00, 0x00, 0x00, 0x00,
    0x00, // nla_len 8, CTA_STATS_EARLY_DROP (11) = 0, big-endian
    0x08, 0x00, 0x0c, 0x00, 0x00, 0x00, 0x00,
    0x00, // nla_len 8, CTA_STATS_ERROR (12) = 0, big-endian
    0x08, 0x00, 0x0d, 0x00, 0x00, 0x00, 0x00,
    0x00, // nla_len 8, CTA_STATS_SEARCH_RESTART (13) = 0, big-endian
    0x08, 0x00, 0x0e, 0x00, 0x00, 0x00, 0x00,
    0x23, // nla_len 8, CTA_STATS_CLASH_RESOLVE (14) = 35, big-endian
    0x08, 0x00, 0x0f, 0x00, 0x00, 0x00, 0x00,
    0x00, // nla_len 8, CTA_STATS_CHAIN_TOOLONG (15) = 0, big-endian
];

/// The `NLMSG_DONE` that ended that dump, in a second `recvmsg`.
const STATS_CPU_DONE: &[u8] = &[
    0x14, 0x00, 0x00, 0x00, // nlmsg_len = 20
    0x03, 0x00, // nlmsg_type = NLMSG_DONE
    0x02, 0x00, // nlmsg_flags = NLM_F_MULTI
    0x76, 0x89, 0x03, 0x6b, // nlmsg_seq = 1795393910
    0xb0, 0x5e, 0x00, 0x00, // nlmsg_pid = 24240
    0x00, 0x00, 0x00, 0x00, // status 0
];

/// Reply to `IPCTNL_MSG_CT_GET_STATS` (a plain request, not a dump).
const STATS_GLOBAL_REPLY: &[u8] = &[
    0x24, 0x00, 0x00, 0x00, // nlmsg_len = 36
    0x05, 0x01, // nlmsg_type = NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_GET_STATS
    0x02, 0x00, // nlmsg_flags = NLM_F_MULTI
    0xa5, 0x65, 0x26, 0x0c, // nlmsg_seq = 203842981
    0x8d, 0x64, 0x00, 0x00, // nlmsg_pid = 25741
    0x00, 0x00, 0x00, 0x00, // nfgenmsg: AF_UNSPEC, version 0, res_id 0
    0x08, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
    0x00, // nla_len 8, CTA_STATS_GLOBAL_ENTRIES (1) = 0
    0x08, 0x00, 0x02, 0x00, 0x00, 0x04, 0x00,
    0x00, // nla_len 8, CTA_STATS_GLOBAL_MAX_ENTRIES (2) = 262144
];

/// The acknowledgement that followed it (`NLM_F_ACK` was asked).
const STATS_GLOBAL_ACK: &[u8] = &[
    0x24, 0x00, 0x00, 0x00, // nlmsg_len = 36
    0x02, 0x00, // nlmsg_type = NLMSG_ERROR
    0x00, 0x01, // nlmsg_flags = NLM_F_CAPPED (request not echoed)
    0xa5, 0x65, 0x26, 0x0c, // nlmsg_seq = 203842981
    0x8d, 0x64, 0x00, 0x00, // nlmsg_pid = 25741
    0x00, 0x00, 0x00, 0x00, // error = 0: an acknowledgement
    0x14, 0x00, 0x00, 0x00, // nlmsg_len = 20
    0x05, 0x01, // nlmsg_type = the request: IPCTNL_MSG_CT_GET_STATS
    0x05, 0x00, // nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK
    0xa5, 0x65, 0x26, 0x0c, // nlmsg_seq = 203842981
    0x00, 0x00, 0x00, 0x00, // nlmsg_pid = 0
];

/// `IPCTNL_MSG_CT_GET_STATS_CPU` refused without CAP_NET_ADMIN.
const STATS_CPU_EPERM: &[u8] = &[
    0x28, 0x00, 0x00, 0x00, // nlmsg_len = 40
    0x02, 0x00, // nlmsg_type = NLMSG_ERROR
    0x00, 0x00, // nlmsg_flags = 0 (request echoed)
    0x3e, 0x1f, 0x27, 0x0c, // nlmsg_seq = 203890494
    0x93, 0x64, 0x00, 0x00, // nlmsg_pid = 25747
    0xff, 0xff, 0xff, 0xff, // error = -EPERM
    0x14, 0x00, 0x00, 0x00, // nlmsg_len = 20
    0x04, 0x01, // nlmsg_type = the request: IPCTNL_MSG_CT_GET_STATS_CPU
    0x01, 0x03, // nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP
    0x3e, 0x1f, 0x27, 0x0c, // nlmsg_seq = 203890494
    0x00, 0x00, 0x00, 0x00, // nlmsg_pid = 0
    0x00, 0x00, 0x00, 0x00, // the request's nfgenmsg
];

const CPU_SEQ: u32 = 1795393910;
const CPU_PORT: u32 = 24240;

#[test]
fn per_cpu_messages_in_one_buffer() {
    let replies = parse_replies(STATS_CPU_REPLY, "test", CPU_SEQ, CPU_PORT).unwrap();
    assert_eq!(replies.len(), 2);
    let cpus: Vec<_> = replies
        .iter()
        .map(|r| match r {
            Reply::Message { message, interrupted: false } => decode_cpu_stats(message).unwrap(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(cpus[0].cpu, 0);
    assert_eq!(cpus[1].cpu, 1);
    assert_eq!(cpus[0].counters.get(CTA_STATS_CLASH_RESOLVE), Some(25));
    assert_eq!(cpus[1].counters.get(CTA_STATS_CLASH_RESOLVE), Some(35));
    assert_eq!(cpus[1].counters.get(CTA_STATS_FOUND), Some(0));
    let names: Vec<String> = cpus[0].counters.named().map(|(n, _)| n.into_owned()).collect();
    assert_eq!(
        names,
        [
            "found",
            "invalid",
            "insert",
            "insert_failed",
            "drop",
            "early_drop",
            "error",
            "search_restart",
            "clash_resolve",
            "chaintoolong"
        ]
    );
}

#[test]
fn done_ends_the_dump() {
    let replies = parse_replies(STATS_CPU_DONE, "test", CPU_SEQ, CPU_PORT).unwrap();
    assert_eq!(replies, vec![Reply::Done { status: 0, interrupted: false }]);
}

#[test]
fn global_stats_and_ack() {
    let replies = parse_replies(STATS_GLOBAL_REPLY, "test", 203842981, 25741).unwrap();
    let Reply::Message { message, .. } = &replies[0] else { panic!("{replies:?}") };
    assert_eq!(decode_global_stats(message).unwrap(), (0, 262144));
    let ack = parse_replies(STATS_GLOBAL_ACK, "test", 203842981, 25741).unwrap();
    assert_eq!(ack, vec![Reply::Ack]);
}

#[test]
fn eperm_is_a_permission_error() {
    let replies = parse_replies(STATS_CPU_EPERM, "test", 203890494, 25747).unwrap();
    assert_eq!(replies, vec![Reply::Error { errno: libc::EPERM }]);
    let err = super::socket::kernel_error("test", libc::EPERM);
    assert!(matches!(err, ConntrackError::PermissionDenied { .. }));
    assert!(err.to_string().contains("CAP_NET_ADMIN"));
}

#[test]
fn dump_interrupted_flag_is_seen() {
    let mut bytes = STATS_CPU_REPLY.to_vec();
    // nlmsg_flags of the first message: NLM_F_MULTI | NLM_F_DUMP_INTR.
    bytes[6] = 0x12;
    let replies = parse_replies(&bytes, "test", CPU_SEQ, CPU_PORT).unwrap();
    assert!(matches!(replies[0], Reply::Message { interrupted: true, .. }));
    assert!(matches!(replies[1], Reply::Message { interrupted: false, .. }));
}

#[test]
fn replies_to_other_requests_are_skipped() {
    let replies = parse_replies(STATS_CPU_REPLY, "test", CPU_SEQ + 1, CPU_PORT).unwrap();
    assert!(replies.is_empty());
}

#[test]
fn unknown_attribute_is_kept_as_unknown_n() {
    let mut bytes = STATS_CPU_REPLY[..100].to_vec();
    // Turn the last attribute (type 15) into type 42.
    bytes[96 - 4 + 2] = 42;
    let replies = parse_replies(&bytes, "test", CPU_SEQ, CPU_PORT).unwrap();
    let Reply::Message { message, .. } = &replies[0] else { panic!() };
    let cpu = decode_cpu_stats(message).unwrap();
    assert_eq!(cpu.counters.get(42), Some(0));
    assert_eq!(counter_name(42), "unknown42");
}

#[test]
fn wrong_attribute_length_is_an_error() {
    // The first message with its first attribute's value shortened to 2
    // bytes (nla_len 6, padded to 8 as netlink aligns).
    let mut bytes = STATS_CPU_REPLY[..100].to_vec();
    bytes[20] = 6;
    let replies = parse_replies(&bytes, "test", CPU_SEQ, CPU_PORT).unwrap();
    let Reply::Message { message, .. } = &replies[0] else { panic!() };
    assert!(matches!(decode_cpu_stats(message), Err(ConntrackError::Malformed { .. })));
}

#[test]
fn truncated_and_garbage_input_never_panics() {
    for cut in 0..STATS_CPU_REPLY.len() {
        let _ = parse_replies(&STATS_CPU_REPLY[..cut], "test", CPU_SEQ, CPU_PORT).map(|r| {
            r.iter().for_each(|m| {
                if let Reply::Message { message, .. } = m {
                    let _ = decode_cpu_stats(message);
                }
            })
        });
    }
    assert!(parse_replies(&STATS_CPU_REPLY[..99], "test", CPU_SEQ, CPU_PORT).is_err());
    assert!(parse_replies(&[0xff; 7], "test", CPU_SEQ, CPU_PORT).is_err());
    // A length field of zero must not loop forever.
    let mut zero = STATS_CPU_DONE.to_vec();
    zero[0] = 0;
    assert!(parse_replies(&zero, "test", CPU_SEQ, CPU_PORT).is_err());
    // Pseudo-random bytes behind a valid header shape.
    let mut state = 0x2545_f491_u32;
    for _ in 0..2000 {
        let mut bytes = STATS_CPU_REPLY[..100].to_vec();
        for b in bytes.iter_mut().skip(16) {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            if state.is_multiple_of(7) {
                *b = state as u8;
            }
        }
        if let Ok(replies) = parse_replies(&bytes, "test", CPU_SEQ, CPU_PORT) {
            for reply in replies {
                if let Reply::Message { message, .. } = reply {
                    let _ = decode_cpu_stats(&message);
                }
            }
        }
    }
}
