//! kube-proxy rules for the lab's kube-dns Service, in iptables mode (the
//! format kube-proxy feeds to `iptables-restore`, nat table only) and in
//! nftables mode (the `nft -f` transaction kube-proxy's nftables mode
//! builds), with chain names hashed the way kube-proxy hashes them.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

/// A ClusterIP Service with one or more ports in one address family, as
/// kube-proxy sees it (a dual-stack Service is one of these per family).
#[derive(Debug, Clone)]
pub struct ServiceRules {
    /// `namespace/name`, e.g. `kube-system/kube-dns`.
    pub service: String,
    /// The ClusterIP of this family.
    pub cluster_ip: IpAddr,
    /// The ports: (port name, protocol `udp`/`tcp`, port).
    pub ports: Vec<(String, String, u16)>,
    /// Endpoints in the order kube-proxy writes them (IP:target port, of the
    /// ClusterIP's family; the lab's target port is the service port).
    pub endpoints: Vec<SocketAddr>,
    /// kube-proxy's `--cluster-cidr` of this family: traffic from outside
    /// it is masqueraded.
    pub cluster_cidr: String,
    /// Whether a port without endpoints gets kube-proxy's REJECT (the
    /// filter table's `has no endpoints` rule, or an element of
    /// `no-endpoint-services`). kube-proxy always writes it; it is missing
    /// while kube-proxy restarts, and then a packet to the ClusterIP is
    /// routed on untranslated instead of rejected.
    pub reject_without_endpoints: bool,
}

impl ServiceRules {
    /// Whether the rules are for IPv6 (ip6tables, `table ip6 kube-proxy`).
    pub fn is_ipv6(&self) -> bool {
        self.cluster_ip.is_ipv6()
    }

    /// `/32` or `/128`: a host prefix of the family.
    fn host_prefix(&self) -> &'static str {
        if self.is_ipv6() {
            "/128"
        } else {
            "/32"
        }
    }
}

/// `KUBE-SVC-` + the first 16 characters of base32(sha256(servicePortName +
/// protocol)), as kube-proxy names the per-service-port chain.
/// `service_port_name` is `namespace/name:port` and `protocol` is lowercase.
pub fn service_chain_name(service_port_name: &str, protocol: &str) -> String {
    format!("KUBE-SVC-{}", hash_prefix(&format!("{service_port_name}{protocol}"), 16))
}

/// `KUBE-SEP-` + the first 16 characters of base32(sha256(servicePortName +
/// protocol + endpoint)), the per-endpoint chain; `endpoint` is `ip:port`.
pub fn endpoint_chain_name(service_port_name: &str, protocol: &str, endpoint: &str) -> String {
    format!("KUBE-SEP-{}", hash_prefix(&format!("{service_port_name}{protocol}{endpoint}"), 16))
}

/// nftables mode's per-service-port chain: `service-` + the first 8
/// characters of base32(sha256(`ns/name/protocol/portname`)) + `-` + that
/// name.
pub fn nft_service_chain_name(namespaced_name: &str, protocol: &str, port_name: &str) -> String {
    let name = format!("{namespaced_name}/{protocol}/{port_name}");
    format!("service-{}-{name}", hash_prefix(&name, 8))
}

/// nftables mode's per-endpoint chain: `endpoint-` + hash + `-ns/name/
/// protocol/portname__IP/PORT` (an IPv6 address with `.` for `:`).
pub fn nft_endpoint_chain_name(
    namespaced_name: &str,
    protocol: &str,
    port_name: &str,
    endpoint: std::net::SocketAddr,
) -> String {
    let ip = endpoint.ip().to_string().replace(':', ".");
    let name = format!("{namespaced_name}/{protocol}/{port_name}__{ip}/{}", endpoint.port());
    format!("endpoint-{}-{name}", hash_prefix(&name, 8))
}

/// kube-proxy's probability for rule `i` of `n`: 1/(n-i), printed `%0.10f`.
pub fn probability(remaining: usize) -> String {
    format!("{:.10}", 1.0 / remaining as f64)
}

/// The first `len` characters of base32(sha256(input)): kube-proxy's chain
/// name hash (16 in iptables mode, 8 in nftables mode).
fn hash_prefix(input: &str, len: usize) -> String {
    let mut encoded = base32_std(&sha256(input.as_bytes()));
    encoded.truncate(len);
    encoded
}

impl ServiceRules {
    /// The `iptables-restore` (or, for IPv6, `ip6tables-restore`) input for
    /// the nat and filter tables: the base chains kube-proxy creates, the
    /// jumps from PREROUTING/OUTPUT/POSTROUTING, and the Service's
    /// KUBE-SVC/KUBE-SEP chains (newer format: the endpoint in the KUBE-SVC
    /// rule comment). A port without endpoints has no nat rules at all,
    /// only the filter table's REJECT (unless `reject_without_endpoints` is
    /// off), as kube-proxy writes it.
    pub fn iptables_restore_input(&self) -> String {
        let host = self.host_prefix();
        let mut chains = vec![
            "KUBE-SERVICES".to_string(),
            "KUBE-NODEPORTS".to_string(),
            "KUBE-POSTROUTING".to_string(),
            "KUBE-MARK-MASQ".to_string(),
        ];
        let mut rules = vec![
            r#"-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES"#
                .to_string(),
            r#"-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES"#
                .to_string(),
            r#"-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING"#
                .to_string(),
            "-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000".to_string(),
            "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN".to_string(),
            "-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000".to_string(),
            r#"-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully"#
                .to_string(),
        ];
        let mut service_rules = Vec::new();
        let mut reject_rules = Vec::new();
        let unreachable =
            if self.is_ipv6() { "icmp6-port-unreachable" } else { "icmp-port-unreachable" };
        for (port_name, protocol, port) in &self.ports {
            let spn = format!("{}:{}", self.service, port_name);
            let cip = self.cluster_ip;
            if self.endpoints.is_empty() {
                if self.reject_without_endpoints {
                    reject_rules.push(format!(
                        r#"-A KUBE-SERVICES -d {cip}{host} -p {protocol} -m comment --comment "{spn} has no endpoints" -m {protocol} --dport {port} -j REJECT --reject-with {unreachable}"#
                    ));
                }
                continue;
            }
            let svc_chain = service_chain_name(&spn, protocol);
            chains.push(svc_chain.clone());
            service_rules.push(format!(
                r#"-A KUBE-SERVICES -d {cip}{host} -p {protocol} -m comment --comment "{spn} cluster IP" -m {protocol} --dport {port} -j {svc_chain}"#
            ));
            rules.push(format!(
                r#"-A {svc_chain} ! -s {cidr} -d {cip}{host} -p {protocol} -m comment --comment "{spn} cluster IP" -m {protocol} --dport {port} -j KUBE-MARK-MASQ"#,
                cidr = self.cluster_cidr
            ));
            let n = self.endpoints.len();
            let mut sep_rules = Vec::new();
            for (i, endpoint) in self.endpoints.iter().enumerate() {
                let ep = endpoint.to_string();
                let sep_chain = endpoint_chain_name(&spn, protocol, &ep);
                chains.push(sep_chain.clone());
                let mut rule = format!(r#"-A {svc_chain} -m comment --comment "{spn} -> {ep}""#);
                // Why: the last endpoint takes whatever the earlier rules
                // left, so it carries no statistic match (as in kube-proxy).
                if i + 1 < n {
                    let _ = write!(
                        rule,
                        " -m statistic --mode random --probability {}",
                        probability(n - i)
                    );
                }
                let _ = write!(rule, " -j {sep_chain}");
                rules.push(rule);
                sep_rules.push(format!(
                    r#"-A {sep_chain} -s {ip}{host} -m comment --comment "{spn}" -j KUBE-MARK-MASQ"#,
                    ip = endpoint.ip()
                ));
                sep_rules.push(format!(
                    r#"-A {sep_chain} -p {protocol} -m comment --comment "{spn}" -m {protocol} -j DNAT --to-destination {ep}"#
                ));
            }
            rules.extend(sep_rules);
        }
        rules.extend(service_rules);
        rules.push(
            r#"-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS"#
                .to_string(),
        );
        restore_tables(&chains, &rules, &reject_rules)
    }
}

/// The `iptables-restore` text of kube-proxy's nat table (its base chains,
/// `chains`, `rules`) and filter table (the jumps to KUBE-SERVICES and
/// `reject_rules`).
fn restore_tables(chains: &[String], rules: &[String], reject_rules: &[String]) -> String {
    let mut out = String::from("*nat\n");
    for chain in ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"] {
        let _ = writeln!(out, ":{chain} ACCEPT [0:0]");
    }
    for chain in chains {
        let _ = writeln!(out, ":{chain} - [0:0]");
    }
    for rule in rules {
        let _ = writeln!(out, "{rule}");
    }
    out.push_str("COMMIT\n");
    // The filter table is always written, so that a sync with endpoints
    // removes an earlier REJECT.
    out.push_str("*filter\n");
    for chain in ["INPUT", "FORWARD", "OUTPUT"] {
        let _ = writeln!(out, ":{chain} ACCEPT [0:0]");
    }
    out.push_str(":KUBE-SERVICES - [0:0]\n");
    for hook in ["FORWARD", "OUTPUT"] {
        let _ = writeln!(
            out,
            r#"-A {hook} -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES"#
        );
    }
    for rule in reject_rules {
        let _ = writeln!(out, "{rule}");
    }
    out.push_str("COMMIT\n");
    out
}

impl ServiceRules {
    /// The `nft -f` input that replaces the node's `ip kube-proxy` table with
    /// the Service's rules in one transaction: the base chains and maps
    /// kube-proxy's nftables mode creates, the `service-ips` element per
    /// port, a `numgen random mod N vmap` per service chain and a `dnat`
    /// per endpoint chain. Without endpoints a port is only an element of
    /// `no-endpoint-services` (with its name in the comment), as kube-proxy
    /// writes it.
    pub fn nft_input(&self) -> String {
        let (t, ip, addr_type) = if self.is_ipv6() {
            ("ip6 kube-proxy", "ip6", "ipv6_addr")
        } else {
            ("ip kube-proxy", "ip", "ipv4_addr")
        };
        let mut chains = Vec::new();
        let mut rules = Vec::new();
        for (port_name, protocol, port) in &self.ports {
            let svc = nft_service_chain_name(&self.service, protocol, port_name);
            let cip = self.cluster_ip;
            if self.endpoints.is_empty() {
                if self.reject_without_endpoints {
                    rules.push(format!(
                        r#"add element {t} no-endpoint-services {{ {cip} . {protocol} . {port} comment "{}:{port_name}" : goto reject-chain }}"#,
                        self.service
                    ));
                }
                continue;
            }
            chains.push(svc.clone());
            rules.push(format!(
                "add rule {t} {svc} {ip} daddr {cip} {protocol} dport {port} {ip} saddr != {} jump mark-for-masquerade",
                self.cluster_cidr
            ));
            let mut vmap = Vec::new();
            for (i, endpoint) in self.endpoints.iter().enumerate() {
                let ep_chain =
                    nft_endpoint_chain_name(&self.service, protocol, port_name, *endpoint);
                chains.push(ep_chain.clone());
                vmap.push(format!("{i} : goto {ep_chain}"));
                rules.push(format!(
                    "add rule {t} {ep_chain} {ip} saddr {} jump mark-for-masquerade",
                    endpoint.ip()
                ));
                rules.push(format!(
                    "add rule {t} {ep_chain} meta l4proto {protocol} dnat to {endpoint}"
                ));
            }
            rules.push(format!(
                "add rule {t} {svc} numgen random mod {} vmap {{ {} }}",
                self.endpoints.len(),
                vmap.join(" , ")
            ));
            rules.push(format!(
                "add element {t} service-ips {{ {cip} . {protocol} . {port} : goto {svc} }}"
            ));
        }
        let mut out = String::new();
        // Why add, delete, add: `delete` fails on a table that does not
        // exist, and the whole file is one transaction either way.
        let table = format!(r#"add table {t} {{ comment "rules for kube-proxy" ; }}"#);
        for line in [table.as_str(), &format!("delete table {t}"), table.as_str()] {
            let _ = writeln!(out, "{line}");
        }
        let base = [
            "add chain {T} mark-for-masquerade",
            "add rule {T} mark-for-masquerade mark set mark or 0x4000",
            "add chain {T} masquerading",
            "add rule {T} masquerading mark and 0x4000 == 0 return",
            "add rule {T} masquerading mark set mark xor 0x4000",
            "add rule {T} masquerading masquerade fully-random",
            "add chain {T} services",
            "add chain {T} nat-prerouting { type nat hook prerouting priority -100 ; }",
            "add rule {T} nat-prerouting jump services",
            "add chain {T} nat-output { type nat hook output priority -100 ; }",
            "add rule {T} nat-output jump services",
            "add chain {T} nat-postrouting { type nat hook postrouting priority 100 ; }",
            "add rule {T} nat-postrouting jump masquerading",
            "add chain {T} reject-chain { comment \"helper for @no-endpoint-services / @no-endpoint-nodeports\" ; }",
            "add rule {T} reject-chain reject",
            "add map {T} service-ips { type {A} . inet_proto . inet_service : verdict ; comment \"ClusterIP, ExternalIP and LoadBalancer IP traffic\" ; }",
            "add map {T} no-endpoint-services { type {A} . inet_proto . inet_service : verdict ; comment \"vmap to drop or reject packets to services with no endpoints\" ; }",
            "add chain {T} endpoints-check",
            "add rule {T} endpoints-check {IP} daddr . meta l4proto . th dport vmap @no-endpoint-services",
            "add chain {T} filter-forward { type filter hook forward priority -110 ; }",
            "add rule {T} filter-forward ct state new jump endpoints-check",
            "add chain {T} filter-output { type filter hook output priority -110 ; }",
            "add rule {T} filter-output ct state new jump endpoints-check",
            "add rule {T} services {IP} daddr . meta l4proto . th dport vmap @service-ips",
            "add set {T} cluster-ips { type {A} ; comment \"Active ClusterIPs\" ; }",
        ];
        for line in base {
            let _ = writeln!(
                out,
                "{}",
                line.replace("{T}", t).replace("{A}", addr_type).replace("{IP}", ip)
            );
        }
        // Every chain exists before a rule names it.
        for chain in &chains {
            let _ = writeln!(out, "add chain {t} {chain}");
        }
        for rule in &rules {
            let _ = writeln!(out, "{rule}");
        }
        let _ = writeln!(out, "add element {t} cluster-ips {{ {} }}", self.cluster_ip);
        out
    }
}

/// RFC 4648 base32 with the standard alphabet and `=` padding (Go's
/// `base32.StdEncoding`).
fn base32_std(data: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(data.len().div_ceil(5) * 8);
    for chunk in data.chunks(5) {
        let mut block = [0u8; 5];
        block[..chunk.len()].copy_from_slice(chunk);
        let bits = block.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        // Number of output characters that carry data for a partial block.
        let used = (chunk.len() * 8).div_ceil(5);
        for i in 0..8 {
            if i < used {
                let index = ((bits >> (35 - 5 * i)) & 0x1f) as usize;
                out.push(char::from(ALPHABET[index]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// SHA-256 (FIPS 180-4). Small and self-contained: the lab needs it only for
/// kube-proxy chain names.
fn sha256(data: &[u8]) -> [u8; 32] {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let mut message = data.to_vec();
    let bit_len = (data.len() as u64).wrapping_mul(8);
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&bit_len.to_be_bytes());
    for block in message.chunks_exact(64) {
        let mut w = [0u32; 64];
        for (i, word) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16].wrapping_add(s0).wrapping_add(w[i - 7]).wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh.wrapping_add(s1).wrapping_add(ch).wrapping_add(K[i]).wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            hh = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (state, value) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *state = state.wrapping_add(value);
        }
    }
    let mut out = [0u8; 32];
    for (i, word) in h.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&word.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn sha256_known_vectors() {
        assert_eq!(
            hex(&sha256(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex(&sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // Two blocks of padding.
        assert_eq!(
            hex(&sha256(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
    }

    #[test]
    fn base32_rfc4648_vectors() {
        assert_eq!(base32_std(b""), "");
        assert_eq!(base32_std(b"f"), "MY======");
        assert_eq!(base32_std(b"fo"), "MZXQ====");
        assert_eq!(base32_std(b"foo"), "MZXW6===");
        assert_eq!(base32_std(b"foob"), "MZXW6YQ=");
        assert_eq!(base32_std(b"fooba"), "MZXW6YTB");
        assert_eq!(base32_std(b"foobar"), "MZXW6YTBOI======");
    }

    /// The chain names in a real kube-proxy dump
    /// (tests/fixtures/kube-proxy/eks-1.10-hello.iptables).
    #[test]
    fn chain_names_match_a_real_kube_proxy_dump() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/kube-proxy/eks-1.10-hello.iptables"
        );
        let dump = std::fs::read_to_string(path).unwrap();
        for chain in [
            "KUBE-SVC-TCOU7JCQXEZGVUNU",
            "KUBE-SVC-ERIFXISQEP7F7OF4",
            "KUBE-SVC-NPX46M4PTMTKRN6Y",
            "KUBE-SEP-VMSA6O6SI2ZXLCX3",
            "KUBE-SEP-B335W6MFC4JCQI26",
        ] {
            assert!(dump.contains(&format!(":{chain} ")), "{chain} is not declared in the dump");
        }
        assert_eq!(
            service_chain_name("kube-system/kube-dns:dns", "udp"),
            "KUBE-SVC-TCOU7JCQXEZGVUNU"
        );
        assert_eq!(
            service_chain_name("kube-system/kube-dns:dns-tcp", "tcp"),
            "KUBE-SVC-ERIFXISQEP7F7OF4"
        );
        assert_eq!(
            service_chain_name("default/kubernetes:https", "tcp"),
            "KUBE-SVC-NPX46M4PTMTKRN6Y"
        );
        assert_eq!(
            endpoint_chain_name("kube-system/kube-dns:dns", "udp", "192.168.179.184:53"),
            "KUBE-SEP-VMSA6O6SI2ZXLCX3"
        );
        assert_eq!(
            endpoint_chain_name("kube-system/kube-dns:dns-tcp", "tcp", "192.168.179.184:53"),
            "KUBE-SEP-B335W6MFC4JCQI26"
        );
    }

    /// Names from kube-proxy's own nftables-mode tests (pkg/proxy/nftables).
    #[test]
    fn nft_chain_names_match_kube_proxy() {
        assert_eq!(
            nft_service_chain_name("ns1/svc1", "tcp", "p80"),
            "service-ULMVA6XW-ns1/svc1/tcp/p80"
        );
        assert_eq!(
            nft_endpoint_chain_name("ns1/svc1", "tcp", "p80", "10.180.0.1:80".parse().unwrap()),
            "endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80"
        );
        assert_eq!(
            nft_service_chain_name("ns2/svc2", "tcp", "p80"),
            "service-42NFTM6N-ns2/svc2/tcp/p80"
        );
        assert_eq!(
            nft_endpoint_chain_name("ns2/svc2", "tcp", "p80", "10.180.0.2:80".parse().unwrap()),
            "endpoint-SGOXE6O3-ns2/svc2/tcp/p80__10.180.0.2/80"
        );
        let v6 = nft_endpoint_chain_name("a/b", "udp", "dns", "[2001:db8::2]:53".parse().unwrap());
        assert!(v6.ends_with("-a/b/udp/dns__2001.db8..2/53"), "{v6}");
    }

    #[test]
    fn nft_input_writes_a_vmap_or_a_no_endpoint_element() {
        let endpoints = ["198.18.2.2:53".parse().unwrap(), "198.18.3.2:53".parse().unwrap()];
        let rules = crate::lab::kube_dns_rules(&endpoints);
        let text = rules.nft_input();
        assert!(text.contains("numgen random mod 2 vmap { 0 : goto endpoint-"), "{text}");
        let none = crate::lab::kube_dns_rules(&[]).nft_input();
        assert!(
            none.contains(r#"comment "kube-system/kube-dns:dns" : goto reject-chain"#),
            "{none}"
        );
        assert!(!none.contains("add chain ip kube-proxy service-"), "{none}");
    }

    /// The IPv6 generator and the iptables-save parser agree: the v6
    /// ClusterIP, its endpoints, and a Service without endpoints (REJECT
    /// only, or nothing at all while kube-proxy restarts).
    #[test]
    fn ipv6_and_no_endpoint_rules_parse_back() {
        use crate::service::{find, iptables::parse, Protocol, KUBE_DNS};
        let endpoints: Vec<std::net::SocketAddr> =
            vec!["[2001:db8:2::2]:53".parse().unwrap(), "[2001:db8:3::2]:53".parse().unwrap()];
        let rules =
            crate::lab::kube_dns_rules_for("2001:db8::a".parse().unwrap(), &endpoints, true);
        let text = rules.iptables_restore_input();
        assert!(text.contains("-d 2001:db8::a/128 -p udp"), "{text}");
        assert!(text.contains("-s 2001:db8:2::2/128"), "{text}");
        assert!(text.contains("! -s 2001:db8::/40"), "{text}");
        let parsed = parse(&text);
        assert_eq!(parsed.skipped, Vec::<String>::new());
        let dns = find(&parsed.services, KUBE_DNS, Protocol::Udp).expect("kube-dns udp");
        assert_eq!(dns.cluster_ips, ["2001:db8::a".parse::<IpAddr>().unwrap()]);
        assert_eq!(dns.endpoints, endpoints);

        let nft = rules.nft_input();
        assert!(nft.contains("add table ip6 kube-proxy"), "{nft}");
        assert!(nft.contains("type ipv6_addr . inet_proto . inet_service : verdict"), "{nft}");
        assert!(nft.contains("dnat to [2001:db8:3::2]:53"), "{nft}");
        assert!(
            nft.contains("ip6 daddr 2001:db8::a udp dport 53 ip6 saddr != 2001:db8::/40"),
            "{nft}"
        );

        let none = crate::lab::kube_dns_rules_for("2001:db8::a".parse().unwrap(), &[], true);
        let text = none.iptables_restore_input();
        assert!(text.contains(r#"-A KUBE-SERVICES -d 2001:db8::a/128 -p udp -m comment --comment "kube-system/kube-dns:dns has no endpoints" -m udp --dport 53 -j REJECT --reject-with icmp6-port-unreachable"#), "{text}");
        assert!(!text.contains("KUBE-SVC-"), "{text}");
        let dns = find(&parse(&text).services, KUBE_DNS, Protocol::Udp).cloned().expect("kube-dns");
        assert!(dns.endpoints.is_empty());

        let restarting = crate::lab::kube_dns_rules_for("198.19.0.10".parse().unwrap(), &[], false);
        let text = restarting.iptables_restore_input();
        assert!(!text.contains("REJECT") && !text.contains("198.19.0.10"), "{text}");
        let nft = restarting.nft_input();
        assert!(!nft.contains("add element ip kube-proxy no-endpoint-services"), "{nft}");
    }

    #[test]
    fn probabilities_as_kube_proxy_prints_them() {
        assert_eq!(probability(2), "0.5000000000");
        assert_eq!(probability(3), "0.3333333333");
        assert_eq!(probability(1), "1.0000000000");
    }

    #[test]
    fn restore_input_has_statistic_on_all_but_the_last_endpoint() {
        let rules = ServiceRules {
            service: "kube-system/kube-dns".into(),
            cluster_ip: "198.19.0.10".parse().unwrap(),
            ports: vec![("dns".into(), "udp".into(), 53)],
            endpoints: vec![
                "198.18.2.2:53".parse().unwrap(),
                "198.18.3.2:53".parse().unwrap(),
                "198.18.4.2:53".parse().unwrap(),
            ],
            cluster_cidr: "198.18.0.0/16".into(),
            reject_without_endpoints: true,
        };
        let text = rules.iptables_restore_input();
        let svc = service_chain_name("kube-system/kube-dns:dns", "udp");
        let jumps: Vec<&str> = text
            .lines()
            .filter(|l| {
                l.starts_with(&format!(
                    "-A {svc} -m comment --comment \"kube-system/kube-dns:dns -> "
                ))
            })
            .collect();
        assert_eq!(jumps.len(), 3, "{text}");
        assert!(jumps[0].contains("--probability 0.3333333333"));
        assert!(jumps[1].contains("--probability 0.5000000000"));
        assert!(!jumps[2].contains("statistic"));
        assert!(text.contains("-m udp -j DNAT --to-destination 198.18.4.2:53"));
        assert!(text.contains(
            "-A KUBE-SERVICES -d 198.19.0.10/32 -p udp -m comment --comment \"kube-system/kube-dns:dns cluster IP\" -m udp --dport 53 -j KUBE-SVC-TCOU7JCQXEZGVUNU"
        ));
        assert!(text.starts_with("*nat\n") && text.ends_with("COMMIT\n"));
        assert!(!text.contains("REJECT"), "{text}");
    }
}
