//! The live watch's parts: the capture opened in the node's namespace,
//! kube-dns's ClusterIPs and endpoints from its rules, the conntrack
//! entry of a client's tuple (rate-limited dumps), and pod names as
//! `stale` finds them.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::capture::LiveCapture;
use super::matcher::{EntryLookup, ServiceView};
use super::model::PodName;
use super::run::{service_view, source_error, Parts, PodNamer};
use crate::conntrack::entry::{
    decode_entry, family_of, DumpFilter, AF_INET, AF_INET6, IPPROTO_UDP,
};
use crate::conntrack::socket::{CtnetlinkSocket, DumpEvent};
use crate::error::Result;
use crate::netns::{run_in, Netns};
use crate::service::select::{resolve, Selector};
use crate::service::Protocol;
use crate::stale::clients::{linked_namespaces, ClientIndex};

/// At most one conntrack dump per Service address per this long: the
/// lookups of a burst of unanswered queries share one.
const LOOKUP_EVERY: Duration = Duration::from_secs(1);
/// How long one dump may take.
const DUMP_DEADLINE: Duration = Duration::from_secs(2);
/// At most one rebuild of the pod index per this long (a client not
/// named yet may be a new pod).
const RENAME_EVERY: Duration = Duration::from_secs(10);

/// The live parts in `netns` (the current namespace when `None`), for
/// the Service `selector` (its ClusterIPs and endpoints from the node's
/// rules, or as given). A node whose rules cannot be read is watched
/// without them (nothing is `stale-entry` then), with a note on stderr.
pub fn parts(netns: Option<&str>, selector: &Selector) -> Result<Parts> {
    let ns = netns.map(Netns::open).transpose()?;
    let capture = run_in(ns.as_ref(), LiveCapture::open)?.map_err(source_error)?;
    let mut service = match resolve(selector, ns.as_ref(), &[Protocol::Udp]) {
        Ok(resolved) => view_of(&resolved.services),
        Err(why) => {
            eprintln!(
                "ctdiag watch: the DNS Service is not known ({}); stale entries are not recognised",
                why.message(&crate::service::select::Advice {
                    manual: "pass --cluster-ip IP[:PORT] --endpoints IP:PORT,...",
                    node: "--netns with the node's namespace",
                })
            );
            ServiceView::default()
        }
    };
    // Endpoints the node cannot route to, once at the start.
    let ips: Vec<IpAddr> = service.endpoints.iter().map(SocketAddr::ip).collect();
    let (unreachable, _) = crate::stale::reach::check(&ips, ns.as_ref());
    service.unreachable = service
        .endpoints
        .iter()
        .filter(|e| unreachable.iter().any(|u| u.endpoint == e.ip()))
        .copied()
        .collect();
    let socket = run_in(ns.as_ref(), CtnetlinkSocket::open)?.ok();
    let lookup = ConntrackLookup { socket, targets: HashMap::new(), dumped: HashMap::new() };
    let peers = run_in(ns.as_ref(), linked_namespaces).unwrap_or_default();
    let namer = Namer::new(peers);
    Ok(Parts {
        source: Box::new(capture),
        lookup: Box::new(lookup),
        namer: Box::new(namer),
        service,
        live: true,
    })
}

/// The matcher's view of Service ports: their ClusterIP:port pairs and
/// endpoints.
pub fn view_of(services: &[crate::service::Service]) -> ServiceView {
    let mut view = ServiceView::default();
    for s in services {
        let one = service_view(&s.cluster_ips, s.port, &s.endpoints);
        view.service_addrs.extend(one.service_addrs);
        view.endpoints.extend(one.endpoints);
    }
    view
}

/// The client tuple's conntrack entry, from dumps filtered on the Service
/// address the client asked (one per address per [`LOOKUP_EVERY`]).
struct ConntrackLookup {
    /// `None` without CAP_NET_ADMIN or ctnetlink: no lookups.
    socket: Option<CtnetlinkSocket>,
    /// Client address and port -> reply source, from the last dumps.
    targets: HashMap<(SocketAddr, SocketAddr), SocketAddr>,
    /// When each Service address was last dumped.
    dumped: HashMap<SocketAddr, Instant>,
}

impl ConntrackLookup {
    fn dump(&mut self, asked: SocketAddr) {
        let Some(socket) = self.socket.as_mut() else { return };
        let filter = DumpFilter {
            family: if asked.is_ipv4() { AF_INET } else { AF_INET6 },
            protocol: IPPROTO_UDP,
            dst: Some(asked.ip()),
            dst_port: Some(asked.port()),
        };
        let mut found = Vec::new();
        let outcome = socket.dump_each(
            "IPCTNL_MSG_CT_GET (watch lookup)",
            family_of(filter.family),
            &filter.request(),
            DUMP_DEADLINE,
            |event| {
                match event {
                    DumpEvent::Restart { .. } => found.clear(),
                    DumpEvent::Message(raw) => {
                        if let Ok(entry) = decode_entry(raw.family, raw.attributes) {
                            if filter.matches(&entry) {
                                found.push((entry.orig.source(), entry.reply.source()));
                            }
                        }
                    }
                }
                Ok(())
            },
        );
        self.targets.retain(|(_, a), _| *a != asked);
        if outcome.is_ok() {
            for (client, target) in found {
                self.targets.insert((client, asked), target);
            }
        }
    }
}

impl EntryLookup for ConntrackLookup {
    fn dnat_target(&mut self, client: SocketAddr, asked: SocketAddr) -> Option<SocketAddr> {
        if let Some(target) = self.targets.get(&(client, asked)) {
            return Some(*target);
        }
        let due = self.dumped.get(&asked).is_none_or(|t| t.elapsed() >= LOOKUP_EVERY);
        if !due {
            return None;
        }
        self.dumped.insert(asked, Instant::now());
        self.dump(asked);
        self.targets.get(&(client, asked)).copied()
    }
}

/// Pod names from the node's namespaces. An address not found starts a
/// rebuild of the index on a thread of its own (at most one per
/// [`RENAME_EVERY`]): the walk takes up to seconds, the capture must not
/// wait for it.
struct Namer {
    index: Arc<Mutex<ClientIndex>>,
    peers: HashSet<String>,
    built: Instant,
    rebuilding: Option<std::thread::JoinHandle<()>>,
}

impl Namer {
    fn new(peers: HashSet<String>) -> Namer {
        let index = Arc::new(Mutex::new(ClientIndex::build_all(&peers)));
        Namer { index, peers, built: Instant::now(), rebuilding: None }
    }

    fn rebuild(&mut self) {
        if self.rebuilding.as_ref().is_some_and(|t| !t.is_finished())
            || self.built.elapsed() < RENAME_EVERY
        {
            return;
        }
        self.built = Instant::now();
        let index = Arc::clone(&self.index);
        let peers = self.peers.clone();
        self.rebuilding = std::thread::Builder::new()
            .name("watch-pods".into())
            .spawn(move || {
                let fresh = ClientIndex::build_all(&peers);
                if let Ok(mut index) = index.lock() {
                    *index = fresh;
                }
            })
            .ok();
    }
}

impl PodNamer for Namer {
    fn name(&mut self, address: IpAddr) -> Option<PodName> {
        let found = self.index.lock().ok().and_then(|index| {
            index.get(&address).map(|c| PodName {
                netns: c.netns.clone(),
                hostname: c.hostname.clone().unwrap_or_default(),
            })
        });
        if found.is_none() {
            self.rebuild();
        }
        found
    }
}
