
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'ctdiag' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'ctdiag'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'ctdiag' {
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to color the output (NO_COLOR in the environment means never for `auto`)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only findings that need attention (table output)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only findings that need attention (table output)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Explain more: notes, sources, per-step detail. Repeat for more')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Explain more: notes, sources, per-step detail. Repeat for more')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('stats', 'stats', [CompletionResultType]::ParameterValue, 'conntrack counters per CPU and in total (the numbers of `conntrack -S`), table fill, deltas and rates with --watch, and what they mean')
            [CompletionResult]::new('probe', 'probe', [CompletionResultType]::ParameterValue, 'Resolver-faithful DNS lookups (A and AAAA in parallel from one fresh socket), loss and latency, and the conntrack counters they moved')
            [CompletionResult]::new('compare', 'compare', [CompletionResultType]::ParameterValue, 'The same probes against a Service''s ClusterIP and against each of its endpoints directly, interleaved, side by side: the DNAT/conntrack path or one bad endpoint?')
            [CompletionResult]::new('services', 'services', [CompletionResultType]::ParameterValue, 'Every Service port the node''s kube-proxy rules define (iptables, nftables or IPVS mode): ClusterIPs and endpoints, optionally checked against the API''s EndpointSlices')
            [CompletionResult]::new('stale', 'stale', [CompletionResultType]::ParameterValue, 'UDP conntrack entries of a Service whose DNAT target is not a current endpoint (a dead pod, or never translated); --flush deletes exactly those')
            [CompletionResult]::new('doctor', 'doctor', [CompletionResultType]::ParameterValue, 'Every check in one run, within a time budget: conntrack counters now, the DNS Service in the rules, stale entries, ClusterIP against each endpoint, the pods'' resolvers, node-local DNS and NFQUEUE; one verdict table (node-problem-detector plugin with --npd)')
            [CompletionResult]::new('lab', 'lab', [CompletionResultType]::ParameterValue, 'Build, inspect and tear down a Kubernetes-node lookalike made of network namespaces, to reproduce the failures ctdiag diagnoses')
            [CompletionResult]::new('watch', 'watch', [CompletionResultType]::ParameterValue, 'Every pod''s own lookups on this node, passively from the packets: answered, lost and slow per pod and per endpoint, with the cause of each lost one; or the same from a capture file (--read)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'ctdiag;stats' {
            [CompletionResult]::new('--netns', '--netns', [CompletionResultType]::ParameterName, 'Read the counters of another network namespace: a path (/run/netns/NAME, /proc/PID/ns/net), a PID, or an `ip netns` name')
            [CompletionResult]::new('-w', '-w', [CompletionResultType]::ParameterName, 'Print per-interval deltas and per-second rates every SECONDS (decimals allowed, e.g. 0.5)')
            [CompletionResult]::new('--watch', '--watch', [CompletionResultType]::ParameterName, 'Print per-interval deltas and per-second rates every SECONDS (decimals allowed, e.g. 0.5)')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'With --watch: stop after N intervals (default: until interrupted)')
            [CompletionResult]::new('--count', '--count', [CompletionResultType]::ParameterName, 'With --watch: stop after N intervals (default: until interrupted)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to color the output (NO_COLOR in the environment means never for `auto`)')
            [CompletionResult]::new('--procfs', '--procfs', [CompletionResultType]::ParameterName, 'Read procfs (/proc/net/stat/nf_conntrack) even when ctnetlink works')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only findings that need attention (table output)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only findings that need attention (table output)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Explain more: notes, sources, per-step detail. Repeat for more')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Explain more: notes, sources, per-step detail. Repeat for more')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'ctdiag;probe' {
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'DNS server to probe, IP or IP:PORT ([IPv6]:PORT). Default: the kube-dns ClusterIP in the node''s kube-proxy rules, iptables or nftables mode (read in the --stats-netns namespace), else the first nameserver of the probed namespace''s resolv.conf')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'DNS server to probe, IP or IP:PORT ([IPv6]:PORT). Default: the kube-dns ClusterIP in the node''s kube-proxy rules, iptables or nftables mode (read in the --stats-netns namespace), else the first nameserver of the probed namespace''s resolv.conf')
            [CompletionResult]::new('--service', '--service', [CompletionResultType]::ParameterName, 'The Service: `kube-dns` (kube-system/kube-dns), NAMESPACE/NAME, or NAMESPACE/NAME:PORT (a port name or number)')
            [CompletionResult]::new('--cluster-ip', '--cluster-ip', [CompletionResultType]::ParameterName, 'Give the Service on the command line instead of reading kube-proxy''s rules: its ClusterIP, and port (default 53). Needs --endpoints')
            [CompletionResult]::new('--endpoints', '--endpoints', [CompletionResultType]::ParameterName, 'With --cluster-ip: the Service''s endpoints (comma-separated or repeated; a bare IP means the Service port)')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'Name to look up (repeat for several; they are used in turn)')
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'Number of lookups (default 200 unless --duration is given)')
            [CompletionResult]::new('--count', '--count', [CompletionResultType]::ParameterName, 'Number of lookups (default 200 unless --duration is given)')
            [CompletionResult]::new('-d', '-d', [CompletionResultType]::ParameterName, 'Run for this long instead of a count: 30s, 2m, 500ms')
            [CompletionResult]::new('--duration', '--duration', [CompletionResultType]::ParameterName, 'Run for this long instead of a count: 30s, 2m, 500ms')
            [CompletionResult]::new('-r', '-r', [CompletionResultType]::ParameterName, 'Lookups started per second; 0 means as fast as possible')
            [CompletionResult]::new('--rate', '--rate', [CompletionResultType]::ParameterName, 'Lookups started per second; 0 means as fast as possible')
            [CompletionResult]::new('--concurrency', '--concurrency', [CompletionResultType]::ParameterName, 'Lookups in flight at once')
            [CompletionResult]::new('-t', '-t', [CompletionResultType]::ParameterName, 'How long to wait for each answer, in milliseconds')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'How long to wait for each answer, in milliseconds')
            [CompletionResult]::new('-m', '-m', [CompletionResultType]::ParameterName, 'Resolver behaviour to imitate')
            [CompletionResult]::new('--mode', '--mode', [CompletionResultType]::ParameterName, 'Resolver behaviour to imitate')
            [CompletionResult]::new('--netns', '--netns', [CompletionResultType]::ParameterName, 'Open the probe sockets inside this network namespace (a pod''s): a path, a PID, or an `ip netns` name')
            [CompletionResult]::new('--stats-netns', '--stats-netns', [CompletionResultType]::ParameterName, 'Read the conntrack counters in this namespace (where DNAT happens: the node''s). Default: the current namespace')
            [CompletionResult]::new('--slow-ms', '--slow-ms', [CompletionResultType]::ParameterName, 'Warn when 1 % or more of the answered lookups take this long or longer, in milliseconds. Default: a fifth of the resolver timeout the probed namespace''s resolv.conf implies (1000 for the usual 5 s)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to color the output (NO_COLOR in the environment means never for `auto`)')
            [CompletionResult]::new('--parallel', '--parallel', [CompletionResultType]::ParameterName, 'Shorthand for --mode parallel')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only findings that need attention (table output)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only findings that need attention (table output)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Explain more: notes, sources, per-step detail. Repeat for more')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Explain more: notes, sources, per-step detail. Repeat for more')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'ctdiag;compare' {
            [CompletionResult]::new('--service', '--service', [CompletionResultType]::ParameterName, 'The Service: `kube-dns` (kube-system/kube-dns), NAMESPACE/NAME, or NAMESPACE/NAME:PORT (a port name or number)')
            [CompletionResult]::new('--cluster-ip', '--cluster-ip', [CompletionResultType]::ParameterName, 'Give the Service on the command line instead of reading kube-proxy''s rules: its ClusterIP, and port (default 53). Needs --endpoints')
            [CompletionResult]::new('--endpoints', '--endpoints', [CompletionResultType]::ParameterName, 'With --cluster-ip: the Service''s endpoints (comma-separated or repeated; a bare IP means the Service port)')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'Name to look up (repeat for several; they are used in turn)')
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'Lookups per target and mode (default 200 unless --duration is given)')
            [CompletionResult]::new('--count', '--count', [CompletionResultType]::ParameterName, 'Lookups per target and mode (default 200 unless --duration is given)')
            [CompletionResult]::new('-d', '-d', [CompletionResultType]::ParameterName, 'Run for this long in all (every target and mode share it): 30s, 2m')
            [CompletionResult]::new('--duration', '--duration', [CompletionResultType]::ParameterName, 'Run for this long in all (every target and mode share it): 30s, 2m')
            [CompletionResult]::new('-r', '-r', [CompletionResultType]::ParameterName, 'Lookups started per second; 0 means as fast as possible')
            [CompletionResult]::new('--rate', '--rate', [CompletionResultType]::ParameterName, 'Lookups started per second; 0 means as fast as possible')
            [CompletionResult]::new('--concurrency', '--concurrency', [CompletionResultType]::ParameterName, 'Lookups in flight at once')
            [CompletionResult]::new('-t', '-t', [CompletionResultType]::ParameterName, 'How long to wait for each answer, in milliseconds')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'How long to wait for each answer, in milliseconds')
            [CompletionResult]::new('-m', '-m', [CompletionResultType]::ParameterName, 'Resolver behaviour to imitate')
            [CompletionResult]::new('--mode', '--mode', [CompletionResultType]::ParameterName, 'Resolver behaviour to imitate')
            [CompletionResult]::new('--modes', '--modes', [CompletionResultType]::ParameterName, 'Repeat the comparison for each of these resolver modes (comma-separated) and say which resolv.conf option makes the loss go away: parallel (glibc), sequential (single-request), reopen (single-request-reopen), tcp (use-vc), musl, threads')
            [CompletionResult]::new('--rounds', '--rounds', [CompletionResultType]::ParameterName, 'How many rounds each target''s lookups are cut into (interleaving)')
            [CompletionResult]::new('--slow-ms', '--slow-ms', [CompletionResultType]::ParameterName, 'Slow-answer threshold in milliseconds. Default: a fifth of the resolver timeout the probed namespace''s resolv.conf implies')
            [CompletionResult]::new('--api', '--api', [CompletionResultType]::ParameterName, 'When the node has no kube-proxy rules (Cilium, Calico eBPF, a kube-proxy that never synced): the ClusterIP and ready endpoints from the API, `kubectl get services,endpointslices -n NAMESPACE -o json` output in FILE, or `-` for stdin. The rules win when there are any')
            [CompletionResult]::new('--netns', '--netns', [CompletionResultType]::ParameterName, 'Open the probe sockets inside this network namespace (a pod''s): a path, a PID, or an `ip netns` name')
            [CompletionResult]::new('--stats-netns', '--stats-netns', [CompletionResultType]::ParameterName, 'Read the node''s kube-proxy rules and conntrack counters in this namespace (where DNAT happens). Default: the current namespace')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to color the output (NO_COLOR in the environment means never for `auto`)')
            [CompletionResult]::new('--kubectl', '--kubectl', [CompletionResultType]::ParameterName, 'Like --api, running that kubectl command (kubectl on PATH with a usable kubeconfig)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only findings that need attention (table output)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only findings that need attention (table output)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Explain more: notes, sources, per-step detail. Repeat for more')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Explain more: notes, sources, per-step detail. Repeat for more')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'ctdiag;services' {
            [CompletionResult]::new('--service', '--service', [CompletionResultType]::ParameterName, 'The Service: `kube-dns` (kube-system/kube-dns), NAMESPACE/NAME, or NAMESPACE/NAME:PORT (a port name or number)')
            [CompletionResult]::new('--cluster-ip', '--cluster-ip', [CompletionResultType]::ParameterName, 'Give the Service on the command line instead of reading kube-proxy''s rules: its ClusterIP, and port (default 53). Needs --endpoints')
            [CompletionResult]::new('--endpoints', '--endpoints', [CompletionResultType]::ParameterName, 'With --cluster-ip: the Service''s endpoints (comma-separated or repeated; a bare IP means the Service port)')
            [CompletionResult]::new('--netns', '--netns', [CompletionResultType]::ParameterName, 'Read the rules in another network namespace (the node''s): a path, a PID, or an `ip netns` name')
            [CompletionResult]::new('--cluster-dns', '--cluster-dns', [CompletionResultType]::ParameterName, 'IPVS mode has no Service names: the kube-dns ClusterIP. Default: the kubelet''s clusterDNS, else the nameserver pods on this node use')
            [CompletionResult]::new('--api', '--api', [CompletionResultType]::ParameterName, 'Compare with the API: the output of `kubectl get endpointslices -A -o json` in FILE, or `-` for stdin')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to color the output (NO_COLOR in the environment means never for `auto`)')
            [CompletionResult]::new('--kubectl', '--kubectl', [CompletionResultType]::ParameterName, 'Compare with the API by running `kubectl get endpointslices -A -o json` (kubectl on PATH with a usable kubeconfig)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only findings that need attention (table output)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only findings that need attention (table output)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Explain more: notes, sources, per-step detail. Repeat for more')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Explain more: notes, sources, per-step detail. Repeat for more')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'ctdiag;stale' {
            [CompletionResult]::new('--service', '--service', [CompletionResultType]::ParameterName, 'The Service: `kube-dns` (kube-system/kube-dns), NAMESPACE/NAME, or NAMESPACE/NAME:PORT (a port name or number)')
            [CompletionResult]::new('--cluster-ip', '--cluster-ip', [CompletionResultType]::ParameterName, 'Give the Service on the command line instead of reading kube-proxy''s rules: its ClusterIP, and port (default 53). Needs --endpoints')
            [CompletionResult]::new('--endpoints', '--endpoints', [CompletionResultType]::ParameterName, 'With --cluster-ip: the Service''s endpoints (comma-separated or repeated; a bare IP means the Service port)')
            [CompletionResult]::new('--netns', '--netns', [CompletionResultType]::ParameterName, 'The node''s network namespace (its conntrack table and kube-proxy rules): a path (/run/netns/NAME, /proc/PID/ns/net), a PID, or an `ip netns` name. Default: the current namespace')
            [CompletionResult]::new('--from', '--from', [CompletionResultType]::ParameterName, 'Only the Services of this proxy mode''s rules, when rules of several modes define one ClusterIP:port (a flush refuses sources that disagree on the endpoints)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to color the output (NO_COLOR in the environment means never for `auto`)')
            [CompletionResult]::new('--all', '--all', [CompletionResultType]::ParameterName, 'Every UDP Service the rules define, including those without endpoints')
            [CompletionResult]::new('--flush', '--flush', [CompletionResultType]::ParameterName, 'Delete exactly the stale entries (by reply tuple, zone and the id the scan saw; each acknowledged), then scan again. Asks first on a terminal; without one, needs --yes')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'With --flush: delete without asking')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'With --flush: delete without asking')
            [CompletionResult]::new('--all-entries', '--all-entries', [CompletionResultType]::ParameterName, 'List live entries too (stale ones are always listed; both are always counted)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only findings that need attention (table output)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only findings that need attention (table output)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Explain more: notes, sources, per-step detail. Repeat for more')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Explain more: notes, sources, per-step detail. Repeat for more')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'ctdiag;doctor' {
            [CompletionResult]::new('--service', '--service', [CompletionResultType]::ParameterName, 'The Service: `kube-dns` (kube-system/kube-dns), NAMESPACE/NAME, or NAMESPACE/NAME:PORT (a port name or number)')
            [CompletionResult]::new('--cluster-ip', '--cluster-ip', [CompletionResultType]::ParameterName, 'Give the Service on the command line instead of reading kube-proxy''s rules: its ClusterIP, and port (default 53). Needs --endpoints')
            [CompletionResult]::new('--endpoints', '--endpoints', [CompletionResultType]::ParameterName, 'With --cluster-ip: the Service''s endpoints (comma-separated or repeated; a bare IP means the Service port)')
            [CompletionResult]::new('--netns', '--netns', [CompletionResultType]::ParameterName, 'The node''s network namespace (conntrack, kube-proxy rules, node-local DNS): a path, a PID, or an `ip netns` name. Default: the current one')
            [CompletionResult]::new('--probe-netns', '--probe-netns', [CompletionResultType]::ParameterName, 'Start the comparison''s lookups in this namespace (a pod''s). Default: the node''s')
            [CompletionResult]::new('--pods', '--pods', [CompletionResultType]::ParameterName, 'Look only at these pod network namespaces in the resolver check (comma-separated or repeated). Default: every namespace in use on the node')
            [CompletionResult]::new('--budget', '--budget', [CompletionResultType]::ParameterName, 'The time budget of the whole run: 15s, 30s, 1m')
            [CompletionResult]::new('--api', '--api', [CompletionResultType]::ParameterName, 'Compare the rules with the API: `kubectl get endpointslices -A -o json` output in FILE, or `-` for stdin. On a node without kube-proxy rules, `kubectl get services,endpointslices -n kube-system -o json` output: the comparison probes the ClusterIP and endpoints it gives')
            [CompletionResult]::new('--node-local-dns', '--node-local-dns', [CompletionResultType]::ParameterName, 'The address node-local DNS (NodeLocal DNSCache) listens on')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to color the output (NO_COLOR in the environment means never for `auto`)')
            [CompletionResult]::new('--all', '--all', [CompletionResultType]::ParameterName, 'Scan every UDP Service for stale entries, not only the DNS Service')
            [CompletionResult]::new('--npd', '--npd', [CompletionResultType]::ParameterName, 'node-problem-detector custom-plugin mode: exactly one line of at most 80 characters naming the worst finding; exit 0 OK, 1 NonOK, 2 Unknown')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only findings that need attention (table output)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only findings that need attention (table output)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Explain more: notes, sources, per-step detail. Repeat for more')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Explain more: notes, sources, per-step detail. Repeat for more')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'ctdiag;lab' {
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to color the output (NO_COLOR in the environment means never for `auto`)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only findings that need attention (table output)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only findings that need attention (table output)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Explain more: notes, sources, per-step detail. Repeat for more')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Explain more: notes, sources, per-step detail. Repeat for more')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('up', 'up', [CompletionResultType]::ParameterValue, 'Build the lab (idempotent: an existing lab with the prefix is torn down and rebuilt)')
            [CompletionResult]::new('down', 'down', [CompletionResultType]::ParameterValue, 'Tear the lab down: DNS servers, namespaces, /etc/netns files, state (idempotent)')
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'Show the lab''s namespaces, addresses, rules and whether each DNS server is alive')
            [CompletionResult]::new('run', 'run', [CompletionResultType]::ParameterValue, 'Build a lab, put it through each failure in turn (parallel clash, race drop, dead endpoint, slow endpoint, stale entries, full table), run doctor on each, show what it found, and tear everything down (also on Ctrl-C or a failure)')
            [CompletionResult]::new('scenario', 'scenario', [CompletionResultType]::ParameterValue, 'Put an existing lab into a failure scenario (dead, slow or lossy endpoint, stale conntrack entries, the parallel-query race drop). `ctdiag lab up` again restores a healthy lab')
            [CompletionResult]::new('responder', 'responder', [CompletionResultType]::ParameterValue, 'The embedded DNS responder (started by `lab up` inside an endpoint namespace)')
            [CompletionResult]::new('fill', 'fill', [CompletionResultType]::ParameterValue, 'Create many UDP conntrack entries in the lab node''s table, fast: raw datagrams from spoofed sources in the client''s subnet, to the kube-dns ClusterIP (DNATed to the endpoints) or to an unrelated address. About 2.5 s and 61 MiB of kernel memory per 250,000 entries')
            [CompletionResult]::new('client', 'client', [CompletionResultType]::ParameterValue, 'A sticky DNS client (started by the stale-endpoint and never-translated scenarios inside the client pod): one UDP socket on a fixed source port, one query to the ClusterIP per interval, each outcome appended to a status file')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'ctdiag;lab;up' {
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'Name prefix of the lab''s namespaces (`PREFIX-node`, `PREFIX-client`, `PREFIX-dnsN`): 1 to 20 characters from a-z, 0-9 and `-`, starting with a letter or digit')
            [CompletionResult]::new('--prefix', '--prefix', [CompletionResultType]::ParameterName, 'Name prefix of the lab''s namespaces (`PREFIX-node`, `PREFIX-client`, `PREFIX-dnsN`): 1 to 20 characters from a-z, 0-9 and `-`, starting with a letter or digit')
            [CompletionResult]::new('--endpoints', '--endpoints', [CompletionResultType]::ParameterName, 'Number of CoreDNS endpoints behind the kube-dns ClusterIP (1 to 32)')
            [CompletionResult]::new('--dns', '--dns', [CompletionResultType]::ParameterName, 'DNS server run in each endpoint namespace')
            [CompletionResult]::new('--proxy-mode', '--proxy-mode', [CompletionResultType]::ParameterName, 'kube-proxy mode whose rules implement the kube-dns Service on the node')
            [CompletionResult]::new('--ip-family', '--ip-family', [CompletionResultType]::ParameterName, 'Address families of the kube-dns Service: its ClusterIPs (198.19.0.10, 2001:db8::a), the rules (iptables/ip6tables, `ip`/`ip6 kube-proxy`), the DNS servers'' listeners and the pod''s nameservers')
            [CompletionResult]::new('--delay-ms', '--delay-ms', [CompletionResultType]::ParameterName, 'Embedded responder: answer every query this many milliseconds late')
            [CompletionResult]::new('--drop-rate', '--drop-rate', [CompletionResultType]::ParameterName, 'Embedded responder: share (0 to 1) of all queries silently dropped')
            [CompletionResult]::new('--drop-aaaa-rate', '--drop-aaaa-rate', [CompletionResultType]::ParameterName, 'Embedded responder: share (0 to 1) of AAAA queries silently dropped (one answer of the A/AAAA pair lost)')
            [CompletionResult]::new('--rcode', '--rcode', [CompletionResultType]::ParameterName, 'Embedded responder: answer every query with this error rcode and no records')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to color the output (NO_COLOR in the environment means never for `auto`)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only findings that need attention (table output)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only findings that need attention (table output)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Explain more: notes, sources, per-step detail. Repeat for more')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Explain more: notes, sources, per-step detail. Repeat for more')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'ctdiag;lab;down' {
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'Name prefix of the lab''s namespaces (`PREFIX-node`, `PREFIX-client`, `PREFIX-dnsN`): 1 to 20 characters from a-z, 0-9 and `-`, starting with a letter or digit')
            [CompletionResult]::new('--prefix', '--prefix', [CompletionResultType]::ParameterName, 'Name prefix of the lab''s namespaces (`PREFIX-node`, `PREFIX-client`, `PREFIX-dnsN`): 1 to 20 characters from a-z, 0-9 and `-`, starting with a letter or digit')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to color the output (NO_COLOR in the environment means never for `auto`)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only findings that need attention (table output)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only findings that need attention (table output)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Explain more: notes, sources, per-step detail. Repeat for more')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Explain more: notes, sources, per-step detail. Repeat for more')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'ctdiag;lab;status' {
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'Name prefix of the lab''s namespaces (`PREFIX-node`, `PREFIX-client`, `PREFIX-dnsN`): 1 to 20 characters from a-z, 0-9 and `-`, starting with a letter or digit')
            [CompletionResult]::new('--prefix', '--prefix', [CompletionResultType]::ParameterName, 'Name prefix of the lab''s namespaces (`PREFIX-node`, `PREFIX-client`, `PREFIX-dnsN`): 1 to 20 characters from a-z, 0-9 and `-`, starting with a letter or digit')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to color the output (NO_COLOR in the environment means never for `auto`)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only findings that need attention (table output)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only findings that need attention (table output)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Explain more: notes, sources, per-step detail. Repeat for more')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Explain more: notes, sources, per-step detail. Repeat for more')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'ctdiag;lab;run' {
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'Name prefix of the lab''s namespaces (a lab with this prefix is rebuilt, then removed)')
            [CompletionResult]::new('--prefix', '--prefix', [CompletionResultType]::ParameterName, 'Name prefix of the lab''s namespaces (a lab with this prefix is rebuilt, then removed)')
            [CompletionResult]::new('--proxy-mode', '--proxy-mode', [CompletionResultType]::ParameterName, 'kube-proxy mode of the lab''s rules')
            [CompletionResult]::new('--budget', '--budget', [CompletionResultType]::ParameterName, 'doctor''s time budget per scenario')
            [CompletionResult]::new('--scenarios', '--scenarios', [CompletionResultType]::ParameterName, 'Which scenarios, in order (comma-separated). Default: all of them')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to color the output (NO_COLOR in the environment means never for `auto`)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only findings that need attention (table output)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only findings that need attention (table output)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Explain more: notes, sources, per-step detail. Repeat for more')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Explain more: notes, sources, per-step detail. Repeat for more')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'ctdiag;lab;scenario' {
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'Name prefix of the lab''s namespaces (`PREFIX-node`, `PREFIX-client`, `PREFIX-dnsN`): 1 to 20 characters from a-z, 0-9 and `-`, starting with a letter or digit')
            [CompletionResult]::new('--prefix', '--prefix', [CompletionResultType]::ParameterName, 'Name prefix of the lab''s namespaces (`PREFIX-node`, `PREFIX-client`, `PREFIX-dnsN`): 1 to 20 characters from a-z, 0-9 and `-`, starting with a letter or digit')
            [CompletionResult]::new('-e', '-e', [CompletionResultType]::ParameterName, 'The endpoint (1-based) the scenario acts on. Default: the last one (lossy, error-rcode: every endpoint)')
            [CompletionResult]::new('--endpoint', '--endpoint', [CompletionResultType]::ParameterName, 'The endpoint (1-based) the scenario acts on. Default: the last one (lossy, error-rcode: every endpoint)')
            [CompletionResult]::new('--delay-ms', '--delay-ms', [CompletionResultType]::ParameterName, 'slow-endpoint: answer this many milliseconds late')
            [CompletionResult]::new('--drop-rate', '--drop-rate', [CompletionResultType]::ParameterName, 'lossy: share (0 to 1) of all queries silently dropped')
            [CompletionResult]::new('--drop-aaaa-rate', '--drop-aaaa-rate', [CompletionResultType]::ParameterName, 'lossy: share (0 to 1) of AAAA queries silently dropped')
            [CompletionResult]::new('--rcode', '--rcode', [CompletionResultType]::ParameterName, 'error-rcode: the rcode every answer carries (default servfail)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to color the output (NO_COLOR in the environment means never for `auto`)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only findings that need attention (table output)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only findings that need attention (table output)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Explain more: notes, sources, per-step detail. Repeat for more')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Explain more: notes, sources, per-step detail. Repeat for more')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'ctdiag;lab;responder' {
            [CompletionResult]::new('--listen', '--listen', [CompletionResultType]::ParameterName, 'Address to answer on, UDP and TCP (repeat for several, e.g. one per address family)')
            [CompletionResult]::new('--delay-ms', '--delay-ms', [CompletionResultType]::ParameterName, 'Embedded responder: answer every query this many milliseconds late')
            [CompletionResult]::new('--drop-rate', '--drop-rate', [CompletionResultType]::ParameterName, 'Embedded responder: share (0 to 1) of all queries silently dropped')
            [CompletionResult]::new('--drop-aaaa-rate', '--drop-aaaa-rate', [CompletionResultType]::ParameterName, 'Embedded responder: share (0 to 1) of AAAA queries silently dropped (one answer of the A/AAAA pair lost)')
            [CompletionResult]::new('--rcode', '--rcode', [CompletionResultType]::ParameterName, 'Embedded responder: answer every query with this error rcode and no records')
            [CompletionResult]::new('--threads', '--threads', [CompletionResultType]::ParameterName, 'UDP worker threads')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to color the output (NO_COLOR in the environment means never for `auto`)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only findings that need attention (table output)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only findings that need attention (table output)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Explain more: notes, sources, per-step detail. Repeat for more')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Explain more: notes, sources, per-step detail. Repeat for more')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'ctdiag;lab;fill' {
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'Name prefix of the lab''s namespaces (`PREFIX-node`, `PREFIX-client`, `PREFIX-dnsN`): 1 to 20 characters from a-z, 0-9 and `-`, starting with a letter or digit')
            [CompletionResult]::new('--prefix', '--prefix', [CompletionResultType]::ParameterName, 'Name prefix of the lab''s namespaces (`PREFIX-node`, `PREFIX-client`, `PREFIX-dnsN`): 1 to 20 characters from a-z, 0-9 and `-`, starting with a letter or digit')
            [CompletionResult]::new('--flows', '--flows', [CompletionResultType]::ParameterName, 'Number of new entries to create (at most nf_conntrack_max)')
            [CompletionResult]::new('--to', '--to', [CompletionResultType]::ParameterName, 'Where the flows go')
            [CompletionResult]::new('--family', '--family', [CompletionResultType]::ParameterName, 'Address family of the flows')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Let the entries live this many seconds without traffic (default: the kernel''s UDP timeout for unreplied flows, 30 s)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to color the output (NO_COLOR in the environment means never for `auto`)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only findings that need attention (table output)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only findings that need attention (table output)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Explain more: notes, sources, per-step detail. Repeat for more')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Explain more: notes, sources, per-step detail. Repeat for more')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'ctdiag;lab;client' {
            [CompletionResult]::new('--bind', '--bind', [CompletionResultType]::ParameterName, 'The socket''s fixed local address')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'The DNS server (the kube-dns ClusterIP)')
            [CompletionResult]::new('--status', '--status', [CompletionResultType]::ParameterName, 'File each query''s outcome is appended to (JSON Lines)')
            [CompletionResult]::new('--hostname', '--hostname', [CompletionResultType]::ParameterName, 'The pod''s name, set as hostname in a new UTS namespace')
            [CompletionResult]::new('--netns-file', '--netns-file', [CompletionResultType]::ParameterName, 'The lab''s `ip netns` file of the client pod; the client exits once it names another namespace or none')
            [CompletionResult]::new('--interval-ms', '--interval-ms', [CompletionResultType]::ParameterName, 'Milliseconds between queries')
            [CompletionResult]::new('--lifetime-s', '--lifetime-s', [CompletionResultType]::ParameterName, 'Exit after this many seconds at the latest')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to color the output (NO_COLOR in the environment means never for `auto`)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only findings that need attention (table output)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only findings that need attention (table output)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Explain more: notes, sources, per-step detail. Repeat for more')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Explain more: notes, sources, per-step detail. Repeat for more')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'ctdiag;lab;help' {
            [CompletionResult]::new('up', 'up', [CompletionResultType]::ParameterValue, 'Build the lab (idempotent: an existing lab with the prefix is torn down and rebuilt)')
            [CompletionResult]::new('down', 'down', [CompletionResultType]::ParameterValue, 'Tear the lab down: DNS servers, namespaces, /etc/netns files, state (idempotent)')
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'Show the lab''s namespaces, addresses, rules and whether each DNS server is alive')
            [CompletionResult]::new('run', 'run', [CompletionResultType]::ParameterValue, 'Build a lab, put it through each failure in turn (parallel clash, race drop, dead endpoint, slow endpoint, stale entries, full table), run doctor on each, show what it found, and tear everything down (also on Ctrl-C or a failure)')
            [CompletionResult]::new('scenario', 'scenario', [CompletionResultType]::ParameterValue, 'Put an existing lab into a failure scenario (dead, slow or lossy endpoint, stale conntrack entries, the parallel-query race drop). `ctdiag lab up` again restores a healthy lab')
            [CompletionResult]::new('responder', 'responder', [CompletionResultType]::ParameterValue, 'The embedded DNS responder (started by `lab up` inside an endpoint namespace)')
            [CompletionResult]::new('fill', 'fill', [CompletionResultType]::ParameterValue, 'Create many UDP conntrack entries in the lab node''s table, fast: raw datagrams from spoofed sources in the client''s subnet, to the kube-dns ClusterIP (DNATed to the endpoints) or to an unrelated address. About 2.5 s and 61 MiB of kernel memory per 250,000 entries')
            [CompletionResult]::new('client', 'client', [CompletionResultType]::ParameterValue, 'A sticky DNS client (started by the stale-endpoint and never-translated scenarios inside the client pod): one UDP socket on a fixed source port, one query to the ClusterIP per interval, each outcome appended to a status file')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'ctdiag;lab;help;up' {
            break
        }
        'ctdiag;lab;help;down' {
            break
        }
        'ctdiag;lab;help;status' {
            break
        }
        'ctdiag;lab;help;run' {
            break
        }
        'ctdiag;lab;help;scenario' {
            break
        }
        'ctdiag;lab;help;responder' {
            break
        }
        'ctdiag;lab;help;fill' {
            break
        }
        'ctdiag;lab;help;client' {
            break
        }
        'ctdiag;lab;help;help' {
            break
        }
        'ctdiag;watch' {
            [CompletionResult]::new('--service', '--service', [CompletionResultType]::ParameterName, 'The Service: `kube-dns` (kube-system/kube-dns), NAMESPACE/NAME, or NAMESPACE/NAME:PORT (a port name or number)')
            [CompletionResult]::new('--cluster-ip', '--cluster-ip', [CompletionResultType]::ParameterName, 'Give the Service on the command line instead of reading kube-proxy''s rules: its ClusterIP, and port (default 53). Needs --endpoints')
            [CompletionResult]::new('--endpoints', '--endpoints', [CompletionResultType]::ParameterName, 'With --cluster-ip: the Service''s endpoints (comma-separated or repeated; a bare IP means the Service port)')
            [CompletionResult]::new('--netns', '--netns', [CompletionResultType]::ParameterName, 'Capture in the node''s network namespace: a path, a PID, or an `ip netns` name. Default: the current one')
            [CompletionResult]::new('--duration', '--duration', [CompletionResultType]::ParameterName, 'Stop after this long (500ms, 30s, 2m, 1h); with --read, of capture time. Default: until Ctrl-C (or the end of the file)')
            [CompletionResult]::new('--interval', '--interval', [CompletionResultType]::ParameterName, 'One report (a refreshed view, a JSON line) per this long')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'A query with no answer after this many milliseconds is unanswered (glibc''s resolver waits 5000)')
            [CompletionResult]::new('--listen', '--listen', [CompletionResultType]::ParameterName, 'Serve Prometheus metrics at http://ADDR:PORT/metrics while watching')
            [CompletionResult]::new('--top-pods', '--top-pods', [CompletionResultType]::ParameterName, 'With --listen: pods with their own series (the rest are one series)')
            [CompletionResult]::new('--read', '--read', [CompletionResultType]::ParameterName, 'Analyse a capture file (pcap or pcapng, e.g. `tcpdump -i any -w FILE port 53`) instead of capturing')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to color the output (NO_COLOR in the environment means never for `auto`)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only findings that need attention (table output)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only findings that need attention (table output)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Explain more: notes, sources, per-step detail. Repeat for more')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Explain more: notes, sources, per-step detail. Repeat for more')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'ctdiag;help' {
            [CompletionResult]::new('stats', 'stats', [CompletionResultType]::ParameterValue, 'conntrack counters per CPU and in total (the numbers of `conntrack -S`), table fill, deltas and rates with --watch, and what they mean')
            [CompletionResult]::new('probe', 'probe', [CompletionResultType]::ParameterValue, 'Resolver-faithful DNS lookups (A and AAAA in parallel from one fresh socket), loss and latency, and the conntrack counters they moved')
            [CompletionResult]::new('compare', 'compare', [CompletionResultType]::ParameterValue, 'The same probes against a Service''s ClusterIP and against each of its endpoints directly, interleaved, side by side: the DNAT/conntrack path or one bad endpoint?')
            [CompletionResult]::new('services', 'services', [CompletionResultType]::ParameterValue, 'Every Service port the node''s kube-proxy rules define (iptables, nftables or IPVS mode): ClusterIPs and endpoints, optionally checked against the API''s EndpointSlices')
            [CompletionResult]::new('stale', 'stale', [CompletionResultType]::ParameterValue, 'UDP conntrack entries of a Service whose DNAT target is not a current endpoint (a dead pod, or never translated); --flush deletes exactly those')
            [CompletionResult]::new('doctor', 'doctor', [CompletionResultType]::ParameterValue, 'Every check in one run, within a time budget: conntrack counters now, the DNS Service in the rules, stale entries, ClusterIP against each endpoint, the pods'' resolvers, node-local DNS and NFQUEUE; one verdict table (node-problem-detector plugin with --npd)')
            [CompletionResult]::new('lab', 'lab', [CompletionResultType]::ParameterValue, 'Build, inspect and tear down a Kubernetes-node lookalike made of network namespaces, to reproduce the failures ctdiag diagnoses')
            [CompletionResult]::new('watch', 'watch', [CompletionResultType]::ParameterValue, 'Every pod''s own lookups on this node, passively from the packets: answered, lost and slow per pod and per endpoint, with the cause of each lost one; or the same from a capture file (--read)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'ctdiag;help;stats' {
            break
        }
        'ctdiag;help;probe' {
            break
        }
        'ctdiag;help;compare' {
            break
        }
        'ctdiag;help;services' {
            break
        }
        'ctdiag;help;stale' {
            break
        }
        'ctdiag;help;doctor' {
            break
        }
        'ctdiag;help;lab' {
            [CompletionResult]::new('up', 'up', [CompletionResultType]::ParameterValue, 'Build the lab (idempotent: an existing lab with the prefix is torn down and rebuilt)')
            [CompletionResult]::new('down', 'down', [CompletionResultType]::ParameterValue, 'Tear the lab down: DNS servers, namespaces, /etc/netns files, state (idempotent)')
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'Show the lab''s namespaces, addresses, rules and whether each DNS server is alive')
            [CompletionResult]::new('run', 'run', [CompletionResultType]::ParameterValue, 'Build a lab, put it through each failure in turn (parallel clash, race drop, dead endpoint, slow endpoint, stale entries, full table), run doctor on each, show what it found, and tear everything down (also on Ctrl-C or a failure)')
            [CompletionResult]::new('scenario', 'scenario', [CompletionResultType]::ParameterValue, 'Put an existing lab into a failure scenario (dead, slow or lossy endpoint, stale conntrack entries, the parallel-query race drop). `ctdiag lab up` again restores a healthy lab')
            [CompletionResult]::new('responder', 'responder', [CompletionResultType]::ParameterValue, 'The embedded DNS responder (started by `lab up` inside an endpoint namespace)')
            [CompletionResult]::new('fill', 'fill', [CompletionResultType]::ParameterValue, 'Create many UDP conntrack entries in the lab node''s table, fast: raw datagrams from spoofed sources in the client''s subnet, to the kube-dns ClusterIP (DNATed to the endpoints) or to an unrelated address. About 2.5 s and 61 MiB of kernel memory per 250,000 entries')
            [CompletionResult]::new('client', 'client', [CompletionResultType]::ParameterValue, 'A sticky DNS client (started by the stale-endpoint and never-translated scenarios inside the client pod): one UDP socket on a fixed source port, one query to the ClusterIP per interval, each outcome appended to a status file')
            break
        }
        'ctdiag;help;lab;up' {
            break
        }
        'ctdiag;help;lab;down' {
            break
        }
        'ctdiag;help;lab;status' {
            break
        }
        'ctdiag;help;lab;run' {
            break
        }
        'ctdiag;help;lab;scenario' {
            break
        }
        'ctdiag;help;lab;responder' {
            break
        }
        'ctdiag;help;lab;fill' {
            break
        }
        'ctdiag;help;lab;client' {
            break
        }
        'ctdiag;help;watch' {
            break
        }
        'ctdiag;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
