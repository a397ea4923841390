"""ubpf-run test SPEC: passing, failing and malformed specs; packets built as scapy builds them."""
import json
import subprocess
import xml.etree.ElementTree as ET

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Dot1Q, Ether

MACS = dict(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


def run(ubpf_run, spec, tmp_path, *args):
    path = tmp_path / "spec.json"
    path.write_text(spec if isinstance(spec, str) else json.dumps(spec))
    return subprocess.run([ubpf_run, "test", str(path), *args], capture_output=True, text=True)


def test_layers_are_built_as_scapy_builds_them(ubpf_run, programs, tmp_path):
    cases = [
        ({"ip": {"src": "192.0.2.1", "dst": "10.0.0.53"}, "udp": {"sport": 5353, "dport": 53}, "payload": "1234"},
         Ether(**MACS) / IP(src="192.0.2.1", dst="10.0.0.53", id=1) / UDP(sport=5353, dport=53) / b"\x12\x34"),
        ({"ip": {"ttl": 3, "tos": 4}, "tcp": {"dport": 22, "flags": "SA", "seq": 7, "ack": 9}},
         Ether(**MACS) / IP(src="10.0.0.1", dst="10.0.0.2", id=1, ttl=3, tos=4) / TCP(sport=1234, dport=22, flags="SA", seq=7, ack=9, window=65535)),
        ({"ip6": {"src": "2001:db8::5"}, "udp": {}, "payload": 3},
         Ether(**MACS) / IPv6(src="2001:db8::5", dst="2001:db8::2") / UDP(sport=1234, dport=80) / bytes(3)),
        ({"eth": {"src": "0a:0b:0c:0d:0e:0f"}, "vlan": {"id": 100, "pcp": 3}, "ip": {}, "udp": {"dport": 53}},
         Ether(src="0a:0b:0c:0d:0e:0f", dst=MACS["dst"]) / Dot1Q(vlan=100, prio=3) / IP(id=1, src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1234, dport=53)),
    ]
    # tc_classify leaves packets as they are: the spec's packet must be scapy's, byte for byte
    hex_spec = {"object": str(programs / "tc.o"), "program": "tc_classify", "cases": [
        {"name": f"bytes {i}", "packet": d, "expect": {"packet": bytes(p).hex()}} for i, (d, p) in enumerate(cases)]}
    r = run(ubpf_run, hex_spec, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines()[:2] == ["TAP version 13", f"1..{len(cases)}"]
    assert r.stdout.count("\nok ") == len(cases)


def test_a_failing_case_says_what_differed_in_tap_and_junit(ubpf_run, programs, tmp_path):
    spec = {"object": str(programs / "tc.o"), "program": "tc_classify", "cases": [
        {"name": "IPv4 passes", "packet": {"ip": {}, "udp": {}}, "fields": {"mark": 1},
         "expect": {"action": "TC_ACT_OK", "fields": {"tc_classid": 10, "mark": 43, "priority": 2}}},
        {"name": "IPv6 is shot", "packet": {"ip6": {}, "udp": {}}, "expect": {"action": "TC_ACT_OK", "fields": {"priority": 5}}},
        {"name": "a map entry that is not there", "packet": {"ip": {}},
         "expect": {"maps": {".bss": [{"key": 0, "value": None}]}}},
    ]}
    junit = tmp_path / "out.xml"
    r = run(ubpf_run, spec, tmp_path, "--junit", str(junit), "--engine", "interp")
    assert r.returncode == 1
    lines = r.stdout.splitlines()
    assert "ok 1 - IPv4 passes" in lines
    assert "not ok 2 - IPv6 is shot" in lines
    assert "  action: expected TC_ACT_OK, got TC_ACT_SHOT" in lines
    assert "  fields.priority: expected 5, got 6" in lines
    assert "not ok 3 - a map entry that is not there" in lines
    assert any(l.startswith("  map .bss key 00000000: expected no entry, got ") for l in lines)
    assert lines[-1] == "# 1 of 3 cases passed"
    suite = ET.parse(junit).getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("failures")) == ("3", "2")
    cases = suite.findall("testcase")
    assert cases[0].find("failure") is None
    assert cases[1].find("failure").get("message") == "action: expected TC_ACT_OK, got TC_ACT_SHOT"


def test_state_carries_over_from_case_to_case(ubpf_run, build, tmp_path):
    spec = {"object": str(build / "examples" / "firewall.o"), "globals": {"cfg_max_packets": 1},
            "cases": [{"name": f"packet {i}", "packet": {"ip": {"src": "192.0.2.1"}, "udp": {"dport": 53}},
                       "expect": {"action": "XDP_PASS" if i == 0 else "XDP_DROP"}} for i in range(3)]}
    r = run(ubpf_run, spec, tmp_path)
    assert r.returncode == 0, r.stdout


def test_the_bundled_spec_passes(ubpf_run, build):
    spec = build.parent.parent / "examples" / "firewall.test.json"
    r = subprocess.run([ubpf_run, "test", str(spec)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines()[-1] == "# 5 of 5 cases passed"


@pytest.mark.parametrize("spec,message", [
    ("{not json", "not JSON"),
    ("[]", "the spec is a JSON object"),
    ({"cases": []}, "\"object\": the BPF object's path"),
    ({"object": "missing.o", "cases": []}, "missing.o"),
    ({"object": "TC", "cases": []}, "\"cases\": a non-empty array"),
    ({"object": "TC", "cases": [{"packet": {"ip": {}, "sctp": {}}}]}, "cases[0].packet: unknown layer 'sctp'"),
    ({"object": "TC", "cases": [{"packet": {"ip": {"src": "300.0.0.1"}}}]}, "cases[0].packet.ip.src: not an IPv4 address: 300.0.0.1"),
    ({"object": "TC", "cases": [{"packet": "zz"}]}, "cases[0].packet"),
    ({"object": "TC", "cases": [{"packet": {"tcp": {}}}]}, "tcp or udp needs ip or ip6"),
    ({"object": "TC", "cases": [{"packet": {"ip": {}}, "expect": {"colour": 1}}]}, "cases[0].expect.colour: unknown expectation"),
    ({"object": "TC", "globals": {"nope": 1}, "cases": [{"packet": "00"}]}, "the object has no global 'nope'"),
    ({"object": "TC", "maps": {"nope": []}, "cases": [{"packet": "00"}]}, "no map 'nope'"),
])
def test_malformed_specs_fail_with_exit_status_2_naming_the_place(ubpf_run, programs, tmp_path, spec, message):
    if isinstance(spec, dict) and spec.get("object") == "TC":
        spec = dict(spec, object=str(programs / "tc.o"), program="tc_classify")
    r = run(ubpf_run, spec, tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert message in r.stderr
    assert "ok " not in r.stdout  # nothing ran
