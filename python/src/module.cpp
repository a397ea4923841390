// The Python extension module ebpfvm._ebpfvm: BPF objects opened, configured, loaded and run from
// Python, for pytest and scapy. ebpfvm/__init__.py wraps it (integer and struct keys, dict-like
// maps). Errors become ebpfvm.Error (VerificationError for a rejection) carrying what the C++
// Error knows; the GIL is released while a program runs.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <string>
#include <vector>

#include "ebpfvm/ebpfvm.hpp"

namespace py = pybind11;
using namespace ebpfvm;

namespace {

py::object g_error, g_verification_error;  // ebpfvm.Error and its subclass, set by __init__.py

// Raises the Python exception for `e`: the message as its text, and every part of where it happened
// as attributes (None where not known).
[[noreturn]] void raise(const Error& e) {
  py::object type = e.code == Errc::VerifierRejected ? g_verification_error : g_error;
  if (!type) throw std::runtime_error(e.to_string());
  py::object ex = type(e.to_string());
  ex.attr("message") = e.message;
  ex.attr("code") = static_cast<int>(e.code);
  const auto opt = [](const std::string& s) -> py::object { return s.empty() ? py::none() : py::cast(s); };
  ex.attr("file") = opt(e.where.file);
  ex.attr("section") = opt(e.where.section);
  ex.attr("program") = opt(e.where.program);
  ex.attr("function") = opt(e.where.function);
  ex.attr("insn") = e.where.insn ? py::cast(*e.where.insn) : py::none();
  ex.attr("line") = e.where.line ? py::cast(*e.where.line) : py::none();
  ex.attr("source") = opt(e.where.source);
  ex.attr("detail") = opt(e.detail);  // the disassembled instruction and the registers' abstract values
  PyErr_SetObject(type.ptr(), ex.ptr());
  throw py::error_already_set();
}

template <class T>
T take(Result<T> r) {
  if (!r) raise(r.error());
  return std::move(*r);
}
void check(Result<void> r) {
  if (!r) raise(r.error());
}

// Anything bytes() accepts: bytes, bytearray, memoryview, a scapy packet (its __bytes__).
std::vector<uint8_t> bytes_of(py::handle h) {
  py::bytes b = py::isinstance<py::bytes>(h) ? py::reinterpret_borrow<py::bytes>(h) : py::bytes(py::module_::import("builtins").attr("bytes")(h));
  char* data = nullptr;
  Py_ssize_t size = 0;
  PyBytes_AsStringAndSize(b.ptr(), &data, &size);
  return std::vector<uint8_t>(reinterpret_cast<uint8_t*>(data), reinterpret_cast<uint8_t*>(data) + size);
}
py::bytes to_py(std::span<const uint8_t> b) { return py::bytes(reinterpret_cast<const char*>(b.data()), b.size()); }

py::object redirect_of(const RedirectTarget& t) {
  if (t.kind == RedirectTarget::Kind::None) return py::none();
  py::dict d;
  if (t.kind == RedirectTarget::Kind::Ifindex) {
    d["ifindex"] = t.ifindex;
  } else {
    d["map"] = t.map_name;
    d["key"] = t.key;
  }
  d["flags"] = t.flags;
  return d;
}

struct PyObject_ {
  std::shared_ptr<Object> obj;
};

struct PyProgram {
  LoadedProgram prog;
  std::shared_ptr<Object> owner;  // keeps the object (and its maps) alive
};

struct PyMap {
  Map map;
  std::shared_ptr<Object> owner;
};

py::dict fields_dict(const SkbFields& f) {
  py::dict d;
  d["mark"] = f.mark;
  d["priority"] = f.priority;
  d["ingress_ifindex"] = f.ingress_ifindex;
  d["ifindex"] = f.ifindex;
  d["cb"] = std::vector<uint32_t>(std::begin(f.cb), std::end(f.cb));
  d["tstamp"] = f.tstamp;
  d["wire_len"] = f.wire_len;
  d["tc_index"] = f.tc_index;
  d["tc_classid"] = f.tc_classid;
  d["queue_mapping"] = f.queue_mapping;
  d["hash"] = f.hash;
  d["pkt_type"] = f.pkt_type;
  d["protocol"] = f.protocol;
  d["vlan_present"] = f.vlan_present;
  d["vlan_tci"] = f.vlan_tci;
  d["vlan_proto"] = f.vlan_proto;
  return d;
}

py::dict run_xdp(const PyProgram& p, py::handle packet, uint32_t ingress_ifindex, uint32_t rx_queue, uint32_t worker) {
  const std::vector<uint8_t> in = bytes_of(packet);
  XdpBuffer buf(in);
  Result<XdpResult> r = make_error(Errc::InvalidArgument, "not run");
  {
    py::gil_scoped_release free;
    r = p.prog.run_xdp(buf, {worker, ingress_ifindex, rx_queue});
  }
  const XdpResult res = take(std::move(r));
  py::dict d;
  d["action"] = static_cast<uint32_t>(res.action);
  d["action_name"] = std::string(to_string(res.action));
  d["r0"] = res.r0;
  d["packet"] = to_py(buf.packet());
  d["metadata"] = to_py(buf.metadata());
  d["redirect"] = redirect_of(res.redirect);
  return d;
}

py::dict run_skb(const PyProgram& p, py::handle packet, py::dict fields, bool from_network, uint32_t worker) {
  const std::vector<uint8_t> in = bytes_of(packet);
  SkbFields f;
  for (auto [k, v] : fields) {
    const std::string key = py::str(k);
    if (key == "mark") f.mark = v.cast<uint32_t>();
    else if (key == "priority") f.priority = v.cast<uint32_t>();
    else if (key == "ifindex") f.ifindex = v.cast<uint32_t>();
    else if (key == "ingress_ifindex") f.ingress_ifindex = v.cast<uint32_t>();
    else if (key == "tstamp") f.tstamp = v.cast<uint64_t>();
    else if (key == "wire_len") f.wire_len = v.cast<uint32_t>();
    else if (key == "egress") f.egress = v.cast<bool>();
    else if (key == "cb") {
      const auto cb = v.cast<std::vector<uint32_t>>();
      if (cb.size() > 5) throw py::value_error("cb has 5 words");
      std::copy(cb.begin(), cb.end(), f.cb);
    } else {
      throw py::value_error("unknown __sk_buff input '" + key + "' (mark, priority, ifindex, ingress_ifindex, tstamp, wire_len, cb, egress)");
    }
  }
  SkbBuffer skb(in, f, from_network ? SkbStart::Network : SkbStart::Mac);
  Result<SkbResult> r = make_error(Errc::InvalidArgument, "not run");
  {
    py::gil_scoped_release free;
    r = p.prog.run_skb(skb, {worker});
  }
  const SkbResult res = take(std::move(r));
  py::dict d;
  d["r0"] = res.r0;
  d["action"] = static_cast<int32_t>(res.tc_action);
  d["action_name"] = std::string(to_string(res.tc_action));
  d["keep"] = res.keep;
  d["packet"] = to_py(skb.packet());
  d["redirect"] = redirect_of(res.redirect);
  d["clones"] = res.clones;
  d["fields"] = fields_dict(skb.fields());
  return d;
}

py::dict report_of(const VerifyReport& r) {
  py::dict d;
  d["insns_analysed"] = r.insns_analysed;
  d["states"] = r.states;
  d["max_insns"] = r.max_insns;
  d["writes_packet"] = r.writes_packet;
  d["micros"] = r.micros;
  return d;
}

}  // namespace

PYBIND11_MODULE(_ebpfvm, m) {
  m.doc() = "ebpfvm: run BPF programs compiled with clang -target bpf outside the kernel";
  m.def("_set_errors", [](py::object error, py::object verification) {
    g_error = error;
    g_verification_error = verification;
  });
  m.def("jit_available", [] {
    auto code = assemble("r0 = 0\nexit\n");
    auto prog = code ? Program::from_bytecode(*code) : Result<Program>(code.error());
    return prog && JitProgram::compile_trusted(*prog, HelperRegistry::builtin()).ok();
  });

  py::class_<PyMap>(m, "Map")
      .def_property_readonly("name", [](const PyMap& p) { return p.map.name(); })
      .def_property_readonly("type", [](const PyMap& p) { return std::string(to_string(p.map.spec().type)); })
      .def_property_readonly("key_size", [](const PyMap& p) { return p.map.spec().key_size; })
      .def_property_readonly("value_size", [](const PyMap& p) { return p.map.user_value_size(); })
      .def_property_readonly("max_entries", [](const PyMap& p) { return p.map.spec().max_entries; })
      .def("lookup",
           [](PyMap& p, py::handle key) -> py::object {
             const auto k = bytes_of(key);
             auto v = p.map.lookup(k);
             if (!v) {
               if (v.error().code == Errc::NotFound) return py::none();
               raise(v.error());
             }
             return to_py(*v);
           })
      .def("update", [](PyMap& p, py::handle key, py::handle value, uint64_t flags) { check(p.map.update(bytes_of(key), bytes_of(value), flags)); },
           py::arg("key"), py::arg("value"), py::arg("flags") = 0)
      .def("delete", [](PyMap& p, py::handle key) { check(p.map.remove(bytes_of(key))); })
      .def("keys",
           [](PyMap& p) {
             py::list out;
             for (const auto& k : p.map.keys()) out.append(to_py(k));
             return out;
           })
      .def("dump_json", [](PyMap& p) { return p.map.dump_json(); });

  py::class_<PyProgram>(m, "Program")
      .def_property_readonly("name", [](const PyProgram& p) { return p.prog.name(); })
      .def_property_readonly("section", [](const PyProgram& p) { return p.prog.section(); })
      .def_property_readonly("type", [](const PyProgram& p) { return std::string(to_string(p.prog.type())); })
      .def_property_readonly("engine", [](const PyProgram& p) { return p.prog.engine() == Engine::Jit ? "jit" : "interp"; })
      .def_property_readonly("verify_report",
                             [](const PyProgram& p) -> py::object {
                               const VerifyReport* r = p.prog.verify_report();
                               return r ? py::object(report_of(*r)) : py::none();
                             })
      .def("disassemble", [](const PyProgram& p) { return p.prog.code().disassemble(); })
      .def("run_xdp", &run_xdp, py::arg("packet"), py::arg("ingress_ifindex") = 1, py::arg("rx_queue") = 0, py::arg("worker") = 0)
      .def("run_skb", &run_skb, py::arg("packet"), py::arg("fields") = py::dict(), py::arg("from_network") = false, py::arg("worker") = 0);

  py::class_<PyObject_>(m, "Object")
      .def_static("open", [](const std::string& path) { return PyObject_{std::make_shared<Object>(take(Object::open(path)))}; })
      .def_property_readonly("name", [](const PyObject_& o) { return o.obj->name(); })
      .def_property_readonly("programs",
                             [](const PyObject_& o) {
                               py::list out;
                               for (const ProgramInfo& p : o.obj->programs()) {
                                 py::dict d;
                                 d["name"] = p.name;
                                 d["section"] = p.section;
                                 d["type"] = std::string(to_string(p.type));
                                 out.append(d);
                               }
                               return out;
                             })
      .def_property_readonly("globals",
                             [](const PyObject_& o) {
                               py::dict out;
                               for (const Object::Global& g : o.obj->globals()) out[py::str(g.name)] = py::make_tuple(g.section, g.size);
                               return out;
                             })
      .def("set_global", [](PyObject_& o, const std::string& name, py::handle value) { check(o.obj->set_global(name, bytes_of(value))); })
      .def("set_program_type",
           [](PyObject_& o, const std::string& prog, const std::string& type) {
             auto t = prog_type_from_string(type);
             if (!t) throw py::value_error("program type '" + type + "': expected xdp, tc or socket");
             check(o.obj->set_program_type(prog, *t));
           })
      .def("set_max_entries", [](PyObject_& o, const std::string& map, uint32_t n) { check(o.obj->set_max_entries(map, n)); })
      .def(
          "load",
          [](PyObject_& o, const std::string& engine, bool verify, uint32_t workers, uint64_t seed) {
            LoadOptions lo;
            if (engine == "jit") lo.engine = Engine::Jit;
            else if (engine != "interp") throw py::value_error("engine '" + engine + "': expected jit or interp");
            if (!verify) {
              if (lo.engine == Engine::Jit) throw py::value_error("verify=False runs programs in the checked interpreter only: pass engine='interp'");
              lo.safety = Safety::Checked;
            }
            lo.workers = workers;
            lo.env.seed = seed;
            Result<void> r;
            {
              py::gil_scoped_release free;  // verification and compilation take a while
              r = o.obj->load(lo);
            }
            check(std::move(r));
          },
          py::arg("engine") = "jit", py::arg("verify") = true, py::arg("workers") = 1, py::arg("seed") = 0)
      .def_property_readonly("loaded", [](const PyObject_& o) { return o.obj->loaded(); })
      .def("program", [](PyObject_& o, const std::string& name) { return PyProgram{take(o.obj->program(name)), o.obj}; })
      .def("map", [](PyObject_& o, const std::string& name) { return PyMap{take(o.obj->map(name)), o.obj}; })
      .def_property_readonly("map_names",
                             [](const PyObject_& o) {
                               std::vector<std::string> out;
                               for (const MapSpec& s : o.obj->map_specs()) out.push_back(s.name);
                               return out;
                             })
      .def("dump_maps", [](PyObject_& o) { return o.obj->dump_maps_json(); })
      .def("load_maps", [](PyObject_& o, const std::string& json) { check(o.obj->load_maps_json(json)); });
}
