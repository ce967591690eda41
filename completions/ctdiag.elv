
use builtin;
use str;

set edit:completion:arg-completer[ctdiag] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'ctdiag'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'ctdiag'= {
            cand -o 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics'
            cand --output 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics'
            cand --color 'When to color the output (NO_COLOR in the environment means never for `auto`)'
            cand -q 'Print only findings that need attention (table output)'
            cand --quiet 'Print only findings that need attention (table output)'
            cand -v 'Explain more: notes, sources, per-step detail. Repeat for more'
            cand --verbose 'Explain more: notes, sources, per-step detail. Repeat for more'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand stats 'conntrack counters per CPU and in total (the numbers of `conntrack -S`), table fill, deltas and rates with --watch, and what they mean'
            cand probe 'Resolver-faithful DNS lookups (A and AAAA in parallel from one fresh socket), loss and latency, and the conntrack counters they moved'
            cand compare 'The same probes against a Service''s ClusterIP and against each of its endpoints directly, interleaved, side by side: the DNAT/conntrack path or one bad endpoint?'
            cand services 'Every Service port the node''s kube-proxy rules define (iptables, nftables or IPVS mode): ClusterIPs and endpoints, optionally checked against the API''s EndpointSlices'
            cand stale 'UDP conntrack entries of a Service whose DNAT target is not a current endpoint (a dead pod, or never translated); --flush deletes exactly those'
            cand doctor 'Every check in one run, within a time budget: conntrack counters now, the DNS Service in the rules, stale entries, ClusterIP against each endpoint, the pods'' resolvers, node-local DNS and NFQUEUE; one verdict table (node-problem-detector plugin with --npd)'
            cand lab 'Build, inspect and tear down a Kubernetes-node lookalike made of network namespaces, to reproduce the failures ctdiag diagnoses'
            cand watch 'Every pod''s own lookups on this node, passively from the packets: answered, lost and slow per pod and per endpoint, with the cause of each lost one; or the same from a capture file (--read)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'ctdiag;stats'= {
            cand --netns 'Read the counters of another network namespace: a path (/run/netns/NAME, /proc/PID/ns/net), a PID, or an `ip netns` name'
            cand -w 'Print per-interval deltas and per-second rates every SECONDS (decimals allowed, e.g. 0.5)'
            cand --watch 'Print per-interval deltas and per-second rates every SECONDS (decimals allowed, e.g. 0.5)'
            cand -n 'With --watch: stop after N intervals (default: until interrupted)'
            cand --count 'With --watch: stop after N intervals (default: until interrupted)'
            cand -o 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics'
            cand --output 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics'
            cand --color 'When to color the output (NO_COLOR in the environment means never for `auto`)'
            cand --procfs 'Read procfs (/proc/net/stat/nf_conntrack) even when ctnetlink works'
            cand -q 'Print only findings that need attention (table output)'
            cand --quiet 'Print only findings that need attention (table output)'
            cand -v 'Explain more: notes, sources, per-step detail. Repeat for more'
            cand --verbose 'Explain more: notes, sources, per-step detail. Repeat for more'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'ctdiag;probe'= {
            cand -s 'DNS server to probe, IP or IP:PORT ([IPv6]:PORT). Default: the kube-dns ClusterIP in the node''s kube-proxy rules, iptables or nftables mode (read in the --stats-netns namespace), else the first nameserver of the probed namespace''s resolv.conf'
            cand --server 'DNS server to probe, IP or IP:PORT ([IPv6]:PORT). Default: the kube-dns ClusterIP in the node''s kube-proxy rules, iptables or nftables mode (read in the --stats-netns namespace), else the first nameserver of the probed namespace''s resolv.conf'
            cand --service 'The Service: `kube-dns` (kube-system/kube-dns), NAMESPACE/NAME, or NAMESPACE/NAME:PORT (a port name or number)'
            cand --cluster-ip 'Give the Service on the command line instead of reading kube-proxy''s rules: its ClusterIP, and port (default 53). Needs --endpoints'
            cand --endpoints 'With --cluster-ip: the Service''s endpoints (comma-separated or repeated; a bare IP means the Service port)'
            cand --name 'Name to look up (repeat for several; they are used in turn)'
            cand -c 'Number of lookups (default 200 unless --duration is given)'
            cand --count 'Number of lookups (default 200 unless --duration is given)'
            cand -d 'Run for this long instead of a count: 30s, 2m, 500ms'
            cand --duration 'Run for this long instead of a count: 30s, 2m, 500ms'
            cand -r 'Lookups started per second; 0 means as fast as possible'
            cand --rate 'Lookups started per second; 0 means as fast as possible'
            cand --concurrency 'Lookups in flight at once'
            cand -t 'How long to wait for each answer, in milliseconds'
            cand --timeout 'How long to wait for each answer, in milliseconds'
            cand -m 'Resolver behaviour to imitate'
            cand --mode 'Resolver behaviour to imitate'
            cand --netns 'Open the probe sockets inside this network namespace (a pod''s): a path, a PID, or an `ip netns` name'
            cand --stats-netns 'Read the conntrack counters in this namespace (where DNAT happens: the node''s). Default: the current namespace'
            cand --slow-ms 'Warn when 1 % or more of the answered lookups take this long or longer, in milliseconds. Default: a fifth of the resolver timeout the probed namespace''s resolv.conf implies (1000 for the usual 5 s)'
            cand -o 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics'
            cand --output 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics'
            cand --color 'When to color the output (NO_COLOR in the environment means never for `auto`)'
            cand --parallel 'Shorthand for --mode parallel'
            cand -q 'Print only findings that need attention (table output)'
            cand --quiet 'Print only findings that need attention (table output)'
            cand -v 'Explain more: notes, sources, per-step detail. Repeat for more'
            cand --verbose 'Explain more: notes, sources, per-step detail. Repeat for more'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'ctdiag;compare'= {
            cand --service 'The Service: `kube-dns` (kube-system/kube-dns), NAMESPACE/NAME, or NAMESPACE/NAME:PORT (a port name or number)'
            cand --cluster-ip 'Give the Service on the command line instead of reading kube-proxy''s rules: its ClusterIP, and port (default 53). Needs --endpoints'
            cand --endpoints 'With --cluster-ip: the Service''s endpoints (comma-separated or repeated; a bare IP means the Service port)'
            cand --name 'Name to look up (repeat for several; they are used in turn)'
            cand -c 'Lookups per target and mode (default 200 unless --duration is given)'
            cand --count 'Lookups per target and mode (default 200 unless --duration is given)'
            cand -d 'Run for this long in all (every target and mode share it): 30s, 2m'
            cand --duration 'Run for this long in all (every target and mode share it): 30s, 2m'
            cand -r 'Lookups started per second; 0 means as fast as possible'
            cand --rate 'Lookups started per second; 0 means as fast as possible'
            cand --concurrency 'Lookups in flight at once'
            cand -t 'How long to wait for each answer, in milliseconds'
            cand --timeout 'How long to wait for each answer, in milliseconds'
            cand -m 'Resolver behaviour to imitate'
            cand --mode 'Resolver behaviour to imitate'
            cand --modes 'Repeat the comparison for each of these resolver modes (comma-separated) and say which resolv.conf option makes the loss go away: parallel (glibc), sequential (single-request), reopen (single-request-reopen), tcp (use-vc), musl, threads'
            cand --rounds 'How many rounds each target''s lookups are cut into (interleaving)'
            cand --slow-ms 'Slow-answer threshold in milliseconds. Default: a fifth of the resolver timeout the probed namespace''s resolv.conf implies'
            cand --api 'When the node has no kube-proxy rules (Cilium, Calico eBPF, a kube-proxy that never synced): the ClusterIP and ready endpoints from the API, `kubectl get services,endpointslices -n NAMESPACE -o json` output in FILE, or `-` for stdin. The rules win when there are any'
            cand --netns 'Open the probe sockets inside this network namespace (a pod''s): a path, a PID, or an `ip netns` name'
            cand --stats-netns 'Read the node''s kube-proxy rules and conntrack counters in this namespace (where DNAT happens). Default: the current namespace'
            cand -o 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics'
            cand --output 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics'
            cand --color 'When to color the output (NO_COLOR in the environment means never for `auto`)'
            cand --kubectl 'Like --api, running that kubectl command (kubectl on PATH with a usable kubeconfig)'
            cand -q 'Print only findings that need attention (table output)'
            cand --quiet 'Print only findings that need attention (table output)'
            cand -v 'Explain more: notes, sources, per-step detail. Repeat for more'
            cand --verbose 'Explain more: notes, sources, per-step detail. Repeat for more'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'ctdiag;services'= {
            cand --service 'The Service: `kube-dns` (kube-system/kube-dns), NAMESPACE/NAME, or NAMESPACE/NAME:PORT (a port name or number)'
            cand --cluster-ip 'Give the Service on the command line instead of reading kube-proxy''s rules: its ClusterIP, and port (default 53). Needs --endpoints'
            cand --endpoints 'With --cluster-ip: the Service''s endpoints (comma-separated or repeated; a bare IP means the Service port)'
            cand --netns 'Read the rules in another network namespace (the node''s): a path, a PID, or an `ip netns` name'
            cand --cluster-dns 'IPVS mode has no Service names: the kube-dns ClusterIP. Default: the kubelet''s clusterDNS, else the nameserver pods on this node use'
            cand --api 'Compare with the API: the output of `kubectl get endpointslices -A -o json` in FILE, or `-` for stdin'
            cand -o 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics'
            cand --output 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics'
            cand --color 'When to color the output (NO_COLOR in the environment means never for `auto`)'
            cand --kubectl 'Compare with the API by running `kubectl get endpointslices -A -o json` (kubectl on PATH with a usable kubeconfig)'
            cand -q 'Print only findings that need attention (table output)'
            cand --quiet 'Print only findings that need attention (table output)'
            cand -v 'Explain more: notes, sources, per-step detail. Repeat for more'
            cand --verbose 'Explain more: notes, sources, per-step detail. Repeat for more'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'ctdiag;stale'= {
            cand --service 'The Service: `kube-dns` (kube-system/kube-dns), NAMESPACE/NAME, or NAMESPACE/NAME:PORT (a port name or number)'
            cand --cluster-ip 'Give the Service on the command line instead of reading kube-proxy''s rules: its ClusterIP, and port (default 53). Needs --endpoints'
            cand --endpoints 'With --cluster-ip: the Service''s endpoints (comma-separated or repeated; a bare IP means the Service port)'
            cand --netns 'The node''s network namespace (its conntrack table and kube-proxy rules): a path (/run/netns/NAME, /proc/PID/ns/net), a PID, or an `ip netns` name. Default: the current namespace'
            cand --from 'Only the Services of this proxy mode''s rules, when rules of several modes define one ClusterIP:port (a flush refuses sources that disagree on the endpoints)'
            cand -o 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics'
            cand --output 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics'
            cand --color 'When to color the output (NO_COLOR in the environment means never for `auto`)'
            cand --all 'Every UDP Service the rules define, including those without endpoints'
            cand --flush 'Delete exactly the stale entries (by reply tuple, zone and the id the scan saw; each acknowledged), then scan again. Asks first on a terminal; without one, needs --yes'
            cand -y 'With --flush: delete without asking'
            cand --yes 'With --flush: delete without asking'
            cand --all-entries 'List live entries too (stale ones are always listed; both are always counted)'
            cand -q 'Print only findings that need attention (table output)'
            cand --quiet 'Print only findings that need attention (table output)'
            cand -v 'Explain more: notes, sources, per-step detail. Repeat for more'
            cand --verbose 'Explain more: notes, sources, per-step detail. Repeat for more'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'ctdiag;doctor'= {
            cand --service 'The Service: `kube-dns` (kube-system/kube-dns), NAMESPACE/NAME, or NAMESPACE/NAME:PORT (a port name or number)'
            cand --cluster-ip 'Give the Service on the command line instead of reading kube-proxy''s rules: its ClusterIP, and port (default 53). Needs --endpoints'
            cand --endpoints 'With --cluster-ip: the Service''s endpoints (comma-separated or repeated; a bare IP means the Service port)'
            cand --netns 'The node''s network namespace (conntrack, kube-proxy rules, node-local DNS): a path, a PID, or an `ip netns` name. Default: the current one'
            cand --probe-netns 'Start the comparison''s lookups in this namespace (a pod''s). Default: the node''s'
            cand --pods 'Look only at these pod network namespaces in the resolver check (comma-separated or repeated). Default: every namespace in use on the node'
            cand --budget 'The time budget of the whole run: 15s, 30s, 1m'
            cand --api 'Compare the rules with the API: `kubectl get endpointslices -A -o json` output in FILE, or `-` for stdin. On a node without kube-proxy rules, `kubectl get services,endpointslices -n kube-system -o json` output: the comparison probes the ClusterIP and endpoints it gives'
            cand --node-local-dns 'The address node-local DNS (NodeLocal DNSCache) listens on'
            cand -o 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics'
            cand --output 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics'
            cand --color 'When to color the output (NO_COLOR in the environment means never for `auto`)'
            cand --all 'Scan every UDP Service for stale entries, not only the DNS Service'
            cand --npd 'node-problem-detector custom-plugin mode: exactly one line of at most 80 characters naming the worst finding; exit 0 OK, 1 NonOK, 2 Unknown'
            cand -q 'Print only findings that need attention (table output)'
            cand --quiet 'Print only findings that need attention (table output)'
            cand -v 'Explain more: notes, sources, per-step detail. Repeat for more'
            cand --verbose 'Explain more: notes, sources, per-step detail. Repeat for more'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'ctdiag;lab'= {
            cand -o 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics'
            cand --output 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics'
            cand --color 'When to color the output (NO_COLOR in the environment means never for `auto`)'
            cand -q 'Print only findings that need attention (table output)'
            cand --quiet 'Print only findings that need attention (table output)'
            cand -v 'Explain more: notes, sources, per-step detail. Repeat for more'
            cand --verbose 'Explain more: notes, sources, per-step detail. Repeat for more'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand up 'Build the lab (idempotent: an existing lab with the prefix is torn down and rebuilt)'
            cand down 'Tear the lab down: DNS servers, namespaces, /etc/netns files, state (idempotent)'
            cand status 'Show the lab''s namespaces, addresses, rules and whether each DNS server is alive'
            cand run 'Build a lab, put it through each failure in turn (parallel clash, race drop, dead endpoint, slow endpoint, stale entries, full table), run doctor on each, show what it found, and tear everything down (also on Ctrl-C or a failure)'
            cand scenario 'Put an existing lab into a failure scenario (dead, slow or lossy endpoint, stale conntrack entries, the parallel-query race drop). `ctdiag lab up` again restores a healthy lab'
            cand responder 'The embedded DNS responder (started by `lab up` inside an endpoint namespace)'
            cand fill 'Create many UDP conntrack entries in the lab node''s table, fast: raw datagrams from spoofed sources in the client''s subnet, to the kube-dns ClusterIP (DNATed to the endpoints) or to an unrelated address. About 2.5 s and 61 MiB of kernel memory per 250,000 entries'
            cand client 'A sticky DNS client (started by the stale-endpoint and never-translated scenarios inside the client pod): one UDP socket on a fixed source port, one query to the ClusterIP per interval, each outcome appended to a status file'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'ctdiag;lab;up'= {
            cand -p 'Name prefix of the lab''s namespaces (`PREFIX-node`, `PREFIX-client`, `PREFIX-dnsN`): 1 to 20 characters from a-z, 0-9 and `-`, starting with a letter or digit'
            cand --prefix 'Name prefix of the lab''s namespaces (`PREFIX-node`, `PREFIX-client`, `PREFIX-dnsN`): 1 to 20 characters from a-z, 0-9 and `-`, starting with a letter or digit'
            cand --endpoints 'Number of CoreDNS endpoints behind the kube-dns ClusterIP (1 to 32)'
            cand --dns 'DNS server run in each endpoint namespace'
            cand --proxy-mode 'kube-proxy mode whose rules implement the kube-dns Service on the node'
            cand --ip-family 'Address families of the kube-dns Service: its ClusterIPs (198.19.0.10, 2001:db8::a), the rules (iptables/ip6tables, `ip`/`ip6 kube-proxy`), the DNS servers'' listeners and the pod''s nameservers'
            cand --delay-ms 'Embedded responder: answer every query this many milliseconds late'
            cand --drop-rate 'Embedded responder: share (0 to 1) of all queries silently dropped'
            cand --drop-aaaa-rate 'Embedded responder: share (0 to 1) of AAAA queries silently dropped (one answer of the A/AAAA pair lost)'
            cand --rcode 'Embedded responder: answer every query with this error rcode and no records'
            cand -o 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics'
            cand --output 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics'
            cand --color 'When to color the output (NO_COLOR in the environment means never for `auto`)'
            cand -q 'Print only findings that need attention (table output)'
            cand --quiet 'Print only findings that need attention (table output)'
            cand -v 'Explain more: notes, sources, per-step detail. Repeat for more'
            cand --verbose 'Explain more: notes, sources, per-step detail. Repeat for more'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'ctdiag;lab;down'= {
            cand -p 'Name prefix of the lab''s namespaces (`PREFIX-node`, `PREFIX-client`, `PREFIX-dnsN`): 1 to 20 characters from a-z, 0-9 and `-`, starting with a letter or digit'
            cand --prefix 'Name prefix of the lab''s namespaces (`PREFIX-node`, `PREFIX-client`, `PREFIX-dnsN`): 1 to 20 characters from a-z, 0-9 and `-`, starting with a letter or digit'
            cand -o 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics'
            cand --output 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics'
            cand --color 'When to color the output (NO_COLOR in the environment means never for `auto`)'
            cand -q 'Print only findings that need attention (table output)'
            cand --quiet 'Print only findings that need attention (table output)'
            cand -v 'Explain more: notes, sources, per-step detail. Repeat for more'
            cand --verbose 'Explain more: notes, sources, per-step detail. Repeat for more'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'ctdiag;lab;status'= {
            cand -p 'Name prefix of the lab''s namespaces (`PREFIX-node`, `PREFIX-client`, `PREFIX-dnsN`): 1 to 20 characters from a-z, 0-9 and `-`, starting with a letter or digit'
            cand --prefix 'Name prefix of the lab''s namespaces (`PREFIX-node`, `PREFIX-client`, `PREFIX-dnsN`): 1 to 20 characters from a-z, 0-9 and `-`, starting with a letter or digit'
            cand -o 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics'
            cand --output 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics'
            cand --color 'When to color the output (NO_COLOR in the environment means never for `auto`)'
            cand -q 'Print only findings that need attention (table output)'
            cand --quiet 'Print only findings that need attention (table output)'
            cand -v 'Explain more: notes, sources, per-step detail. Repeat for more'
            cand --verbose 'Explain more: notes, sources, per-step detail. Repeat for more'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'ctdiag;lab;run'= {
            cand -p 'Name prefix of the lab''s namespaces (a lab with this prefix is rebuilt, then removed)'
            cand --prefix 'Name prefix of the lab''s namespaces (a lab with this prefix is rebuilt, then removed)'
            cand --proxy-mode 'kube-proxy mode of the lab''s rules'
            cand --budget 'doctor''s time budget per scenario'
            cand --scenarios 'Which scenarios, in order (comma-separated). Default: all of them'
            cand -o 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics'
            cand --output 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics'
            cand --color 'When to color the output (NO_COLOR in the environment means never for `auto`)'
            cand -q 'Print only findings that need attention (table output)'
            cand --quiet 'Print only findings that need attention (table output)'
            cand -v 'Explain more: notes, sources, per-step detail. Repeat for more'
            cand --verbose 'Explain more: notes, sources, per-step detail. Repeat for more'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'ctdiag;lab;scenario'= {
            cand -p 'Name prefix of the lab''s namespaces (`PREFIX-node`, `PREFIX-client`, `PREFIX-dnsN`): 1 to 20 characters from a-z, 0-9 and `-`, starting with a letter or digit'
            cand --prefix 'Name prefix of the lab''s namespaces (`PREFIX-node`, `PREFIX-client`, `PREFIX-dnsN`): 1 to 20 characters from a-z, 0-9 and `-`, starting with a letter or digit'
            cand -e 'The endpoint (1-based) the scenario acts on. Default: the last one (lossy, error-rcode: every endpoint)'
            cand --endpoint 'The endpoint (1-based) the scenario acts on. Default: the last one (lossy, error-rcode: every endpoint)'
            cand --delay-ms 'slow-endpoint: answer this many milliseconds late'
            cand --drop-rate 'lossy: share (0 to 1) of all queries silently dropped'
            cand --drop-aaaa-rate 'lossy: share (0 to 1) of AAAA queries silently dropped'
            cand --rcode 'error-rcode: the rcode every answer carries (default servfail)'
            cand -o 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics'
            cand --output 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics'
            cand --color 'When to color the output (NO_COLOR in the environment means never for `auto`)'
            cand -q 'Print only findings that need attention (table output)'
            cand --quiet 'Print only findings that need attention (table output)'
            cand -v 'Explain more: notes, sources, per-step detail. Repeat for more'
            cand --verbose 'Explain more: notes, sources, per-step detail. Repeat for more'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'ctdiag;lab;responder'= {
            cand --listen 'Address to answer on, UDP and TCP (repeat for several, e.g. one per address family)'
            cand --delay-ms 'Embedded responder: answer every query this many milliseconds late'
            cand --drop-rate 'Embedded responder: share (0 to 1) of all queries silently dropped'
            cand --drop-aaaa-rate 'Embedded responder: share (0 to 1) of AAAA queries silently dropped (one answer of the A/AAAA pair lost)'
            cand --rcode 'Embedded responder: answer every query with this error rcode and no records'
            cand --threads 'UDP worker threads'
            cand -o 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics'
            cand --output 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics'
            cand --color 'When to color the output (NO_COLOR in the environment means never for `auto`)'
            cand -q 'Print only findings that need attention (table output)'
            cand --quiet 'Print only findings that need attention (table output)'
            cand -v 'Explain more: notes, sources, per-step detail. Repeat for more'
            cand --verbose 'Explain more: notes, sources, per-step detail. Repeat for more'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'ctdiag;lab;fill'= {
            cand -p 'Name prefix of the lab''s namespaces (`PREFIX-node`, `PREFIX-client`, `PREFIX-dnsN`): 1 to 20 characters from a-z, 0-9 and `-`, starting with a letter or digit'
            cand --prefix 'Name prefix of the lab''s namespaces (`PREFIX-node`, `PREFIX-client`, `PREFIX-dnsN`): 1 to 20 characters from a-z, 0-9 and `-`, starting with a letter or digit'
            cand --flows 'Number of new entries to create (at most nf_conntrack_max)'
            cand --to 'Where the flows go'
            cand --family 'Address family of the flows'
            cand --timeout 'Let the entries live this many seconds without traffic (default: the kernel''s UDP timeout for unreplied flows, 30 s)'
            cand -o 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics'
            cand --output 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics'
            cand --color 'When to color the output (NO_COLOR in the environment means never for `auto`)'
            cand -q 'Print only findings that need attention (table output)'
            cand --quiet 'Print only findings that need attention (table output)'
            cand -v 'Explain more: notes, sources, per-step detail. Repeat for more'
            cand --verbose 'Explain more: notes, sources, per-step detail. Repeat for more'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'ctdiag;lab;client'= {
            cand --bind 'The socket''s fixed local address'
            cand --server 'The DNS server (the kube-dns ClusterIP)'
            cand --status 'File each query''s outcome is appended to (JSON Lines)'
            cand --hostname 'The pod''s name, set as hostname in a new UTS namespace'
            cand --netns-file 'The lab''s `ip netns` file of the client pod; the client exits once it names another namespace or none'
            cand --interval-ms 'Milliseconds between queries'
            cand --lifetime-s 'Exit after this many seconds at the latest'
            cand -o 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics'
            cand --output 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics'
            cand --color 'When to color the output (NO_COLOR in the environment means never for `auto`)'
            cand -q 'Print only findings that need attention (table output)'
            cand --quiet 'Print only findings that need attention (table output)'
            cand -v 'Explain more: notes, sources, per-step detail. Repeat for more'
            cand --verbose 'Explain more: notes, sources, per-step detail. Repeat for more'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'ctdiag;lab;help'= {
            cand up 'Build the lab (idempotent: an existing lab with the prefix is torn down and rebuilt)'
            cand down 'Tear the lab down: DNS servers, namespaces, /etc/netns files, state (idempotent)'
            cand status 'Show the lab''s namespaces, addresses, rules and whether each DNS server is alive'
            cand run 'Build a lab, put it through each failure in turn (parallel clash, race drop, dead endpoint, slow endpoint, stale entries, full table), run doctor on each, show what it found, and tear everything down (also on Ctrl-C or a failure)'
            cand scenario 'Put an existing lab into a failure scenario (dead, slow or lossy endpoint, stale conntrack entries, the parallel-query race drop). `ctdiag lab up` again restores a healthy lab'
            cand responder 'The embedded DNS responder (started by `lab up` inside an endpoint namespace)'
            cand fill 'Create many UDP conntrack entries in the lab node''s table, fast: raw datagrams from spoofed sources in the client''s subnet, to the kube-dns ClusterIP (DNATed to the endpoints) or to an unrelated address. About 2.5 s and 61 MiB of kernel memory per 250,000 entries'
            cand client 'A sticky DNS client (started by the stale-endpoint and never-translated scenarios inside the client pod): one UDP socket on a fixed source port, one query to the ClusterIP per interval, each outcome appended to a status file'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'ctdiag;lab;help;up'= {
        }
        &'ctdiag;lab;help;down'= {
        }
        &'ctdiag;lab;help;status'= {
        }
        &'ctdiag;lab;help;run'= {
        }
        &'ctdiag;lab;help;scenario'= {
        }
        &'ctdiag;lab;help;responder'= {
        }
        &'ctdiag;lab;help;fill'= {
        }
        &'ctdiag;lab;help;client'= {
        }
        &'ctdiag;lab;help;help'= {
        }
        &'ctdiag;watch'= {
            cand --service 'The Service: `kube-dns` (kube-system/kube-dns), NAMESPACE/NAME, or NAMESPACE/NAME:PORT (a port name or number)'
            cand --cluster-ip 'Give the Service on the command line instead of reading kube-proxy''s rules: its ClusterIP, and port (default 53). Needs --endpoints'
            cand --endpoints 'With --cluster-ip: the Service''s endpoints (comma-separated or repeated; a bare IP means the Service port)'
            cand --netns 'Capture in the node''s network namespace: a path, a PID, or an `ip netns` name. Default: the current one'
            cand --duration 'Stop after this long (500ms, 30s, 2m, 1h); with --read, of capture time. Default: until Ctrl-C (or the end of the file)'
            cand --interval 'One report (a refreshed view, a JSON line) per this long'
            cand --timeout 'A query with no answer after this many milliseconds is unanswered (glibc''s resolver waits 5000)'
            cand --listen 'Serve Prometheus metrics at http://ADDR:PORT/metrics while watching'
            cand --top-pods 'With --listen: pods with their own series (the rest are one series)'
            cand --read 'Analyse a capture file (pcap or pcapng, e.g. `tcpdump -i any -w FILE port 53`) instead of capturing'
            cand -o 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics'
            cand --output 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics'
            cand --color 'When to color the output (NO_COLOR in the environment means never for `auto`)'
            cand -q 'Print only findings that need attention (table output)'
            cand --quiet 'Print only findings that need attention (table output)'
            cand -v 'Explain more: notes, sources, per-step detail. Repeat for more'
            cand --verbose 'Explain more: notes, sources, per-step detail. Repeat for more'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'ctdiag;help'= {
            cand stats 'conntrack counters per CPU and in total (the numbers of `conntrack -S`), table fill, deltas and rates with --watch, and what they mean'
            cand probe 'Resolver-faithful DNS lookups (A and AAAA in parallel from one fresh socket), loss and latency, and the conntrack counters they moved'
            cand compare 'The same probes against a Service''s ClusterIP and against each of its endpoints directly, interleaved, side by side: the DNAT/conntrack path or one bad endpoint?'
            cand services 'Every Service port the node''s kube-proxy rules define (iptables, nftables or IPVS mode): ClusterIPs and endpoints, optionally checked against the API''s EndpointSlices'
            cand stale 'UDP conntrack entries of a Service whose DNAT target is not a current endpoint (a dead pod, or never translated); --flush deletes exactly those'
            cand doctor 'Every check in one run, within a time budget: conntrack counters now, the DNS Service in the rules, stale entries, ClusterIP against each endpoint, the pods'' resolvers, node-local DNS and NFQUEUE; one verdict table (node-problem-detector plugin with --npd)'
            cand lab 'Build, inspect and tear down a Kubernetes-node lookalike made of network namespaces, to reproduce the failures ctdiag diagnoses'
            cand watch 'Every pod''s own lookups on this node, passively from the packets: answered, lost and slow per pod and per endpoint, with the cause of each lost one; or the same from a capture file (--read)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'ctdiag;help;stats'= {
        }
        &'ctdiag;help;probe'= {
        }
        &'ctdiag;help;compare'= {
        }
        &'ctdiag;help;services'= {
        }
        &'ctdiag;help;stale'= {
        }
        &'ctdiag;help;doctor'= {
        }
        &'ctdiag;help;lab'= {
            cand up 'Build the lab (idempotent: an existing lab with the prefix is torn down and rebuilt)'
            cand down 'Tear the lab down: DNS servers, namespaces, /etc/netns files, state (idempotent)'
            cand status 'Show the lab''s namespaces, addresses, rules and whether each DNS server is alive'
            cand run 'Build a lab, put it through each failure in turn (parallel clash, race drop, dead endpoint, slow endpoint, stale entries, full table), run doctor on each, show what it found, and tear everything down (also on Ctrl-C or a failure)'
            cand scenario 'Put an existing lab into a failure scenario (dead, slow or lossy endpoint, stale conntrack entries, the parallel-query race drop). `ctdiag lab up` again restores a healthy lab'
            cand responder 'The embedded DNS responder (started by `lab up` inside an endpoint namespace)'
            cand fill 'Create many UDP conntrack entries in the lab node''s table, fast: raw datagrams from spoofed sources in the client''s subnet, to the kube-dns ClusterIP (DNATed to the endpoints) or to an unrelated address. About 2.5 s and 61 MiB of kernel memory per 250,000 entries'
            cand client 'A sticky DNS client (started by the stale-endpoint and never-translated scenarios inside the client pod): one UDP socket on a fixed source port, one query to the ClusterIP per interval, each outcome appended to a status file'
        }
        &'ctdiag;help;lab;up'= {
        }
        &'ctdiag;help;lab;down'= {
        }
        &'ctdiag;help;lab;status'= {
        }
        &'ctdiag;help;lab;run'= {
        }
        &'ctdiag;help;lab;scenario'= {
        }
        &'ctdiag;help;lab;responder'= {
        }
        &'ctdiag;help;lab;fill'= {
        }
        &'ctdiag;help;lab;client'= {
        }
        &'ctdiag;help;watch'= {
        }
        &'ctdiag;help;help'= {
        }
    ]
    $completions[$command]
}
