"""The ebpfvm Python package beyond the examples: every program type, maps as dicts, errors."""
import threading

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

import ebpfvm


def test_objects_list_programs_and_maps(programs):
    obj = ebpfvm.Object.open(programs / "tc.o")
    names = {p["name"]: p["type"] for p in obj.programs}
    assert names["tc_nat"] == "sched_cls" and names["sock_ssh"] == "socket_filter"
    assert not obj.loaded
    with pytest.raises(ebpfvm.Error) as e:
        obj.program("tc_nat")  # before load
    assert "call load() first" in str(e.value)
    obj.load()
    assert obj.loaded
    assert ".bss" in obj.map_names


def test_tc_runs_give_the_verdict_the_packet_and_the_fields(programs):
    obj = ebpfvm.Object.open(programs / "tc.o").load()
    r = obj.program("tc_classify").run_tc(Ether() / IP() / UDP(), mark=5, cb=[1, 2])
    assert (r.action, r.action_name) == (ebpfvm.TC_ACT_OK, "TC_ACT_OK")
    assert r.fields["tc_classid"] == 0x000a  # tc keeps 16 bits of TC_H_MAKE(1, 10)
    assert r.fields["mark"] == 5 + len(Ether() / IP() / UDP())
    assert r.fields["cb"][0] == len(Ether() / IP() / UDP())
    nat = obj.program("tc_nat").run_tc(Ether() / IP(dst="10.0.0.2") / TCP(dport=80))
    out = Ether(nat.packet)
    assert out[IP].dst == "192.168.1.9" and out[TCP].dport == 8080
    again = Ether(nat.packet)
    del again[IP].chksum, again[TCP].chksum
    assert bytes(Ether(bytes(again))) == nat.packet  # both checksums right after the rewrite
    redirected = obj.program("tc_misc").run_tc(Ether() / IP() / UDP())
    assert redirected.action == ebpfvm.TC_ACT_REDIRECT and redirected.redirect == {"ifindex": 7, "flags": 1}


def test_socket_filters_keep_bytes(programs):
    obj = ebpfvm.Object.open(programs / "tc.o").load()
    udp = Ether() / IP() / UDP(dport=9) / bytes(100)
    r = obj.program("sock_udp_head").run_socket(udp)
    assert r.keep == 40 and r.packet == bytes(udp)[:40]
    assert obj.program("sock_udp_head").run_socket(Ether() / IP() / TCP()).keep == 0
    # from the network header, as the kernel's test run gives it: cb[1] tells sock_ssh where L3 is
    ssh = Ether() / IP() / TCP(sport=22)
    assert obj.program("sock_ssh").run_socket(ssh, from_network=True).r0 == 0x40000
    assert obj.program("sock_ssh").run_socket(ssh, cb=[0, 14]).r0 == 0x40000


def test_maps_are_dict_like(programs):
    obj = ebpfvm.Object.open(programs / "map_ops.o").load()
    names = obj.map_names
    m = next(obj.map(n) for n in names if obj.map(n).type == "hash")
    key = bytes(m.key_size)
    value = bytes(range(m.value_size))
    assert key not in m and m.get(key) is None
    m[key] = value
    assert m[key] == value and key in m and len(m) == 1 and list(m) == [key]
    assert m.items() == [(key, value)]
    del m[key]
    with pytest.raises(KeyError):
        m[key]
    with pytest.raises(KeyError):
        del m[key]
    with pytest.raises(ebpfvm.Error):
        m[b"\x01"] = value  # a key of the wrong size
    assert isinstance(obj.dump_maps(), dict)


def test_bad_input_raises_named_errors(programs, tmp_path):
    with pytest.raises(ebpfvm.Error) as e:
        ebpfvm.Object.open(tmp_path / "missing.o")
    assert "cannot open" in str(e.value)
    junk = tmp_path / "junk.o"
    junk.write_bytes(b"not an ELF file at all")
    with pytest.raises(ebpfvm.Error):
        ebpfvm.Object.open(junk)
    obj = ebpfvm.Object.open(programs / "globals.o")
    with pytest.raises(ebpfvm.Error) as e:
        obj.set_global("no_such_variable", 1)
    assert "no_such_variable" in str(e.value)
    with pytest.raises(ValueError):
        obj.load(engine="gpu")
    with pytest.raises(ValueError):
        obj.load(engine="jit", verify=False)
    loaded = ebpfvm.Object.open(programs / "tc.o").load()
    with pytest.raises(ebpfvm.Error) as e:
        loaded.program("tc_nat").run_xdp(bytes(60))
    assert "not an XDP program" in str(e.value)
    with pytest.raises(ebpfvm.Error) as e:
        loaded.program("tc_nat").run_tc(bytes(10))
    assert "an skb is built from a frame of 14" in str(e.value)
    with pytest.raises(ValueError):
        loaded.program("tc_nat").run_tc(bytes(60), colour=1)


def test_runs_release_the_gil_and_threads_share_maps(programs):
    obj = ebpfvm.Object.open(programs / "tc.o").load(workers=4)
    prog = obj.program("tc_classify")
    errors = []

    def work(w):
        try:
            for _ in range(200):
                assert prog.run_tc(Ether() / IP() / UDP(), worker=w).action == ebpfvm.TC_ACT_OK
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
