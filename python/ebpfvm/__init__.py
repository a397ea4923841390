"""ebpfvm: run BPF programs compiled with ``clang -O2 -target bpf`` outside the kernel.

    import ebpfvm
    obj = ebpfvm.Object.open("firewall.o")
    obj.set_global("cfg_udp_port", 53)
    obj.load()                                  # verified, JIT-compiled
    res = obj.program("xdp_firewall").run_xdp(bytes(scapy_packet))
    assert res.action == ebpfvm.XDP_DROP
    obj.map("verdicts")[1]                      # bytes, or .get(1, "<QQ") -> (packets, bytes)

Packets are bytes, bytearray, memoryview, or anything bytes() accepts (a scapy packet). Map keys
and values are bytes; an int key or value is packed little-endian to the map's size, and a
``struct`` format unpacks values. Errors are ``ebpfvm.Error``; a program the verifier refuses
raises ``ebpfvm.VerificationError``, whose ``line``, ``source``, ``insn`` and ``detail`` (the
registers' abstract values) say where and why.
"""
import json
import struct
from collections import namedtuple

from . import _ebpfvm

__all__ = ["Object", "Program", "Map", "Error", "VerificationError", "XdpResult", "TcResult", "SocketResult",
           "XDP_ABORTED", "XDP_DROP", "XDP_PASS", "XDP_TX", "XDP_REDIRECT",
           "TC_ACT_UNSPEC", "TC_ACT_OK", "TC_ACT_RECLASSIFY", "TC_ACT_SHOT", "TC_ACT_PIPE", "TC_ACT_STOLEN",
           "TC_ACT_QUEUED", "TC_ACT_REPEAT", "TC_ACT_REDIRECT", "TC_ACT_TRAP", "jit_available"]

XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT = range(5)
(TC_ACT_UNSPEC, TC_ACT_OK, TC_ACT_RECLASSIFY, TC_ACT_SHOT, TC_ACT_PIPE, TC_ACT_STOLEN, TC_ACT_QUEUED, TC_ACT_REPEAT,
 TC_ACT_REDIRECT, TC_ACT_TRAP) = range(-1, 9)


class Error(Exception):
    """An ebpfvm error: ``message``, and where it happened when known: ``file``, ``section``,
    ``program``, ``function``, ``insn`` (instruction index), ``line`` and ``source`` (the C line),
    ``detail`` (for a rejection: the instruction and the registers' abstract values)."""
    message = code = file = section = program = function = insn = line = source = detail = None


class VerificationError(Error):
    """The verifier refused a program: it could crash, hang or leak on some input."""


_ebpfvm._set_errors(Error, VerificationError)
jit_available = _ebpfvm.jit_available

XdpResult = namedtuple("XdpResult", "action action_name packet r0 redirect metadata")
TcResult = namedtuple("TcResult", "action action_name packet r0 redirect clones fields")
SocketResult = namedtuple("SocketResult", "keep packet r0 fields")


def _pack(value, size, what):
    """bytes as given; an int little-endian in `size` bytes; a tuple/list of ints by struct format
    (then `what` is that format)."""
    if isinstance(value, int):
        if size not in (1, 2, 4, 8):
            raise TypeError(f"an int {what} needs a size of 1, 2, 4 or 8 bytes, not {size}")
        return value.to_bytes(size, "little", signed=value < 0)
    return bytes(value)


class Map:
    """A map of a loaded object, dict-like: ``m[key]``, ``m[key] = value``, ``del m[key]``,
    ``key in m``, ``len(m)``, ``m.items()``. Keys and values are bytes (ints are packed to the
    map's sizes); ``get(key, fmt)`` and ``items(fmt)`` unpack values with a struct format."""

    def __init__(self, m):
        self._m = m

    name = property(lambda self: self._m.name)
    type = property(lambda self: self._m.type)
    key_size = property(lambda self: self._m.key_size)
    value_size = property(lambda self: self._m.value_size)
    max_entries = property(lambda self: self._m.max_entries)

    def _key(self, key):
        return _pack(key, self.key_size, "key")

    def lookup(self, key, fmt=None):
        v = self._m.lookup(self._key(key))
        if v is None or fmt is None:
            return v
        return struct.unpack(fmt, v)

    def get(self, key, fmt=None, default=None):
        v = self.lookup(key, fmt)
        return default if v is None else v

    def update(self, key, value, flags=0):
        if isinstance(value, (tuple, list)):
            raise TypeError("pack a tuple with struct.pack(fmt, *value) first")
        self._m.update(self._key(key), _pack(value, self.value_size, "value"), flags)

    def delete(self, key):
        self._m.delete(self._key(key))

    def keys(self):
        return self._m.keys()

    def items(self, fmt=None):
        out = []
        for k in self._m.keys():
            v = self._m.lookup(k)
            if v is not None:
                out.append((k, struct.unpack(fmt, v) if fmt else v))
        return out

    def dump(self):
        """Entries in ``bpftool -j map dump``'s shape."""
        return json.loads(self._m.dump_json())

    def __getitem__(self, key):
        v = self.lookup(key)
        if v is None:
            raise KeyError(key)
        return v

    def __setitem__(self, key, value):
        self.update(key, value)

    def __delitem__(self, key):
        try:
            self.delete(key)
        except Error as e:
            raise KeyError(key) from e

    def __contains__(self, key):
        return self.lookup(key) is not None

    def __len__(self):
        return len(self._m.keys())

    def __iter__(self):
        return iter(self._m.keys())

    def __repr__(self):
        return f"<ebpfvm.Map {self.name} ({self.type}, key {self.key_size} B, value {self.value_size} B)>"


class Program:
    """A loaded program: ``run_xdp``, ``run_tc`` or ``run_socket`` by its type."""

    def __init__(self, p):
        self._p = p

    name = property(lambda self: self._p.name)
    section = property(lambda self: self._p.section)
    type = property(lambda self: self._p.type)
    engine = property(lambda self: self._p.engine)
    verify_report = property(lambda self: self._p.verify_report)

    def disassemble(self):
        return self._p.disassemble()

    def run_xdp(self, packet, ingress_ifindex=1, rx_queue=0, worker=0):
        r = self._p.run_xdp(packet, ingress_ifindex, rx_queue, worker)
        return XdpResult(r["action"], r["action_name"], r["packet"], r["r0"], r["redirect"], r["metadata"])

    def run_tc(self, packet, worker=0, **fields):
        """fields: struct __sk_buff's inputs (mark, priority, ifindex, ingress_ifindex, tstamp,
        wire_len, cb, egress)."""
        r = self._p.run_skb(packet, fields, False, worker)
        return TcResult(r["action"], r["action_name"], r["packet"], r["r0"], r["redirect"], r["clones"], r["fields"])

    def run_socket(self, packet, from_network=False, worker=0, **fields):
        """The bytes a packet socket keeps; ``from_network`` gives the program the frame from its
        IP header, as the kernel's BPF_PROG_TEST_RUN does."""
        r = self._p.run_skb(packet, fields, from_network, worker)
        return SocketResult(r["keep"], r["packet"][: r["keep"]], r["r0"], r["fields"])

    def __repr__(self):
        return f"<ebpfvm.Program {self.name} ({self.type}, section {self.section}, {self.engine})>"


class Object:
    """A BPF ELF object: ``Object.open(path)``, configure (``set_global``, ``set_program_type``,
    ``set_max_entries``), ``load()``, then ``program(name)`` and ``map(name)``."""

    def __init__(self, o):
        self._o = o

    @staticmethod
    def open(path):
        return Object(_ebpfvm.Object.open(str(path)))

    name = property(lambda self: self._o.name)
    programs = property(lambda self: self._o.programs)
    map_names = property(lambda self: self._o.map_names)
    loaded = property(lambda self: self._o.loaded)

    def set_global(self, name, value):
        """An int is packed little-endian to the variable's size; bytes are taken as they are."""
        if isinstance(value, int):
            glob = self._o.globals.get(name)
            if glob is None:
                self._o.set_global(name, b"")  # raises, naming the missing variable
            value = _pack(value, glob[1], f"value of {name}")
        self._o.set_global(name, value)

    def set_program_type(self, program, type):
        self._o.set_program_type(program, type)

    def set_max_entries(self, map, entries):
        self._o.set_max_entries(map, entries)

    def load(self, engine=None, verify=True, workers=1, seed=0):
        """engine: "jit" (where the host allows executable memory) or "interp"; the default is the
        JIT when available. verify=False runs unproven programs in the checked interpreter."""
        if engine is None:
            engine = "jit" if verify and jit_available() else "interp"
        self._o.load(engine, verify, workers, seed)
        return self

    def program(self, name):
        return Program(self._o.program(name))

    def map(self, name):
        return Map(self._o.map(name))

    def dump_maps(self):
        """Every map as {name: [entries in bpftool -j map dump's shape]}."""
        return json.loads(self._o.dump_maps())

    def load_maps(self, maps):
        """{name: [entries]} (a dict or its JSON text), as ubpf-run --map-load takes it."""
        self._o.load_maps(maps if isinstance(maps, str) else json.dumps(maps))

    def __repr__(self):
        return f"<ebpfvm.Object {self.name}>"
