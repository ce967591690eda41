//! DNS messages on the wire: the queries a stub resolver sends, and the
//! strict check that decides whether a received packet answers one of them.
//!
//! A packet is an answer only when it comes from the server the query went
//! to, is a response, carries the query's ID and repeats its question
//! exactly (name, type, class), and is not truncated. Everything else is
//! counted apart by the probe, never taken as an answer.

use std::net::SocketAddr;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use serde::Serialize;

use crate::error::{Error, Result};

/// Longest name in presentation form without the trailing dot (RFC 1035).
pub const MAX_NAME_LEN: usize = 253;

/// Longest label (RFC 1035).
pub const MAX_LABEL_LEN: usize = 63;

/// The two record types of a lookup, in the order resolvers send them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum QueryType {
    /// IPv4 address.
    A,
    /// IPv6 address.
    #[allow(clippy::upper_case_acronyms)]
    AAAA,
}

impl QueryType {
    /// The hickory record type.
    pub fn record_type(self) -> RecordType {
        match self {
            QueryType::A => RecordType::A,
            QueryType::AAAA => RecordType::AAAA,
        }
    }

    /// "A" or "AAAA".
    pub fn as_str(self) -> &'static str {
        match self {
            QueryType::A => "A",
            QueryType::AAAA => "AAAA",
        }
    }
}

/// Why a name is not one to look up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidName(String);

/// Checks a name the user typed and turns it into a fully qualified name;
/// the error names the name. [`check_name`] says only why.
pub fn parse_name(text: &str) -> Result<Name> {
    check_name(text).map_err(|why| Error::Usage(format!("name {text:?}: {why}")))
}

/// Checks a name and turns it into a fully qualified name.
/// Accepts letters, digits, `-` and `_` in labels of 1 to 63 characters,
/// at most 253 characters in all, an optional trailing dot.
pub fn check_name(text: &str) -> std::result::Result<Name, InvalidName> {
    let bad = |why: &str| InvalidName(why.to_string());
    let trimmed = text.strip_suffix('.').unwrap_or(text);
    if trimmed.is_empty() {
        return Err(bad("the name is empty (give e.g. kubernetes.default.svc.cluster.local)"));
    }
    if trimmed.len() > MAX_NAME_LEN {
        return Err(bad("longer than 253 characters"));
    }
    for label in trimmed.split('.') {
        if label.is_empty() {
            return Err(bad("empty label (two dots in a row, or a leading dot)"));
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(bad("a label is longer than 63 characters"));
        }
        if let Some(c) =
            label.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(bad(&format!(
                "character {c:?} is not allowed (letters, digits, '-' and '_' only)"
            )));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(bad("a label starts or ends with '-'"));
        }
    }
    Name::from_ascii(format!("{trimmed}.")).map_err(|e| bad(&e.to_string()))
}

/// One query as sent: what a matching answer must repeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentQuery {
    /// The message ID.
    pub id: u16,
    /// The question's name (fully qualified).
    pub name: Name,
    /// A or AAAA.
    pub qtype: QueryType,
}

impl SentQuery {
    /// The query in wire format: standard query, RD set, one question of
    /// class IN, as glibc sends it (no EDNS).
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut message = Message::new(self.id, MessageType::Query, OpCode::Query);
        message.metadata.recursion_desired = true;
        let mut query = Query::query(self.name.clone(), self.qtype.record_type());
        query.set_query_class(DNSClass::IN);
        message.add_query(query);
        message
            .to_vec()
            .map_err(|e| Error::Runtime(format!("cannot encode the query for {}: {e}", self.name)))
    }
}

/// What a received packet turned out to be, for a set of outstanding
/// queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A complete answer to the query at this index, with its rcode.
    Answer {
        /// Index into the outstanding queries.
        index: usize,
        /// The response code.
        rcode: ResponseCode,
    },
    /// A response to the query at this index with the TC bit set: not an
    /// answer (a resolver would retry over TCP).
    Truncated {
        /// Index into the outstanding queries.
        index: usize,
    },
    /// From another address than the server.
    WrongSource,
    /// A response whose ID matches none of the queries.
    WrongId,
    /// A response with a matching ID but another question.
    WrongQuestion,
    /// Not decodable (cut short, garbage) or not a response.
    Malformed,
}

/// Decides what `packet`, received from `source`, is with respect to
/// `queries` sent to `server`. Never panics, whatever the bytes.
pub fn classify(
    packet: &[u8],
    source: SocketAddr,
    server: SocketAddr,
    queries: &[&SentQuery],
) -> Verdict {
    if !same_endpoint(source, server) {
        return Verdict::WrongSource;
    }
    let message = match Message::from_vec(packet) {
        Ok(message) => message,
        Err(_) => return Verdict::Malformed,
    };
    if message.metadata.message_type != MessageType::Response {
        return Verdict::Malformed;
    }
    let id = message.metadata.id;
    let mut id_matched = false;
    for (index, query) in queries.iter().enumerate() {
        if query.id != id {
            continue;
        }
        id_matched = true;
        let question_matches = message.queries.len() == 1
            && message.queries.first().is_some_and(|q| {
                q.query_type() == query.qtype.record_type()
                    && q.query_class() == DNSClass::IN
                    && q.name().eq_ignore_root(&query.name)
            });
        if !question_matches {
            continue;
        }
        if message.metadata.truncation {
            return Verdict::Truncated { index };
        }
        return Verdict::Answer { index, rcode: message.metadata.response_code };
    }
    if id_matched {
        Verdict::WrongQuestion
    } else {
        Verdict::WrongId
    }
}

/// Same IP and port, treating an IPv4-mapped IPv6 source as its IPv4 form.
fn same_endpoint(a: SocketAddr, b: SocketAddr) -> bool {
    let canonical = |addr: SocketAddr| match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), v6.port()),
            None => addr,
        },
        SocketAddr::V4(_) => addr,
    };
    canonical(a) == canonical(b)
}

/// The rcode's conventional upper-case name (NOERROR, NXDOMAIN, ...).
pub fn rcode_name(rcode: ResponseCode) -> String {
    match rcode {
        ResponseCode::NoError => "NOERROR".into(),
        ResponseCode::FormErr => "FORMERR".into(),
        ResponseCode::ServFail => "SERVFAIL".into(),
        ResponseCode::NXDomain => "NXDOMAIN".into(),
        ResponseCode::NotImp => "NOTIMP".into(),
        ResponseCode::Refused => "REFUSED".into(),
        other => format!("RCODE{}", u16::from(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVER: &str = "198.18.2.2:53";

    fn query(id: u16, qtype: QueryType) -> SentQuery {
        SentQuery { id, name: parse_name("kubernetes.default.svc.cluster.local").unwrap(), qtype }
    }

    fn response(id: u16, name: &str, rtype: RecordType, tc: bool, rcode: ResponseCode) -> Vec<u8> {
        let mut m = Message::new(id, MessageType::Response, OpCode::Query);
        m.metadata.truncation = tc;
        m.metadata.response_code = rcode;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
        m.to_vec().unwrap()
    }

    /// The question every test query asks, as a response echoes it.
    const NAME: &str = "kubernetes.default.svc.cluster.local.";

    /// A plain NOERROR response to `NAME`, without TC.
    fn answer(id: u16, rtype: RecordType) -> Vec<u8> {
        response(id, NAME, rtype, false, ResponseCode::NoError)
    }

    fn server() -> SocketAddr {
        SERVER.parse().unwrap()
    }

    #[test]
    fn matching_answer_by_id_and_question() {
        let (a, aaaa) = (query(100, QueryType::A), query(200, QueryType::AAAA));
        let packet = answer(200, RecordType::AAAA);
        assert_eq!(
            classify(&packet, server(), server(), &[&a, &aaaa]),
            Verdict::Answer { index: 1, rcode: ResponseCode::NoError }
        );
        // Case differences in the echoed name still match (0x20 style).
        let packet = response(
            100,
            "KUBERNETES.default.svc.cluster.local.",
            RecordType::A,
            false,
            ResponseCode::NXDomain,
        );
        assert_eq!(
            classify(&packet, server(), server(), &[&a, &aaaa]),
            Verdict::Answer { index: 0, rcode: ResponseCode::NXDomain }
        );
    }

    #[test]
    fn wrong_id_is_not_an_answer() {
        let a = query(100, QueryType::A);
        let packet = answer(101, RecordType::A);
        assert_eq!(classify(&packet, server(), server(), &[&a]), Verdict::WrongId);
    }

    #[test]
    fn wrong_question_is_not_an_answer() {
        let a = query(100, QueryType::A);
        let other_name = response(
            100,
            "kube-dns.kube-system.svc.cluster.local.",
            RecordType::A,
            false,
            ResponseCode::NoError,
        );
        assert_eq!(classify(&other_name, server(), server(), &[&a]), Verdict::WrongQuestion);
        let other_type = answer(100, RecordType::AAAA);
        assert_eq!(classify(&other_type, server(), server(), &[&a]), Verdict::WrongQuestion);
    }

    #[test]
    fn wrong_source_is_not_an_answer() {
        let a = query(100, QueryType::A);
        let packet = answer(100, RecordType::A);
        let other_port: SocketAddr = "198.18.2.2:5353".parse().unwrap();
        let other_ip: SocketAddr = "198.18.3.2:53".parse().unwrap();
        assert_eq!(classify(&packet, other_port, server(), &[&a]), Verdict::WrongSource);
        assert_eq!(classify(&packet, other_ip, server(), &[&a]), Verdict::WrongSource);
        let mapped: SocketAddr = "[::ffff:198.18.2.2]:53".parse().unwrap();
        assert!(matches!(classify(&packet, mapped, server(), &[&a]), Verdict::Answer { .. }));
    }

    #[test]
    fn truncated_packet_is_malformed_at_every_length() {
        let a = query(100, QueryType::A);
        let packet = answer(100, RecordType::A);
        for len in 0..packet.len() {
            assert_eq!(
                classify(&packet[..len], server(), server(), &[&a]),
                Verdict::Malformed,
                "cut at {len}"
            );
        }
    }

    #[test]
    fn tc_bit_is_not_an_answer() {
        let a = query(100, QueryType::A);
        let packet = response(100, NAME, RecordType::A, true, ResponseCode::NoError);
        assert_eq!(classify(&packet, server(), server(), &[&a]), Verdict::Truncated { index: 0 });
    }

    #[test]
    fn a_query_is_not_an_answer() {
        let a = query(100, QueryType::A);
        let packet = a.encode().unwrap();
        assert_eq!(classify(&packet, server(), server(), &[&a]), Verdict::Malformed);
    }

    #[test]
    fn encoded_query_round_trips() {
        let a = query(4242, QueryType::AAAA);
        let m = Message::from_vec(&a.encode().unwrap()).unwrap();
        assert_eq!(m.metadata.id, 4242);
        assert!(m.metadata.recursion_desired);
        assert_eq!(m.queries.len(), 1);
        assert_eq!(m.queries[0].query_type(), RecordType::AAAA);
    }

    #[test]
    fn a_bad_name_is_named_in_the_error_not_a_flag() {
        let err = parse_name("a..b").unwrap_err().to_string();
        assert!(err.starts_with("name \"a..b\": empty label"), "{err}");
        assert!(!err.contains("--"), "{err}");
        assert_eq!(
            check_name("a..b").unwrap_err().to_string(),
            "empty label (two dots in a row, or a leading dot)"
        );
    }

    #[test]
    fn name_validation() {
        assert!(parse_name("kubernetes.default.svc.cluster.local").is_ok());
        assert!(parse_name("example.org.").is_ok());
        assert!(parse_name("_dns._udp.cluster.local").is_ok());
        for bad in ["", ".", "a..b", ".a", "-a.b", "a-.b", "bad name", "a/b", "é.org"] {
            assert!(matches!(parse_name(bad), Err(Error::Usage(_))), "{bad:?}");
        }
        assert!(parse_name(&format!("{}.org", "a".repeat(64))).is_err());
        assert!(parse_name(&vec!["abcdefghi"; 26].join(".")).is_err());
    }
}
