//! iptables mode over netlink for one Service: instead of the whole `nat`
//! table, the rules of `KUBE-SERVICES` that name the Service (one rule
//! dump filtered by the kernel to that chain; messages that do not carry
//! the Service's `namespace/name` are dropped before they are decoded),
//! then the `KUBE-SVC-*` / `KUBE-SVL-*` chains they jump to and the
//! `KUBE-SEP-*` chains those jump to, one chain dump each; and the
//! no-endpoints rules of filter's `KUBE-SERVICES` the same way. Every rule
//! read goes through the same [`Parser::rule`] as in the full read, so
//! the Service comes out as the full read makes it.

use std::collections::HashSet;

use super::{feed, to_rule, KUBE_SERVICES};
use crate::netfilter::nf_tables::{consistent, Family, NftError, NftRule, Source};
use crate::service::iptables::{port_rule, Parser};
use crate::service::select::ServiceSpec;
use crate::service::{ListingParser, Parsed};

/// The chains whose jumps the parser follows from a ClusterIP rule (its
/// [`Parser::rule`] keeps jumps to these only).
const FOLLOWED: [&str; 3] = ["KUBE-SVC-", "KUBE-SVL-", "KUBE-SEP-"];

/// The rules iptables-nft wrote for the Service ports `spec` names, of
/// `family`, read over netlink in one consistent generation and parsed;
/// `None` when neither `nat` nor `filter` has a `KUBE-SERVICES` chain
/// (as [`super::read_family`]). Without a spec: every Service port's
/// `KUBE-SERVICES` rules and nothing else, so the Services come without
/// their endpoints (what there is, for an error that lists it).
pub fn read_service_family<S: Source + ?Sized>(
    source: &mut S,
    family: Family,
    spec: Option<&ServiceSpec>,
) -> Result<Option<Parsed>, NftError> {
    // Every rule kube-proxy writes for the Service carries this in its
    // comment.
    let mention = spec.map(|spec| format!("{}/{}", spec.namespace, spec.name));
    let mention = mention.as_deref().map(str::as_bytes);
    consistent(source, |reader| {
        let nat = reader.chain_exists(family, "nat", KUBE_SERVICES)?;
        let filter = reader.chain_exists(family, "filter", KUBE_SERVICES)?;
        if !nat && !filter {
            return Ok(None);
        }
        let mut parser = Parser::default();
        if nat {
            let rules = reader.chain_rules(family, "nat", KUBE_SERVICES, mention)?;
            let mut chains = Vec::new();
            for nft in rules.iter().filter(|r| names_it(family, r, " cluster IP", spec)) {
                chains.extend(feed(&mut parser, family, "nat", nft)?.target);
            }
            if spec.is_some() {
                follow(reader, family, &mut parser, chains)?;
            }
        }
        if filter {
            let rules = reader.chain_rules(family, "filter", KUBE_SERVICES, mention)?;
            for nft in rules.iter().filter(|r| names_it(family, r, " has no endpoints", spec)) {
                feed(&mut parser, family, "filter", nft)?;
            }
        }
        Ok(Some(parser.finish()))
    })
}

/// Whether a `KUBE-SERVICES` rule is the `suffix` rule (` cluster IP`,
/// ` has no endpoints`) of a port `spec` names, or one of that Service's
/// the parser cannot read (so it is listed as skipped, or refused, as the
/// full read would). Without a spec: every rule.
fn names_it(family: Family, nft: &NftRule, suffix: &str, spec: Option<&ServiceSpec>) -> bool {
    let Some(spec) = spec else { return true };
    let Ok(rule) = to_rule(family, nft) else { return true };
    match port_rule(&rule, suffix) {
        Ok(Some(r)) => spec.names(&r.key.0, &r.key.1, &r.key.2, r.port),
        Ok(None) => false,
        Err(_) => rule.comment.as_deref().is_some_and(|c| {
            c.strip_prefix(&format!("{}/{}", spec.namespace, spec.name))
                .is_some_and(|rest| rest.starts_with([':', ' ']))
        }),
    }
}

/// Reads the `nat` chains reachable from `chains` through the jumps the
/// parser follows, each once, feeding their rules to `parser`.
fn follow<S: Source + ?Sized>(
    reader: &mut S,
    family: Family,
    parser: &mut Parser,
    mut chains: Vec<String>,
) -> Result<(), NftError> {
    let mut seen = HashSet::new();
    while let Some(chain) = chains.pop() {
        if !FOLLOWED.iter().any(|p| chain.starts_with(p)) || !seen.insert(chain.clone()) {
            continue;
        }
        for nft in reader.chain_rules(family, "nat", &chain, None)? {
            chains.extend(feed(parser, family, "nat", &nft)?.target);
        }
    }
    Ok(())
}
