//! Sticky clients: processes in the client pod's namespace that each keep
//! ONE UDP socket bound to a fixed source port and send a DNS query to the
//! kube-dns ClusterIP every second, as a long-lived resolver does (Java's
//! cached resolver, nginx's `resolver`, Envoy, node-local caches). Their
//! conntrack entries in the node are what stale-endpoint and
//! never-translated leave behind: every retry refreshes the entry's
//! timeout, so a client whose entry points nowhere stays blackholed until
//! the entry is deleted.
//!
//! Each client runs as the hidden `ctdiag lab client` subcommand ([`run`]),
//! in its own UTS namespace with the pod's name as hostname (as in
//! Kubernetes, where the hostname of a pod is its name), and appends one
//! JSON line per query to its status file under the lab's state directory:
//! `{"seq":3,"id":4711,"sent_unix_ms":..,"answered":true,"rtt_ms":0.5,
//! "rcode":"NOERROR","answer":"198.19.0.1","error":null}`. A query counts as
//! unanswered when no answer arrived before the next query is due.
//!
//! A client never outlives its lab: it exits when the lab's namespace file
//! (`/run/netns/PREFIX-client`) no longer names the namespace it runs in
//! (the lab was torn down or rebuilt), after its lifetime cap, and `lab
//! down` stops it like every other process in the lab's namespaces.

use std::io::Write;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The name every sticky client looks up (an A record the lab's DNS
/// servers answer).
pub const QUERY_NAME: &str = "kubernetes.default.svc.cluster.local.";
/// The answer the lab's DNS servers give for [`QUERY_NAME`].
pub const EXPECTED_ANSWER: &str = "198.19.0.1";
/// Seconds between two queries of one client.
pub const QUERY_INTERVAL: Duration = Duration::from_secs(1);
/// The longest a client runs (it exits earlier with its lab).
pub const MAX_LIFETIME: Duration = Duration::from_secs(3600);
/// The first client's source port; client K uses `CLIENT_PORT_BASE + K`.
pub const CLIENT_PORT_BASE: u16 = 42000;
/// Most clients one lab starts over its life (ports 42001..=42128).
pub const MAX_CLIENTS: u32 = 128;

/// What `ctdiag lab client` does.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The socket's fixed local address (the pod's address and a port).
    pub bind: SocketAddr,
    /// The DNS server: the kube-dns ClusterIP and port 53.
    pub server: SocketAddr,
    /// Where each query's outcome is appended (JSON Lines).
    pub status_file: PathBuf,
    /// The pod's name, set as hostname in a new UTS namespace.
    pub hostname: String,
    /// The `ip netns` file of the namespace the client must be in; it
    /// exits once that file names another namespace or none.
    pub netns_file: PathBuf,
    /// Time between queries.
    pub interval: Duration,
    /// Exit after this long.
    pub lifetime: Duration,
}

impl ClientConfig {
    /// Checks the fields.
    pub fn validate(&self) -> Result<()> {
        if self.interval < Duration::from_millis(10) || self.interval > Duration::from_secs(60) {
            return Err(Error::Usage("--interval-ms: between 10 and 60000".into()));
        }
        if self.lifetime.is_zero() || self.lifetime > MAX_LIFETIME {
            return Err(Error::Usage(format!(
                "--lifetime-s: between 1 and {}",
                MAX_LIFETIME.as_secs()
            )));
        }
        if self.hostname.is_empty()
            || self.hostname.len() > 63
            || !self.hostname.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(Error::Usage(format!(
                "--hostname {:?}: a pod name of 1 to 63 letters, digits and '-'",
                self.hostname
            )));
        }
        if self.bind.is_ipv4() != self.server.is_ipv4() {
            return Err(Error::Usage("--bind and --server must be of one address family".into()));
        }
        Ok(())
    }
}

/// One query's outcome, one line of the status file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryRecord {
    /// 1 for the first query.
    pub seq: u64,
    /// The DNS message ID.
    pub id: u16,
    /// When it was sent, Unix time in milliseconds.
    pub sent_unix_ms: u64,
    /// Whether a matching answer arrived before the next query was due.
    pub answered: bool,
    /// Round-trip time of the answer, in milliseconds.
    pub rtt_ms: Option<f64>,
    /// The answer's response code (`NOERROR`, ...).
    pub rcode: Option<String>,
    /// The first A record of the answer.
    pub answer: Option<String>,
    /// A socket error on send or receive (e.g. an ICMP error).
    pub error: Option<String>,
}

/// The inode of a namespace file, which identifies the namespace.
fn ns_inode(path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| m.ino())
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Enters a new UTS namespace and sets the pod's hostname there; when the
/// pod's namespace has a resolv.conf of its own (`/etc/netns/NAME/
/// resolv.conf`), also a mount namespace where that file is bound over
/// /etc/resolv.conf, as `ip netns exec` and a container runtime arrange it,
/// so that whoever reads this process's root (`doctor`, through
/// /proc/PID/root) sees the pod's resolver, not the node's.
fn become_pod(hostname: &str, netns_file: &Path) -> Result<()> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUTS).map_err(|e| {
        Error::Runtime(format!("cannot create a UTS namespace for the pod's hostname: {e}"))
    })?;
    // SAFETY: sethostname(2) reads `len` bytes from a valid buffer.
    let rc = unsafe { libc::sethostname(hostname.as_ptr().cast(), hostname.len()) };
    if rc != 0 {
        return Err(Error::Runtime(format!(
            "cannot set the hostname {hostname:?}: {}",
            std::io::Error::last_os_error()
        )));
    }
    let Some(name) = netns_file.file_name() else { return Ok(()) };
    let pod_resolv_conf = Path::new("/etc/netns").join(name).join("resolv.conf");
    if !pod_resolv_conf.is_file() {
        return Ok(());
    }
    use nix::mount::{mount, MsFlags};
    let failed = |what: &str, e: nix::errno::Errno| {
        Error::Runtime(format!("cannot give the pod its resolv.conf ({what}): {e}"))
    };
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .map_err(|e| failed("mount namespace", e))?;
    // Why slave: the bind mount below must not leak back to the node, while
    // the node's later mounts still reach the pod.
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_SLAVE, None::<&str>)
        .map_err(|e| failed("making / a slave mount", e))?;
    mount(Some(&pod_resolv_conf), "/etc/resolv.conf", None::<&str>, MsFlags::MS_BIND, None::<&str>)
        .map_err(|e| failed("bind mount over /etc/resolv.conf", e))
}

/// The query with message ID `id`.
fn query_bytes(id: u16) -> Result<Vec<u8>> {
    let name = Name::from_ascii(QUERY_NAME)
        .map_err(|e| Error::Runtime(format!("bad query name {QUERY_NAME}: {e}")))?;
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(name, RecordType::A));
    message.to_vec().map_err(|e| Error::Runtime(format!("cannot encode a query: {e}")))
}

/// The response code and first A record of `bytes` if it is the answer to
/// query `id`; `None` for anything else (a late answer to an earlier
/// query, garbage).
fn match_answer(bytes: &[u8], id: u16) -> Option<(String, Option<String>)> {
    let message = Message::from_vec(bytes).ok()?;
    if message.metadata.id != id || message.metadata.message_type != MessageType::Response {
        return None;
    }
    let first_a = message.answers.iter().find_map(|r| match &r.data {
        RData::A(a) => Some(a.0.to_string()),
        _ => None,
    });
    Some((crate::dns::wire::rcode_name(message.metadata.response_code), first_a))
}

/// Runs one sticky client until its lab goes away or its lifetime ends
/// (`ctdiag lab client`). Returns an error only when it cannot start.
pub fn run(config: &ClientConfig) -> Result<()> {
    config.validate()?;
    let own_ns = ns_inode(Path::new("/proc/self/ns/net"));
    if own_ns.is_none() || own_ns != ns_inode(&config.netns_file) {
        return Err(Error::Usage(format!(
            "the client must run inside the namespace {} (its lab's client pod)",
            config.netns_file.display()
        )));
    }
    become_pod(&config.hostname, &config.netns_file)?;
    let socket = UdpSocket::bind(config.bind)
        .map_err(|e| Error::Runtime(format!("cannot bind UDP {}: {e}", config.bind)))?;
    socket
        .connect(config.server)
        .map_err(|e| Error::Runtime(format!("cannot connect UDP to {}: {e}", config.server)))?;
    let mut status =
        std::fs::OpenOptions::new().create(true).append(true).open(&config.status_file).map_err(
            |e| Error::Runtime(format!("cannot open {}: {e}", config.status_file.display())),
        )?;
    let started = Instant::now();
    // IDs differ between clients and queries, as a resolver's do.
    let mut id = (std::process::id() as u16).wrapping_mul(7919);
    let mut buf = [0u8; 4096];
    for seq in 1u64.. {
        if started.elapsed() >= config.lifetime || ns_inode(&config.netns_file) != own_ns {
            return Ok(());
        }
        id = id.wrapping_add(1);
        let due = Instant::now() + config.interval;
        let sent_at = SystemTime::now();
        let sent = Instant::now();
        let mut record = QueryRecord {
            seq,
            id,
            sent_unix_ms: unix_ms(sent_at),
            answered: false,
            rtt_ms: None,
            rcode: None,
            answer: None,
            error: None,
        };
        match socket.send(&query_bytes(id)?) {
            Ok(_) => loop {
                let left = due.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                // A zero timeout would mean "block forever".
                let _ = socket.set_read_timeout(Some(left.max(Duration::from_millis(1))));
                match socket.recv(&mut buf) {
                    Ok(len) => {
                        if let Some((rcode, answer)) = match_answer(&buf[..len], id) {
                            record.answered = true;
                            record.rtt_ms = Some(sent.elapsed().as_secs_f64() * 1000.0);
                            record.rcode = Some(rcode);
                            record.answer = answer;
                            break;
                        }
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        break
                    }
                    Err(e) => {
                        record.error = Some(e.to_string());
                        break;
                    }
                }
            },
            Err(e) => record.error = Some(e.to_string()),
        }
        let mut line = serde_json::to_string(&record)
            .map_err(|e| Error::Runtime(format!("cannot encode a status line: {e}")))?;
        line.push('\n');
        status.write_all(line.as_bytes()).map_err(|e| {
            Error::Runtime(format!("cannot write {}: {e}", config.status_file.display()))
        })?;
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
    }
    Ok(())
}

/// Reads a client's status file. Lines that do not parse (a line being
/// written right now) are skipped.
pub fn read_status(path: &Path) -> Vec<QueryRecord> {
    std::fs::read_to_string(path)
        .map(|text| text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
        .unwrap_or_default()
}

/// One sticky client, as the lab's state lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StickyClient {
    /// 1-based, unique within the lab.
    pub id: u32,
    /// Its process.
    pub pid: u32,
    /// The fixed source address of its socket, `ip:port`.
    pub source: String,
    /// Where it sends its queries (the kube-dns ClusterIP), `ip:port`.
    pub server: String,
    /// The reply source of its conntrack entry in the node when it was
    /// started: the endpoint kube-proxy's rules picked, or the ClusterIP
    /// itself for an entry that was never translated.
    pub entry_reply_src: String,
    /// The pod name, its hostname.
    pub hostname: String,
    /// The scenario that started it.
    pub scenario: String,
    /// Its query log (JSON Lines, see the module documentation).
    pub status_file: PathBuf,
    /// Its stdout/stderr.
    pub log: PathBuf,
    /// Whether the process is alive in the client namespace (checked when
    /// reported).
    pub alive: bool,
    /// Queries it has logged (when reported).
    #[serde(default)]
    pub queries: u64,
    /// How many of them were answered.
    #[serde(default)]
    pub answered: u64,
    /// Whether its latest query was answered.
    #[serde(default)]
    pub last_answered: Option<bool>,
}

impl StickyClient {
    /// Re-reads liveness and the query counts.
    pub fn refresh(&mut self, client_ns: &str) {
        self.alive = super::system::alive_in_netns(self.pid, client_ns);
        let records = read_status(&self.status_file);
        self.queries = records.len() as u64;
        self.answered = records.iter().filter(|r| r.answered).count() as u64;
        self.last_answered = records.last().map(|r| r.answered);
    }
}

/// The original source port and the reply source of one `conntrack -L`
/// line (`udp 17 29 src=A dst=B sport=P dport=Q [UNREPLIED] src=C dst=A
/// sport=Q' dport=P ...`).
pub fn parse_conntrack_line(line: &str) -> Option<(u16, SocketAddr)> {
    let mut srcs = line.split_whitespace().filter_map(|f| f.strip_prefix("src="));
    let mut sports = line.split_whitespace().filter_map(|f| f.strip_prefix("sport="));
    let _orig_src = srcs.next()?;
    let orig_sport: u16 = sports.next()?.parse().ok()?;
    let reply_src: IpAddr = srcs.next()?.parse().ok()?;
    let reply_sport: u16 = sports.next()?.parse().ok()?;
    Some((orig_sport, SocketAddr::new(reply_src, reply_sport)))
}

/// The node's UDP entries from `client` to `server` as (source port, reply
/// source), from `conntrack -L` run in the node's namespace.
pub fn entries_towards(
    node: &str,
    client: IpAddr,
    server: SocketAddr,
) -> Result<Vec<(u16, SocketAddr)>> {
    let family = if client.is_ipv4() { "ipv4" } else { "ipv6" };
    let (client, server_ip, port) =
        (client.to_string(), server.ip().to_string(), server.port().to_string());
    let args = [
        "netns",
        "exec",
        node,
        "conntrack",
        "-L",
        "-f",
        family,
        "-p",
        "udp",
        "--orig-src",
        &client,
        "--orig-dst",
        &server_ip,
        "--orig-port-dst",
        &port,
    ];
    let out = super::system::run("ip", &args, None)?;
    Ok(out.lines().filter_map(parse_conntrack_line).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conntrack_lines_as_conntrack_tools_prints_them() {
        // Printed by conntrack v1.4.7 in a lab node.
        let dnat = "udp      17 117 src=198.18.1.2 dst=198.19.0.10 sport=42001 dport=53 src=198.18.3.2 dst=198.18.1.2 sport=53 dport=42001 [ASSURED] mark=0 use=1";
        assert_eq!(parse_conntrack_line(dnat), Some((42001, "198.18.3.2:53".parse().unwrap())));
        let never = "udp      17 29 src=198.18.1.2 dst=198.19.0.10 sport=42003 dport=53 [UNREPLIED] src=198.19.0.10 dst=198.18.1.2 sport=53 dport=42003 mark=0 use=1";
        assert_eq!(parse_conntrack_line(never), Some((42003, "198.19.0.10:53".parse().unwrap())));
        let v6 = "udp      17 29 src=2001:db8:1::2 dst=2001:db8::a sport=42002 dport=53 src=2001:db8:3::2 dst=2001:db8:1::2 sport=53 dport=42002 mark=0 use=1";
        assert_eq!(parse_conntrack_line(v6), Some((42002, "[2001:db8:3::2]:53".parse().unwrap())));
        for junk in
            ["", "conntrack v1.4.7 (conntrack-tools): 3 flow entries have been shown.", "udp src=x"]
        {
            assert_eq!(parse_conntrack_line(junk), None, "{junk}");
        }
    }

    #[test]
    fn answers_are_matched_by_id() {
        let query = query_bytes(77).unwrap();
        let reply = crate::lab::responder::answer(&query).unwrap();
        assert_eq!(
            match_answer(&reply.bytes, 77),
            Some(("NOERROR".to_string(), Some(EXPECTED_ANSWER.to_string())))
        );
        assert_eq!(match_answer(&reply.bytes, 78), None);
        // The query itself is not an answer, nor is garbage.
        assert_eq!(match_answer(&query, 77), None);
        assert_eq!(match_answer(&[1, 2, 3], 77), None);
    }

    #[test]
    fn config_validation() {
        let mut config = ClientConfig {
            bind: "198.18.1.2:42001".parse().unwrap(),
            server: "198.19.0.10:53".parse().unwrap(),
            status_file: "/tmp/x".into(),
            hostname: "client-lab".into(),
            netns_file: "/run/netns/lab-client".into(),
            interval: QUERY_INTERVAL,
            lifetime: MAX_LIFETIME,
        };
        assert!(config.validate().is_ok());
        config.hostname = "bad name".into();
        assert!(config.validate().is_err());
        config.hostname = "ok".into();
        config.lifetime = MAX_LIFETIME + Duration::from_secs(1);
        assert!(config.validate().is_err());
        config.lifetime = MAX_LIFETIME;
        config.server = "[2001:db8::a]:53".parse().unwrap();
        assert!(config.validate().is_err());
    }

    #[test]
    fn status_lines_round_trip() {
        let record = QueryRecord {
            seq: 1,
            id: 2,
            sent_unix_ms: 3,
            answered: true,
            rtt_ms: Some(0.5),
            rcode: Some("NOERROR".into()),
            answer: Some(EXPECTED_ANSWER.into()),
            error: None,
        };
        let dir = std::env::temp_dir().join(format!("ctdiag-client-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("status.jsonl");
        let line = serde_json::to_string(&record).unwrap();
        std::fs::write(&path, format!("{line}\n{{\"seq\": 2, \"half")).unwrap();
        assert_eq!(read_status(&path), vec![record]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
