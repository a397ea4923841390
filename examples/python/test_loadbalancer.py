"""Testing examples/xdp_lb.c, a map-driven load balancer: backends from a map, flows kept on
their backend, addresses and checksums rewritten, hits counted."""
import socket
import struct

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

import ebpfvm

BACKENDS = [("10.1.0.1", "02:00:00:00:01:01"), ("10.1.0.2", "02:00:00:00:01:02")]


def backend_value(addr, mac):
    return socket.inet_aton(addr) + bytes.fromhex(mac.replace(":", "")) + b"\0\0"


@pytest.fixture
def lb(open_object):
    obj = open_object("xdp_lb.o", cfg_backends=len(BACKENDS))
    for i, (addr, mac) in enumerate(BACKENDS):
        obj.map("backends")[i] = backend_value(addr, mac)
    return obj


def checksums_valid(pkt):
    """scapy recomputes a checksum it was told to forget: a valid one comes back the same."""
    again = Ether(bytes(pkt))
    for layer in (IP, TCP, UDP):
        if layer in again:
            del again[layer].chksum
    return bytes(Ether(bytes(again))) == bytes(pkt)


@pytest.mark.parametrize("l4", [TCP(sport=40000, dport=80), UDP(sport=40000, dport=53)])
def test_packets_to_the_vip_go_to_a_backend(lb, l4):
    pkt = Ether(dst="02:00:00:00:00:fe") / IP(src="192.0.2.10", dst="10.0.0.254") / l4 / b"hello"
    res = lb.program("xdp_lb").run_xdp(pkt)
    assert res.action == ebpfvm.XDP_TX
    out = Ether(res.packet)
    assert (out[IP].dst, out.dst) in BACKENDS
    assert out.src == "02:00:00:00:00:fe"  # came from the VIP's MAC
    assert checksums_valid(out)


def test_a_flow_stays_on_its_backend_and_hits_are_counted(lb):
    prog = lb.program("xdp_lb")
    chosen = {}
    for port in range(1000, 1064):
        for _ in range(3):
            out = Ether(prog.run_xdp(Ether() / IP(src="192.0.2.10", dst="10.0.0.254") / TCP(sport=port)).packet)
            chosen.setdefault(port, set()).add(out[IP].dst)
    assert all(len(b) == 1 for b in chosen.values())
    used = {next(iter(b)) for b in chosen.values()}
    assert used == {addr for addr, _ in BACKENDS}  # 64 flows spread over both
    hits = [lb.map("hits").get(i, "<Q")[0] for i in range(len(BACKENDS))]
    assert sum(hits) == 64 * 3


def test_other_traffic_passes_and_a_missing_backend_drops(lb, open_object):
    prog = lb.program("xdp_lb")
    assert prog.run_xdp(Ether() / IP(dst="10.0.0.1") / TCP()).action == ebpfvm.XDP_PASS
    empty = open_object("xdp_lb.o")  # no backends configured
    assert empty.program("xdp_lb").run_xdp(Ether() / IP(dst="10.0.0.254") / TCP()).action == ebpfvm.XDP_DROP
