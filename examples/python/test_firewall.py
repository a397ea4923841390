"""Testing examples/firewall.c with scapy-built packets: verdicts, and the maps that count them."""
import struct

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Ether

import ebpfvm

XDP_DROP_KEY = 1  # the verdicts map is indexed by XDP action


def test_ssh_is_dropped_and_counted(open_object):
    fw = open_object("firewall.o")
    syn = Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(dport=22, flags="S")
    res = fw.program("xdp_firewall").run_xdp(syn)
    assert res.action == ebpfvm.XDP_DROP
    assert res.action_name == "XDP_DROP"
    packets, nbytes = fw.map("verdicts").get(XDP_DROP_KEY, "<QQ")
    assert (packets, nbytes) == (1, len(syn))


def test_dns_passes_unchanged(open_object):
    fw = open_object("firewall.o")
    query = Ether() / IP(src="10.0.0.1", dst="10.0.0.53") / UDP(sport=5353, dport=53) / b"\x12\x34"
    res = fw.program("xdp_firewall").run_xdp(query)
    assert res.action == ebpfvm.XDP_PASS
    assert res.packet == bytes(query)


def test_an_allowed_tcp_port_from_the_map(open_object):
    fw = open_object("firewall.o")
    web = Ether() / IP(src="10.0.0.1") / TCP(dport=443)
    prog = fw.program("xdp_firewall")
    assert prog.run_xdp(web).action == ebpfvm.XDP_DROP
    fw.map("allowed_tcp")[443] = b"\x01"  # an int key is packed to the map's 2 bytes
    assert 443 in fw.map("allowed_tcp")
    assert prog.run_xdp(web).action == ebpfvm.XDP_PASS


def test_the_udp_port_is_configurable(open_object):
    fw = open_object("firewall.o", cfg_udp_port=123)
    prog = fw.program("xdp_firewall")
    assert prog.run_xdp(Ether() / IP() / UDP(dport=123)).action == ebpfvm.XDP_PASS
    assert prog.run_xdp(Ether() / IP() / UDP(dport=53)).action == ebpfvm.XDP_DROP


def test_other_protocols_pass_and_runts_drop(open_object):
    fw = open_object("firewall.o")
    prog = fw.program("xdp_firewall")
    assert prog.run_xdp(Ether() / ARP()).action == ebpfvm.XDP_PASS
    assert prog.run_xdp(Ether() / IPv6() / UDP(dport=9)).action == ebpfvm.XDP_PASS
    assert prog.run_xdp(b"\xee" * 10).action == ebpfvm.XDP_DROP


def test_a_flooding_source_is_cut_off(open_object):
    fw = open_object("firewall.o", cfg_max_packets=3)
    prog = fw.program("xdp_firewall")
    dns = Ether() / IP(src="192.0.2.7") / UDP(dport=53)
    assert [prog.run_xdp(dns).action for _ in range(5)] == [ebpfvm.XDP_PASS] * 3 + [ebpfvm.XDP_DROP] * 2
    # the LRU map keyed by source address (network byte order) holds its packets and bytes
    assert fw.map("sources").get(bytes([192, 0, 2, 7]), "<QQ") == (5, 5 * len(dns))
