//! One captured frame -> the DNS message it carries, if any: link layer
//! (Ethernet with 802.1Q/802.1ad tags, Linux cooked SLL and SLL2, raw IP),
//! IPv4/IPv6, UDP or TCP (DNS over TCP is length-prefixed: the first message
//! of a segment), then the DNS header and question.
//!
//! Decoding never panics and never allocates for a frame that is not DNS:
//! every slice access is checked, anything short or odd is `None`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// The link-layer header type of a capture (the pcap `LINKTYPE_` values
/// this decoder knows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkType {
    /// `LINKTYPE_ETHERNET` (1).
    Ethernet,
    /// `LINKTYPE_LINUX_SLL` (113): `tcpdump -i any` before libpcap 1.10.
    LinuxSll,
    /// `LINKTYPE_LINUX_SLL2` (276): `tcpdump -i any` since libpcap 1.10.
    LinuxSll2,
    /// `LINKTYPE_RAW` (101), `LINKTYPE_IPV4` (228), `LINKTYPE_IPV6` (229):
    /// the frame starts with the IP header.
    RawIp,
}

impl LinkType {
    /// The link type of a pcap `LINKTYPE_` number, if decodable.
    pub fn from_linktype(number: u32) -> Option<LinkType> {
        match number {
            1 => Some(LinkType::Ethernet),
            113 => Some(LinkType::LinuxSll),
            276 => Some(LinkType::LinuxSll2),
            101 | 228 | 229 => Some(LinkType::RawIp),
            _ => None,
        }
    }
}

/// Transport a DNS message was carried on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP.
    Udp,
    /// TCP (length-prefixed messages).
    Tcp,
}

/// The DNS part of one captured packet: enough to match a query with its
/// DNATed copy and its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsPacket {
    /// Capture timestamp (since the Unix epoch).
    pub ts: Duration,
    /// IP source and transport source port.
    pub src: SocketAddr,
    /// IP destination and transport destination port.
    pub dst: SocketAddr,
    /// UDP or TCP.
    pub transport: Transport,
    /// DNS message ID.
    pub id: u16,
    /// QR bit: a response.
    pub response: bool,
    /// The 4-bit header rcode.
    pub rcode: u8,
    /// The question name's hash ([`name_hash`]): case-insensitive, what a
    /// query, its copy and its answer repeat. Why a hash and not the text:
    /// no allocation per packet at tens of thousands of packets a second.
    pub qname: u64,
    /// The question type (1 A, 28 AAAA, ...).
    pub qtype: u16,
}

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const DNS_PORT: u16 = 53;

fn be16(data: &[u8], at: usize) -> Option<u16> {
    let bytes = data.get(at..at + 2)?;
    Some(u16::from_be_bytes([bytes[0], bytes[1]]))
}

/// Decodes `frame` captured at `ts` with link type `link`.
pub fn decode(link: LinkType, ts: Duration, frame: &[u8]) -> Option<DnsPacket> {
    let (ethertype, ip) = match link {
        LinkType::Ethernet => ethernet(frame)?,
        // SLL: packet type, ARPHRD, address length, 8 address bytes, then
        // the protocol at offset 14; 16 bytes in all.
        LinkType::LinuxSll => (be16(frame, 14)?, frame.get(16..)?),
        // SLL2: the protocol first, then reserved, ifindex, ARPHRD, packet
        // type, address length, 8 address bytes; 20 bytes in all.
        LinkType::LinuxSll2 => (be16(frame, 0)?, frame.get(20..)?),
        LinkType::RawIp => match frame.first()? >> 4 {
            4 => (ETH_P_IP, frame),
            6 => (ETH_P_IPV6, frame),
            _ => return None,
        },
    };
    let ethertype = vlan_inner(ethertype, ip)?;
    let ip = match ethertype.1 {
        true => ip.get(ethertype.2..)?,
        false => ip,
    };
    let (src, dst, proto, payload) = match ethertype.0 {
        ETH_P_IP => ipv4(ip)?,
        ETH_P_IPV6 => ipv6(ip)?,
        _ => return None,
    };
    let (sport, dport, transport, dns) = match proto {
        IPPROTO_UDP => {
            let sport = be16(payload, 0)?;
            let dport = be16(payload, 2)?;
            (sport, dport, Transport::Udp, payload.get(8..)?)
        }
        IPPROTO_TCP => {
            let offset = usize::from(payload.get(12)? >> 4) * 4;
            let segment = payload.get(offset.max(20)..)?;
            // The 2-byte length prefix of the first message in the segment.
            (be16(payload, 0)?, be16(payload, 2)?, Transport::Tcp, segment.get(2..)?)
        }
        _ => return None,
    };
    if sport != DNS_PORT && dport != DNS_PORT {
        return None;
    }
    let header = message(dns)?;
    Some(DnsPacket {
        ts,
        src: SocketAddr::new(src, sport),
        dst: SocketAddr::new(dst, dport),
        transport,
        id: header.id,
        response: header.response,
        rcode: header.rcode,
        qname: header.qname,
        qtype: header.qtype,
    })
}

/// An Ethernet frame's ethertype and payload (tags are handled by
/// [`vlan_inner`]).
fn ethernet(frame: &[u8]) -> Option<(u16, &[u8])> {
    Some((be16(frame, 12)?, frame.get(14..)?))
}

/// Skips 802.1Q / 802.1ad tags (stacked too): `(ethertype, tagged, offset
/// of the IP header in the payload)`. Linux cooked captures carry tags the
/// same way when the NIC did not strip them.
fn vlan_inner(mut ethertype: u16, payload: &[u8]) -> Option<(u16, bool, usize)> {
    let mut offset = 0;
    // At most a few tags: a frame claiming more is not decoded.
    for _ in 0..4 {
        if ethertype != ETH_P_8021Q && ethertype != ETH_P_8021AD {
            return Some((ethertype, offset > 0, offset));
        }
        ethertype = be16(payload, offset + 2)?;
        offset += 4;
    }
    None
}

/// IPv4: source, destination, protocol, payload. Fragments other than the
/// first carry no transport header and are skipped.
fn ipv4(ip: &[u8]) -> Option<(IpAddr, IpAddr, u8, &[u8])> {
    let ihl = usize::from(ip.first()? & 0x0f) * 4;
    if ihl < 20 || ip.first()? >> 4 != 4 {
        return None;
    }
    let total = usize::from(be16(ip, 2)?);
    let fragment_offset = be16(ip, 6)? & 0x1fff;
    if fragment_offset != 0 {
        return None;
    }
    let src: [u8; 4] = ip.get(12..16)?.try_into().ok()?;
    let dst: [u8; 4] = ip.get(16..20)?.try_into().ok()?;
    // The captured bytes may be shorter (snaplen) or padded (Ethernet
    // minimum frame): trust the IP total length, within what was captured.
    let end = total.clamp(ihl, ip.len());
    let payload = ip.get(ihl..end)?;
    Some((IpAddr::V4(Ipv4Addr::from(src)), IpAddr::V4(Ipv4Addr::from(dst)), *ip.get(9)?, payload))
}

/// IPv6: source, destination, upper-layer protocol (after hop-by-hop,
/// routing and destination-options headers), payload.
fn ipv6(ip: &[u8]) -> Option<(IpAddr, IpAddr, u8, &[u8])> {
    if ip.first()? >> 4 != 6 {
        return None;
    }
    let src: [u8; 16] = ip.get(8..24)?.try_into().ok()?;
    let dst: [u8; 16] = ip.get(24..40)?.try_into().ok()?;
    let payload_len = usize::from(be16(ip, 4)?);
    let end = (40 + payload_len).min(ip.len());
    let mut next = *ip.get(6)?;
    let mut offset = 40;
    for _ in 0..8 {
        match next {
            // Hop-by-hop, routing, destination options: length in 8-octet
            // units, not counting the first 8.
            0 | 43 | 60 => {
                let len = (usize::from(*ip.get(offset + 1)?) + 1) * 8;
                next = *ip.get(offset)?;
                offset += len;
            }
            _ => break,
        }
    }
    let payload = ip.get(offset..end.max(offset))?;
    Some((IpAddr::V6(Ipv6Addr::from(src)), IpAddr::V6(Ipv6Addr::from(dst)), next, payload))
}

/// The parts of a DNS message the matcher needs.
struct Header {
    id: u16,
    response: bool,
    rcode: u8,
    qname: u64,
    qtype: u16,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The hash of a name given as its labels, case-insensitive, each label's
/// length mixed in (so `a.bc` and `ab.c` differ).
pub fn name_hash(labels: &[&[u8]]) -> u64 {
    labels.iter().fold(FNV_OFFSET, |hash, label| label_hash(hash, label))
}

/// Mixes one label into `hash`, eight bytes at a time. Case folding is
/// `| 0x20` on every byte: exact for letters, and the only bytes it
/// conflates (`_` with DEL, `@` with the backquote, ...) are not in host
/// names; a collision would anyway need the same client socket, id and
/// type.
fn label_hash(hash: u64, label: &[u8]) -> u64 {
    let mut hash = mix(hash, label.len() as u64);
    let mut chunks = label.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        hash = mix(hash, u64::from_le_bytes(word) | 0x2020_2020_2020_2020);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut word = [0u8; 8];
        word[..rest.len()].copy_from_slice(rest);
        hash = mix(hash, u64::from_le_bytes(word) | 0x2020_2020_2020_2020);
    }
    hash
}

/// One step of the mix: xor, multiply by FNV's prime, fold the high bits.
fn mix(hash: u64, word: u64) -> u64 {
    let h = (hash ^ word).wrapping_mul(FNV_PRIME);
    h ^ (h >> 29)
}

/// The header and first question of a DNS message; `None` without exactly
/// one question (what stub resolvers send and servers repeat).
fn message(dns: &[u8]) -> Option<Header> {
    let id = be16(dns, 0)?;
    let flags = be16(dns, 2)?;
    if be16(dns, 4)? != 1 {
        return None;
    }
    let mut at = 12;
    let mut qname = FNV_OFFSET;
    let mut total = 0usize;
    loop {
        let len = usize::from(*dns.get(at)?);
        at += 1;
        if len == 0 {
            break;
        }
        // Compression pointers (and the reserved 0x40/0x80 forms) have no
        // place in a question's name.
        if len > 63 {
            return None;
        }
        let label = dns.get(at..at + len)?;
        at += len;
        total += len + 1;
        if total > 255 {
            return None;
        }
        qname = label_hash(qname, label);
    }
    let qtype = be16(dns, at)?;
    be16(dns, at + 2)?;
    Some(Header { id, response: flags & 0x8000 != 0, rcode: (flags & 0x000f) as u8, qname, qtype })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query for `example.com` A, id 0x1234, as a stub resolver sends it.
    fn dns_query() -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        m.extend_from_slice(b"\x07Example\x03com\x00\x00\x01\x00\x01");
        m
    }

    fn udp4(payload: &[u8]) -> Vec<u8> {
        let total = 20 + 8 + payload.len();
        let mut ip = vec![0x45, 0, (total >> 8) as u8, total as u8, 0, 0, 0x40, 0, 64, 17, 0, 0];
        ip.extend_from_slice(&[198, 18, 1, 2, 198, 19, 0, 10]);
        let udp_len = 8 + payload.len();
        ip.extend_from_slice(&[0xc3, 0x50, 0, 53, (udp_len >> 8) as u8, udp_len as u8, 0, 0]);
        ip.extend_from_slice(payload);
        ip
    }

    #[test]
    fn ethernet_with_two_vlan_tags() {
        let mut frame = vec![0u8; 12];
        frame.extend_from_slice(&[0x88, 0xa8, 0, 10, 0x81, 0x00, 0, 20, 0x08, 0x00]);
        frame.extend(udp4(&dns_query()));
        let p = decode(LinkType::Ethernet, Duration::from_secs(1), &frame).unwrap();
        assert_eq!(p.src, "198.18.1.2:50000".parse().unwrap());
        assert_eq!(p.dst, "198.19.0.10:53".parse().unwrap());
        assert_eq!((p.id, p.response, p.qtype), (0x1234, false, 1));
        assert_eq!(p.qname, name_hash(&[b"example", b"COM"]));
    }

    #[test]
    fn sll_and_sll2_and_raw() {
        let ip = udp4(&dns_query());
        let mut sll = vec![0, 4, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x08, 0x00];
        sll.extend(&ip);
        let mut sll2 = vec![0x08, 0x00, 0, 0, 0, 0, 0, 3, 0, 1, 4, 6, 1, 2, 3, 4, 5, 6, 0, 0];
        sll2.extend(&ip);
        for (link, frame) in
            [(LinkType::LinuxSll, sll), (LinkType::LinuxSll2, sll2), (LinkType::RawIp, ip)]
        {
            let p = decode(link, Duration::ZERO, &frame).unwrap();
            assert_eq!(p.qname, name_hash(&[b"example", b"com"]), "{link:?}");
        }
    }

    #[test]
    fn tcp_length_prefixed() {
        let dns = dns_query();
        let mut payload = vec![0u8; 20];
        payload[0..4].copy_from_slice(&[0xc3, 0x50, 0, 53]);
        payload[12] = 5 << 4;
        payload.extend_from_slice(&(dns.len() as u16).to_be_bytes());
        payload.extend_from_slice(&dns);
        let total = 40 + payload.len();
        let mut ip = vec![0x60, 0, 0, 0, (payload.len() >> 8) as u8, payload.len() as u8, 6, 64];
        ip.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        ip.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        ip.extend(payload);
        assert_eq!(ip.len(), total);
        let p = decode(LinkType::RawIp, Duration::ZERO, &ip).unwrap();
        assert_eq!(p.transport, Transport::Tcp);
        assert_eq!(p.dst, "[2001:db8:2::2]:53".parse().unwrap());
    }

    #[test]
    fn short_or_odd_frames_are_none() {
        let frame = udp4(&dns_query());
        for cut in 0..frame.len() {
            assert!(decode(LinkType::RawIp, Duration::ZERO, &frame[..cut]).is_none(), "{cut}");
        }
        let mut pointer = dns_query();
        pointer[12] = 0xc0;
        assert!(decode(LinkType::RawIp, Duration::ZERO, &udp4(&pointer)).is_none());
    }
}
