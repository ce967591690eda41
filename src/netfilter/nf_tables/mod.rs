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
//! messages, the large ones, are walked here instead ([`walk`],
//! kernel attribute names `NFTA_*`): the crate's decoders for them format
//! the whole attribute buffer with `{:?}` for every nested attribute they
//! read (an eager `format!` in each error context), which made a
//! 2,000-Service rule dump take 1.5 s to decode (BENCHMARKS.md). What the
//! crate leaves raw anyway (`nat`, the xtables compat `match` and
//! `target`, userdata comments) is decoded here too. Unknown attributes and
//! expressions are skipped; nothing here panics on any input.

#[cfg(test)]
mod captures;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_netfilter::nftables::{
    ChainAttribute, ChainMessage, GenAttribute, GenMessage, NfTablesMessage, RuleAttribute,
    RuleMessage, SetAttribute, SetElementList, SetElementMessage, SetMessage,
    Verdict as CrateVerdict,
};
use netlink_packet_netfilter::{NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily};

use crate::netfilter::attributes::walk;
use crate::netfilter::{DumpEvent, NetfilterError, NfnetlinkSocket, DUMP_DEADLINE};

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

/// A `NETLINK_NETFILTER` socket asking nf_tables, in the network namespace
/// of the thread that opened it, with one deadline for everything it is
/// asked.
#[derive(Debug)]
pub struct Reader {
    socket: NfnetlinkSocket,
    /// When every dump must be over.
    deadline: Instant,
    /// The whole budget, for the error message.
    budget: Duration,
}

impl Reader {
    /// Opens a socket in the calling thread's network namespace; all it
    /// reads must be read within the listing tools' deadline
    /// ([`crate::process::listing_deadline`], 10 s unless
    /// `CTDIAG_LISTING_DEADLINE_MS` says otherwise). Why one deadline: a
    /// reading is many dumps (one per map in nftables mode), and each
    /// dump's own deadline alone would not bound their sum.
    pub fn open() -> Result<Self, NftError> {
        Self::with_budget(crate::process::listing_deadline())
    }

    /// [`Self::open`] with another budget.
    pub fn with_budget(budget: Duration) -> Result<Self, NftError> {
        Ok(Reader { socket: NfnetlinkSocket::open()?, deadline: Instant::now() + budget, budget })
    }

    /// What is left of the deadline for the next dump (at most
    /// [`DUMP_DEADLINE`]); an error once it has passed.
    fn time_left(&self, request: &'static str) -> Result<Duration, NftError> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(NftError::Netlink(NetfilterError::Deadline {
                request,
                after: self.budget,
            }));
        }
        Ok(left.min(DUMP_DEADLINE))
    }
}

/// Where the readers of kube-proxy's rules get nf_tables objects: the
/// kernel ([`Reader`]), or objects decoded before ([`Recorded`]: captured
/// bytes in tests, arbitrary ones in property tests).
pub trait Source {
    /// The ruleset's generation: it changes with every committed
    /// transaction.
    fn generation(&mut self) -> Result<u32, NftError>;
    /// Whether chain `chain` exists in table `table` of `family` (a missing
    /// table answers the same as a missing chain: no).
    fn chain_exists(&mut self, family: Family, table: &str, chain: &str) -> Result<bool, NftError>;
    /// The sets and maps of table `table`; `None` when there is no such
    /// table.
    fn sets(&mut self, family: Family, table: &str) -> Result<Option<Vec<NftSet>>, NftError>;
    /// The elements of set `set` of table `table`.
    fn elements(
        &mut self,
        family: Family,
        table: &str,
        set: &str,
    ) -> Result<Vec<NftElement>, NftError>;
    /// The rules of table `table` (of its chain `chain` only, when given),
    /// in the chains `keep` accepts, in the kernel's order.
    fn rules(
        &mut self,
        family: Family,
        table: &str,
        chain: Option<&str>,
        keep: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<NftRule>, NftError>;
}

/// Runs `read` (several dumps) until the ruleset generation is the same
/// before and after it, at most [`SNAPSHOT_ATTEMPTS`] times: what it
/// returns then is one consistent state of the rules, never a mix of two.
pub fn consistent<S: Source + ?Sized, T>(
    source: &mut S,
    mut read: impl FnMut(&mut S) -> Result<T, NftError>,
) -> Result<T, NftError> {
    for _ in 0..SNAPSHOT_ATTEMPTS {
        let before = source.generation()?;
        let value = read(source)?;
        if source.generation()? == before {
            return Ok(value);
        }
    }
    Err(NftError::Changing { attempts: SNAPSHOT_ATTEMPTS })
}

impl Source for Reader {
    /// The ruleset's generation: it changes with every committed
    /// transaction.
    fn generation(&mut self) -> Result<u32, NftError> {
        self.time_left("nf_tables generation")?;
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
    fn chain_exists(&mut self, family: Family, table: &str, chain: &str) -> Result<bool, NftError> {
        self.time_left("nf_tables chain")?;
        let message = NfTablesMessage::GetChain(ChainMessage {
            attributes: vec![
                ChainAttribute::Table(table.into()),
                ChainAttribute::Name(chain.into()),
            ],
        });
        match self.socket.request("nf_tables chain", family.proto(), message) {
            Ok(_) => Ok(true),
            Err(NetfilterError::Kernel { errno: libc::ENOENT, .. }) => Ok(false),
            Err(other) => Err(other.into()),
        }
    }

    /// The sets and maps of table `table`; `None` when there is no such
    /// table.
    fn sets(&mut self, family: Family, table: &str) -> Result<Option<Vec<NftSet>>, NftError> {
        let message = NfTablesMessage::GetSet(SetMessage {
            attributes: vec![SetAttribute::Table(table.into())],
        });
        let mut sets = Vec::new();
        let left = self.time_left("nf_tables set dump")?;
        let result =
            self.socket.dump_each("nf_tables set dump", family.proto(), &message, left, |event| {
                match event {
                    DumpEvent::Restart { .. } => sets.clear(),
                    DumpEvent::Message(raw) => {
                        if raw.message_type != message_type(NFT_MSG_NEWSET) {
                            return Err(unexpected("nf_tables set dump", raw.message_type));
                        }
                        let message = decode("nf_tables set dump", raw.bytes)?;
                        if let NfTablesMessage::NewSet(set) = message {
                            sets.push(set_from(&set).map_err(|detail| {
                                NetfilterError::Malformed { request: "nf_tables set dump", detail }
                            })?);
                        }
                    }
                }
                Ok(())
            });
        match result {
            Ok(_) => Ok(Some(sets)),
            Err(NetfilterError::Kernel { errno: libc::ENOENT, .. }) => Ok(None),
            Err(other) => Err(other.into()),
        }
    }

    /// The elements of set `set` of table `table`.
    fn elements(
        &mut self,
        family: Family,
        table: &str,
        set: &str,
    ) -> Result<Vec<NftElement>, NftError> {
        let message = NfTablesMessage::GetSetElement(SetElementMessage {
            attributes: vec![SetElementList::Table(table.into()), SetElementList::Set(set.into())],
        });
        let mut elements = Vec::new();
        let left = self.time_left("nf_tables set element dump")?;
        let result = self.socket.dump_each(
            "nf_tables set element dump",
            family.proto(),
            &message,
            left,
            |event| {
                match event {
                    DumpEvent::Restart { .. } => elements.clear(),
                    DumpEvent::Message(raw) => {
                        if raw.message_type != message_type(NFT_MSG_NEWSETELEM) {
                            return Err(unexpected("nf_tables set element dump", raw.message_type));
                        }
                        decode_elements(raw.attributes, &mut elements).map_err(|detail| {
                            NetfilterError::Malformed {
                                request: "nf_tables set element dump",
                                detail: format!("set {set}: {detail}"),
                            }
                        })?;
                    }
                }
                Ok(())
            },
        );
        match result {
            Ok(_) => Ok(elements),
            // The set went away since the set dump: the generation moved,
            // and `consistent` reads again.
            Err(NetfilterError::Kernel { errno: libc::ENOENT, .. }) => Ok(Vec::new()),
            Err(other) => Err(other.into()),
        }
    }

    /// The rules of table `table` (of its chain `chain` only, when given:
    /// the kernel filters), in the chains `keep` accepts, in the kernel's
    /// order. Why `keep`: the chain is read from the raw message first, so
    /// rules of chains nobody looks at (Docker's, a CNI's) are never
    /// decoded.
    fn rules(
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
        let left = self.time_left("nf_tables rule dump")?;
        let result = self.socket.dump_each(
            "nf_tables rule dump",
            family.proto(),
            &message,
            left,
            rule_consumer(&mut rules, keep),
        );
        match result {
            Ok(_) => Ok(rules),
            // The chain went away since it was looked up: the generation
            // moved, and `consistent` reads again.
            Err(NetfilterError::Kernel { errno: libc::ENOENT, .. }) if chain.is_some() => {
                Ok(Vec::new())
            }
            Err(other) => Err(other.into()),
        }
    }
}

/// What a rule dump's events do: each `NFT_MSG_NEWRULE` of a kept chain is
/// decoded into `rules`; a restart (`NLM_F_DUMP_INTR`, an overrun) empties
/// it, so a restarted dump never leaves rules of the abandoned attempt.
pub(crate) fn rule_consumer<'a>(
    rules: &'a mut Vec<NftRule>,
    keep: &'a dyn Fn(&str) -> bool,
) -> impl FnMut(DumpEvent<'_>) -> Result<(), NetfilterError> + 'a {
    move |event| {
        match event {
            DumpEvent::Restart { .. } => rules.clear(),
            DumpEvent::Message(raw) => {
                if raw.message_type != message_type(NFT_MSG_NEWRULE) {
                    return Err(unexpected("nf_tables rule dump", raw.message_type));
                }
                if raw_rule_chain(raw.attributes).is_some_and(|chain| !keep(chain)) {
                    return Ok(());
                }
                rules.push(decode_rule(raw.attributes).map_err(|detail| {
                    NetfilterError::Malformed { request: "nf_tables rule dump", detail }
                })?);
            }
        }
        Ok(())
    }
}

/// nf_tables objects decoded before, served as a [`Source`]: the captures
/// of the tests, or arbitrary objects in property tests. A table exists
/// when it has an entry in `sets`.
#[derive(Debug, Clone, Default)]
pub struct Recorded {
    /// What [`Source::generation`] answers.
    pub generation: u32,
    /// The chains that exist: (family, table, chain).
    pub chains: Vec<(Family, String, String)>,
    /// The sets per (family, table).
    pub sets: HashMap<(Family, String), Vec<NftSet>>,
    /// The elements per (family, table, set).
    pub elements: HashMap<(Family, String, String), Vec<NftElement>>,
    /// The rules per (family, table), in order.
    pub rules: HashMap<(Family, String), Vec<NftRule>>,
}

impl Source for Recorded {
    fn generation(&mut self) -> Result<u32, NftError> {
        Ok(self.generation)
    }

    fn chain_exists(&mut self, family: Family, table: &str, chain: &str) -> Result<bool, NftError> {
        Ok(self.chains.iter().any(|(f, t, c)| *f == family && t == table && c == chain))
    }

    fn sets(&mut self, family: Family, table: &str) -> Result<Option<Vec<NftSet>>, NftError> {
        Ok(self.sets.get(&(family, table.to_string())).cloned())
    }

    fn elements(
        &mut self,
        family: Family,
        table: &str,
        set: &str,
    ) -> Result<Vec<NftElement>, NftError> {
        let key = (family, table.to_string(), set.to_string());
        Ok(self.elements.get(&key).cloned().unwrap_or_default())
    }

    fn rules(
        &mut self,
        family: Family,
        table: &str,
        chain: Option<&str>,
        keep: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<NftRule>, NftError> {
        let all = self.rules.get(&(family, table.to_string()));
        Ok(all
            .into_iter()
            .flatten()
            .filter(|r| chain.is_none_or(|c| r.chain == c) && keep(&r.chain))
            .cloned()
            .collect())
    }
}

/// `nlmsg_type` of an nf_tables message.
pub fn message_type(message: u8) -> u16 {
    (u16::from(NFNL_SUBSYS_NFTABLES) << 8) | u16::from(message)
}

fn unexpected(request: &'static str, message_type: u16) -> NetfilterError {
    NetfilterError::Malformed {
        request,
        detail: format!("message type {message_type:#06x} in the dump"),
    }
}

/// Decodes one whole netlink message as an nf_tables message.
pub fn decode(request: &'static str, bytes: &[u8]) -> Result<NfTablesMessage, NetfilterError> {
    let malformed = |detail: String| NetfilterError::Malformed { request, detail };
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
pub fn raw_rule_chain(attributes: &[u8]) -> Option<&str> {
    walk(attributes).find(|(kind, _)| *kind == NFTA_RULE_CHAIN).and_then(|(_, v)| cstr(v))
}

/// A NUL-terminated (or unterminated) string.
fn cstr(bytes: &[u8]) -> Option<&str> {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    std::str::from_utf8(bytes.get(..end)?).ok()
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

/// `NFTA_DATA_VALUE` (include/uapi/linux/netfilter/nf_tables.h).
const NFTA_DATA_VALUE: u16 = 1;
/// `NFTA_DATA_VERDICT` (nested).
const NFTA_DATA_VERDICT: u16 = 2;
/// `NFTA_VERDICT_CODE` (u32).
const NFTA_VERDICT_CODE: u16 = 1;
/// `NFTA_VERDICT_CHAIN` (string).
const NFTA_VERDICT_CHAIN: u16 = 2;
/// `NFTA_LIST_ELEM`: one element of a nested list.
const NFTA_LIST_ELEM: u16 = 1;

/// A `struct nft_data` attribute (`NFTA_DATA_VALUE` or
/// `NFTA_DATA_VERDICT`).
fn data(nested: &[u8]) -> Option<Data> {
    for (kind, value) in walk(nested) {
        match kind {
            NFTA_DATA_VALUE => return Some(Data::Value(value.to_vec())),
            NFTA_DATA_VERDICT => {
                let (mut code, mut chain) = (None, None);
                for (kind, value) in walk(value) {
                    match kind {
                        NFTA_VERDICT_CODE => code = Some(be_u32(value)?),
                        NFTA_VERDICT_CHAIN => chain = Some(cstr(value)?.to_string()),
                        _ => {}
                    }
                }
                return Verdict::from_code(code?, chain).map(Data::Verdict);
            }
            _ => {}
        }
    }
    None
}

/// `NFTA_SET_ELEM_LIST_ELEMENTS`.
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
/// `NFTA_SET_ELEM_KEY` (nested data).
const NFTA_SET_ELEM_KEY: u16 = 1;
/// `NFTA_SET_ELEM_DATA` (nested data).
const NFTA_SET_ELEM_DATA: u16 = 2;
/// `NFTA_SET_ELEM_FLAGS` (u32).
const NFTA_SET_ELEM_FLAGS: u16 = 3;
/// `NFTA_SET_ELEM_USERDATA` (libnftnl TLVs).
const NFTA_SET_ELEM_USERDATA: u16 = 6;

/// The elements of one `NFT_MSG_NEWSETELEM` message (its attributes after
/// the nfgenmsg header).
pub fn decode_elements(attributes: &[u8], out: &mut Vec<NftElement>) -> Result<(), String> {
    for (kind, list) in walk(attributes) {
        if kind != NFTA_SET_ELEM_LIST_ELEMENTS {
            continue;
        }
        for (kind, element) in walk(list) {
            if kind != NFTA_LIST_ELEM {
                continue;
            }
            let mut parsed = NftElement { key: Vec::new(), data: None, flags: 0, comment: None };
            let mut has_key = false;
            for (kind, value) in walk(element) {
                match kind {
                    NFTA_SET_ELEM_KEY => match data(value) {
                        Some(Data::Value(key)) => {
                            parsed.key = key;
                            has_key = true;
                        }
                        _ => return Err("an element key that is not a value".into()),
                    },
                    NFTA_SET_ELEM_DATA => {
                        parsed.data = Some(
                            data(value)
                                .ok_or("an element whose data is neither value nor verdict")?,
                        )
                    }
                    NFTA_SET_ELEM_FLAGS => {
                        parsed.flags = be_u32(value).ok_or("short element flags")?
                    }
                    NFTA_SET_ELEM_USERDATA => parsed.comment = udata_comment(value),
                    _ => {}
                }
            }
            if !has_key {
                return Err("an element without a key".into());
            }
            out.push(parsed);
        }
    }
    Ok(())
}

/// `NFTA_RULE_HANDLE` (u64).
const NFTA_RULE_HANDLE: u16 = 3;
/// `NFTA_RULE_EXPRESSIONS` (nested list).
const NFTA_RULE_EXPRESSIONS: u16 = 4;
/// `NFTA_RULE_USERDATA` (libnftnl TLVs).
const NFTA_RULE_USERDATA: u16 = 7;
/// `NFTA_EXPR_NAME` (string).
const NFTA_EXPR_NAME: u16 = 1;
/// `NFTA_EXPR_DATA` (nested, per expression type).
const NFTA_EXPR_DATA: u16 = 2;

/// One `NFT_MSG_NEWRULE` message (its attributes after the nfgenmsg
/// header).
pub fn decode_rule(attributes: &[u8]) -> Result<NftRule, String> {
    let mut rule = NftRule { chain: String::new(), handle: 0, exprs: Vec::new(), comment: None };
    for (kind, value) in walk(attributes) {
        match kind {
            NFTA_RULE_CHAIN => {
                rule.chain = cstr(value).ok_or("a chain name that is not UTF-8")?.to_string()
            }
            NFTA_RULE_HANDLE => {
                rule.handle = value
                    .get(..8)
                    .and_then(|b| b.try_into().ok())
                    .map(u64::from_be_bytes)
                    .ok_or("a short rule handle")?
            }
            NFTA_RULE_USERDATA => rule.comment = udata_comment(value),
            NFTA_RULE_EXPRESSIONS => {
                for (kind, expression) in walk(value) {
                    if kind == NFTA_LIST_ELEM {
                        rule.exprs.push(expression_of(expression));
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

/// The big-endian u32 attributes `wanted` of `nested`, each `None` when
/// absent or short.
fn u32_attributes<const N: usize>(nested: &[u8], wanted: [u16; N]) -> [Option<u32>; N] {
    let mut out = [None; N];
    for (kind, value) in walk(nested) {
        if let Some(i) = wanted.iter().position(|w| *w == kind) {
            out[i] = be_u32(value);
        }
    }
    out
}

/// One expression from its `NFTA_EXPR_NAME` and `NFTA_EXPR_DATA`; one it
/// does not follow (or cannot read) is [`Expr::Other`] with its name.
fn expression_of(attributes: &[u8]) -> Expr {
    let mut name = "";
    let mut data_of = None;
    for (kind, value) in walk(attributes) {
        match kind {
            NFTA_EXPR_NAME => name = cstr(value).unwrap_or(""),
            NFTA_EXPR_DATA => data_of = Some(value),
            _ => {}
        }
    }
    let data_of = data_of.unwrap_or(&[]);
    // The kernel's attribute numbers of each expression (NFTA_PAYLOAD_*,
    // NFTA_META_*, ... in nf_tables.h), as `(type, u32)` reads.
    let nested = |wanted: u16| walk(data_of).find(|(k, _)| *k == wanted).map(|(_, v)| v);
    let decoded = match name {
        // NFTA_PAYLOAD_DREG 1, BASE 2, OFFSET 3, LEN 4, SREG 5 (a write).
        "payload" => match u32_attributes(data_of, [1, 2, 3, 4, 5]) {
            [Some(dreg), Some(base), Some(offset), Some(len), None] => {
                Some(Expr::Payload { base, offset, len, dreg })
            }
            _ => None,
        },
        // NFTA_META_DREG 1, KEY 2, SREG 3 (a write).
        "meta" => match u32_attributes(data_of, [1, 2, 3]) {
            [Some(dreg), Some(key), None] => Some(Expr::Meta { key, dreg }),
            _ => None,
        },
        // NFTA_CMP_SREG 1, OP 2, DATA 3.
        "cmp" => match (u32_attributes(data_of, [1, 2]), nested(3).and_then(data)) {
            ([Some(sreg), Some(op)], Some(Data::Value(data))) => Some(Expr::Cmp { sreg, op, data }),
            _ => None,
        },
        // NFTA_BITWISE_SREG 1, DREG 2, MASK 4, XOR 5, OP 6 (0: mask and xor).
        "bitwise" => match (
            u32_attributes(data_of, [1, 2, 6]),
            nested(4).and_then(data),
            nested(5).and_then(data),
        ) {
            (
                [Some(sreg), Some(dreg), None | Some(0)],
                Some(Data::Value(mask)),
                Some(Data::Value(xor)),
            ) => Some(Expr::Bitwise { sreg, dreg, mask, xor }),
            _ => None,
        },
        // NFTA_IMMEDIATE_DREG 1, DATA 2.
        "immediate" => match (u32_attributes(data_of, [1]), nested(2).and_then(data)) {
            ([Some(dreg)], Some(data)) => Some(Expr::Immediate { dreg, data }),
            _ => None,
        },
        // NFTA_LOOKUP_SET 1, SREG 2, DREG 3, FLAGS 5.
        "lookup" => match (nested(1).and_then(cstr), u32_attributes(data_of, [2, 3, 5])) {
            (Some(set), [Some(sreg), dreg, flags]) => {
                Some(Expr::Lookup { set: set.to_string(), sreg, dreg, flags: flags.unwrap_or(0) })
            }
            _ => None,
        },
        "nat" => match u32_attributes(
            data_of,
            [
                NFTA_NAT_TYPE,
                NFTA_NAT_FAMILY,
                NFTA_NAT_REG_ADDR_MIN,
                NFTA_NAT_REG_ADDR_MAX,
                NFTA_NAT_REG_PROTO_MIN,
                NFTA_NAT_REG_PROTO_MAX,
                NFTA_NAT_FLAGS,
            ],
        ) {
            [Some(kind), Some(family), addr_min, addr_max, proto_min, proto_max, flags] => {
                Some(Expr::Nat {
                    kind,
                    family,
                    addr: addr_min.map(|min| (min, addr_max)),
                    proto: proto_min.map(|min| (min, proto_max)),
                    flags: flags.unwrap_or(0),
                })
            }
            _ => None,
        },
        "match" | "target" => {
            let is_match = name == "match";
            let compat_name = nested(NFTA_COMPAT_NAME).and_then(cstr);
            let [revision] = u32_attributes(data_of, [NFTA_COMPAT_REV]);
            let revision = revision.unwrap_or(0);
            let info = nested(NFTA_COMPAT_INFO).unwrap_or(&[]).to_vec();
            compat_name.map(|n| {
                let name = n.to_string();
                if is_match {
                    Expr::Match { name, revision, info }
                } else {
                    Expr::Target { name, revision, info }
                }
            })
        }
        _ => None,
    };
    decoded.unwrap_or_else(|| Expr::Other(name.to_string()))
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
