//! Decoding nf_tables messages: the generation and sets with the crate's
//! types, rules and set elements walked here ([`walk`], kernel attribute
//! names `NFTA_*`; see the module doc of [`super`] for why).

use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_netfilter::nftables::{NfTablesMessage, SetAttribute, SetMessage};
use netlink_packet_netfilter::{NetfilterMessage, NetfilterMessageInner};

use super::{Data, Expr, NftElement, NftRule, NftSet, Verdict, NFNL_SUBSYS_NFTABLES};
use crate::netfilter::attributes::walk;
use crate::netfilter::NetfilterError;

/// `NFTA_RULE_CHAIN`: the chain a rule is in (string).
const NFTA_RULE_CHAIN: u16 = 2;

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

/// `NFTA_MATCH_NAME` / `NFTA_TARGET_NAME` (include/uapi/linux/netfilter/
/// nf_tables_compat.h): the xtables extension's name.
const NFTA_COMPAT_NAME: u16 = 1;
/// `NFTA_MATCH_REV` / `NFTA_TARGET_REV` (u32): its revision.
const NFTA_COMPAT_REV: u16 = 2;
/// `NFTA_MATCH_INFO` / `NFTA_TARGET_INFO`: its binary info struct.
const NFTA_COMPAT_INFO: u16 = 3;

/// `NFTNL_UDATA_RULE_COMMENT` / `NFTNL_UDATA_SET_ELEM_COMMENT` (libnftnl's
/// userdata TLVs, type 0 in both): a comment, NUL-terminated.
const UDATA_COMMENT: u8 = 0;

/// `nlmsg_type` of an nf_tables message.
pub fn message_type(message: u8) -> u16 {
    (u16::from(NFNL_SUBSYS_NFTABLES) << 8) | u16::from(message)
}

pub(super) fn unexpected(request: &'static str, message_type: u16) -> NetfilterError {
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

/// `NFTA_CHAIN_NAME`: a chain's name (string).
const NFTA_CHAIN_NAME: u16 = 3;

/// The name of a raw chain message (its attributes after the nfgenmsg
/// header); `None` if it has none or it is not UTF-8.
pub fn raw_chain_name(attributes: &[u8]) -> Option<&str> {
    walk(attributes).find(|(kind, _)| *kind == NFTA_CHAIN_NAME).and_then(|(_, v)| cstr(v))
}

/// A NUL-terminated (or unterminated) string.
pub(super) fn cstr(bytes: &[u8]) -> Option<&str> {
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

pub(super) fn set_from(message: &SetMessage) -> Result<NftSet, String> {
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
