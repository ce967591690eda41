//! Conntrack entries: what a ctnetlink dump message says about one entry
//! ([`Entry`], decoded without allocating), and the requests of the stale
//! scan: the kernel-side dump filter (`CTA_FILTER`) and the exact delete.
//!
//! Requests are built from `netlink-packet-netfilter`'s types; the constants
//! it does not export are added here under their kernel names
//! (include/uapi/linux/netfilter/nfnetlink_conntrack.h,
//! net/netfilter/nf_internals.h). Why entries are not decoded with the
//! crate's `ConntrackAttribute`: it allocates a vector per nested attribute
//! (about fifteen per entry) and keeps none of id, zone or use; a scan of a
//! 250,000-entry table decodes every entry, so this walks the attributes in
//! place with netlink-packet-core's `NlasIterator` instead. A test checks
//! both decoders agree on real captures.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use netlink_packet_core::{DefaultNla, Emitable, NlaBuffer, NlasIterator, NLA_F_NESTED};
use netlink_packet_netfilter::conntrack::{
    ConntrackAttribute, ConntrackMessage, IPTuple, ProtoTuple, Protocol, Status, Tuple,
};
use netlink_packet_netfilter::NetfilterProtoFamily;

/// `CTA_TUPLE_ORIG`: the original-direction tuple (nested).
pub const CTA_TUPLE_ORIG: u16 = 1;
/// `CTA_TUPLE_REPLY`: the reply-direction tuple (nested).
pub const CTA_TUPLE_REPLY: u16 = 2;
/// `CTA_STATUS`: `IPS_*` bits, big-endian u32.
pub const CTA_STATUS: u16 = 3;
/// `CTA_TIMEOUT`: seconds to expiry, big-endian u32.
pub const CTA_TIMEOUT: u16 = 7;
/// `CTA_MARK`: the connection mark, big-endian u32.
pub const CTA_MARK: u16 = 8;
/// `CTA_USE`: the reference count, big-endian u32.
pub const CTA_USE: u16 = 11;
/// `CTA_ID`: the entry's id, big-endian u32 (a keyed hash of the entry's
/// address and tuples: an entry recreated with other tuples gets another).
pub const CTA_ID: u16 = 12;
/// `CTA_ZONE`: the zone of both directions, big-endian u16 (absent for
/// zone 0).
pub const CTA_ZONE: u16 = 18;
/// `CTA_FILTER`: the kernel-side dump filter (nested, Linux >= 5.8).
pub const CTA_FILTER: u16 = 25;

/// `CTA_TUPLE_IP`: the addresses of a tuple (nested).
pub const CTA_TUPLE_IP: u16 = 1;
/// `CTA_TUPLE_PROTO`: the protocol and ports of a tuple (nested).
pub const CTA_TUPLE_PROTO: u16 = 2;
/// `CTA_TUPLE_ZONE`: a zone of one direction only, big-endian u16.
pub const CTA_TUPLE_ZONE: u16 = 3;

/// `CTA_IP_V4_SRC`: 4 bytes.
pub const CTA_IP_V4_SRC: u16 = 1;
/// `CTA_IP_V4_DST`: 4 bytes.
pub const CTA_IP_V4_DST: u16 = 2;
/// `CTA_IP_V6_SRC`: 16 bytes.
pub const CTA_IP_V6_SRC: u16 = 3;
/// `CTA_IP_V6_DST`: 16 bytes.
pub const CTA_IP_V6_DST: u16 = 4;

/// `CTA_PROTO_NUM`: the IP protocol number, u8.
pub const CTA_PROTO_NUM: u16 = 1;
/// `CTA_PROTO_SRC_PORT`: big-endian u16.
pub const CTA_PROTO_SRC_PORT: u16 = 2;
/// `CTA_PROTO_DST_PORT`: big-endian u16.
pub const CTA_PROTO_DST_PORT: u16 = 3;

/// `CTA_FILTER_ORIG_FLAGS`: which original-tuple fields must match, u32 in
/// host order (`NLA_U32`).
pub const CTA_FILTER_ORIG_FLAGS: u16 = 1;
/// `CTA_FILTER_REPLY_FLAGS`: the same for the reply tuple.
pub const CTA_FILTER_REPLY_FLAGS: u16 = 2;
/// `CTA_FILTER_FLAG(CTA_IP_SRC)`.
pub const CTA_FILTER_FLAG_CTA_IP_SRC: u32 = 1 << 0;
/// `CTA_FILTER_FLAG(CTA_IP_DST)`.
pub const CTA_FILTER_FLAG_CTA_IP_DST: u32 = 1 << 1;
/// `CTA_FILTER_FLAG(CTA_TUPLE_ZONE)`.
pub const CTA_FILTER_FLAG_CTA_TUPLE_ZONE: u32 = 1 << 2;
/// `CTA_FILTER_FLAG(CTA_PROTO_NUM)`.
pub const CTA_FILTER_FLAG_CTA_PROTO_NUM: u32 = 1 << 3;
/// `CTA_FILTER_FLAG(CTA_PROTO_SRC_PORT)`.
pub const CTA_FILTER_FLAG_CTA_PROTO_SRC_PORT: u32 = 1 << 4;
/// `CTA_FILTER_FLAG(CTA_PROTO_DST_PORT)`.
pub const CTA_FILTER_FLAG_CTA_PROTO_DST_PORT: u32 = 1 << 5;

/// `IPPROTO_UDP`.
pub const IPPROTO_UDP: u8 = 17;
/// `AF_INET` as nfgenmsg carries it.
pub const AF_INET: u8 = 2;
/// `AF_INET6` as nfgenmsg carries it.
pub const AF_INET6: u8 = 10;

/// One direction of an entry: protocol, addresses and ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EntryTuple {
    /// IP protocol number (17 for UDP).
    pub protocol: u8,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port (0 for protocols without ports).
    pub src_port: u16,
    /// Destination port (0 for protocols without ports).
    pub dst_port: u16,
}

impl EntryTuple {
    /// `src:src_port`.
    pub fn source(&self) -> SocketAddr {
        SocketAddr::new(self.src, self.src_port)
    }

    /// `dst:dst_port`.
    pub fn destination(&self) -> SocketAddr {
        SocketAddr::new(self.dst, self.dst_port)
    }
}

/// Where an entry's zone was given, which decides how a delete names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ZoneScope {
    /// No zone: zone 0.
    Default,
    /// `CTA_ZONE`: both directions.
    Both,
    /// `CTA_TUPLE_ZONE` in the original tuple.
    Original,
    /// `CTA_TUPLE_ZONE` in the reply tuple only (the original direction is
    /// in zone 0).
    Reply,
}

/// One conntrack entry as a dump reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Entry {
    /// `AF_INET` or `AF_INET6` (nfgenmsg).
    pub family: u8,
    /// The original direction: the client's packet as it arrived.
    pub orig: EntryTuple,
    /// The reply direction: its source is the DNAT target.
    pub reply: EntryTuple,
    /// `IPS_*` status bits.
    pub status: u32,
    /// Seconds to expiry, when sent.
    pub timeout: Option<u32>,
    /// Connection mark, when sent (kernels with CONFIG_NF_CONNTRACK_MARK).
    pub mark: Option<u32>,
    /// The zone id (0 when none was sent).
    pub zone: u16,
    /// Where the zone was given.
    pub zone_scope: ZoneScope,
    /// The kernel's id for the entry, when sent.
    pub id: Option<u32>,
}

impl Entry {
    /// The state as `conntrack -L` shows it: `ASSURED`, `UNREPLIED`, or
    /// `SEEN_REPLY` for an entry that saw a reply but is not assured yet
    /// (which `conntrack -L` prints without a mark).
    pub fn state(&self) -> &'static str {
        let status = Status::from_bits_retain(self.status);
        if status.contains(Status::Assured) {
            "ASSURED"
        } else if status.contains(Status::SeenReply) {
            "SEEN_REPLY"
        } else {
            "UNREPLIED"
        }
    }
}

/// Why a dump message did not decode into an [`Entry`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryError(pub String);

impl fmt::Display for EntryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn bad(what: impl Into<String>) -> EntryError {
    EntryError(what.into())
}

fn be16(value: &[u8], name: &str) -> Result<u16, EntryError> {
    let bytes: [u8; 2] = value
        .get(..2)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| bad(format!("{name} is {} bytes, not 2", value.len())))?;
    Ok(u16::from_be_bytes(bytes))
}

fn be32(value: &[u8], name: &str) -> Result<u32, EntryError> {
    let bytes: [u8; 4] = value
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| bad(format!("{name} is {} bytes, not 4", value.len())))?;
    Ok(u32::from_be_bytes(bytes))
}

fn address(value: &[u8], family: u8, name: &str) -> Result<IpAddr, EntryError> {
    match (family, value.len()) {
        (AF_INET, 4) => Ok(IpAddr::V4(Ipv4Addr::new(value[0], value[1], value[2], value[3]))),
        (AF_INET6, 16) => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(value);
            Ok(IpAddr::V6(Ipv6Addr::from(octets)))
        }
        (_, length) => Err(bad(format!("{name}: {length} bytes for address family {family}"))),
    }
}

/// The attributes of `value`, stopping at the first malformed one.
fn attributes(value: &[u8]) -> impl Iterator<Item = Result<NlaBuffer<&[u8]>, EntryError>> {
    NlasIterator::new(value).map(|nla| nla.map_err(|e| bad(format!("bad attribute: {e}"))))
}

/// Decodes a tuple (`CTA_TUPLE_ORIG` / `CTA_TUPLE_REPLY` value) and the
/// direction's zone, if one is given.
fn decode_tuple(
    value: &[u8],
    family: u8,
    direction: &str,
) -> Result<(EntryTuple, Option<u16>), EntryError> {
    let (mut src, mut dst, mut protocol) = (None, None, None);
    let (mut src_port, mut dst_port, mut zone) = (None, None, None);
    for nla in attributes(value) {
        let nla = nla?;
        match nla.kind() {
            CTA_TUPLE_IP => {
                for ip in attributes(nla.value()) {
                    let ip = ip?;
                    match ip.kind() {
                        CTA_IP_V4_SRC | CTA_IP_V6_SRC => {
                            src = Some(address(ip.value(), family, "CTA_IP_*_SRC")?)
                        }
                        CTA_IP_V4_DST | CTA_IP_V6_DST => {
                            dst = Some(address(ip.value(), family, "CTA_IP_*_DST")?)
                        }
                        _ => {}
                    }
                }
            }
            CTA_TUPLE_PROTO => {
                for proto in attributes(nla.value()) {
                    let proto = proto?;
                    match proto.kind() {
                        CTA_PROTO_NUM => {
                            protocol = Some(
                                *proto
                                    .value()
                                    .first()
                                    .ok_or_else(|| bad("CTA_PROTO_NUM is empty"))?,
                            )
                        }
                        CTA_PROTO_SRC_PORT => {
                            src_port = Some(be16(proto.value(), "CTA_PROTO_SRC_PORT")?)
                        }
                        CTA_PROTO_DST_PORT => {
                            dst_port = Some(be16(proto.value(), "CTA_PROTO_DST_PORT")?)
                        }
                        _ => {}
                    }
                }
            }
            CTA_TUPLE_ZONE => zone = Some(be16(nla.value(), "CTA_TUPLE_ZONE")?),
            _ => {}
        }
    }
    let missing = |what: &str| bad(format!("{direction} tuple without {what}"));
    let protocol = protocol.ok_or_else(|| missing("CTA_PROTO_NUM"))?;
    let tuple = EntryTuple {
        protocol,
        src: src.ok_or_else(|| missing("a source address"))?,
        dst: dst.ok_or_else(|| missing("a destination address"))?,
        src_port: src_port.unwrap_or(0),
        dst_port: dst_port.unwrap_or(0),
    };
    Ok((tuple, zone))
}

/// Decodes the attributes of one dump message (after nfgenmsg) of address
/// family `family`. Unknown attributes are skipped; a missing tuple, a
/// wrong length or a truncated attribute is an [`EntryError`]. Never
/// panics, and allocates only to describe an error.
pub fn decode_entry(family: u8, attrs: &[u8]) -> Result<Entry, EntryError> {
    if family != AF_INET && family != AF_INET6 {
        return Err(bad(format!("address family {family} is neither AF_INET nor AF_INET6")));
    }
    let (mut orig, mut reply) = (None, None);
    let (mut status, mut timeout, mut mark, mut id, mut zone) = (None, None, None, None, None);
    for nla in attributes(attrs) {
        let nla = nla?;
        match nla.kind() {
            CTA_TUPLE_ORIG => orig = Some(decode_tuple(nla.value(), family, "original")?),
            CTA_TUPLE_REPLY => reply = Some(decode_tuple(nla.value(), family, "reply")?),
            CTA_STATUS => status = Some(be32(nla.value(), "CTA_STATUS")?),
            CTA_TIMEOUT => timeout = Some(be32(nla.value(), "CTA_TIMEOUT")?),
            CTA_MARK => mark = Some(be32(nla.value(), "CTA_MARK")?),
            CTA_ID => id = Some(be32(nla.value(), "CTA_ID")?),
            CTA_ZONE => zone = Some(be16(nla.value(), "CTA_ZONE")?),
            _ => {}
        }
    }
    let (orig, orig_zone) = orig.ok_or_else(|| bad("no CTA_TUPLE_ORIG"))?;
    let (reply, reply_zone) = reply.ok_or_else(|| bad("no CTA_TUPLE_REPLY"))?;
    let (zone, zone_scope) = match (zone, orig_zone, reply_zone) {
        (Some(zone), _, _) => (zone, ZoneScope::Both),
        (None, Some(zone), _) => (zone, ZoneScope::Original),
        (None, None, Some(zone)) => (zone, ZoneScope::Reply),
        (None, None, None) => (0, ZoneScope::Default),
    };
    Ok(Entry {
        family,
        orig,
        reply,
        status: status.ok_or_else(|| bad("no CTA_STATUS"))?,
        timeout,
        mark,
        zone,
        zone_scope,
        id,
    })
}

/// What a dump asks the kernel to send: one address family, and with
/// `CTA_FILTER` only entries whose original tuple has this protocol and,
/// when given, this destination address and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DumpFilter {
    /// `AF_INET` or `AF_INET6`.
    pub family: u8,
    /// IP protocol number.
    pub protocol: u8,
    /// Original destination address.
    pub dst: Option<IpAddr>,
    /// Original destination port.
    pub dst_port: Option<u16>,
}

impl DumpFilter {
    /// Whether `entry` is one the filter asks for (the userspace check that
    /// always runs, whether or not the kernel filtered).
    pub fn matches(&self, entry: &Entry) -> bool {
        entry.family == self.family
            && entry.orig.protocol == self.protocol
            && self.dst.is_none_or(|dst| entry.orig.dst == dst)
            && self.dst_port.is_none_or(|port| entry.orig.dst_port == port)
    }

    /// The nfgenmsg family.
    pub fn netfilter_family(&self) -> NetfilterProtoFamily {
        family_of(self.family)
    }

    /// The `IPCTNL_MSG_CT_GET` dump request with `CTA_TUPLE_ORIG` holding
    /// the fields to match and `CTA_FILTER { CTA_FILTER_ORIG_FLAGS }` naming
    /// them. Layout from net/netfilter/nf_conntrack_netlink.c
    /// (`ctnetlink_alloc_filter`, `ctnetlink_parse_tuple_filter`): a flag
    /// without its attribute is EINVAL; kernels before 5.8 ignore the
    /// unknown `CTA_FILTER` and send every entry of the family.
    pub fn request(&self) -> ConntrackMessage {
        let mut flags = CTA_FILTER_FLAG_CTA_PROTO_NUM;
        let mut ip = Vec::new();
        if let Some(dst) = self.dst {
            flags |= CTA_FILTER_FLAG_CTA_IP_DST;
            ip.push(IPTuple::DestinationAddress(dst));
        }
        let mut proto = vec![ProtoTuple::Protocol(Protocol::from(self.protocol))];
        if let Some(port) = self.dst_port {
            flags |= CTA_FILTER_FLAG_CTA_PROTO_DST_PORT;
            proto.push(ProtoTuple::DestinationPort(port));
        }
        let mut tuple = Vec::new();
        if !ip.is_empty() {
            tuple.push(Tuple::Ip(ip));
        }
        tuple.push(Tuple::Proto(proto));
        // Why DefaultNla rather than ConntrackAttribute::Other: the crate's
        // wrapper never sets NLA_F_NESTED on an `Other` attribute, and the
        // kernel parses CTA_FILTER strictly (`nla_parse_nested`: EINVAL
        // without the flag).
        let orig = DefaultNla::new(CTA_TUPLE_ORIG | NLA_F_NESTED, emitted(tuple.as_slice()));
        let orig_flags = DefaultNla::new(CTA_FILTER_ORIG_FLAGS, flags.to_ne_bytes().to_vec());
        let filter = DefaultNla::new(CTA_FILTER | NLA_F_NESTED, emitted(orig_flags));
        ConntrackMessage::Other {
            message_type: crate::conntrack::socket::IPCTNL_MSG_CT_GET,
            attributes: vec![orig, filter],
        }
    }
}

/// The bytes of `nla`.
fn emitted(nla: impl Emitable) -> Vec<u8> {
    let mut bytes = vec![0u8; nla.buffer_len()];
    nla.emit(&mut bytes);
    bytes
}

/// The plain dump request: every entry of the nfgenmsg family.
pub fn unfiltered_request() -> ConntrackMessage {
    ConntrackMessage::Get(Vec::new())
}

/// The nfgenmsg family for `AF_INET` / `AF_INET6`.
pub fn family_of(family: u8) -> NetfilterProtoFamily {
    match family {
        AF_INET6 => NetfilterProtoFamily::IPv6,
        _ => NetfilterProtoFamily::IPv4,
    }
}

/// The `IPCTNL_MSG_CT_DELETE` request for exactly this entry: its **reply**
/// tuple, its zone as the dump gave it, and its id. `None` when the dump
/// gave no id (such an entry is never deleted).
///
/// Why the reply tuple and not the original one: the kernel looks the entry
/// up by the one tuple it is given, and a stale entry is stale because of
/// its reply source (the dead endpoint, or the ClusterIP itself). An entry
/// recreated under the same original tuple towards a live endpoint has
/// another reply tuple, so the lookup cannot find it (`ENOENT`). The id
/// alone does not protect it: since Linux 5.3 `nf_ct_get_id` hashes the
/// entry's address and its *original* tuple only, and a delete followed by
/// a re-insert reuses the freed object, so the new entry very often has
/// the old id (seen on 6.18: 4 of 5 times; tests/fixtures/netlink/README.md).
/// The id still guards against a different entry that reuses the reply
/// tuple.
pub fn delete_request(entry: &Entry) -> Option<ConntrackMessage> {
    let id = entry.id?;
    let mut tuple = vec![
        Tuple::Ip(vec![
            IPTuple::SourceAddress(entry.reply.src),
            IPTuple::DestinationAddress(entry.reply.dst),
        ]),
        Tuple::Proto(vec![
            ProtoTuple::Protocol(Protocol::from(entry.reply.protocol)),
            ProtoTuple::SourcePort(entry.reply.src_port),
            ProtoTuple::DestinationPort(entry.reply.dst_port),
        ]),
    ];
    let mut attributes = Vec::new();
    match entry.zone_scope {
        // Why no CTA_ZONE for these: the lookup is in the reply direction,
        // whose zone is the default one, and the kernel looks in zone 0
        // when the attribute is absent. Kernels built without zones
        // (CONFIG_NF_CONNTRACK_ZONES=n) refuse CTA_ZONE altogether, so it
        // is sent only when a zone other than 0 must be named.
        ZoneScope::Default | ZoneScope::Original => {}
        ZoneScope::Both if entry.zone == 0 => {}
        ZoneScope::Both => attributes.push(zone_attribute(CTA_ZONE, entry.zone)),
        // The kernel refuses CTA_ZONE together with a tuple zone (EINVAL).
        ZoneScope::Reply => {
            tuple.push(Tuple::Other(DefaultNla::new(
                CTA_TUPLE_ZONE,
                entry.zone.to_be_bytes().to_vec(),
            )));
        }
    }
    let mut all = vec![ConntrackAttribute::CtaTupleReply(tuple)];
    all.extend(attributes);
    all.push(ConntrackAttribute::Other(DefaultNla::new(CTA_ID, id.to_be_bytes().to_vec())));
    Some(ConntrackMessage::Delete(all))
}

fn zone_attribute(kind: u16, zone: u16) -> ConntrackAttribute {
    ConntrackAttribute::Other(DefaultNla::new(kind, zone.to_be_bytes().to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conntrack::captures::*;
    use crate::conntrack::socket::{
        encode_request, Expect, Progress, RawMessage, ReplyReader, IPCTNL_MSG_CT_DELETE,
    };
    use crate::conntrack::ConntrackError;
    use netlink_packet_core::{NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};
    use netlink_packet_netfilter::{NetfilterMessage, NetfilterMessageInner};

    /// The raw messages of captured datagrams.
    fn raw_messages(datagrams: &[&[u8]], sequence: u32, port: u32) -> Vec<(u8, Vec<u8>)> {
        let mut reader = ReplyReader::new("test", sequence, port, Expect::Done);
        let mut out = Vec::new();
        for datagram in datagrams {
            reader
                .feed::<ConntrackError>(datagram, &mut |raw: RawMessage<'_>| {
                    out.push((raw.family, raw.attributes.to_vec()));
                    Ok(())
                })
                .unwrap();
        }
        out
    }

    fn captured_v4() -> Vec<Entry> {
        raw_messages(
            &[&ENTRIES_FILTERED_DATAGRAM, &ENTRIES_FILTERED_DONE],
            ENTRIES_FILTERED_SEQUENCE,
            ENTRIES_FILTERED_PORT,
        )
        .iter()
        .map(|(family, attrs)| decode_entry(*family, attrs).unwrap())
        .collect()
    }

    #[test]
    fn decodes_the_captured_ipv4_entries() {
        let entries = captured_v4();
        assert_eq!(entries.len(), 2);
        let untranslated = &entries[0];
        assert_eq!(untranslated.family, AF_INET);
        assert_eq!(untranslated.orig.source(), "198.18.1.2:40002".parse().unwrap());
        assert_eq!(untranslated.orig.destination(), "198.19.0.10:53".parse().unwrap());
        assert_eq!(untranslated.orig.protocol, IPPROTO_UDP);
        assert_eq!(untranslated.reply.source(), "198.19.0.10:53".parse().unwrap());
        assert_eq!(untranslated.reply.destination(), "198.18.1.2:40002".parse().unwrap());
        assert_eq!(untranslated.state(), "UNREPLIED");
        assert_eq!((untranslated.zone, untranslated.zone_scope), (5, ZoneScope::Both));
        assert_eq!(untranslated.id, Some(1_339_533_840));
        assert_eq!(untranslated.timeout, Some(99));
        assert_eq!(untranslated.mark, Some(0));

        let dnated = &entries[1];
        assert_eq!(dnated.orig.source(), "198.18.1.2:40001".parse().unwrap());
        assert_eq!(dnated.reply.source(), "198.18.3.2:53".parse().unwrap());
        assert_eq!(dnated.state(), "ASSURED");
        assert_eq!((dnated.zone, dnated.zone_scope), (0, ZoneScope::Default));
        assert_eq!(dnated.id, Some(193_283_103));
        assert_eq!(dnated.mark, Some(7));
    }

    #[test]
    fn decodes_the_captured_ipv6_entry() {
        let messages = raw_messages(&[&ENTRIES6_DATAGRAM], ENTRIES6_SEQUENCE, ENTRIES6_PORT);
        assert_eq!(messages.len(), 1);
        let entry = decode_entry(messages[0].0, &messages[0].1).unwrap();
        assert_eq!(entry.family, AF_INET6);
        assert_eq!(entry.orig.source(), "[2001:db8:1::2]:40004".parse().unwrap());
        assert_eq!(entry.orig.destination(), "[2001:db8::a]:53".parse().unwrap());
        assert_eq!(entry.reply.source(), "[2001:db8:3::2]:53".parse().unwrap());
        assert_eq!(entry.state(), "SEEN_REPLY");
        assert_eq!(entry.id, Some(4_171_966_257));
    }

    /// The crate's decoder reads the same tuples, status, timeout and mark
    /// from the captures as ours.
    #[test]
    fn agrees_with_netlink_packet_netfilter() {
        for (datagram, sequence, port) in [
            (&ENTRIES_FILTERED_DATAGRAM[..], ENTRIES_FILTERED_SEQUENCE, ENTRIES_FILTERED_PORT),
            (&ENTRIES6_DATAGRAM[..], ENTRIES6_SEQUENCE, ENTRIES6_PORT),
        ] {
            let mut reader = ReplyReader::new("test", sequence, port, Expect::Done);
            let mut checked = 0;
            reader
                .feed::<ConntrackError>(datagram, &mut |raw: RawMessage<'_>| {
                    let ours = decode_entry(raw.family, raw.attributes).unwrap();
                    let theirs =
                        netlink_packet_core::NetlinkMessage::<NetfilterMessage>::deserialize(
                            raw.bytes,
                        )
                        .unwrap();
                    let netlink_packet_core::NetlinkPayload::InnerMessage(message) = theirs.payload
                    else {
                        panic!("not an inner message")
                    };
                    let NetfilterMessageInner::Conntrack(ConntrackMessage::New(attrs)) =
                        message.inner
                    else {
                        panic!("not a conntrack message: {:?}", message.inner)
                    };
                    for attr in attrs {
                        match attr {
                            ConntrackAttribute::CtaTupleOrig(t) => {
                                assert_eq!(crate_tuple(&t), ours.orig)
                            }
                            ConntrackAttribute::CtaTupleReply(t) => {
                                assert_eq!(crate_tuple(&t), ours.reply)
                            }
                            ConntrackAttribute::CtaStatus(s) => assert_eq!(s.bits(), ours.status),
                            ConntrackAttribute::CtaTimeout(t) => assert_eq!(Some(t), ours.timeout),
                            ConntrackAttribute::CtaMark(m) => assert_eq!(Some(m), ours.mark),
                            _ => {}
                        }
                    }
                    checked += 1;
                    Ok(())
                })
                .unwrap();
            assert!(checked > 0);
        }
    }

    fn crate_tuple(tuple: &[Tuple]) -> EntryTuple {
        let (mut src, mut dst, mut protocol, mut sport, mut dport) = (None, None, 0, 0, 0);
        for part in tuple {
            match part {
                Tuple::Ip(ips) => {
                    for ip in ips {
                        match ip {
                            IPTuple::SourceAddress(a) => src = Some(*a),
                            IPTuple::DestinationAddress(a) => dst = Some(*a),
                            _ => {}
                        }
                    }
                }
                Tuple::Proto(protos) => {
                    for p in protos {
                        match p {
                            ProtoTuple::Protocol(n) => protocol = u8::from(*n),
                            ProtoTuple::SourcePort(n) => sport = *n,
                            ProtoTuple::DestinationPort(n) => dport = *n,
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        EntryTuple {
            protocol,
            src: src.unwrap(),
            dst: dst.unwrap(),
            src_port: sport,
            dst_port: dport,
        }
    }

    #[test]
    fn the_filter_request_is_the_captured_one() {
        let filter = DumpFilter {
            family: AF_INET,
            protocol: IPPROTO_UDP,
            dst: Some("198.19.0.10".parse().unwrap()),
            dst_port: Some(53),
        };
        let bytes = encode_request(
            filter.netfilter_family(),
            filter.request(),
            NLM_F_REQUEST | NLM_F_DUMP,
            ENTRIES_FILTERED_SEQUENCE,
        );
        assert_eq!(bytes, ENTRIES_FILTERED_REQUEST);
    }

    #[test]
    fn the_delete_request_is_the_captured_one() {
        // Entry 2 of the capture (reply from 198.18.3.2), moved to port
        // 40021 and given the id of the delete capture.
        let mut entry = captured_v4()[1];
        entry.orig.src_port = 40021;
        entry.reply.dst_port = 40021;
        entry.id = Some(2_205_357_501);
        let bytes = encode_request(
            NetfilterProtoFamily::IPv4,
            delete_request(&entry).unwrap(),
            NLM_F_REQUEST | NLM_F_ACK,
            DELETE_REPLY_SEQUENCE,
        );
        // The capture carried CTA_ZONE 0 (bytes 72..80, after the reply
        // tuple); the kernel treats an absent CTA_ZONE as zone 0, and
        // kernels without zone support refuse the attribute, so ctdiag
        // sends the captured request without it (nlmsg_len 88 - 8).
        let mut expected = DELETE_REPLY_REQUEST.to_vec();
        assert_eq!(&expected[72..76], &[0x06, 0x00, 0x12, 0x00], "CTA_ZONE in the capture");
        expected.drain(72..80);
        expected[0] = 80;
        assert_eq!(bytes, expected);
        assert_eq!(
            u16::from_le_bytes([bytes[4], bytes[5]]),
            0x0100 | u16::from(IPCTNL_MSG_CT_DELETE)
        );
        entry.id = None;
        assert!(delete_request(&entry).is_none(), "never a delete without the id guard");
    }

    #[test]
    fn delete_names_the_zone_as_the_dump_gave_it() {
        let zoned = captured_v4()[0];
        let encoded = |entry: &Entry| {
            encode_request(
                NetfilterProtoFamily::IPv4,
                delete_request(entry).unwrap(),
                NLM_F_REQUEST | NLM_F_ACK,
                1,
            )
        };
        // CTA_ZONE (18) = 5, big-endian, after the tuple.
        assert!(encoded(&zoned).windows(6).any(|w| w == [6, 0, 18, 0, 0, 5]));
        // A zone of the reply direction only goes inside the reply tuple,
        // without CTA_ZONE (the kernel refuses both).
        let mut reply_only = zoned;
        reply_only.zone_scope = ZoneScope::Reply;
        let bytes = encoded(&reply_only);
        assert!(!bytes.windows(4).any(|w| w == [6, 0, 18, 0]), "no CTA_ZONE with a tuple zone");
        assert!(bytes.windows(6).any(|w| w == [6, 0, 3, 0, 0, 5]), "CTA_TUPLE_ZONE 5");
        // A zone of the original direction only: the reply lookup is in
        // zone 0, which needs no CTA_ZONE.
        let mut orig_only = zoned;
        orig_only.zone_scope = ZoneScope::Original;
        assert!(!encoded(&orig_only).windows(4).any(|w| w == [6, 0, 18, 0]), "no CTA_ZONE");
        // Zone 0 in both directions: no CTA_ZONE either (kernels without
        // zone support refuse the attribute).
        let mut zone_zero = zoned;
        zone_zero.zone = 0;
        assert!(!encoded(&zone_zero).windows(4).any(|w| w == [6, 0, 18, 0]), "no CTA_ZONE 0");
    }

    #[test]
    fn userspace_filter() {
        let entries = captured_v4();
        let filter = DumpFilter {
            family: AF_INET,
            protocol: IPPROTO_UDP,
            dst: Some("198.19.0.10".parse().unwrap()),
            dst_port: Some(53),
        };
        assert!(entries.iter().all(|e| filter.matches(e)));
        let other = DumpFilter { dst_port: Some(54), ..filter };
        assert!(!entries.iter().any(|e| other.matches(e)));
        let v6 = DumpFilter { family: AF_INET6, dst: None, ..filter };
        assert!(!entries.iter().any(|e| v6.matches(e)));
        let any_udp = DumpFilter { dst: None, dst_port: None, ..filter };
        assert!(entries.iter().all(|e| any_udp.matches(e)));
    }

    #[test]
    fn broken_entries_are_errors_not_panics() {
        let messages = raw_messages(
            &[&ENTRIES_FILTERED_DATAGRAM],
            ENTRIES_FILTERED_SEQUENCE,
            ENTRIES_FILTERED_PORT,
        );
        let (family, attrs) = &messages[1];
        // Every truncation and every single-byte change decodes or fails
        // cleanly.
        for cut in 0..attrs.len() {
            let _ = decode_entry(*family, &attrs[..cut]);
        }
        for index in 0..attrs.len() {
            for value in [0u8, 1, 3, 4, 0x7f, 0x80, 0xff] {
                let mut changed = attrs.clone();
                changed[index] = value;
                let _ = decode_entry(*family, &changed);
                let _ = decode_entry(AF_INET6, &changed);
            }
        }
        let mut state = 0x9e37_79b9_u32;
        for round in 0..3000 {
            let bytes = crate::testutil::pseudo_random_bytes(&mut state, round % 211);
            let _ = decode_entry(AF_INET, &bytes);
        }
        assert!(decode_entry(AF_INET, &attrs[..attrs.len() / 2]).is_err());
        assert!(decode_entry(7, attrs).is_err());
        // An IPv4 entry read as IPv6 has the wrong address length.
        assert!(decode_entry(AF_INET6, attrs).unwrap_err().0.contains("4 bytes"));
    }

    #[test]
    fn the_delete_answers_decode_as_the_kernel_meant() {
        // The kernel echoes the whole request with an error.
        assert_eq!(DELETE_ID_ENOENT[20..], DELETE_ID_REQUEST);
        assert_eq!(DELETE_REPLY_ENOENT[20..], DELETE_REPLY_REQUEST);
        let mut reader =
            ReplyReader::new("delete", DELETE_ID_SEQUENCE, DELETE_ID_PORT, Expect::Ack);
        let error = reader.feed::<ConntrackError>(&DELETE_ID_ENOENT, &mut |_| Ok(())).unwrap_err();
        assert!(
            matches!(error, crate::conntrack::ConntrackError::Kernel { errno: libc::ENOENT, .. }),
            "{error:?}"
        );
        let mut reader =
            ReplyReader::new("delete", DELETE_OK_SEQUENCE, DELETE_OK_PORT, Expect::Ack);
        assert_eq!(
            reader.feed::<ConntrackError>(&DELETE_OK_ACK, &mut |_| Ok(())).unwrap(),
            Progress::Complete
        );
        // By the reply tuple: the recreated entry is not found ...
        let mut reader =
            ReplyReader::new("delete", DELETE_REPLY_SEQUENCE, DELETE_REPLY_PORT, Expect::Ack);
        let error =
            reader.feed::<ConntrackError>(&DELETE_REPLY_ENOENT, &mut |_| Ok(())).unwrap_err();
        assert!(
            matches!(error, crate::conntrack::ConntrackError::Kernel { errno: libc::ENOENT, .. }),
            "{error:?}"
        );
        // ... and a stale one is deleted.
        let mut reader =
            ReplyReader::new("delete", DELETE_REPLY_OK_SEQUENCE, DELETE_REPLY_OK_PORT, Expect::Ack);
        assert_eq!(
            reader.feed::<ConntrackError>(&DELETE_REPLY_ACK, &mut |_| Ok(())).unwrap(),
            Progress::Complete
        );
    }
}
