//! nftables mode over netlink for one Service: instead of the whole
//! table (every rule, one element dump per Service's map), the elements
//! of `service-ips` and `no-endpoint-services` (one dump each: a
//! ClusterIP's element names its Service only through the chain it goes
//! to, or its comment), then only the chains the Service's elements go
//! to, the chains and anonymous maps those reach (one chain dump, one
//! set GET and one element dump each), and for a port without endpoints
//! its address in `cluster-ips` (one element GET). The objects read go
//! through the same [`Graph`] as in the full read, so the Service comes
//! out as the full read makes it.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use super::{service_element, Graph, SERVICE_SETS, TABLE};
use crate::netfilter::nf_tables::{
    consistent, Data, Expr, Family, NftElement, NftError, NftRule, NftSet, Source,
    NFT_SET_ELEM_INTERVAL_END,
};
use crate::service::nftables::{chain_service, comment_service};
use crate::service::select::ServiceSpec;
use crate::service::Parsed;

/// kube-proxy's table of `family`, as far as the Service ports `spec`
/// names are concerned, read over netlink in one consistent generation;
/// `None` when the family has no such table (as [`super::read_family`]).
/// Without a spec: every Service port's elements and no chain, so the
/// Services come without their endpoints (what there is, for an error
/// that lists it).
pub fn read_service_family<S: Source + ?Sized>(
    source: &mut S,
    family: Family,
    spec: Option<&ServiceSpec>,
) -> Result<Option<Parsed>, NftError> {
    consistent(source, |reader| {
        if !reader.table_exists(family, TABLE)? {
            return Ok(None);
        }
        let mut sets = HashMap::new();
        for name in SERVICE_SETS {
            if let Some(set) = reader.set(family, TABLE, name)? {
                sets.insert(name.to_string(), set);
            }
        }
        let mut elements: HashMap<String, Vec<NftElement>> = HashMap::new();
        let mut chains = Vec::new();
        if sets.contains_key("service-ips") {
            let mut kept = reader.elements(family, TABLE, "service-ips")?;
            kept.retain(|e| service_ip_of(family, e, spec).is_some());
            if spec.is_some() {
                chains.extend(kept.iter().filter_map(|e| service_ip_of(family, e, spec)));
            }
            elements.insert("service-ips".into(), kept);
        }
        if sets.contains_key("no-endpoint-services") {
            let mut kept = reader.elements(family, TABLE, "no-endpoint-services")?;
            kept.retain(|e| no_endpoints_of(family, e, spec));
            if sets.contains_key("cluster-ips") && !kept.is_empty() {
                let members = match spec {
                    Some(_) => cluster_ips(reader, family, &kept)?,
                    None => reader.elements(family, TABLE, "cluster-ips")?,
                };
                elements.insert("cluster-ips".into(), members);
            }
            elements.insert("no-endpoint-services".into(), kept);
        }
        let rules = follow(reader, family, chains, &mut sets, &mut elements)?;
        let by_name = sets.iter().map(|(name, set)| (name.as_str(), set)).collect();
        let graph = Graph::from_rules(family, &rules, &by_name)?;
        let needed: Vec<String> = graph.maps_needed().map(str::to_string).collect();
        for name in needed {
            if let Entry::Vacant(slot) = elements.entry(name) {
                let read = reader.elements(family, TABLE, slot.key())?;
                slot.insert(read);
            }
        }
        Ok(Some(graph.finish(family, &elements)))
    })
}

/// The chain a `service-ips` element goes to, when it is a ClusterIP
/// element of a port `spec` names (any element without a spec).
fn service_ip_of(
    family: Family,
    element: &NftElement,
    spec: Option<&ServiceSpec>,
) -> Option<String> {
    let Some(spec) = spec else { return Some(String::new()) };
    if element.flags & NFT_SET_ELEM_INTERVAL_END != 0 {
        return None;
    }
    let parsed = service_element(family, element).ok()?;
    let chain = parsed.chain?;
    let (namespace, name, port_name, protocol) = chain_service(&chain)?;
    (protocol == parsed.protocol && spec.names(&namespace, &name, &port_name, parsed.port))
        .then_some(chain)
}

/// Whether a `no-endpoint-services` element is one of a port `spec`
/// names (by its comment); any element without a spec.
fn no_endpoints_of(family: Family, element: &NftElement, spec: Option<&ServiceSpec>) -> bool {
    let Some(spec) = spec else { return true };
    if element.flags & NFT_SET_ELEM_INTERVAL_END != 0 {
        return false;
    }
    let Ok(parsed) = service_element(family, element) else { return false };
    parsed.comment.as_deref().and_then(|c| comment_service(c, parsed.protocol)).is_some_and(
        |(namespace, name, port_name, _)| spec.names(&namespace, &name, &port_name, parsed.port),
    )
}

/// The `cluster-ips` elements that matter for `kept` (no-endpoint
/// elements): each one's address looked up with one element GET. Why the
/// whole set when none is in it: the full read takes an empty set to mean
/// "no such set" (older kube-proxy), so only the whole set tells an empty
/// set from one without these addresses.
fn cluster_ips<S: Source + ?Sized>(
    reader: &mut S,
    family: Family,
    kept: &[NftElement],
) -> Result<Vec<NftElement>, NftError> {
    let mut members = Vec::new();
    for element in kept {
        let Some(address) = element.key.get(..family.address_len()) else { continue };
        if members.iter().any(|m: &NftElement| m.key == address) {
            continue;
        }
        members.extend(reader.element(family, TABLE, "cluster-ips", address)?);
    }
    if members.is_empty() {
        return reader.elements(family, TABLE, "cluster-ips");
    }
    Ok(members)
}

/// Reads the chains reachable from `chains` (jumps, gotos and the
/// anonymous verdict maps the full read follows), each once, with the
/// sets their lookups name (into `sets`) and the elements of those
/// verdict maps (into `elements`); their rules, in the order read.
fn follow<S: Source + ?Sized>(
    reader: &mut S,
    family: Family,
    mut chains: Vec<String>,
    sets: &mut HashMap<String, NftSet>,
    elements: &mut HashMap<String, Vec<NftElement>>,
) -> Result<Vec<NftRule>, NftError> {
    let mut seen = HashSet::new();
    let mut all = Vec::new();
    while let Some(chain) = chains.pop() {
        if !seen.insert(chain.clone()) {
            continue;
        }
        let rules = reader.chain_rules(family, TABLE, &chain, None)?;
        for expr in rules.iter().flat_map(|r| &r.exprs) {
            match expr {
                Expr::Immediate { dreg: 0, data: Data::Verdict(verdict) } => {
                    chains.extend(verdict.chain().map(str::to_string));
                }
                Expr::Lookup { set, dreg, .. } => {
                    if !sets.contains_key(set) {
                        if let Some(found) = reader.set(family, TABLE, set)? {
                            sets.insert(set.clone(), found);
                        }
                    }
                    let vmap = *dreg == Some(0) && sets.get(set).is_some_and(|s| s.is_anonymous());
                    if vmap && !elements.contains_key(set) {
                        let read = reader.elements(family, TABLE, set)?;
                        elements.insert(set.clone(), read);
                    }
                    if vmap {
                        for element in elements.get(set).into_iter().flatten() {
                            if let Some(Data::Verdict(verdict)) = &element.data {
                                chains.extend(verdict.chain().map(str::to_string));
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        all.extend(rules);
    }
    Ok(all)
}
