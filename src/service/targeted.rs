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
            iptables: &|| iptables::read_service(netns, spec),
            nftables: &|| nftables::read_service(netns, spec),
        },
        &|service| spec.matches(service),
    )
}
