//! The targeted read: the kube-proxy rules of one Service instead of all
//! of them, so that the commands that need one Service (`stale`, `probe`
//! and `compare` with `--service`, probe's default server, `doctor`) cost
//! about the same on a node with 20,000 Services as on one with 20.
//!
//! Every source the full read ([`super::discover_with`]) reads is read
//! here too, each as far as the Service goes: iptables mode over netlink
//! ([`super::iptables::read_service_family`]), nftables mode over netlink
//! ([`super::nftables::read_service_family`]), the IPVS table (read whole:
//! one small file, and IPVS has no names to select by), and, where netlink
//! gives no reading, the listing tools (whole listings, the Service's
//! ports kept). Each source's Service ports stay separate entries, with
//! the source's endpoints, exactly as the full read has them.

use super::ipvs::ClusterDnsHint;
use super::select::ServiceSpec;
use super::{discover_modes, iptables, nftables, Discovery, ModeRead};
use crate::error::Result;
use crate::netns::Netns;

/// Reads the Service ports `spec` names in every mode's rules in `netns`
/// (the current namespace when `None`): [`super::discover_with`] with only
/// those ports in [`Discovery::parsed`] and [`Discovery::per_mode`], and
/// only the skipped rules among those read.
pub fn discover_service(
    netns: Option<&Netns>,
    spec: &ServiceSpec,
    hint: &ClusterDnsHint,
) -> Result<Discovery> {
    discover_modes(
        netns,
        hint,
        &ModeRead {
            iptables: &|| iptables::read_service(netns, Some(spec)),
            nftables: &|| nftables::read_service(netns, Some(spec)),
        },
        &|service| spec.matches(service),
    )
}

/// Which Service ports the rules in `netns` define, cheaply: each mode's
/// ClusterIP rules or map elements only (the `KUBE-SERVICES` chains, the
/// `service-ips` and `no-endpoint-services` maps), not the chains behind
/// them, so the ports read over netlink come without endpoints (the
/// listing tools, when they stand in, give them whole). For an error that
/// lists what there is when a Service is not found: the same ports,
/// addresses and sources as [`super::discover_with`].
pub fn discover_names(netns: Option<&Netns>, hint: &ClusterDnsHint) -> Result<Discovery> {
    discover_modes(
        netns,
        hint,
        &ModeRead {
            iptables: &|| iptables::read_service(netns, None),
            nftables: &|| nftables::read_service(netns, None),
        },
        &|_| true,
    )
}

/// Whether a Service named on the command line is read with
/// [`discover_service`]: yes, unless `CTDIAG_SERVICE_READ=full` asks for
/// the full read (to compare the two, or to measure the difference).
pub fn enabled() -> bool {
    std::env::var("CTDIAG_SERVICE_READ").map_or(true, |v| v != "full")
}
