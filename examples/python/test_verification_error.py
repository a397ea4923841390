"""A program the verifier refuses: the error names the C line, the instruction and why."""
import pathlib

import pytest

import ebpfvm

SOURCE = pathlib.Path(__file__).with_name("unsafe_parser.c")


def test_the_unchecked_read_is_refused_at_its_line(objects):
    obj = ebpfvm.Object.open(objects / "unsafe_parser.o")
    with pytest.raises(ebpfvm.VerificationError) as refused:
        obj.load()
    e = refused.value
    bug = next(n for n, text in enumerate(SOURCE.read_text().splitlines(), 1) if "BUG:" in text)
    assert e.line == bug
    assert e.program == "count_dns"
    assert "invalid access to packet" in e.message
    assert e.insn is not None and "udp->dest" in e.source
    assert "R" in e.detail  # the registers' abstract values where it failed


def test_unverified_it_runs_checked_and_faults_on_a_short_packet(objects):
    obj = ebpfvm.Object.open(objects / "unsafe_parser.o").load(engine="interp", verify=False)
    prog = obj.program("count_dns")
    ip_udp_header_only = bytes(14) + bytes([0x45]) + bytes(8) + bytes([17]) + bytes(10)  # IPv4, UDP, no UDP header
    with pytest.raises(ebpfvm.Error) as fault:
        prog.run_xdp(ip_udp_header_only)
    assert "out-of-bounds" in str(fault.value) or "outside" in str(fault.value)
