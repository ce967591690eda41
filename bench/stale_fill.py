#!/usr/bin/env python3
# Creates UDP conntrack entries in a lab's node namespace, fast, with raw-socket packets sent
# from the lab's client pod namespace (run it there: `ip netns exec PREFIX-client`). Each packet
# has a spoofed source inside the client's subnet 198.18.1.0/24 and its own source port, so each
# is a new flow in the node's conntrack table. Bounded: exactly COUNT packets.
#
#   stale_fill.py COUNT DST_IP DST_PORT [FIRST_SOURCE_HOST]
#
# Packets to the kube-dns ClusterIP are DNATed by the node's kube-proxy rules to an endpoint
# (live entries); packets to an endpoint's address on a closed port are entries of no Service.
import socket, struct, sys

count, dst, dport = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
first_host = int(sys.argv[4]) if len(sys.argv) > 4 else 10
dst_bytes = socket.inet_aton(dst)

def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF

sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
sock.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
payload = b"x"
ports = 64512  # source ports 1024..65535 per source address
for n in range(count):
    host = first_host + n // ports
    sport = 1024 + n % ports
    src = bytes([198, 18, 1, host])
    udp_len = 8 + len(payload)
    pseudo = src + dst_bytes + struct.pack("!BBH", 0, 17, udp_len)
    udp = struct.pack("!HHHH", sport, dport, udp_len, 0) + payload
    udp = udp[:6] + struct.pack("!H", checksum(pseudo + udp) or 0xFFFF) + udp[8:]
    total = 20 + udp_len
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, n & 0xFFFF, 0, 64, 17, 0, src, dst_bytes)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    sock.sendto(ip + udp, (dst, 0))
