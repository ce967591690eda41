//! resolv.conf: which file a namespace's resolver reads, its first
//! nameserver and the `timeout`/`attempts` options; and the whole set-up a
//! pod's resolver takes from it ([`ResolverSetup`]: search list, ndots and
//! the options that change how A and AAAA are sent).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::dns::rootfs::{read_path, split_proc_root, RootFile, MAX_RESOLV_CONF};
use crate::error::{Error, Result};

/// glibc's default `options timeout:` (RES_TIMEOUT), in seconds.
pub const DEFAULT_TIMEOUT_S: u32 = 5;
/// glibc's default `options attempts:` (RES_DFLRETRY).
pub const DEFAULT_ATTEMPTS: u32 = 2;
/// glibc caps `timeout:` at 30 s (RES_MAXRETRANS).
const MAX_TIMEOUT_S: u32 = 30;
/// glibc caps `attempts:` at 5 (RES_MAXRETRY).
const MAX_ATTEMPTS: u32 = 5;

/// What the probe needs from a resolv.conf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvConf {
    /// `nameserver` lines, in order.
    pub nameservers: Vec<IpAddr>,
    /// `options timeout:N`, seconds.
    pub timeout_s: u32,
    /// `options attempts:N`.
    pub attempts: u32,
}

impl ResolvConf {
    /// Parses the text as glibc does for the parts used here: the
    /// nameservers, `timeout` and `attempts` of [`ResolverSetup::parse`],
    /// the one resolv.conf parser (comments start with `#` or `;`, the last
    /// `options` value wins, unparsable nameserver addresses are skipped).
    pub fn parse(text: &str) -> Self {
        let ResolverSetup { nameservers, timeout_s, attempts, .. } = ResolverSetup::parse(text);
        ResolvConf { nameservers, timeout_s, attempts }
    }

    /// Reads and parses a file through the guarded reader
    /// ([`crate::dns::rootfs::read_path`]): a pod's file
    /// (`/proc/PID/root/etc/resolv.conf`) is resolved inside the pod's
    /// root, so its absolute symlink cannot lead to a host file; a FIFO, a
    /// device (a link to /dev/zero) or a binary file is refused, never
    /// waited on, and at most [`MAX_RESOLV_CONF`] bytes are read.
    pub fn read(path: &Path) -> Result<Self> {
        let error = |source| Error::ReadFile { path: path.to_path_buf(), source };
        match read_path(path, MAX_RESOLV_CONF) {
            RootFile::Read { text } | RootFile::Truncated { text, .. } => Ok(Self::parse(&text)),
            RootFile::Missing if split_proc_root(path).is_some() => {
                Err(error(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "not found inside the container's root (symlinks are followed inside it, never on the host)",
                )))
            }
            RootFile::Missing => Err(error(std::io::ErrorKind::NotFound.into())),
            RootFile::Refused { reason } => Err(error(std::io::Error::other(reason))),
        }
    }

    /// The first nameserver on port 53; a usage error naming the file when
    /// there is none.
    pub fn first_server(&self, path: &Path) -> Result<SocketAddr> {
        self.nameservers
            .first()
            .map(|ip| SocketAddr::new(*ip, 53))
            .ok_or_else(|| Error::Usage(format!("no nameserver in {}", path.display())))
    }

    /// The resolver's per-query timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(u64::from(self.timeout_s))
    }
}

/// glibc's default `options ndots:`.
pub const DEFAULT_NDOTS: u32 = 1;
/// glibc and musl cap `ndots:` at 15 (RES_MAXNDOTS).
const MAX_NDOTS: u32 = 15;
/// Longest line looked at; longer lines are cut (glibc's own buffer is
/// smaller still, so nothing a resolver uses is lost).
const MAX_LINE: usize = 4096;
/// Most search domains and options kept (a resolver uses far fewer).
const MAX_ITEMS: usize = 64;

/// What a pod's resolver takes from its resolv.conf, as glibc reads it
/// (musl reads the same keywords and ignores some options: see
/// [`crate::dns::rootfs::Libc`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResolverSetup {
    /// `nameserver` lines, in order (unparsable ones skipped).
    pub nameservers: Vec<IpAddr>,
    /// The search list (`search`, or `domain` as a one-entry list; the last
    /// such line wins).
    pub search: Vec<String>,
    /// `options ndots:N`: a name with fewer dots is tried with each search
    /// domain first.
    pub ndots: u32,
    /// `options timeout:N`, seconds.
    pub timeout_s: u32,
    /// `options attempts:N`.
    pub attempts: u32,
    /// `options single-request`: A, then AAAA after A's answer (glibc only).
    pub single_request: bool,
    /// `options single-request-reopen`: A, then AAAA from a new socket
    /// (glibc only).
    pub single_request_reopen: bool,
    /// `options use-vc`: queries over TCP (glibc only).
    pub use_vc: bool,
    /// `options no-aaaa`: no AAAA query at all (glibc >= 2.36).
    pub no_aaaa: bool,
    /// `options rotate`.
    pub rotate: bool,
    /// Any other option, as written.
    pub other_options: Vec<String>,
}

impl ResolverSetup {
    /// Parses resolv.conf text as glibc does: `#` and `;` start comments,
    /// the last `search`/`domain` line wins, the last value of an option
    /// wins, values are clamped to glibc's limits, anything unknown is kept
    /// aside. Never fails: a file with nothing useful gives the defaults.
    pub fn parse(text: &str) -> Self {
        let mut setup = ResolverSetup {
            nameservers: Vec::new(),
            search: Vec::new(),
            ndots: DEFAULT_NDOTS,
            timeout_s: DEFAULT_TIMEOUT_S,
            attempts: DEFAULT_ATTEMPTS,
            single_request: false,
            single_request_reopen: false,
            use_vc: false,
            no_aaaa: false,
            rotate: false,
            other_options: Vec::new(),
        };
        for line in text.lines() {
            let line = match line.char_indices().nth(MAX_LINE) {
                Some((cut, _)) => &line[..cut],
                None => line,
            };
            let line = line.split(['#', ';']).next().unwrap_or("");
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => {
                    // Why strip a zone: `fe80::1%eth0` is valid in resolv.conf.
                    if let Some(ip) = words
                        .next()
                        .and_then(|w| w.split('%').next())
                        .and_then(|w| w.parse::<IpAddr>().ok())
                    {
                        if setup.nameservers.len() < MAX_ITEMS {
                            setup.nameservers.push(ip);
                        }
                    }
                }
                Some("search") => {
                    setup.search = words.take(MAX_ITEMS).map(str::to_string).collect();
                }
                Some("domain") => {
                    setup.search = words.next().map(str::to_string).into_iter().collect();
                }
                Some("options") => {
                    for option in words {
                        setup.option(option);
                    }
                }
                _ => {}
            }
        }
        setup
    }

    fn option(&mut self, option: &str) {
        let number = |prefix: &str| option.strip_prefix(prefix).and_then(|v| v.parse::<u32>().ok());
        if let Some(n) = number("ndots:") {
            self.ndots = n.min(MAX_NDOTS);
        } else if let Some(n) = number("timeout:") {
            self.timeout_s = n.clamp(1, MAX_TIMEOUT_S);
        } else if let Some(n) = number("attempts:") {
            self.attempts = n.clamp(1, MAX_ATTEMPTS);
        } else {
            match option {
                "single-request" => self.single_request = true,
                "single-request-reopen" => self.single_request_reopen = true,
                "use-vc" => self.use_vc = true,
                "no-aaaa" => self.no_aaaa = true,
                "rotate" => self.rotate = true,
                other => {
                    if self.other_options.len() < MAX_ITEMS
                        && !self.other_options.iter().any(|o| o == other)
                    {
                        self.other_options.push(other.to_string());
                    }
                }
            }
        }
    }

    /// How many names a lookup of a name with fewer than `ndots` dots
    /// (`example.com` under ndots:5) is tried as before an answer for the
    /// name itself: each search domain, then the name as given.
    pub fn names_per_short_lookup(&self) -> usize {
        self.search.len() + 1
    }

    /// The DNS queries such a lookup sends when every search name is
    /// NXDOMAIN: an A and an AAAA per name (only A with `no-aaaa`).
    pub fn queries_per_short_lookup(&self) -> usize {
        self.names_per_short_lookup() * if self.no_aaaa { 1 } else { 2 }
    }

    /// The options that are written, in resolv.conf spelling, for reports.
    pub fn options_text(&self) -> Vec<String> {
        let mut out = vec![
            format!("ndots:{}", self.ndots),
            format!("timeout:{}", self.timeout_s),
            format!("attempts:{}", self.attempts),
        ];
        for (set, name) in [
            (self.single_request, "single-request"),
            (self.single_request_reopen, "single-request-reopen"),
            (self.use_vc, "use-vc"),
            (self.no_aaaa, "no-aaaa"),
            (self.rotate, "rotate"),
        ] {
            if set {
                out.push(name.to_string());
            }
        }
        out.extend(self.other_options.iter().cloned());
        out
    }
}

/// The resolv.conf a process in the namespace named by `netns` reads:
/// `/proc/PID/root/etc/resolv.conf` for a PID (or `/proc/PID/ns/net`),
/// `/etc/netns/NAME/resolv.conf` for a named namespace when it exists (as
/// `ip netns exec` bind-mounts it), `/etc/resolv.conf` otherwise.
pub fn resolv_conf_path(netns: Option<&str>) -> PathBuf {
    let default = PathBuf::from("/etc/resolv.conf");
    // The same reading of the spec as `--netns` itself: a PID means
    // /proc/PID/ns/net, a bare name /run/netns/NAME.
    let Some(path) = netns.and_then(|spec| crate::netns::resolve_spec(spec).ok()) else {
        return default;
    };
    if let Some(pid) = path.to_str().and_then(|p| p.strip_prefix("/proc/")?.strip_suffix("/ns/net"))
    {
        if !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()) {
            return PathBuf::from(format!("/proc/{pid}/root/etc/resolv.conf"));
        }
    }
    let name = match (path.parent(), path.file_name()) {
        (Some(dir), Some(name))
            if dir == Path::new(crate::netns::NETNS_RUN_DIR)
                || dir == Path::new("/var/run/netns") =>
        {
            name.to_string_lossy().into_owned()
        }
        _ => return default,
    };
    let candidate = Path::new("/etc/netns").join(name).join("resolv.conf");
    if candidate.exists() {
        candidate
    } else {
        default
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_resolv_conf() {
        let conf = ResolvConf::parse(
            "search default.svc.cluster.local svc.cluster.local cluster.local\n\
             nameserver 198.19.0.10 # kube-dns\n\
             nameserver 2001:db8::53\n\
             options ndots:5 timeout:2 attempts:3\n",
        );
        assert_eq!(
            conf.nameservers,
            vec!["198.19.0.10".parse::<IpAddr>().unwrap(), "2001:db8::53".parse().unwrap()]
        );
        assert_eq!((conf.timeout_s, conf.attempts), (2, 3));
        assert_eq!(
            conf.first_server(Path::new("x")).unwrap(),
            "198.19.0.10:53".parse::<SocketAddr>().unwrap()
        );
    }

    #[test]
    fn defaults_and_clamps() {
        let conf = ResolvConf::parse("nameserver 198.18.0.1\noptions timeout:99 attempts:0\n");
        assert_eq!((conf.timeout_s, conf.attempts), (30, 1));
        let conf = ResolvConf::parse("nameserver 198.18.0.1\n");
        assert_eq!((conf.timeout_s, conf.attempts), (5, 2));
    }

    #[test]
    fn no_nameserver_names_the_file() {
        let conf =
            ResolvConf::parse("search cluster.local\n; nameserver 198.18.0.1\nnameserver bogus\n");
        let err = conf.first_server(Path::new("/etc/netns/x/resolv.conf")).unwrap_err();
        assert!(matches!(err, Error::Usage(_)));
        assert!(err.to_string().contains("/etc/netns/x/resolv.conf"), "{err}");
    }

    /// The kubelet's resolv.conf for a pod in `default` (ClusterFirst), with
    /// `extra` search domains appended (pods' dnsConfig adds them).
    fn pod_conf(extra: &[&str], options: &str) -> String {
        let mut search = vec!["default.svc.cluster.local", "svc.cluster.local", "cluster.local"];
        search.extend_from_slice(extra);
        format!("search {}\nnameserver 198.19.0.10\noptions ndots:5 {options}\n", search.join(" "))
    }

    #[test]
    fn ndots_5_with_3_to_6_search_domains() {
        let extra = ["ec2.internal", "corp.example", "example.test"];
        for n in 0..=3 {
            let setup = ResolverSetup::parse(&pod_conf(&extra[..n], ""));
            assert_eq!(setup.ndots, 5);
            assert_eq!(setup.search.len(), 3 + n);
            assert_eq!(setup.names_per_short_lookup(), 4 + n, "{n}");
            assert_eq!(setup.queries_per_short_lookup(), 2 * (4 + n), "{n}");
            assert_eq!(setup.nameservers, vec!["198.19.0.10".parse::<IpAddr>().unwrap()]);
        }
    }

    #[test]
    fn each_option() {
        type IsSet = fn(&ResolverSetup) -> bool;
        let cases: [(&str, IsSet); 5] = [
            ("single-request", |s| s.single_request),
            ("single-request-reopen", |s| s.single_request_reopen),
            ("use-vc", |s| s.use_vc),
            ("no-aaaa", |s| s.no_aaaa),
            ("rotate", |s| s.rotate),
        ];
        for (option, set) in cases {
            let setup = ResolverSetup::parse(&pod_conf(&[], option));
            assert!(set(&setup), "{option}");
            assert!(setup.options_text().contains(&option.to_string()), "{option}");
            let plain = ResolverSetup::parse(&pod_conf(&[], ""));
            assert!(!set(&plain), "{option}");
        }
        let setup = ResolverSetup::parse(&pod_conf(&[], "timeout:2 attempts:3 edns0 trust-ad"));
        assert_eq!((setup.timeout_s, setup.attempts), (2, 3));
        assert_eq!(setup.other_options, ["edns0", "trust-ad"]);
        assert_eq!(ResolverSetup::parse(&pod_conf(&[], "no-aaaa")).queries_per_short_lookup(), 4);
    }

    #[test]
    fn glibc_reading_rules() {
        // The last search/domain line wins; values clamp; comments go.
        let setup = ResolverSetup::parse(
            "search a.example b.example\ndomain only.example\noptions ndots:99 timeout:0 # x\n; options ndots:2\n",
        );
        assert_eq!(setup.search, ["only.example"]);
        assert_eq!((setup.ndots, setup.timeout_s), (15, 1));
        let defaults = ResolverSetup::parse("");
        assert_eq!((defaults.ndots, defaults.timeout_s, defaults.attempts), (1, 5, 2));
        assert_eq!(defaults.names_per_short_lookup(), 1);
        // Garbage and a huge line neither panic nor keep more than their caps.
        let long = format!("search {}\n", "x.example ".repeat(10_000));
        assert!(ResolverSetup::parse(&long).search.len() <= MAX_ITEMS);
        let _ = ResolverSetup::parse("\u{0}\u{fffd}options ndots:\nnameserver ::::\n");
    }

    #[test]
    fn which_file() {
        assert_eq!(resolv_conf_path(None), PathBuf::from("/etc/resolv.conf"));
        assert_eq!(resolv_conf_path(Some("42")), PathBuf::from("/proc/42/root/etc/resolv.conf"));
        assert_eq!(
            resolv_conf_path(Some("/proc/42/ns/net")),
            PathBuf::from("/proc/42/root/etc/resolv.conf")
        );
        // A named namespace without its own file falls back like `ip netns exec`.
        assert_eq!(
            resolv_conf_path(Some("no-such-namespace-ctdiag-test")),
            PathBuf::from("/etc/resolv.conf")
        );
    }
}
