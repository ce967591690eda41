//! resolv.conf: which file a namespace's resolver reads, its first
//! nameserver and the `timeout`/`attempts` options.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    /// Parses the text as glibc does for the parts used here: comments
    /// start with `#` or `;`, the last `options` value wins, unparsable
    /// nameserver addresses are skipped.
    pub fn parse(text: &str) -> Self {
        let mut conf = ResolvConf {
            nameservers: Vec::new(),
            timeout_s: DEFAULT_TIMEOUT_S,
            attempts: DEFAULT_ATTEMPTS,
        };
        for line in text.lines() {
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
                        conf.nameservers.push(ip);
                    }
                }
                Some("options") => {
                    for option in words {
                        if let Some(v) = option.strip_prefix("timeout:") {
                            if let Ok(n) = v.parse::<u32>() {
                                conf.timeout_s = n.clamp(1, MAX_TIMEOUT_S);
                            }
                        } else if let Some(v) = option.strip_prefix("attempts:") {
                            if let Ok(n) = v.parse::<u32>() {
                                conf.attempts = n.clamp(1, MAX_ATTEMPTS);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        conf
    }

    /// Reads and parses a file.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| Error::ReadFile { path: path.to_path_buf(), source })?;
        Ok(Self::parse(&text))
    }

    /// The first nameserver on port 53; a usage error naming the file when
    /// there is none.
    pub fn first_server(&self, path: &Path) -> Result<SocketAddr> {
        self.nameservers.first().map(|ip| SocketAddr::new(*ip, 53)).ok_or_else(|| {
            Error::Usage(format!(
                "no nameserver in {}: give the server to probe with --server IP[:PORT]",
                path.display()
            ))
        })
    }

    /// The resolver's per-query timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(u64::from(self.timeout_s))
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
