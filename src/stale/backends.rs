//! Both iptables backends in use: kube-proxy's iptables-mode rules read
//! from nf_tables (iptables-nft), while legacy x_tables tables exist too.
//! The rule reader then takes the nf_tables copy and only says that the
//! other exists; a kube-proxy running `iptables-legacy` (or leftovers of
//! one) may DNAT to endpoints the nf_tables copy does not name. For the
//! Services `stale` scans, the legacy copy is read as a rule source of its
//! own (`iptables-legacy-save`), so that disagreeing copies are seen (a
//! flush refuses them) and an entry towards an endpoint either copy names
//! is live. Read only when legacy tables exist beside nf_tables rules: a
//! node with one backend pays nothing.

use crate::netns::{run_in, Netns};
use crate::process::{listing_deadline, run_bounded, RunError};
use crate::service::select::{Resolved, Selector};
use crate::service::{iptables, Protocol, ProxyMode, Service};

/// The label of the legacy copy's source.
pub(super) const LEGACY_LABEL: &str = "iptables rules (legacy backend)";

/// The legacy tables' save tools per family, with the file listing the
/// family's legacy tables.
const LEGACY: [(&str, &str); 2] =
    [("iptables-legacy-save", "ip_tables_names"), ("ip6tables-legacy-save", "ip6_tables_names")];

/// The legacy backend's copy of the Services `selector` names, when the
/// rules were read from nf_tables and legacy tables exist too; and a note
/// when the legacy tool could not run.
pub(super) fn legacy_copies(
    selector: &Selector,
    resolved: &Resolved,
    netns: Option<&Netns>,
) -> (Vec<Service>, Vec<String>) {
    let from_nf_tables = resolved.services.iter().any(|s| s.proxy_mode == ProxyMode::Iptables)
        && !resolved.source.contains("legacy");
    if !from_nf_tables || matches!(selector, Selector::Manual(_)) {
        return (Vec::new(), Vec::new());
    }
    let read = run_in(netns, || {
        let mut text = String::new();
        let mut notes = Vec::new();
        for (tool, names) in LEGACY {
            let tables = std::fs::read_to_string(crate::netns::proc_net_dir().join(names))
                .unwrap_or_default();
            if tables.split_whitespace().next().is_none() {
                continue;
            }
            match run_bounded(tool, &[], None, listing_deadline()) {
                Ok(ran) if ran.status.success() => text.push_str(&ran.stdout_text()),
                Ok(ran) => notes.push(format!("{tool}: {} {}", ran.status, ran.stderr_text())),
                Err(RunError::NotFound { .. }) => notes.push(format!(
                    "legacy iptables tables exist ({}) but {tool} is not installed: the legacy backend's copy of the rules was not compared",
                    tables.split_whitespace().collect::<Vec<_>>().join(", ")
                )),
                Err(error) => notes.push(format!("{tool}: {error}")),
            }
        }
        (text, notes)
    });
    let Ok((text, notes)) = read else {
        return (Vec::new(), vec!["the legacy iptables tables could not be read".into()]);
    };
    if text.is_empty() {
        return (Vec::new(), notes);
    }
    let services = iptables::parse(&text)
        .services
        .into_iter()
        .filter(|s| s.protocol == Protocol::Udp)
        .filter(|s| match selector {
            Selector::Spec(spec) => spec.matches(s),
            Selector::All => true,
            Selector::Manual(_) => false,
        })
        .collect();
    (services, notes)
}
