//! nf_tables over netlink (`NETLINK_NETFILTER`, subsystem
//! `NFNL_SUBSYS_NFTABLES`): the kernel objects kube-proxy's rules are made
//! of, read without `nft` or `iptables-save`.
//!
//! Both listing tools spend most of their time turning these objects into
//! text; ctdiag needs only a few of them. [`Reader`] asks the kernel for
//! exactly those: the rules of one table (`NFT_MSG_GETRULE` filtered by
//! table), the sets of a table (`NFT_MSG_GETSET`), the elements of a named
//! or anonymous set (`NFT_MSG_GETSETELEM`), one chain (`NFT_MSG_GETCHAIN`)
//! and the ruleset generation (`NFT_MSG_GETGEN`). Several dumps make one
//! reading, so [`consistent`] reads the generation before and after and
//! starts over when the ruleset changed in between (as `nft` does); each
//! dump on its own restarts on `NLM_F_DUMP_INTR` (the socket code of
//! [`crate::netfilter`] is shared for that). The readers of both
//! proxy modes take their objects from a [`Source`]: the kernel, or
//! [`Recorded`] objects in tests.
//!
//! Requests are built with `netlink-packet-netfilter`'s nftables types, and
//! the generation and set messages decoded with them. Rule and set element
//! messages, the large ones, are walked here instead
//! ([`crate::netfilter::attributes::walk`],
//! kernel attribute names `NFTA_*`): the crate's decoders for them format
//! the whole attribute buffer with `{:?}` for every nested attribute they
//! read (an eager `format!` in each error context), which made a
//! 2,000-Service rule dump take 1.5 s to decode (BENCHMARKS.md). What the
//! crate leaves raw anyway (`nat`, the xtables compat `match` and
//! `target`, userdata comments) is decoded here too. Unknown attributes and
//! expressions are skipped; nothing here panics on any input.

#[cfg(test)]
pub(crate) mod captures;
mod decode;
mod reader;
mod registers;
#[cfg(test)]
mod tests;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_packet_netfilter::nftables::Verdict as CrateVerdict;
use netlink_packet_netfilter::NetfilterProtoFamily;

use crate::netfilter::NetfilterError;

pub use decode::{
    decode, decode_elements, decode_rule, message_type, raw_chain_name, raw_rule_chain,
    udata_comment,
};
pub use reader::{consistent, Reader, Recorded, Source};
pub use registers::{follow, register_slot, Field, Registers, Value, REGISTER_NEUTRAL};

/// `NFNL_SUBSYS_NFTABLES` (include/uapi/linux/netfilter/nfnetlink.h).
pub const NFNL_SUBSYS_NFTABLES: u8 = 10;
/// `NFT_MSG_NEWCHAIN` (include/uapi/linux/netfilter/nf_tables.h): what a
/// chain dump answers with.
pub const NFT_MSG_NEWCHAIN: u8 = 3;
/// `NFT_MSG_NEWRULE`: what a rule dump answers with.
pub const NFT_MSG_NEWRULE: u8 = 6;
/// `NFT_MSG_NEWSET`: what a set dump answers with.
pub const NFT_MSG_NEWSET: u8 = 9;
/// `NFT_MSG_NEWSETELEM`: what a set element dump answers with.
pub const NFT_MSG_NEWSETELEM: u8 = 12;

/// `NFT_PAYLOAD_NETWORK_HEADER`: payload offsets from the IP header.
pub const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
/// `NFT_PAYLOAD_TRANSPORT_HEADER`: payload offsets from the TCP/UDP/SCTP header.
pub const NFT_PAYLOAD_TRANSPORT_HEADER: u32 = 2;
/// `NFT_META_L4PROTO`: the layer-4 protocol number.
pub const NFT_META_L4PROTO: u32 = 16;

/// `NFT_NAT_DNAT`: destination NAT.
pub const NFT_NAT_DNAT: u32 = 1;

/// `NFT_LOOKUP_F_INV`: the lookup matches when the key is *not* in the set.
pub const NFT_LOOKUP_F_INV: u32 = 1;

/// How many times a reading whose ruleset changed underneath is started
/// over before giving up.
pub const SNAPSHOT_ATTEMPTS: u32 = 3;

/// An nf_tables address family of kube-proxy's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// `ip` (`NFPROTO_IPV4`).
    Ip,
    /// `ip6` (`NFPROTO_IPV6`).
    Ip6,
}

impl Family {
    /// Both, IPv4 first.
    pub const BOTH: [Family; 2] = [Family::Ip, Family::Ip6];

    /// nft's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Ip => "ip",
            Family::Ip6 => "ip6",
        }
    }

    /// The length of one of its addresses.
    pub fn address_len(self) -> usize {
        match self {
            Family::Ip => 4,
            Family::Ip6 => 16,
        }
    }

    /// An address of this family from exactly its bytes.
    pub fn address(self, bytes: &[u8]) -> Option<IpAddr> {
        match self {
            Family::Ip => <[u8; 4]>::try_from(bytes).ok().map(|b| IpAddr::V4(Ipv4Addr::from(b))),
            Family::Ip6 => <[u8; 16]>::try_from(bytes).ok().map(|b| IpAddr::V6(Ipv6Addr::from(b))),
        }
    }

    fn proto(self) -> NetfilterProtoFamily {
        match self {
            Family::Ip => NetfilterProtoFamily::IPv4,
            Family::Ip6 => NetfilterProtoFamily::IPv6,
        }
    }
}

/// Why nf_tables could not be read.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// No `CAP_NET_ADMIN` in the namespace.
    #[error(
        "nf_tables refused to list the rules over netlink: CAP_NET_ADMIN is needed (run as root)"
    )]
    Refused,
    /// The kernel has no nfnetlink or no nf_tables.
    #[error("nf_tables is not available over netlink: {0}")]
    Unavailable(String),
    /// The conversation failed (socket error, kernel error, timeout, a
    /// dump interrupted too often).
    #[error("reading nf_tables over netlink failed: {0}")]
    Netlink(NetfilterError),
    /// The generation moved during every attempt.
    #[error("the nf_tables ruleset changed while it was read, {attempts} times in a row (kube-proxy syncing?); no partial reading is used")]
    Changing {
        /// How many readings were made.
        attempts: u32,
    },
    /// Something the reader does not follow, where it matters: the
    /// listing tool reads it instead.
    #[error("the netlink reader does not follow {0}")]
    Unexpected(String),
    /// A message did not decode.
    #[error("cannot decode {what} from nf_tables: {detail}")]
    Decode {
        /// What was being read.
        what: &'static str,
        /// What was wrong.
        detail: String,
    },
}

impl From<NetfilterError> for NftError {
    fn from(error: NetfilterError) -> Self {
        match error {
            NetfilterError::PermissionDenied { .. } => NftError::Refused,
            NetfilterError::NotSupported { .. } => NftError::Unavailable(
                "the kernel answered EOPNOTSUPP: no nf_tables (module not loaded, or not built)"
                    .into(),
            ),
            NetfilterError::Unavailable(why) => NftError::Unavailable(why),
            NetfilterError::Malformed { request, detail } => {
                NftError::Decode { what: request, detail }
            }
            other => NftError::Netlink(other),
        }
    }
}

/// A verdict, as an `immediate` expression or a verdict map element holds
/// it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// `NF_ACCEPT`.
    Accept,
    /// `NF_DROP`.
    Drop,
    /// `NFT_CONTINUE`.
    Continue,
    /// `NFT_RETURN`.
    Return,
    /// `NFT_JUMP` to a chain.
    Jump(String),
    /// `NFT_GOTO` a chain.
    Goto(String),
    /// Anything else (`NF_QUEUE`, `NFT_BREAK`, ...), by its code.
    Other(u32),
}

/// `NF_DROP` (include/uapi/linux/netfilter.h).
const NF_DROP: u32 = 0;
/// `NF_ACCEPT`.
const NF_ACCEPT: u32 = 1;

impl Verdict {
    /// The verdict of `NFTA_VERDICT_CODE` and, for a jump or goto,
    /// `NFTA_VERDICT_CHAIN` (the codes as the crate names them).
    fn from_code(code: u32, chain: Option<String>) -> Option<Verdict> {
        Some(match CrateVerdict::from(code) {
            CrateVerdict::Continue => Verdict::Continue,
            CrateVerdict::Return => Verdict::Return,
            CrateVerdict::Jump => Verdict::Jump(chain?),
            CrateVerdict::Goto => Verdict::Goto(chain?),
            CrateVerdict::Other(NF_ACCEPT) => Verdict::Accept,
            CrateVerdict::Other(NF_DROP) => Verdict::Drop,
            other => Verdict::Other(u32::from(other)),
        })
    }

    /// The chain of a jump or goto.
    pub fn chain(&self) -> Option<&str> {
        match self {
            Verdict::Jump(chain) | Verdict::Goto(chain) => Some(chain),
            _ => None,
        }
    }
}

/// What an `immediate` expression or a map element carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    /// Plain bytes (`NFTA_DATA_VALUE`).
    Value(Vec<u8>),
    /// A verdict (`NFTA_DATA_VERDICT`).
    Verdict(Verdict),
}

/// One expression of a rule, as far as ctdiag follows it. Registers keep
/// the kernel's numbers (`NFT_REG_VERDICT` 0, `NFT_REG_1..4` 1-4,
/// `NFT_REG32_00..15` 8-23).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// `payload load LEN @ BASE + OFFSET => DREG`.
    Payload {
        /// `NFT_PAYLOAD_*_HEADER`.
        base: u32,
        /// Byte offset from the header.
        offset: u32,
        /// Bytes loaded.
        len: u32,
        /// Destination register.
        dreg: u32,
    },
    /// `meta load KEY => DREG`.
    Meta {
        /// `NFT_META_*`.
        key: u32,
        /// Destination register.
        dreg: u32,
    },
    /// `cmp OP SREG DATA`.
    Cmp {
        /// Source register.
        sreg: u32,
        /// `NFT_CMP_EQ` 0, `NFT_CMP_NEQ` 1, `LT` 2, `LTE` 3, `GT` 4, `GTE` 5.
        op: u32,
        /// What the register is compared with.
        data: Vec<u8>,
    },
    /// `bitwise DREG = (SREG & MASK) ^ XOR`.
    Bitwise {
        /// Source register.
        sreg: u32,
        /// Destination register.
        dreg: u32,
        /// The mask.
        mask: Vec<u8>,
        /// The xor.
        xor: Vec<u8>,
    },
    /// `immediate DREG DATA` (DREG 0: the verdict).
    Immediate {
        /// Destination register.
        dreg: u32,
        /// The value or verdict.
        data: Data,
    },
    /// `lookup SREG set SET [dreg DREG]`: a set membership test, or with a
    /// destination register a map (DREG 0: a verdict map).
    Lookup {
        /// The set's name (`__mapN` for an anonymous one).
        set: String,
        /// Source register of the key.
        sreg: u32,
        /// Destination register of the mapped data, for a map.
        dreg: Option<u32>,
        /// `NFT_LOOKUP_F_*`.
        flags: u32,
    },
    /// `nat`.
    Nat {
        /// `NFT_NAT_SNAT` 0 or `NFT_NAT_DNAT` 1.
        kind: u32,
        /// `NFPROTO_IPV4` 2 or `NFPROTO_IPV6` 10.
        family: u32,
        /// Registers of the address range, if any.
        addr: Option<(u32, Option<u32>)>,
        /// Registers of the port range, if any.
        proto: Option<(u32, Option<u32>)>,
        /// `NF_NAT_RANGE_*`.
        flags: u32,
    },
    /// An xtables match run through nft_compat (`-m comment`, `-m udp`, ...).
    Match {
        /// The extension's name.
        name: String,
        /// Its revision.
        revision: u32,
        /// Its info struct, as the kernel holds it.
        info: Vec<u8>,
    },
    /// An xtables target run through nft_compat (`-j DNAT`, `-j REJECT`, ...).
    Target {
        /// The extension's name.
        name: String,
        /// Its revision.
        revision: u32,
        /// Its info struct.
        info: Vec<u8>,
    },
    /// Any other expression (`counter`, `ct`, `numgen`, ...), or one of the
    /// above in a form not followed here (a payload write, ...): its name.
    Other(String),
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftRule {
    /// Its chain.
    pub chain: String,
    /// Its handle.
    pub handle: u64,
    /// Its expressions, in order.
    pub exprs: Vec<Expr>,
    /// The comment in its userdata (iptables-nft stored `-m comment` there
    /// in some versions, nft stores `comment "..."` there).
    pub comment: Option<String>,
}

/// One set or map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftSet {
    /// Its name.
    pub name: String,
    /// `NFT_SET_*` flags (`NFT_SET_ANONYMOUS` 0x1, `NFT_SET_INTERVAL` 0x4,
    /// `NFT_SET_MAP` 0x8, ...).
    pub flags: u32,
    /// Key length in bytes.
    pub key_len: u32,
    /// Data length of a map (0 for a set; the verdict size for a vmap).
    pub data_len: u32,
}

/// `NFT_SET_ANONYMOUS`.
pub const NFT_SET_ANONYMOUS: u32 = 0x1;
/// `NFT_SET_INTERVAL`.
pub const NFT_SET_INTERVAL: u32 = 0x4;
/// `NFT_SET_ELEM_INTERVAL_END`: the element closes an interval.
pub const NFT_SET_ELEM_INTERVAL_END: u32 = 0x1;

impl NftSet {
    /// Whether nft made it for one rule (`{ ... }` written inline).
    pub fn is_anonymous(&self) -> bool {
        self.flags & NFT_SET_ANONYMOUS != 0
    }
}

/// One element of a set or map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftElement {
    /// The key, as stored (concatenated fields each padded to 4 bytes).
    pub key: Vec<u8>,
    /// The mapped data of a map element.
    pub data: Option<Data>,
    /// `NFT_SET_ELEM_*` flags.
    pub flags: u32,
    /// The element's comment (userdata).
    pub comment: Option<String>,
}
