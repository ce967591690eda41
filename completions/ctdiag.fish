# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_ctdiag_global_optspecs
    string join \n o/output= color= q/quiet v/verbose h/help V/version
end

function __fish_ctdiag_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_ctdiag_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_ctdiag_using_subcommand
    set -l cmd (__fish_ctdiag_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c ctdiag -n "__fish_ctdiag_needs_command" -s o -l output -d 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics' -r -f -a "table\t'Human-readable tables'
json\t'One JSON object (JSON Lines for streams such as `--watch`)'
prometheus\t'Prometheus text exposition format (metrics commands only)'"
complete -c ctdiag -n "__fish_ctdiag_needs_command" -l color -d 'When to color the output (NO_COLOR in the environment means never for `auto`)' -r -f -a "auto\t'Color when stdout is a terminal and NO_COLOR is unset'
always\t'Always color'
never\t'Never color'"
complete -c ctdiag -n "__fish_ctdiag_needs_command" -s q -l quiet -d 'Print only findings that need attention (table output)'
complete -c ctdiag -n "__fish_ctdiag_needs_command" -s v -l verbose -d 'Explain more: notes, sources, per-step detail. Repeat for more'
complete -c ctdiag -n "__fish_ctdiag_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ctdiag -n "__fish_ctdiag_needs_command" -s V -l version -d 'Print version'
complete -c ctdiag -n "__fish_ctdiag_needs_command" -f -a "stats" -d 'conntrack counters per CPU and in total (the numbers of `conntrack -S`), table fill, deltas and rates with --watch, and what they mean'
complete -c ctdiag -n "__fish_ctdiag_needs_command" -f -a "probe" -d 'Resolver-faithful DNS lookups (A and AAAA in parallel from one fresh socket), loss and latency, and the conntrack counters they moved'
complete -c ctdiag -n "__fish_ctdiag_needs_command" -f -a "compare" -d 'The same probes against a Service\'s ClusterIP and against each of its endpoints directly, interleaved, side by side: the DNAT/conntrack path or one bad endpoint?'
complete -c ctdiag -n "__fish_ctdiag_needs_command" -f -a "services" -d 'Every Service port the node\'s kube-proxy rules define (iptables, nftables or IPVS mode): ClusterIPs and endpoints, optionally checked against the API\'s EndpointSlices'
complete -c ctdiag -n "__fish_ctdiag_needs_command" -f -a "stale" -d 'UDP conntrack entries of a Service whose DNAT target is not a current endpoint (a dead pod, or never translated); --flush deletes exactly those'
complete -c ctdiag -n "__fish_ctdiag_needs_command" -f -a "doctor" -d 'Every check in one run, within a time budget: conntrack counters now, the DNS Service in the rules, stale entries, ClusterIP against each endpoint, the pods\' resolvers, node-local DNS and NFQUEUE; one verdict table (node-problem-detector plugin with --npd)'
complete -c ctdiag -n "__fish_ctdiag_needs_command" -f -a "lab" -d 'Build, inspect and tear down a Kubernetes-node lookalike made of network namespaces, to reproduce the failures ctdiag diagnoses'
complete -c ctdiag -n "__fish_ctdiag_needs_command" -f -a "watch" -d 'Every pod\'s own lookups on this node, passively from the packets: answered, lost and slow per pod and per endpoint, with the cause of each lost one; or the same from a capture file (--read)'
complete -c ctdiag -n "__fish_ctdiag_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand stats" -l netns -d 'Read the counters of another network namespace: a path (/run/netns/NAME, /proc/PID/ns/net), a PID, or an `ip netns` name' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand stats" -s w -l watch -d 'Print per-interval deltas and per-second rates every SECONDS (decimals allowed, e.g. 0.5)' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand stats" -s n -l count -d 'With --watch: stop after N intervals (default: until interrupted)' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand stats" -s o -l output -d 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics' -r -f -a "table\t'Human-readable tables'
json\t'One JSON object (JSON Lines for streams such as `--watch`)'
prometheus\t'Prometheus text exposition format (metrics commands only)'"
complete -c ctdiag -n "__fish_ctdiag_using_subcommand stats" -l color -d 'When to color the output (NO_COLOR in the environment means never for `auto`)' -r -f -a "auto\t'Color when stdout is a terminal and NO_COLOR is unset'
always\t'Always color'
never\t'Never color'"
complete -c ctdiag -n "__fish_ctdiag_using_subcommand stats" -l procfs -d 'Read procfs (/proc/net/stat/nf_conntrack) even when ctnetlink works'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand stats" -s q -l quiet -d 'Print only findings that need attention (table output)'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand stats" -s v -l verbose -d 'Explain more: notes, sources, per-step detail. Repeat for more'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand stats" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand probe" -s s -l server -d 'DNS server to probe, IP or IP:PORT ([IPv6]:PORT). Default: the kube-dns ClusterIP in the node\'s kube-proxy rules, iptables or nftables mode (read in the --stats-netns namespace), else the first nameserver of the probed namespace\'s resolv.conf' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand probe" -l service -d 'The Service: `kube-dns` (kube-system/kube-dns), NAMESPACE/NAME, or NAMESPACE/NAME:PORT (a port name or number)' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand probe" -l cluster-ip -d 'Give the Service on the command line instead of reading kube-proxy\'s rules: its ClusterIP, and port (default 53). Needs --endpoints' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand probe" -l endpoints -d 'With --cluster-ip: the Service\'s endpoints (comma-separated or repeated; a bare IP means the Service port)' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand probe" -l name -d 'Name to look up (repeat for several; they are used in turn)' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand probe" -s c -l count -d 'Number of lookups (default 200 unless --duration is given)' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand probe" -s d -l duration -d 'Run for this long instead of a count: 30s, 2m, 500ms' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand probe" -s r -l rate -d 'Lookups started per second; 0 means as fast as possible' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand probe" -l concurrency -d 'Lookups in flight at once' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand probe" -s t -l timeout -d 'How long to wait for each answer, in milliseconds' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand probe" -s m -l mode -d 'Resolver behaviour to imitate' -r -f -a "parallel\t'glibc\'s default: A and AAAA in one sendmmsg on a fresh connected socket'
threads\t'Two threads sending on one socket at the same instant (most race-prone)'
sequential\t'`options single-request`: A, wait for its answer, then AAAA, same socket'
reopen\t'`options single-request-reopen`: A, then AAAA from a new socket'
tcp\t'`options use-vc`: both queries over one TCP connection'
musl\t'musl (Alpine): A then AAAA in two sendto calls on a fresh unconnected socket, unanswered queries sent again every timeout/attempts'"
complete -c ctdiag -n "__fish_ctdiag_using_subcommand probe" -l netns -d 'Open the probe sockets inside this network namespace (a pod\'s): a path, a PID, or an `ip netns` name' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand probe" -l stats-netns -d 'Read the conntrack counters in this namespace (where DNAT happens: the node\'s). Default: the current namespace' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand probe" -l slow-ms -d 'Warn when 1 % or more of the answered lookups take this long or longer, in milliseconds. Default: a fifth of the resolver timeout the probed namespace\'s resolv.conf implies (1000 for the usual 5 s)' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand probe" -s o -l output -d 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics' -r -f -a "table\t'Human-readable tables'
json\t'One JSON object (JSON Lines for streams such as `--watch`)'
prometheus\t'Prometheus text exposition format (metrics commands only)'"
complete -c ctdiag -n "__fish_ctdiag_using_subcommand probe" -l color -d 'When to color the output (NO_COLOR in the environment means never for `auto`)' -r -f -a "auto\t'Color when stdout is a terminal and NO_COLOR is unset'
always\t'Always color'
never\t'Never color'"
complete -c ctdiag -n "__fish_ctdiag_using_subcommand probe" -l parallel -d 'Shorthand for --mode parallel'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand probe" -s q -l quiet -d 'Print only findings that need attention (table output)'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand probe" -s v -l verbose -d 'Explain more: notes, sources, per-step detail. Repeat for more'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand probe" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand compare" -l service -d 'The Service: `kube-dns` (kube-system/kube-dns), NAMESPACE/NAME, or NAMESPACE/NAME:PORT (a port name or number)' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand compare" -l cluster-ip -d 'Give the Service on the command line instead of reading kube-proxy\'s rules: its ClusterIP, and port (default 53). Needs --endpoints' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand compare" -l endpoints -d 'With --cluster-ip: the Service\'s endpoints (comma-separated or repeated; a bare IP means the Service port)' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand compare" -l name -d 'Name to look up (repeat for several; they are used in turn)' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand compare" -s c -l count -d 'Lookups per target and mode (default 200 unless --duration is given)' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand compare" -s d -l duration -d 'Run for this long in all (every target and mode share it): 30s, 2m' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand compare" -s r -l rate -d 'Lookups started per second; 0 means as fast as possible' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand compare" -l concurrency -d 'Lookups in flight at once' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand compare" -s t -l timeout -d 'How long to wait for each answer, in milliseconds' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand compare" -s m -l mode -d 'Resolver behaviour to imitate' -r -f -a "parallel\t'glibc\'s default: A and AAAA in one sendmmsg on a fresh connected socket'
threads\t'Two threads sending on one socket at the same instant (most race-prone)'
sequential\t'`options single-request`: A, wait for its answer, then AAAA, same socket'
reopen\t'`options single-request-reopen`: A, then AAAA from a new socket'
tcp\t'`options use-vc`: both queries over one TCP connection'
musl\t'musl (Alpine): A then AAAA in two sendto calls on a fresh unconnected socket, unanswered queries sent again every timeout/attempts'"
complete -c ctdiag -n "__fish_ctdiag_using_subcommand compare" -l modes -d 'Repeat the comparison for each of these resolver modes (comma-separated) and say which resolv.conf option makes the loss go away: parallel (glibc), sequential (single-request), reopen (single-request-reopen), tcp (use-vc), musl, threads' -r -f -a "parallel\t'glibc\'s default: A and AAAA in one sendmmsg on a fresh connected socket'
threads\t'Two threads sending on one socket at the same instant (most race-prone)'
sequential\t'`options single-request`: A, wait for its answer, then AAAA, same socket'
reopen\t'`options single-request-reopen`: A, then AAAA from a new socket'
tcp\t'`options use-vc`: both queries over one TCP connection'
musl\t'musl (Alpine): A then AAAA in two sendto calls on a fresh unconnected socket, unanswered queries sent again every timeout/attempts'"
complete -c ctdiag -n "__fish_ctdiag_using_subcommand compare" -l rounds -d 'How many rounds each target\'s lookups are cut into (interleaving)' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand compare" -l slow-ms -d 'Slow-answer threshold in milliseconds. Default: a fifth of the resolver timeout the probed namespace\'s resolv.conf implies' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand compare" -l api -d 'When the node has no kube-proxy rules (Cilium, Calico eBPF, a kube-proxy that never synced): the ClusterIP and ready endpoints from the API, `kubectl get services,endpointslices -n NAMESPACE -o json` output in FILE, or `-` for stdin. The rules win when there are any' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand compare" -l netns -d 'Open the probe sockets inside this network namespace (a pod\'s): a path, a PID, or an `ip netns` name' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand compare" -l stats-netns -d 'Read the node\'s kube-proxy rules and conntrack counters in this namespace (where DNAT happens). Default: the current namespace' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand compare" -s o -l output -d 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics' -r -f -a "table\t'Human-readable tables'
json\t'One JSON object (JSON Lines for streams such as `--watch`)'
prometheus\t'Prometheus text exposition format (metrics commands only)'"
complete -c ctdiag -n "__fish_ctdiag_using_subcommand compare" -l color -d 'When to color the output (NO_COLOR in the environment means never for `auto`)' -r -f -a "auto\t'Color when stdout is a terminal and NO_COLOR is unset'
always\t'Always color'
never\t'Never color'"
complete -c ctdiag -n "__fish_ctdiag_using_subcommand compare" -l kubectl -d 'Like --api, running that kubectl command (kubectl on PATH with a usable kubeconfig)'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand compare" -s q -l quiet -d 'Print only findings that need attention (table output)'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand compare" -s v -l verbose -d 'Explain more: notes, sources, per-step detail. Repeat for more'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand compare" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand services" -l service -d 'The Service: `kube-dns` (kube-system/kube-dns), NAMESPACE/NAME, or NAMESPACE/NAME:PORT (a port name or number)' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand services" -l cluster-ip -d 'Give the Service on the command line instead of reading kube-proxy\'s rules: its ClusterIP, and port (default 53). Needs --endpoints' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand services" -l endpoints -d 'With --cluster-ip: the Service\'s endpoints (comma-separated or repeated; a bare IP means the Service port)' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand services" -l netns -d 'Read the rules in another network namespace (the node\'s): a path, a PID, or an `ip netns` name' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand services" -l cluster-dns -d 'IPVS mode has no Service names: the kube-dns ClusterIP. Default: the kubelet\'s clusterDNS, else the nameserver pods on this node use' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand services" -l api -d 'Compare with the API: the output of `kubectl get endpointslices -A -o json` in FILE, or `-` for stdin' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand services" -s o -l output -d 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics' -r -f -a "table\t'Human-readable tables'
json\t'One JSON object (JSON Lines for streams such as `--watch`)'
prometheus\t'Prometheus text exposition format (metrics commands only)'"
complete -c ctdiag -n "__fish_ctdiag_using_subcommand services" -l color -d 'When to color the output (NO_COLOR in the environment means never for `auto`)' -r -f -a "auto\t'Color when stdout is a terminal and NO_COLOR is unset'
always\t'Always color'
never\t'Never color'"
complete -c ctdiag -n "__fish_ctdiag_using_subcommand services" -l kubectl -d 'Compare with the API by running `kubectl get endpointslices -A -o json` (kubectl on PATH with a usable kubeconfig)'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand services" -s q -l quiet -d 'Print only findings that need attention (table output)'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand services" -s v -l verbose -d 'Explain more: notes, sources, per-step detail. Repeat for more'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand services" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand stale" -l service -d 'The Service: `kube-dns` (kube-system/kube-dns), NAMESPACE/NAME, or NAMESPACE/NAME:PORT (a port name or number)' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand stale" -l cluster-ip -d 'Give the Service on the command line instead of reading kube-proxy\'s rules: its ClusterIP, and port (default 53). Needs --endpoints' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand stale" -l endpoints -d 'With --cluster-ip: the Service\'s endpoints (comma-separated or repeated; a bare IP means the Service port)' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand stale" -l netns -d 'The node\'s network namespace (its conntrack table and kube-proxy rules): a path (/run/netns/NAME, /proc/PID/ns/net), a PID, or an `ip netns` name. Default: the current namespace' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand stale" -l from -d 'Only the Services of this proxy mode\'s rules, when rules of several modes define one ClusterIP:port (a flush refuses sources that disagree on the endpoints)' -r -f -a "iptables\t'iptables mode (either iptables backend)'
nftables\t'nftables mode'
ipvs\t'IPVS mode'"
complete -c ctdiag -n "__fish_ctdiag_using_subcommand stale" -s o -l output -d 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics' -r -f -a "table\t'Human-readable tables'
json\t'One JSON object (JSON Lines for streams such as `--watch`)'
prometheus\t'Prometheus text exposition format (metrics commands only)'"
complete -c ctdiag -n "__fish_ctdiag_using_subcommand stale" -l color -d 'When to color the output (NO_COLOR in the environment means never for `auto`)' -r -f -a "auto\t'Color when stdout is a terminal and NO_COLOR is unset'
always\t'Always color'
never\t'Never color'"
complete -c ctdiag -n "__fish_ctdiag_using_subcommand stale" -l all -d 'Every UDP Service the rules define, including those without endpoints'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand stale" -l flush -d 'Delete exactly the stale entries (by reply tuple, zone and the id the scan saw; each acknowledged), then scan again. Asks first on a terminal; without one, needs --yes'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand stale" -s y -l yes -d 'With --flush: delete without asking'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand stale" -l all-entries -d 'List live entries too (stale ones are always listed; both are always counted)'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand stale" -s q -l quiet -d 'Print only findings that need attention (table output)'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand stale" -s v -l verbose -d 'Explain more: notes, sources, per-step detail. Repeat for more'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand stale" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand doctor" -l service -d 'The Service: `kube-dns` (kube-system/kube-dns), NAMESPACE/NAME, or NAMESPACE/NAME:PORT (a port name or number)' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand doctor" -l cluster-ip -d 'Give the Service on the command line instead of reading kube-proxy\'s rules: its ClusterIP, and port (default 53). Needs --endpoints' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand doctor" -l endpoints -d 'With --cluster-ip: the Service\'s endpoints (comma-separated or repeated; a bare IP means the Service port)' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand doctor" -l netns -d 'The node\'s network namespace (conntrack, kube-proxy rules, node-local DNS): a path, a PID, or an `ip netns` name. Default: the current one' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand doctor" -l probe-netns -d 'Start the comparison\'s lookups in this namespace (a pod\'s). Default: the node\'s' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand doctor" -l pods -d 'Look only at these pod network namespaces in the resolver check (comma-separated or repeated). Default: every namespace in use on the node' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand doctor" -l budget -d 'The time budget of the whole run: 15s, 30s, 1m' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand doctor" -l api -d 'Compare the rules with the API: `kubectl get endpointslices -A -o json` output in FILE, or `-` for stdin. On a node without kube-proxy rules, `kubectl get services,endpointslices -n kube-system -o json` output: the comparison probes the ClusterIP and endpoints it gives' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand doctor" -l node-local-dns -d 'The address node-local DNS (NodeLocal DNSCache) listens on' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand doctor" -s o -l output -d 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics' -r -f -a "table\t'Human-readable tables'
json\t'One JSON object (JSON Lines for streams such as `--watch`)'
prometheus\t'Prometheus text exposition format (metrics commands only)'"
complete -c ctdiag -n "__fish_ctdiag_using_subcommand doctor" -l color -d 'When to color the output (NO_COLOR in the environment means never for `auto`)' -r -f -a "auto\t'Color when stdout is a terminal and NO_COLOR is unset'
always\t'Always color'
never\t'Never color'"
complete -c ctdiag -n "__fish_ctdiag_using_subcommand doctor" -l all -d 'Scan every UDP Service for stale entries, not only the DNS Service'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand doctor" -l npd -d 'node-problem-detector custom-plugin mode: exactly one line of at most 80 characters naming the worst finding; exit 0 OK, 1 NonOK, 2 Unknown'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand doctor" -s q -l quiet -d 'Print only findings that need attention (table output)'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand doctor" -s v -l verbose -d 'Explain more: notes, sources, per-step detail. Repeat for more'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand doctor" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and not __fish_seen_subcommand_from up down status run scenario responder fill client help" -s o -l output -d 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics' -r -f -a "table\t'Human-readable tables'
json\t'One JSON object (JSON Lines for streams such as `--watch`)'
prometheus\t'Prometheus text exposition format (metrics commands only)'"
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and not __fish_seen_subcommand_from up down status run scenario responder fill client help" -l color -d 'When to color the output (NO_COLOR in the environment means never for `auto`)' -r -f -a "auto\t'Color when stdout is a terminal and NO_COLOR is unset'
always\t'Always color'
never\t'Never color'"
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and not __fish_seen_subcommand_from up down status run scenario responder fill client help" -s q -l quiet -d 'Print only findings that need attention (table output)'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and not __fish_seen_subcommand_from up down status run scenario responder fill client help" -s v -l verbose -d 'Explain more: notes, sources, per-step detail. Repeat for more'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and not __fish_seen_subcommand_from up down status run scenario responder fill client help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and not __fish_seen_subcommand_from up down status run scenario responder fill client help" -f -a "up" -d 'Build the lab (idempotent: an existing lab with the prefix is torn down and rebuilt)'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and not __fish_seen_subcommand_from up down status run scenario responder fill client help" -f -a "down" -d 'Tear the lab down: DNS servers, namespaces, /etc/netns files, state (idempotent)'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and not __fish_seen_subcommand_from up down status run scenario responder fill client help" -f -a "status" -d 'Show the lab\'s namespaces, addresses, rules and whether each DNS server is alive'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and not __fish_seen_subcommand_from up down status run scenario responder fill client help" -f -a "run" -d 'Build a lab, put it through each failure in turn (parallel clash, race drop, dead endpoint, slow endpoint, stale entries, full table), run doctor on each, show what it found, and tear everything down (also on Ctrl-C or a failure)'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and not __fish_seen_subcommand_from up down status run scenario responder fill client help" -f -a "scenario" -d 'Put an existing lab into a failure scenario (dead, slow or lossy endpoint, stale conntrack entries, the parallel-query race drop). `ctdiag lab up` again restores a healthy lab'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and not __fish_seen_subcommand_from up down status run scenario responder fill client help" -f -a "responder" -d 'The embedded DNS responder (started by `lab up` inside an endpoint namespace)'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and not __fish_seen_subcommand_from up down status run scenario responder fill client help" -f -a "fill" -d 'Create many UDP conntrack entries in the lab node\'s table, fast: raw datagrams from spoofed sources in the client\'s subnet, to the kube-dns ClusterIP (DNATed to the endpoints) or to an unrelated address. About 2.5 s and 61 MiB of kernel memory per 250,000 entries'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and not __fish_seen_subcommand_from up down status run scenario responder fill client help" -f -a "client" -d 'A sticky DNS client (started by the stale-endpoint and never-translated scenarios inside the client pod): one UDP socket on a fixed source port, one query to the ClusterIP per interval, each outcome appended to a status file'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and not __fish_seen_subcommand_from up down status run scenario responder fill client help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from up" -s p -l prefix -d 'Name prefix of the lab\'s namespaces (`PREFIX-node`, `PREFIX-client`, `PREFIX-dnsN`): 1 to 20 characters from a-z, 0-9 and `-`, starting with a letter or digit' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from up" -l endpoints -d 'Number of CoreDNS endpoints behind the kube-dns ClusterIP (1 to 32)' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from up" -l dns -d 'DNS server run in each endpoint namespace' -r -f -a "embedded\t'ctdiag\'s own responder (hickory-proto), with optional delay and drops'
dnsmasq\t'dnsmasq, a DNS server nobody here wrote (Debian package dnsmasq-base)'"
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from up" -l proxy-mode -d 'kube-proxy mode whose rules implement the kube-dns Service on the node' -r -f -a "iptables\t'KUBE-SERVICES / KUBE-SVC / KUBE-SEP chains loaded with iptables-restore'
nftables\t'The `ip kube-proxy` table (service-ips map, numgen vmaps) loaded with nft'"
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from up" -l ip-family -d 'Address families of the kube-dns Service: its ClusterIPs (198.19.0.10, 2001:db8::a), the rules (iptables/ip6tables, `ip`/`ip6 kube-proxy`), the DNS servers\' listeners and the pod\'s nameservers' -r -f -a "ipv4\t'IPv4 only: ClusterIP 198.19.0.10, endpoints 198.18.(N+1).2'
ipv6\t'IPv6 only: ClusterIP 2001:db8::a, endpoints 2001:db8:(N+1)::2'
dual\t'Both (a dual-stack Service), IPv4 first'"
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from up" -l delay-ms -d 'Embedded responder: answer every query this many milliseconds late' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from up" -l drop-rate -d 'Embedded responder: share (0 to 1) of all queries silently dropped' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from up" -l drop-aaaa-rate -d 'Embedded responder: share (0 to 1) of AAAA queries silently dropped (one answer of the A/AAAA pair lost)' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from up" -l rcode -d 'Embedded responder: answer every query with this error rcode and no records' -r -f -a "servfail\t'SERVFAIL: the server failed (CoreDNS when its upstream fails)'
refused\t'REFUSED: the server will not answer'"
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from up" -s o -l output -d 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics' -r -f -a "table\t'Human-readable tables'
json\t'One JSON object (JSON Lines for streams such as `--watch`)'
prometheus\t'Prometheus text exposition format (metrics commands only)'"
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from up" -l color -d 'When to color the output (NO_COLOR in the environment means never for `auto`)' -r -f -a "auto\t'Color when stdout is a terminal and NO_COLOR is unset'
always\t'Always color'
never\t'Never color'"
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from up" -s q -l quiet -d 'Print only findings that need attention (table output)'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from up" -s v -l verbose -d 'Explain more: notes, sources, per-step detail. Repeat for more'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from up" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from down" -s p -l prefix -d 'Name prefix of the lab\'s namespaces (`PREFIX-node`, `PREFIX-client`, `PREFIX-dnsN`): 1 to 20 characters from a-z, 0-9 and `-`, starting with a letter or digit' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from down" -s o -l output -d 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics' -r -f -a "table\t'Human-readable tables'
json\t'One JSON object (JSON Lines for streams such as `--watch`)'
prometheus\t'Prometheus text exposition format (metrics commands only)'"
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from down" -l color -d 'When to color the output (NO_COLOR in the environment means never for `auto`)' -r -f -a "auto\t'Color when stdout is a terminal and NO_COLOR is unset'
always\t'Always color'
never\t'Never color'"
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from down" -s q -l quiet -d 'Print only findings that need attention (table output)'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from down" -s v -l verbose -d 'Explain more: notes, sources, per-step detail. Repeat for more'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from down" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from status" -s p -l prefix -d 'Name prefix of the lab\'s namespaces (`PREFIX-node`, `PREFIX-client`, `PREFIX-dnsN`): 1 to 20 characters from a-z, 0-9 and `-`, starting with a letter or digit' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from status" -s o -l output -d 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics' -r -f -a "table\t'Human-readable tables'
json\t'One JSON object (JSON Lines for streams such as `--watch`)'
prometheus\t'Prometheus text exposition format (metrics commands only)'"
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from status" -l color -d 'When to color the output (NO_COLOR in the environment means never for `auto`)' -r -f -a "auto\t'Color when stdout is a terminal and NO_COLOR is unset'
always\t'Always color'
never\t'Never color'"
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from status" -s q -l quiet -d 'Print only findings that need attention (table output)'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from status" -s v -l verbose -d 'Explain more: notes, sources, per-step detail. Repeat for more'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from status" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from run" -s p -l prefix -d 'Name prefix of the lab\'s namespaces (a lab with this prefix is rebuilt, then removed)' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from run" -l proxy-mode -d 'kube-proxy mode of the lab\'s rules' -r -f -a "iptables\t'KUBE-SERVICES / KUBE-SVC / KUBE-SEP chains loaded with iptables-restore'
nftables\t'The `ip kube-proxy` table (service-ips map, numgen vmaps) loaded with nft'"
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from run" -l budget -d 'doctor\'s time budget per scenario' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from run" -l scenarios -d 'Which scenarios, in order (comma-separated). Default: all of them' -r -f -a "healthy\t'Nothing wrong: doctor must find nothing at warning or above'
parallel-clash\t'The client pod races A/AAAA pairs from one socket while doctor samples'
race-drop\t'The node drops the second query of a pair sent at once on one socket (`lab scenario race-drop`)'
dead-endpoint\t'An endpoint\'s pod is gone, the rules still point at it'
slow-endpoint\t'An endpoint answers 1.5 s late'
stale-entries\t'An endpoint left the rules; its conntrack entries keep clients blackholed'
full-table\t'The node\'s conntrack table filled to nf_conntrack_max'"
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from run" -s o -l output -d 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics' -r -f -a "table\t'Human-readable tables'
json\t'One JSON object (JSON Lines for streams such as `--watch`)'
prometheus\t'Prometheus text exposition format (metrics commands only)'"
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from run" -l color -d 'When to color the output (NO_COLOR in the environment means never for `auto`)' -r -f -a "auto\t'Color when stdout is a terminal and NO_COLOR is unset'
always\t'Always color'
never\t'Never color'"
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from run" -s q -l quiet -d 'Print only findings that need attention (table output)'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from run" -s v -l verbose -d 'Explain more: notes, sources, per-step detail. Repeat for more'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from run" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from scenario" -s p -l prefix -d 'Name prefix of the lab\'s namespaces (`PREFIX-node`, `PREFIX-client`, `PREFIX-dnsN`): 1 to 20 characters from a-z, 0-9 and `-`, starting with a letter or digit' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from scenario" -s e -l endpoint -d 'The endpoint (1-based) the scenario acts on. Default: the last one (lossy, error-rcode: every endpoint)' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from scenario" -l delay-ms -d 'slow-endpoint: answer this many milliseconds late' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from scenario" -l drop-rate -d 'lossy: share (0 to 1) of all queries silently dropped' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from scenario" -l drop-aaaa-rate -d 'lossy: share (0 to 1) of AAAA queries silently dropped' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from scenario" -l rcode -d 'error-rcode: the rcode every answer carries (default servfail)' -r -f -a "servfail\t'SERVFAIL: the server failed (CoreDNS when its upstream fails)'
refused\t'REFUSED: the server will not answer'"
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from scenario" -s o -l output -d 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics' -r -f -a "table\t'Human-readable tables'
json\t'One JSON object (JSON Lines for streams such as `--watch`)'
prometheus\t'Prometheus text exposition format (metrics commands only)'"
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from scenario" -l color -d 'When to color the output (NO_COLOR in the environment means never for `auto`)' -r -f -a "auto\t'Color when stdout is a terminal and NO_COLOR is unset'
always\t'Always color'
never\t'Never color'"
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from scenario" -s q -l quiet -d 'Print only findings that need attention (table output)'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from scenario" -s v -l verbose -d 'Explain more: notes, sources, per-step detail. Repeat for more'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from scenario" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from responder" -l listen -d 'Address to answer on, UDP and TCP (repeat for several, e.g. one per address family)' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from responder" -l delay-ms -d 'Embedded responder: answer every query this many milliseconds late' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from responder" -l drop-rate -d 'Embedded responder: share (0 to 1) of all queries silently dropped' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from responder" -l drop-aaaa-rate -d 'Embedded responder: share (0 to 1) of AAAA queries silently dropped (one answer of the A/AAAA pair lost)' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from responder" -l rcode -d 'Embedded responder: answer every query with this error rcode and no records' -r -f -a "servfail\t'SERVFAIL: the server failed (CoreDNS when its upstream fails)'
refused\t'REFUSED: the server will not answer'"
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from responder" -l threads -d 'UDP worker threads' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from responder" -s o -l output -d 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics' -r -f -a "table\t'Human-readable tables'
json\t'One JSON object (JSON Lines for streams such as `--watch`)'
prometheus\t'Prometheus text exposition format (metrics commands only)'"
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from responder" -l color -d 'When to color the output (NO_COLOR in the environment means never for `auto`)' -r -f -a "auto\t'Color when stdout is a terminal and NO_COLOR is unset'
always\t'Always color'
never\t'Never color'"
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from responder" -s q -l quiet -d 'Print only findings that need attention (table output)'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from responder" -s v -l verbose -d 'Explain more: notes, sources, per-step detail. Repeat for more'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from responder" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from fill" -s p -l prefix -d 'Name prefix of the lab\'s namespaces (`PREFIX-node`, `PREFIX-client`, `PREFIX-dnsN`): 1 to 20 characters from a-z, 0-9 and `-`, starting with a letter or digit' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from fill" -l flows -d 'Number of new entries to create (at most nf_conntrack_max)' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from fill" -l to -d 'Where the flows go' -r -f -a "cluster-ip\t'The kube-dns ClusterIP, port 53: kube-proxy\'s rules DNAT each flow to an endpoint'
unrelated\t'198.18.250.1:9 ([2001:db8:fa::1]:9), routed to the lab\'s router, which drops it: entries of no Service'"
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from fill" -l family -d 'Address family of the flows' -r -f -a "4\t'IPv4'
6\t'IPv6'"
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from fill" -l timeout -d 'Let the entries live this many seconds without traffic (default: the kernel\'s UDP timeout for unreplied flows, 30 s)' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from fill" -s o -l output -d 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics' -r -f -a "table\t'Human-readable tables'
json\t'One JSON object (JSON Lines for streams such as `--watch`)'
prometheus\t'Prometheus text exposition format (metrics commands only)'"
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from fill" -l color -d 'When to color the output (NO_COLOR in the environment means never for `auto`)' -r -f -a "auto\t'Color when stdout is a terminal and NO_COLOR is unset'
always\t'Always color'
never\t'Never color'"
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from fill" -s q -l quiet -d 'Print only findings that need attention (table output)'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from fill" -s v -l verbose -d 'Explain more: notes, sources, per-step detail. Repeat for more'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from fill" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from client" -l bind -d 'The socket\'s fixed local address' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from client" -l server -d 'The DNS server (the kube-dns ClusterIP)' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from client" -l status -d 'File each query\'s outcome is appended to (JSON Lines)' -r -F
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from client" -l hostname -d 'The pod\'s name, set as hostname in a new UTS namespace' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from client" -l netns-file -d 'The lab\'s `ip netns` file of the client pod; the client exits once it names another namespace or none' -r -F
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from client" -l interval-ms -d 'Milliseconds between queries' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from client" -l lifetime-s -d 'Exit after this many seconds at the latest' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from client" -s o -l output -d 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics' -r -f -a "table\t'Human-readable tables'
json\t'One JSON object (JSON Lines for streams such as `--watch`)'
prometheus\t'Prometheus text exposition format (metrics commands only)'"
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from client" -l color -d 'When to color the output (NO_COLOR in the environment means never for `auto`)' -r -f -a "auto\t'Color when stdout is a terminal and NO_COLOR is unset'
always\t'Always color'
never\t'Never color'"
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from client" -s q -l quiet -d 'Print only findings that need attention (table output)'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from client" -s v -l verbose -d 'Explain more: notes, sources, per-step detail. Repeat for more'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from client" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from help" -f -a "up" -d 'Build the lab (idempotent: an existing lab with the prefix is torn down and rebuilt)'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from help" -f -a "down" -d 'Tear the lab down: DNS servers, namespaces, /etc/netns files, state (idempotent)'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from help" -f -a "status" -d 'Show the lab\'s namespaces, addresses, rules and whether each DNS server is alive'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from help" -f -a "run" -d 'Build a lab, put it through each failure in turn (parallel clash, race drop, dead endpoint, slow endpoint, stale entries, full table), run doctor on each, show what it found, and tear everything down (also on Ctrl-C or a failure)'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from help" -f -a "scenario" -d 'Put an existing lab into a failure scenario (dead, slow or lossy endpoint, stale conntrack entries, the parallel-query race drop). `ctdiag lab up` again restores a healthy lab'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from help" -f -a "responder" -d 'The embedded DNS responder (started by `lab up` inside an endpoint namespace)'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from help" -f -a "fill" -d 'Create many UDP conntrack entries in the lab node\'s table, fast: raw datagrams from spoofed sources in the client\'s subnet, to the kube-dns ClusterIP (DNATed to the endpoints) or to an unrelated address. About 2.5 s and 61 MiB of kernel memory per 250,000 entries'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from help" -f -a "client" -d 'A sticky DNS client (started by the stale-endpoint and never-translated scenarios inside the client pod): one UDP socket on a fixed source port, one query to the ClusterIP per interval, each outcome appended to a status file'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand lab; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand watch" -l service -d 'The Service: `kube-dns` (kube-system/kube-dns), NAMESPACE/NAME, or NAMESPACE/NAME:PORT (a port name or number)' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand watch" -l cluster-ip -d 'Give the Service on the command line instead of reading kube-proxy\'s rules: its ClusterIP, and port (default 53). Needs --endpoints' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand watch" -l endpoints -d 'With --cluster-ip: the Service\'s endpoints (comma-separated or repeated; a bare IP means the Service port)' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand watch" -l netns -d 'Capture in the node\'s network namespace: a path, a PID, or an `ip netns` name. Default: the current one' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand watch" -l duration -d 'Stop after this long (500ms, 30s, 2m, 1h); with --read, of capture time. Default: until Ctrl-C (or the end of the file)' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand watch" -l interval -d 'One report (a refreshed view, a JSON line) per this long' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand watch" -l timeout -d 'A query with no answer after this many milliseconds is unanswered (glibc\'s resolver waits 5000)' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand watch" -l listen -d 'Serve Prometheus metrics at http://ADDR:PORT/metrics while watching' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand watch" -l top-pods -d 'With --listen: pods with their own series (the rest are one series)' -r
complete -c ctdiag -n "__fish_ctdiag_using_subcommand watch" -l read -d 'Analyse a capture file (pcap or pcapng, e.g. `tcpdump -i any -w FILE port 53`) instead of capturing' -r -F
complete -c ctdiag -n "__fish_ctdiag_using_subcommand watch" -s o -l output -d 'Output format: a table for people, JSON for scripts, Prometheus text exposition where the data are metrics' -r -f -a "table\t'Human-readable tables'
json\t'One JSON object (JSON Lines for streams such as `--watch`)'
prometheus\t'Prometheus text exposition format (metrics commands only)'"
complete -c ctdiag -n "__fish_ctdiag_using_subcommand watch" -l color -d 'When to color the output (NO_COLOR in the environment means never for `auto`)' -r -f -a "auto\t'Color when stdout is a terminal and NO_COLOR is unset'
always\t'Always color'
never\t'Never color'"
complete -c ctdiag -n "__fish_ctdiag_using_subcommand watch" -s q -l quiet -d 'Print only findings that need attention (table output)'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand watch" -s v -l verbose -d 'Explain more: notes, sources, per-step detail. Repeat for more'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand watch" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand help; and not __fish_seen_subcommand_from stats probe compare services stale doctor lab watch help" -f -a "stats" -d 'conntrack counters per CPU and in total (the numbers of `conntrack -S`), table fill, deltas and rates with --watch, and what they mean'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand help; and not __fish_seen_subcommand_from stats probe compare services stale doctor lab watch help" -f -a "probe" -d 'Resolver-faithful DNS lookups (A and AAAA in parallel from one fresh socket), loss and latency, and the conntrack counters they moved'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand help; and not __fish_seen_subcommand_from stats probe compare services stale doctor lab watch help" -f -a "compare" -d 'The same probes against a Service\'s ClusterIP and against each of its endpoints directly, interleaved, side by side: the DNAT/conntrack path or one bad endpoint?'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand help; and not __fish_seen_subcommand_from stats probe compare services stale doctor lab watch help" -f -a "services" -d 'Every Service port the node\'s kube-proxy rules define (iptables, nftables or IPVS mode): ClusterIPs and endpoints, optionally checked against the API\'s EndpointSlices'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand help; and not __fish_seen_subcommand_from stats probe compare services stale doctor lab watch help" -f -a "stale" -d 'UDP conntrack entries of a Service whose DNAT target is not a current endpoint (a dead pod, or never translated); --flush deletes exactly those'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand help; and not __fish_seen_subcommand_from stats probe compare services stale doctor lab watch help" -f -a "doctor" -d 'Every check in one run, within a time budget: conntrack counters now, the DNS Service in the rules, stale entries, ClusterIP against each endpoint, the pods\' resolvers, node-local DNS and NFQUEUE; one verdict table (node-problem-detector plugin with --npd)'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand help; and not __fish_seen_subcommand_from stats probe compare services stale doctor lab watch help" -f -a "lab" -d 'Build, inspect and tear down a Kubernetes-node lookalike made of network namespaces, to reproduce the failures ctdiag diagnoses'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand help; and not __fish_seen_subcommand_from stats probe compare services stale doctor lab watch help" -f -a "watch" -d 'Every pod\'s own lookups on this node, passively from the packets: answered, lost and slow per pod and per endpoint, with the cause of each lost one; or the same from a capture file (--read)'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand help; and not __fish_seen_subcommand_from stats probe compare services stale doctor lab watch help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand help; and __fish_seen_subcommand_from lab" -f -a "up" -d 'Build the lab (idempotent: an existing lab with the prefix is torn down and rebuilt)'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand help; and __fish_seen_subcommand_from lab" -f -a "down" -d 'Tear the lab down: DNS servers, namespaces, /etc/netns files, state (idempotent)'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand help; and __fish_seen_subcommand_from lab" -f -a "status" -d 'Show the lab\'s namespaces, addresses, rules and whether each DNS server is alive'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand help; and __fish_seen_subcommand_from lab" -f -a "run" -d 'Build a lab, put it through each failure in turn (parallel clash, race drop, dead endpoint, slow endpoint, stale entries, full table), run doctor on each, show what it found, and tear everything down (also on Ctrl-C or a failure)'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand help; and __fish_seen_subcommand_from lab" -f -a "scenario" -d 'Put an existing lab into a failure scenario (dead, slow or lossy endpoint, stale conntrack entries, the parallel-query race drop). `ctdiag lab up` again restores a healthy lab'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand help; and __fish_seen_subcommand_from lab" -f -a "responder" -d 'The embedded DNS responder (started by `lab up` inside an endpoint namespace)'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand help; and __fish_seen_subcommand_from lab" -f -a "fill" -d 'Create many UDP conntrack entries in the lab node\'s table, fast: raw datagrams from spoofed sources in the client\'s subnet, to the kube-dns ClusterIP (DNATed to the endpoints) or to an unrelated address. About 2.5 s and 61 MiB of kernel memory per 250,000 entries'
complete -c ctdiag -n "__fish_ctdiag_using_subcommand help; and __fish_seen_subcommand_from lab" -f -a "client" -d 'A sticky DNS client (started by the stale-endpoint and never-translated scenarios inside the client pod): one UDP socket on a fixed source port, one query to the ClusterIP per interval, each outcome appended to a status file'
