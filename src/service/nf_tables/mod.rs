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
//! reading, so [`Reader::consistent`] reads the generation before and
//! after and starts over when the ruleset changed in between (as `nft`
//! does); each dump on its own restarts on `NLM_F_DUMP_INTR` (the socket
//! code of [`crate::conntrack::socket`] is shared for that).
//!
//! Messages are decoded with `netlink-packet-netfilter`'s nftables types
//! (rules, sets, set elements, the `cmp`, `payload`, `meta`, `bitwise`,
//! `immediate` and `lookup` expressions); what the crate leaves as raw
//! attributes (`nat`, the xtables compat `match` and `target`, userdata
//! comments) is decoded here with the kernel's names. Unknown attributes
//! and expressions are skipped; nothing here panics on any input.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_packet_core::{DefaultNla, NetlinkMessage, NetlinkPayload, Nla, NLA_TYPE_MASK};
use netlink_packet_netfilter::nftables::{
    Bitwise, ChainAttribute, ChainMessage, Cmp, DataAttribute, ExpressionAttribute, Expressions,
    GenAttribute, GenMessage, Immediate, ListAttribute, Lookup, Meta, NfTablesMessage, Payload,
    RuleAttribute, RuleMessage, SetAttribute, SetElementAttribute, SetElementList,
    SetElementMessage, SetMessage, Verdict as CrateVerdict, VerdictAttribute,
};
use netlink_packet_netfilter::{NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily};

use crate::conntrack::socket::{CtnetlinkSocket, DumpEvent, DUMP_DEADLINE};
use crate::conntrack::ConntrackError;

/// `NFNL_SUBSYS_NFTABLES` (include/uapi/linux/netfilter/nfnetlink.h).
pub const NFNL_SUBSYS_NFTABLES: u8 = 10;
/// `NFT_MSG_NEWRULE` (include/uapi/linux/netfilter/nf_tables.h): what a
/// rule dump answers with.
pub const NFT_MSG_NEWRULE: u8 = 6;
/// `NFT_MSG_NEWSET`: what a set dump answers with.
pub const NFT_MSG_NEWSET: u8 = 9;
/// `NFT_MSG_NEWSETELEM`: what a set element dump answers with.
pub const NFT_MSG_NEWSETELEM: u8 = 12;

/// `NFTA_RULE_CHAIN`: the chain a rule is in (string).
const NFTA_RULE_CHAIN: u16 = 2;

/// `NFT_PAYLOAD_NETWORK_HEADER`: payload offsets from the IP header.
pub const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
/// `NFT_PAYLOAD_TRANSPORT_HEADER`: payload offsets from the TCP/UDP/SCTP header.
pub const NFT_PAYLOAD_TRANSPORT_HEADER: u32 = 2;
/// `NFT_META_L4PROTO`: the layer-4 protocol number.
pub const NFT_META_L4PROTO: u32 = 16;

/// `NFTA_NAT_TYPE` (u32): `NFT_NAT_SNAT` or `NFT_NAT_DNAT`.
const NFTA_NAT_TYPE: u16 = 1;
/// `NFTA_NAT_FAMILY` (u32): `NFPROTO_IPV4` or `NFPROTO_IPV6`.
const NFTA_NAT_FAMILY: u16 = 2;
/// `NFTA_NAT_REG_ADDR_MIN` (u32): register of the lowest address.
const NFTA_NAT_REG_ADDR_MIN: u16 = 3;
/// `NFTA_NAT_REG_ADDR_MAX` (u32): register of the highest address.
const NFTA_NAT_REG_ADDR_MAX: u16 = 4;
/// `NFTA_NAT_REG_PROTO_MIN` (u32): register of the lowest port.
const NFTA_NAT_REG_PROTO_MIN: u16 = 5;
/// `NFTA_NAT_REG_PROTO_MAX` (u32): register of the highest port.
const NFTA_NAT_REG_PROTO_MAX: u16 = 6;
/// `NFTA_NAT_FLAGS` (u32): `NF_NAT_RANGE_*`.
const NFTA_NAT_FLAGS: u16 = 7;
/// `NFT_NAT_DNAT`: destination NAT.
pub const NFT_NAT_DNAT: u32 = 1;

/// `NFTA_MATCH_NAME` / `NFTA_TARGET_NAME` (include/uapi/linux/netfilter/
/// nf_tables_compat.h): the xtables extension's name.
const NFTA_COMPAT_NAME: u16 = 1;
/// `NFTA_MATCH_REV` / `NFTA_TARGET_REV` (u32): its revision.
const NFTA_COMPAT_REV: u16 = 2;
/// `NFTA_MATCH_INFO` / `NFTA_TARGET_INFO`: its binary info struct.
const NFTA_COMPAT_INFO: u16 = 3;

/// `NFT_LOOKUP_F_INV`: the lookup matches when the key is *not* in the set.
pub const NFT_LOOKUP_F_INV: u32 = 1;

/// `NFTNL_UDATA_RULE_COMMENT` / `NFTNL_UDATA_SET_ELEM_COMMENT` (libnftnl's
/// userdata TLVs, type 0 in both): a comment, NUL-terminated.
const UDATA_COMMENT: u8 = 0;

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
    Netlink(ConntrackError),
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

impl From<ConntrackError> for NftError {
    fn from(error: ConntrackError) -> Self {
        match error {
            ConntrackError::PermissionDenied { .. } => NftError::Refused,
            ConntrackError::Unavailable(why) => NftError::Unavailable(why),
            ConntrackError::Malformed { request, detail } => {
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
    fn from_attributes(attributes: &[VerdictAttribute]) -> Option<Verdict> {
        let mut code = None;
        let mut chain = None;
        for attribute in attributes {
            match attribute {
                VerdictAttribute::Code(c) => code = Some(*c),
                VerdictAttribute::Chain(c) => chain = Some(c.clone()),
                _ => {}
            }
        }
        Some(match code? {
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

impl Data {
    fn from_attribute(attribute: &DataAttribute) -> Option<Data> {
        match attribute {
            DataAttribute::Value(bytes) => Some(Data::Value(bytes.clone())),
            DataAttribute::Verdict(attributes) => {
                Verdict::from_attributes(attributes).map(Data::Verdict)
            }
            _ => None,
        }
    }
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

/// A `NETLINK_NETFILTER` socket asking nf_tables, in the network namespace
/// of the thread that opened it.
#[derive(Debug)]
pub struct Reader {
    socket: CtnetlinkSocket,
}

impl Reader {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> Result<Self, NftError> {
        Ok(Reader { socket: CtnetlinkSocket::open()? })
    }

    /// The ruleset's generation: it changes with every committed
    /// transaction.
    pub fn generation(&mut self) -> Result<u32, NftError> {
        let replies = self.socket.request(
            "nf_tables generation",
            NetfilterProtoFamily::Unspec,
            NfTablesMessage::GetGen(GenMessage { attributes: Vec::new() }),
        )?;
        replies
            .into_iter()
            .find_map(|reply| match reply.message.inner {
                NetfilterMessageInner::NfTables(NfTablesMessage::NewGen(gen)) => {
                    gen.attributes.into_iter().find_map(|a| match a {
                        GenAttribute::Id(id) => Some(id),
                        _ => None,
                    })
                }
                _ => None,
            })
            .ok_or(NftError::Decode {
                what: "the generation",
                detail: "no NFTA_GEN_ID in the reply".into(),
            })
    }

    /// Whether chain `chain` exists in table `table` of `family` (a missing
    /// table answers the same as a missing chain: no).
    pub fn chain_exists(
        &mut self,
        family: Family,
        table: &str,
        chain: &str,
    ) -> Result<bool, NftError> {
        let message = NfTablesMessage::GetChain(ChainMessage {
            attributes: vec![
                ChainAttribute::Table(table.into()),
                ChainAttribute::Name(chain.into()),
            ],
        });
        match self.socket.request("nf_tables chain", family.proto(), message) {
            Ok(_) => Ok(true),
            Err(ConntrackError::Kernel { errno: libc::ENOENT, .. }) => Ok(false),
            Err(other) => Err(other.into()),
        }
    }

    /// The sets and maps of table `table`; `None` when there is no such
    /// table.
    pub fn sets(&mut self, family: Family, table: &str) -> Result<Option<Vec<NftSet>>, NftError> {
        let message = NfTablesMessage::GetSet(SetMessage {
            attributes: vec![SetAttribute::Table(table.into())],
        });
        let mut sets = Vec::new();
        let result = self.socket.dump_each(
            "nf_tables set dump",
            family.proto(),
            &message,
            DUMP_DEADLINE,
            |event| {
                match event {
                    DumpEvent::Restart { .. } => sets.clear(),
                    DumpEvent::Message(raw) => {
                        if raw.message_type != message_type(NFT_MSG_NEWSET) {
                            return Err(unexpected("nf_tables set dump", raw.message_type));
                        }
                        let message = decode("nf_tables set dump", raw.bytes)?;
                        if let NfTablesMessage::NewSet(set) = message {
                            sets.push(set_from(&set).map_err(|detail| {
                                ConntrackError::Malformed { request: "nf_tables set dump", detail }
                            })?);
                        }
                    }
                }
                Ok(())
            },
        );
        match result {
            Ok(_) => Ok(Some(sets)),
            Err(ConntrackError::Kernel { errno: libc::ENOENT, .. }) => Ok(None),
            Err(other) => Err(other.into()),
        }
    }

    /// The elements of set `set` of table `table`.
    pub fn elements(
        &mut self,
        family: Family,
        table: &str,
        set: &str,
    ) -> Result<Vec<NftElement>, NftError> {
        let message = NfTablesMessage::GetSetElement(SetElementMessage {
            attributes: vec![SetElementList::Table(table.into()), SetElementList::Set(set.into())],
        });
        let mut elements = Vec::new();
        self.socket.dump_each(
            "nf_tables set element dump",
            family.proto(),
            &message,
            DUMP_DEADLINE,
            |event| {
                match event {
                    DumpEvent::Restart { .. } => elements.clear(),
                    DumpEvent::Message(raw) => {
                        if raw.message_type != message_type(NFT_MSG_NEWSETELEM) {
                            return Err(unexpected("nf_tables set element dump", raw.message_type));
                        }
                        if let NfTablesMessage::NewSetElement(message) =
                            decode("nf_tables set element dump", raw.bytes)?
                        {
                            elements_from(&message, &mut elements).map_err(|detail| {
                                ConntrackError::Malformed {
                                    request: "nf_tables set element dump",
                                    detail: format!("set {set}: {detail}"),
                                }
                            })?;
                        }
                    }
                }
                Ok(())
            },
        )?;
        Ok(elements)
    }

    /// The rules of table `table` (of its chain `chain` only, when given:
    /// the kernel filters), in the chains `keep` accepts, in the kernel's
    /// order. Why `keep`: the chain is read from the raw message first, so
    /// rules of chains nobody looks at (Docker's, a CNI's) are never
    /// decoded.
    pub fn rules(
        &mut self,
        family: Family,
        table: &str,
        chain: Option<&str>,
        keep: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<NftRule>, NftError> {
        let mut attributes = vec![RuleAttribute::Table(table.into())];
        if let Some(chain) = chain {
            attributes.push(RuleAttribute::Chain(chain.into()));
        }
        let message = NfTablesMessage::GetRule(RuleMessage { attributes });
        let mut rules = Vec::new();
        self.socket.dump_each(
            "nf_tables rule dump",
            family.proto(),
            &message,
            DUMP_DEADLINE,
            |event| {
                match event {
                    DumpEvent::Restart { .. } => rules.clear(),
                    DumpEvent::Message(raw) => {
                        if raw.message_type != message_type(NFT_MSG_NEWRULE) {
                            return Err(unexpected("nf_tables rule dump", raw.message_type));
                        }
                        if raw_rule_chain(raw.attributes).is_some_and(|chain| !keep(chain)) {
                            return Ok(());
                        }
                        if let NfTablesMessage::NewRule(rule) =
                            decode("nf_tables rule dump", raw.bytes)?
                        {
                            rules.push(rule_from(&rule).map_err(|detail| {
                                ConntrackError::Malformed { request: "nf_tables rule dump", detail }
                            })?);
                        }
                    }
                }
                Ok(())
            },
        )?;
        Ok(rules)
    }

    /// Runs `read` (several dumps) until the ruleset generation is the same
    /// before and after it, at most [`SNAPSHOT_ATTEMPTS`] times: what it
    /// returns then is one consistent state of the rules, never a mix of
    /// two.
    pub fn consistent<T>(
        &mut self,
        mut read: impl FnMut(&mut Self) -> Result<T, NftError>,
    ) -> Result<T, NftError> {
        for _ in 0..SNAPSHOT_ATTEMPTS {
            let before = self.generation()?;
            let value = read(self)?;
            if self.generation()? == before {
                return Ok(value);
            }
        }
        Err(NftError::Changing { attempts: SNAPSHOT_ATTEMPTS })
    }
}

/// `nlmsg_type` of an nf_tables message.
pub fn message_type(message: u8) -> u16 {
    (u16::from(NFNL_SUBSYS_NFTABLES) << 8) | u16::from(message)
}

fn unexpected(request: &'static str, message_type: u16) -> ConntrackError {
    ConntrackError::Malformed {
        request,
        detail: format!("message type {message_type:#06x} in the dump"),
    }
}

/// Decodes one whole netlink message as an nf_tables message.
pub fn decode(request: &'static str, bytes: &[u8]) -> Result<NfTablesMessage, ConntrackError> {
    let malformed = |detail: String| ConntrackError::Malformed { request, detail };
    let message = NetlinkMessage::<NetfilterMessage>::deserialize(bytes)
        .map_err(|e| malformed(e.to_string()))?;
    match message.payload {
        NetlinkPayload::InnerMessage(NetfilterMessage {
            inner: NetfilterMessageInner::NfTables(message),
            ..
        }) => Ok(message),
        _ => Err(malformed("not an nf_tables message".into())),
    }
}

/// The chain name of a raw rule message (its attributes after the nfgenmsg
/// header), without decoding anything else; `None` if it has none or it is
/// not UTF-8.
pub fn raw_rule_chain(mut attributes: &[u8]) -> Option<&str> {
    // struct nlattr { u16 nla_len; u16 nla_type; } then the value, each
    // attribute padded to 4 bytes (NLA_ALIGN).
    while attributes.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([attributes[0], attributes[1]]));
        let kind = u16::from_ne_bytes([attributes[2], attributes[3]]) & NLA_TYPE_MASK;
        let value = attributes.get(4..len)?;
        if kind == NFTA_RULE_CHAIN {
            return cstr(value);
        }
        attributes = attributes.get(len.checked_add(3)? & !3..).unwrap_or(&[]);
    }
    None
}

/// A NUL-terminated (or unterminated) string.
fn cstr(bytes: &[u8]) -> Option<&str> {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    std::str::from_utf8(bytes.get(..end)?).ok()
}

/// The value bytes of an attribute the crate kept raw.
fn nla_value(nla: &DefaultNla) -> Vec<u8> {
    let mut value = vec![0; nla.value_len()];
    nla.emit_value(&mut value);
    value
}

fn be_u32(bytes: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?))
}

/// The first comment in libnftnl userdata TLVs (`type: u8, len: u8,
/// value`).
pub fn udata_comment(mut bytes: &[u8]) -> Option<String> {
    while let [kind, len, rest @ ..] = bytes {
        let value = rest.get(..usize::from(*len))?;
        if *kind == UDATA_COMMENT {
            return cstr(value).map(str::to_string);
        }
        bytes = &rest[usize::from(*len)..];
    }
    None
}

fn set_from(message: &SetMessage) -> Result<NftSet, String> {
    let mut set = NftSet { name: String::new(), flags: 0, key_len: 0, data_len: 0 };
    for attribute in &message.attributes {
        match attribute {
            SetAttribute::Name(name) => set.name.clone_from(name),
            SetAttribute::Flags(flags) => set.flags = flags.bits(),
            SetAttribute::KeyLen(len) => set.key_len = *len,
            SetAttribute::DataLen(len) => set.data_len = *len,
            _ => {}
        }
    }
    if set.name.is_empty() {
        return Err("a set without a name".into());
    }
    Ok(set)
}

fn elements_from(message: &SetElementMessage, out: &mut Vec<NftElement>) -> Result<(), String> {
    for list in &message.attributes {
        let SetElementList::Elements(elements) = list else { continue };
        for element in elements {
            let ListAttribute::Element(attributes) = element else { continue };
            let mut key = None;
            let mut data = None;
            let mut flags = 0;
            let mut comment = None;
            for attribute in attributes {
                match attribute {
                    SetElementAttribute::Key(DataAttribute::Value(bytes)) => {
                        key = Some(bytes.clone())
                    }
                    SetElementAttribute::Data(value) => {
                        data = Some(
                            Data::from_attribute(value)
                                .ok_or("an element whose data is neither value nor verdict")?,
                        )
                    }
                    SetElementAttribute::Flags(f) => flags = f.bits(),
                    SetElementAttribute::UserData(bytes) => comment = udata_comment(bytes),
                    _ => {}
                }
            }
            let key = key.ok_or("an element without a key")?;
            out.push(NftElement { key, data, flags, comment });
        }
    }
    Ok(())
}

fn rule_from(message: &RuleMessage) -> Result<NftRule, String> {
    let mut rule = NftRule { chain: String::new(), handle: 0, exprs: Vec::new(), comment: None };
    for attribute in &message.attributes {
        match attribute {
            RuleAttribute::Chain(chain) => rule.chain.clone_from(chain),
            RuleAttribute::Handle(handle) => rule.handle = *handle,
            RuleAttribute::UserData(bytes) => rule.comment = udata_comment(bytes),
            RuleAttribute::Expressions(list) => {
                for element in list {
                    if let ListAttribute::Element(attributes) = element {
                        rule.exprs.push(expr_from(attributes));
                    }
                }
            }
            _ => {}
        }
    }
    if rule.chain.is_empty() {
        return Err(format!("rule handle {} has no chain", rule.handle));
    }
    Ok(rule)
}

/// One expression from its `NFTA_EXPR_NAME` and `NFTA_EXPR_DATA`.
fn expr_from(attributes: &[ExpressionAttribute]) -> Expr {
    let mut name = String::new();
    let mut data = None;
    for attribute in attributes {
        match attribute {
            ExpressionAttribute::Name(n) => name.clone_from(n),
            ExpressionAttribute::Data(d) => data = Some(d),
            _ => {}
        }
    }
    let other = |name: &str| Expr::Other(name.to_string());
    let Some(data) = data else { return other(&name) };
    match data {
        Expressions::Payload(attributes) => payload(attributes).unwrap_or_else(|| other("payload")),
        Expressions::Meta(attributes) => meta(attributes).unwrap_or_else(|| other("meta")),
        Expressions::Cmp(attributes) => cmp(attributes).unwrap_or_else(|| other("cmp")),
        Expressions::Bitwise(attributes) => bitwise(attributes).unwrap_or_else(|| other("bitwise")),
        Expressions::Immediate(attributes) => {
            immediate(attributes).unwrap_or_else(|| other("immediate"))
        }
        Expressions::Lookup(attributes) => lookup(attributes).unwrap_or_else(|| other("lookup")),
        Expressions::Other { expression_type, attributes } => match expression_type.as_str() {
            "nat" => nat(attributes).unwrap_or_else(|| other("nat")),
            "match" | "target" => {
                compat(expression_type == "match", attributes).unwrap_or_else(|| other(&name))
            }
            _ => other(&name),
        },
        _ => other(&name),
    }
}

fn payload(attributes: &[Payload]) -> Option<Expr> {
    let (mut base, mut offset, mut len, mut dreg) = (None, None, None, None);
    for attribute in attributes {
        match attribute {
            Payload::Base(v) => base = Some(*v),
            Payload::Offset(v) => offset = Some(*v),
            Payload::Len(v) => len = Some(*v),
            Payload::DestinationRegister(r) => dreg = Some(u32::from(*r)),
            // A payload *write* (`SREG`): not a match.
            Payload::SourceRegister(_) => return None,
            _ => {}
        }
    }
    Some(Expr::Payload { base: base?, offset: offset?, len: len?, dreg: dreg? })
}

fn meta(attributes: &[Meta]) -> Option<Expr> {
    let (mut key, mut dreg) = (None, None);
    for attribute in attributes {
        match attribute {
            Meta::Key(k) => key = Some(u32::from(*k)),
            Meta::DestinationRegister(r) => dreg = Some(u32::from(*r)),
            Meta::SourceRegister(_) => return None,
            _ => {}
        }
    }
    Some(Expr::Meta { key: key?, dreg: dreg? })
}

fn cmp(attributes: &[Cmp]) -> Option<Expr> {
    let (mut sreg, mut op, mut data) = (None, None, None);
    for attribute in attributes {
        match attribute {
            Cmp::SourceRegister(r) => sreg = Some(u32::from(*r)),
            Cmp::Op(o) => op = Some(u32::from(*o)),
            Cmp::Data(DataAttribute::Value(bytes)) => data = Some(bytes.clone()),
            _ => {}
        }
    }
    Some(Expr::Cmp { sreg: sreg?, op: op?, data: data? })
}

fn bitwise(attributes: &[Bitwise]) -> Option<Expr> {
    let (mut sreg, mut dreg, mut mask, mut xor) = (None, None, None, None);
    for attribute in attributes {
        match attribute {
            Bitwise::SourceRegister(r) => sreg = Some(u32::from(*r)),
            Bitwise::DestinationRegister(r) => dreg = Some(u32::from(*r)),
            Bitwise::Mask(DataAttribute::Value(bytes)) => mask = Some(bytes.clone()),
            Bitwise::Xor(DataAttribute::Value(bytes)) => xor = Some(bytes.clone()),
            // A shift or another operation: not a mask.
            Bitwise::Op(op) if *op != 0 => return None,
            _ => {}
        }
    }
    Some(Expr::Bitwise { sreg: sreg?, dreg: dreg?, mask: mask?, xor: xor? })
}

fn immediate(attributes: &[Immediate]) -> Option<Expr> {
    let (mut dreg, mut data) = (None, None);
    for attribute in attributes {
        match attribute {
            Immediate::DestinationRegister(r) => dreg = Some(u32::from(*r)),
            Immediate::Data(d) => data = Data::from_attribute(d),
            _ => {}
        }
    }
    Some(Expr::Immediate { dreg: dreg?, data: data? })
}

fn lookup(attributes: &[Lookup]) -> Option<Expr> {
    let (mut set, mut sreg, mut dreg, mut flags) = (None, None, None, 0);
    for attribute in attributes {
        match attribute {
            Lookup::Set(name) => set = Some(name.clone()),
            Lookup::SourceRegister(r) => sreg = Some(u32::from(*r)),
            Lookup::DestinationRegister(r) => dreg = Some(u32::from(*r)),
            Lookup::Flags(f) => flags = *f,
            _ => {}
        }
    }
    Some(Expr::Lookup { set: set?, sreg: sreg?, dreg, flags })
}

fn nat(attributes: &[DefaultNla]) -> Option<Expr> {
    let (mut kind, mut family, mut flags) = (None, None, 0);
    let (mut addr_min, mut addr_max, mut proto_min, mut proto_max) = (None, None, None, None);
    for attribute in attributes {
        let value = be_u32(&nla_value(attribute));
        match attribute.kind() {
            NFTA_NAT_TYPE => kind = value,
            NFTA_NAT_FAMILY => family = value,
            NFTA_NAT_REG_ADDR_MIN => addr_min = value,
            NFTA_NAT_REG_ADDR_MAX => addr_max = value,
            NFTA_NAT_REG_PROTO_MIN => proto_min = value,
            NFTA_NAT_REG_PROTO_MAX => proto_max = value,
            NFTA_NAT_FLAGS => flags = value.unwrap_or(0),
            _ => {}
        }
    }
    Some(Expr::Nat {
        kind: kind?,
        family: family?,
        addr: addr_min.map(|min| (min, addr_max)),
        proto: proto_min.map(|min| (min, proto_max)),
        flags,
    })
}

fn compat(is_match: bool, attributes: &[DefaultNla]) -> Option<Expr> {
    let (mut name, mut revision, mut info) = (None, 0, Vec::new());
    for attribute in attributes {
        let value = nla_value(attribute);
        match attribute.kind() {
            NFTA_COMPAT_NAME => name = cstr(&value).map(str::to_string),
            NFTA_COMPAT_REV => revision = be_u32(&value)?,
            NFTA_COMPAT_INFO => info = value,
            _ => {}
        }
    }
    let name = name?;
    Some(if is_match {
        Expr::Match { name, revision, info }
    } else {
        Expr::Target { name, revision, info }
    })
}

/// Where a register's bytes start, in 4-byte slots (`NFT_REG_1` is slots
/// 0-3, `NFT_REG32_00` is slot 0, `NFT_REG32_15` slot 15); `None` for the
/// verdict register and numbers that name no register.
pub fn register_slot(register: u32) -> Option<usize> {
    match register {
        1..=4 => Some((register as usize - 1) * 4),
        8..=23 => Some(register as usize - 8),
        _ => None,
    }
}

/// Expressions that write no data register: a rule may have them between
/// a register's write and its use without changing what the register
/// holds. Every other expression not followed here (`ct`, `numgen`, `hash`,
/// `fib`, ...) may, so the registers are forgotten after it.
pub const REGISTER_NEUTRAL: [&str; 16] = [
    "counter",
    "limit",
    "log",
    "quota",
    "notrack",
    "dynset",
    "objref",
    "reject",
    "masq",
    "redir",
    "queue",
    "dup",
    "fwd",
    "connlimit",
    "last",
    "synproxy",
];

/// How many 4-byte slots the data registers have.
const SLOTS: usize = 16;

/// What the rule put into a register, as far as the reader follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Constant bytes (`immediate`).
    Const(Vec<u8>),
    /// A packet field (`payload load`, `meta load`), optionally masked.
    Field {
        /// Which field.
        field: Field,
        /// Bytes loaded.
        len: usize,
        /// The `bitwise` mask applied since (xor 0), if any.
        mask: Option<Vec<u8>>,
    },
    /// The data a map lookup found (one per element of the map).
    MapData {
        /// The map.
        set: String,
    },
}

/// A packet field an expression loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `payload` at a header base and byte offset.
    Payload {
        /// `NFT_PAYLOAD_*_HEADER`.
        base: u32,
        /// Byte offset.
        offset: u32,
    },
    /// `meta` key.
    Meta(u32),
}

/// The data registers of one rule's evaluation: which value sits where.
/// Writing a value clobbers every value it overlaps.
#[derive(Debug, Clone, Default)]
pub struct Registers {
    held: Vec<(usize, usize, Value)>,
}

impl Registers {
    /// `value`, `len` bytes long, written to `register`.
    pub fn write(&mut self, register: u32, len: usize, value: Value) {
        let Some(start) = register_slot(register) else { return };
        let end = (start + len.div_ceil(4).max(1)).min(SLOTS);
        self.held.retain(|(s, l, _)| *s + l.div_ceil(4).max(1) <= start || *s >= end);
        self.held.push((start, len, value));
    }

    /// The value covering `register`, and the byte offset of the register
    /// inside it.
    pub fn read(&self, register: u32) -> Option<(&Value, usize)> {
        let slot = register_slot(register)?;
        self.held.iter().find_map(|(start, len, value)| {
            (slot >= *start && slot < start + len.div_ceil(4).max(1))
                .then(|| (value, (slot - start) * 4))
        })
    }

    /// Forgets every value (an expression that may write any register).
    pub fn forget(&mut self) {
        self.held.clear();
    }

    /// Forgets `register`'s value (an expression wrote something not
    /// followed).
    pub fn clobber(&mut self, register: u32, len: usize) {
        let Some(start) = register_slot(register) else { return };
        let end = (start + len.div_ceil(4).max(1)).min(SLOTS);
        self.held.retain(|(s, l, _)| *s + l.div_ceil(4).max(1) <= start || *s >= end);
    }
}

/// `NFT_META_IIFNAME`, `NFT_META_OIFNAME`: 16-byte interface names.
const NFT_META_IFNAMES: [u32; 2] = [6, 7];

/// Follows what `expr` writes into the data registers (after whatever it
/// reads has been looked at). `map_data_len` gives the data length of a
/// map a `lookup` writes from.
pub fn follow(registers: &mut Registers, expr: &Expr, map_data_len: &dyn Fn(&str) -> usize) {
    match expr {
        Expr::Payload { base, offset, len, dreg } => registers.write(
            *dreg,
            *len as usize,
            Value::Field {
                field: Field::Payload { base: *base, offset: *offset },
                len: *len as usize,
                mask: None,
            },
        ),
        Expr::Meta { key, dreg } => {
            let len = if NFT_META_IFNAMES.contains(key) { 16 } else { 4 };
            registers.write(*dreg, len, Value::Field { field: Field::Meta(*key), len, mask: None })
        }
        Expr::Bitwise { sreg, dreg, mask, xor } => {
            let masked = match registers.read(*sreg) {
                Some((Value::Field { field, len, mask: None }, 0))
                    if xor.iter().all(|b| *b == 0) =>
                {
                    Some(Value::Field { field: *field, len: *len, mask: Some(mask.clone()) })
                }
                _ => None,
            };
            match masked {
                Some(value) => registers.write(*dreg, mask.len(), value),
                None => registers.clobber(*dreg, mask.len()),
            }
        }
        Expr::Immediate { dreg, data: Data::Value(bytes) } => {
            registers.write(*dreg, bytes.len(), Value::Const(bytes.clone()))
        }
        Expr::Lookup { set, dreg: Some(dreg), .. } if *dreg != 0 => {
            registers.write(*dreg, map_data_len(set), Value::MapData { set: set.clone() })
        }
        Expr::Cmp { .. }
        | Expr::Immediate { .. }
        | Expr::Lookup { .. }
        | Expr::Nat { .. }
        | Expr::Match { .. }
        | Expr::Target { .. } => {}
        Expr::Other(name) if REGISTER_NEUTRAL.contains(&name.as_str()) => {}
        Expr::Other(_) => registers.forget(),
    }
}
