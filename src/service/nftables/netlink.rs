//! nftables mode over netlink: kube-proxy's `ip` and `ip6` `kube-proxy`
//! tables read as kernel objects ([`crate::netfilter::nf_tables`]) and turned
//! into the same elements and chain graph the `nft list` parser builds, so
//! that one function, [`super::build`], makes Services out of either.
//!
//! What is read, per family: the table's sets (one dump), its rules (one
//! dump), the elements of `service-ips`, `no-endpoint-services` and
//! `cluster-ips`, and the elements of the anonymous verdict maps the rules
//! jump through (`numgen random mod N vmap { ... }`) and of the maps a
//! `dnat` takes its address and port from (`dnat ip to numgen random mod N
//! map { ... }`): one dump each.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;

use super::{build, Element, Found};
use crate::netfilter::nf_tables::{
    consistent, follow, Data, Expr, Family, NftElement, NftError, NftRule, NftSet, Registers,
    Source, Value, Verdict, NFT_NAT_DNAT, NFT_SET_ELEM_INTERVAL_END,
};
use crate::service::{Chains, Parsed, Protocol};

mod targeted;

pub use targeted::read_service_family;

/// kube-proxy's table name, in both families.
pub(crate) const TABLE: &str = "kube-proxy";

/// `NF_NAT_RANGE_PROTO_SPECIFIED` (include/uapi/linux/netfilter/nf_nat.h).
const NF_NAT_RANGE_PROTO_SPECIFIED: u32 = 2;

/// The sets kube-proxy names whose elements define Services.
const SERVICE_SETS: [&str; 3] = ["service-ips", "no-endpoint-services", "cluster-ips"];

/// kube-proxy's table of `family`, read over netlink in one consistent
/// generation; `None` when the family has no such table.
pub fn read_family<S: Source + ?Sized>(
    source: &mut S,
    family: Family,
) -> Result<Option<Parsed>, NftError> {
    consistent(source, |reader| {
        let Some(sets) = reader.sets(family, TABLE)? else { return Ok(None) };
        let sets: HashMap<&str, &NftSet> = sets.iter().map(|s| (s.name.as_str(), s)).collect();
        let rules = reader.rules(family, TABLE, None, &|_| true)?;
        let graph = Graph::from_rules(family, &rules, &sets)?;
        let mut elements: HashMap<String, Vec<NftElement>> = HashMap::new();
        let wanted: BTreeSet<&str> = SERVICE_SETS
            .iter()
            .copied()
            .filter(|name| sets.contains_key(name))
            .chain(graph.maps_needed())
            .collect();
        for name in wanted {
            elements.insert(name.to_string(), reader.elements(family, TABLE, name)?);
        }
        Ok(Some(graph.finish(family, &elements)))
    })
}

/// How a `dnat` gets one part (address or port) of its target.
#[derive(Debug, Clone)]
enum Part {
    /// A constant.
    Const(Vec<u8>),
    /// Bytes at `offset` of the data of each element of a map.
    Map { set: String, offset: usize },
}

/// One `dnat` of a chain.
#[derive(Debug)]
struct Dnat {
    chain: String,
    at: String,
    address: Part,
    port: Part,
}

/// The rules of one table, as far as they matter: jumps, anonymous verdict
/// maps, DNATs.
#[derive(Debug, Default)]
struct Graph {
    chains: Chains,
    /// (chain, anonymous verdict map it jumps through).
    vmaps: Vec<(String, String)>,
    dnats: Vec<Dnat>,
    skipped: Vec<String>,
}

impl Graph {
    fn from_rules(
        family: Family,
        rules: &[NftRule],
        sets: &HashMap<&str, &NftSet>,
    ) -> Result<Self, NftError> {
        let mut graph = Graph::default();
        let data_len = |name: &str| sets.get(name).map_or(0, |s| s.data_len as usize);
        for rule in rules {
            let at =
                format!("{} {TABLE} chain {} rule {}", family.as_str(), rule.chain, rule.handle);
            let mut registers = Registers::default();
            for expr in &rule.exprs {
                match expr {
                    Expr::Immediate { dreg: 0, data: Data::Verdict(verdict) } => {
                        if let Some(target) = verdict.chain() {
                            graph.jump(&rule.chain, target);
                        }
                    }
                    // Why anonymous maps only: `nft list` prints those
                    // inline (`vmap { 0 : goto ... }`), and their jumps are
                    // the chain's; a named map (`vmap @service-ips`) is
                    // read from its own elements.
                    Expr::Lookup { set, dreg: Some(0), .. }
                        if sets.get(set.as_str()).is_some_and(|s| s.is_anonymous()) =>
                    {
                        graph.vmaps.push((rule.chain.clone(), set.clone()));
                    }
                    Expr::Nat { kind: NFT_NAT_DNAT, addr, proto, flags, .. } => {
                        match dnat_parts(family, &registers, *addr, *proto, *flags) {
                            Ok((address, port)) => graph.dnats.push(Dnat {
                                chain: rule.chain.clone(),
                                at: at.clone(),
                                address,
                                port,
                            }),
                            Err(Skip::Listed(why)) => graph.skipped.push(format!("{at}: {why}")),
                            Err(Skip::Unfollowed(why)) => {
                                return Err(NftError::Unexpected(format!("{at}: {why}")))
                            }
                        }
                    }
                    _ => {}
                }
                follow(&mut registers, expr, &data_len);
            }
        }
        Ok(graph)
    }

    fn jump(&mut self, chain: &str, target: &str) {
        self.chains.jumps.entry(chain.to_string()).or_default().push(target.to_string());
    }

    /// The maps whose elements the graph needs.
    fn maps_needed(&self) -> impl Iterator<Item = &str> {
        let of_dnat =
            self.dnats.iter().flat_map(|d| [&d.address, &d.port]).filter_map(|p| match p {
                Part::Map { set, .. } => Some(set.as_str()),
                Part::Const(_) => None,
            });
        self.vmaps.iter().map(|(_, set)| set.as_str()).chain(of_dnat)
    }

    /// The Services, given the elements of the maps and sets read.
    fn finish(mut self, family: Family, elements: &HashMap<String, Vec<NftElement>>) -> Parsed {
        let of = |set: &str| of(elements, set);
        for (chain, set) in std::mem::take(&mut self.vmaps) {
            for element in of(&set) {
                if let Some(Data::Verdict(verdict)) = &element.data {
                    if let Some(target) = verdict.chain() {
                        self.jump(&chain, target);
                    }
                }
            }
        }
        for dnat in std::mem::take(&mut self.dnats) {
            match targets(family, &dnat, elements) {
                Ok(targets) => {
                    self.chains.dnat.entry(dnat.chain.clone()).or_default().extend(targets)
                }
                Err(why) => self.skipped.push(format!("{}: {why}", dnat.at)),
            }
        }
        let mut found = Found::default();
        let mut skipped = self.skipped;
        let place = |set: &str, i: usize| {
            format!("{} {TABLE} map {set}, element {}", family.as_str(), i + 1)
        };
        for (i, element) in of("cluster-ips").iter().enumerate() {
            match family.address(&element.key) {
                Some(ip) => found.cluster_ips.push(ip),
                None => skipped.push(format!(
                    "{}: a key of {} bytes is not an address",
                    place("cluster-ips", i),
                    element.key.len()
                )),
            }
        }
        for (set, into) in [
            ("service-ips", &mut found.service_ips),
            ("no-endpoint-services", &mut found.no_endpoints),
        ] {
            for (i, element) in of(set).iter().enumerate() {
                if element.flags & NFT_SET_ELEM_INTERVAL_END != 0 {
                    continue;
                }
                match service_element(family, element) {
                    Ok(parsed) => into.push((parsed, place(set, i))),
                    Err(why) => skipped.push(format!("{}: {why}", place(set, i))),
                }
            }
        }
        build(&found, &self.chains, skipped)
    }
}

/// The elements read of `set` (none if it was not read).
fn of<'a>(elements: &'a HashMap<String, Vec<NftElement>>, set: &str) -> &'a [NftElement] {
    elements.get(set).map_or(&[], Vec::as_slice)
}

/// Why a `dnat` gives no target.
enum Skip {
    /// A form `nft list` prints and the text parser skips too (a range, no
    /// port): listed in `skipped`.
    Listed(String),
    /// Registers written by something not followed here: the listing tool
    /// must read this table instead.
    Unfollowed(String),
}

fn dnat_parts(
    family: Family,
    registers: &Registers,
    addr: Option<(u32, Option<u32>)>,
    proto: Option<(u32, Option<u32>)>,
    flags: u32,
) -> Result<(Part, Part), Skip> {
    let Some((addr_min, addr_max)) = addr else {
        return Err(Skip::Listed("dnat without an address".into()));
    };
    if addr_max.is_some_and(|max| max != addr_min) {
        return Err(Skip::Listed("dnat to an address range".into()));
    }
    let Some((proto_min, proto_max)) = proto.filter(|_| flags & NF_NAT_RANGE_PROTO_SPECIFIED != 0)
    else {
        return Err(Skip::Listed("dnat without a port".into()));
    };
    if proto_max.is_some_and(|max| max != proto_min) {
        return Err(Skip::Listed("dnat to a port range".into()));
    }
    let part = |register: u32, len: usize| match registers.read(register) {
        Some((Value::Const(bytes), offset)) => bytes
            .get(offset..offset + len)
            .map(|b| Part::Const(b.to_vec()))
            .ok_or_else(|| Skip::Unfollowed(format!("register {register} holds too few bytes"))),
        Some((Value::MapData { set }, offset)) => Ok(Part::Map { set: set.clone(), offset }),
        _ => Err(Skip::Unfollowed(format!(
            "a dnat whose register {register} was written by an expression not followed here"
        ))),
    };
    Ok((part(addr_min, family.address_len())?, part(proto_min, 2)?))
}

/// The DNAT targets of one `dnat`: one, or one per element of its map.
fn targets(
    family: Family,
    dnat: &Dnat,
    elements: &HashMap<String, Vec<NftElement>>,
) -> Result<Vec<SocketAddr>, String> {
    let alen = family.address_len();
    let address = |bytes: &[u8]| {
        family.address(bytes).ok_or_else(|| "cannot read the DNAT address".to_string())
    };
    let port = |bytes: &[u8]| match bytes {
        [a, b, ..] => Ok(u16::from_be_bytes([*a, *b])),
        _ => Err("cannot read the DNAT port".to_string()),
    };
    let map = match (&dnat.address, &dnat.port) {
        (Part::Const(a), Part::Const(p)) => {
            return Ok(vec![SocketAddr::new(address(a)?, port(p)?)]);
        }
        (Part::Map { set, .. }, Part::Map { set: other, .. }) if set != other => {
            return Err(format!("dnat from two maps, {set} and {other}"));
        }
        (Part::Map { set, .. }, _) | (_, Part::Map { set, .. }) => set,
    };
    let mut out = Vec::new();
    for element in of(elements, map) {
        let Some(Data::Value(data)) = &element.data else {
            return Err(format!("an element of map {map} has no data"));
        };
        let pick = |part: &Part, len: usize| match part {
            Part::Const(bytes) => Some(bytes.clone()),
            Part::Map { offset, .. } => data.get(*offset..offset + len).map(<[u8]>::to_vec),
        };
        let (Some(a), Some(p)) = (pick(&dnat.address, alen), pick(&dnat.port, 2)) else {
            return Err(format!("an element of map {map} is too short for address and port"));
        };
        let port = port(&p)?;
        // Why: the text parser refuses port 0 in an inline map too.
        if port == 0 {
            return Err(format!("an element of map {map} has port 0"));
        }
        out.push(SocketAddr::new(address(&a)?, port));
    }
    Ok(out)
}

/// A `service-ips` or `no-endpoint-services` element: key `address .
/// protocol . port` (each padded to 4 bytes), data a verdict.
fn service_element(family: Family, element: &NftElement) -> Result<Element, String> {
    let alen = family.address_len();
    let key = &element.key;
    if key.len() != alen + 8 {
        return Err(format!("a key of {} bytes is not address . protocol . port", key.len()));
    }
    let ip = family.address(&key[..alen]).ok_or("bad address")?;
    let protocol = Protocol::from_number(key[alen])
        .ok_or_else(|| format!("protocol {} is not tcp, udp or sctp", key[alen]))?;
    let port = u16::from_be_bytes([key[alen + 4], key[alen + 5]]);
    if port == 0 {
        return Err(format!("{ip} . {} . 0: port 0", protocol.as_str()));
    }
    let chain = match &element.data {
        Some(Data::Verdict(verdict)) => match verdict {
            Verdict::Jump(chain) | Verdict::Goto(chain) => Some(chain.clone()),
            Verdict::Drop | Verdict::Accept | Verdict::Return | Verdict::Continue => None,
            Verdict::Other(code) => {
                return Err(format!("verdict code {code} is not goto/jump CHAIN or drop"))
            }
        },
        _ => return Err("no verdict".into()),
    };
    Ok(Element { ip, protocol, port, comment: element.comment.clone(), chain })
}

#[cfg(test)]
mod both_modes;

#[cfg(test)]
mod tests {
    use super::*;

    fn element(key: &[u8], data: Option<Data>) -> NftElement {
        NftElement { key: key.to_vec(), data, flags: 0, comment: None }
    }

    fn goto(chain: &str) -> Option<Data> {
        Some(Data::Verdict(Verdict::Goto(chain.into())))
    }

    #[test]
    fn service_elements_and_what_is_wrong_with_them() {
        let key = [198, 19, 0, 10, 17, 0, 0, 0, 0, 53, 0, 0];
        let e = service_element(Family::Ip, &element(&key, goto("service-X-a/b/udp/dns"))).unwrap();
        assert_eq!(
            (e.ip.to_string(), e.protocol, e.port),
            ("198.19.0.10".into(), Protocol::Udp, 53)
        );
        assert_eq!(e.chain.as_deref(), Some("service-X-a/b/udp/dns"));
        let drop = Some(Data::Verdict(Verdict::Drop));
        assert_eq!(service_element(Family::Ip, &element(&key, drop)).unwrap().chain, None);
        let mut v6 = vec![0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xa];
        v6.extend_from_slice(&[6, 0, 0, 0, 1, 187, 0, 0]);
        let e = service_element(Family::Ip6, &element(&v6, goto("x"))).unwrap();
        assert_eq!(
            (e.ip.to_string(), e.protocol, e.port),
            ("2001:db8::a".into(), Protocol::Tcp, 443)
        );
        for (key, data, why) in [
            (&key[..8], goto("x"), "8 bytes"),
            (&[198, 19, 0, 10, 1, 0, 0, 0, 0, 53, 0, 0][..], goto("x"), "protocol 1"),
            (&[198, 19, 0, 10, 17, 0, 0, 0, 0, 0, 0, 0][..], goto("x"), "port 0"),
            (&key[..], Some(Data::Verdict(Verdict::Other(3))), "verdict code 3"),
            (&key[..], Some(Data::Value(vec![1])), "no verdict"),
            (&key[..], None, "no verdict"),
        ] {
            let error = service_element(Family::Ip, &element(key, data)).unwrap_err();
            assert!(error.contains(why), "{error} lacks {why}");
        }
        // An IPv4 key in the ip6 table is the wrong length.
        assert!(service_element(Family::Ip6, &element(&key, goto("x"))).is_err());
    }

    #[test]
    fn dnat_targets_from_constants_and_maps() {
        let fixed = Dnat {
            chain: "c".into(),
            at: "here".into(),
            address: Part::Const(vec![198, 18, 2, 2]),
            port: Part::Const(vec![0, 53]),
        };
        let none = HashMap::new();
        assert_eq!(targets(Family::Ip, &fixed, &none).unwrap(), ["198.18.2.2:53".parse().unwrap()]);
        // `dnat ip to numgen ... map { 0 : 198.18.7.1 . 8443, ... }`: the
        // map's data is address then port, each padded to 4 bytes.
        let mapped = Dnat {
            chain: "c".into(),
            at: "here".into(),
            address: Part::Map { set: "__map3".into(), offset: 0 },
            port: Part::Map { set: "__map3".into(), offset: 4 },
        };
        let data = |last: u8, port: u16| {
            let mut d = vec![198, 18, 7, last];
            d.extend_from_slice(&port.to_be_bytes());
            d.extend_from_slice(&[0, 0]);
            element(&[0, 0, 0, last], Some(Data::Value(d)))
        };
        let mut elements =
            HashMap::from([("__map3".to_string(), vec![data(1, 8443), data(2, 8443)])]);
        assert_eq!(
            targets(Family::Ip, &mapped, &elements).unwrap(),
            ["198.18.7.1:8443".parse().unwrap(), "198.18.7.2:8443".parse().unwrap()]
        );
        elements.insert("__map3".into(), vec![data(1, 0)]);
        assert!(targets(Family::Ip, &mapped, &elements).unwrap_err().contains("port 0"));
        elements.insert("__map3".into(), vec![element(&[0; 4], Some(Data::Value(vec![198, 18])))]);
        assert!(targets(Family::Ip, &mapped, &elements).unwrap_err().contains("too short"));
        let two = Dnat { port: Part::Map { set: "__map4".into(), offset: 4 }, ..mapped };
        assert!(targets(Family::Ip, &two, &elements).unwrap_err().contains("two maps"));
    }

    #[test]
    fn dnat_registers() {
        let mut registers = Registers::default();
        registers.write(1, 4, Value::Const(vec![198, 18, 2, 2]));
        registers.write(2, 2, Value::Const(vec![0, 53]));
        let spec = NF_NAT_RANGE_PROTO_SPECIFIED;
        let ok = dnat_parts(Family::Ip, &registers, Some((1, Some(1))), Some((2, Some(2))), spec);
        assert!(matches!(ok, Ok((Part::Const(_), Part::Const(_)))));
        let listed = |r: Result<(Part, Part), Skip>| match r {
            Err(Skip::Listed(why)) => why,
            other => panic!("{:?}", other.map(|_| ()).map_err(|_| ())),
        };
        assert!(listed(dnat_parts(Family::Ip, &registers, None, None, spec)).contains("address"));
        assert!(listed(dnat_parts(Family::Ip, &registers, Some((1, Some(3))), None, spec))
            .contains("range"));
        assert!(listed(dnat_parts(Family::Ip, &registers, Some((1, None)), Some((2, None)), 0))
            .contains("port"));
        // A register nothing followed wrote: the listing tool reads it.
        assert!(matches!(
            dnat_parts(Family::Ip, &registers, Some((3, None)), Some((2, None)), spec),
            Err(Skip::Unfollowed(_))
        ));
    }
}
