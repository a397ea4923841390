// The loader on programs compiled from tests/programs: programs, maps, globals, linking, errors.
#include <catch2/catch.hpp>

#include "packets.hpp"

using namespace ebpfvm;
using namespace ebpfvm::test;

namespace {


template <class T>
T global_at(const Object& obj, const std::string& map, size_t off) {
  auto m = obj.map(map);
  REQUIRE(m.ok());
  auto v = m->lookup(as_bytes<uint32_t>(0));
  REQUIRE(v.ok());
  REQUIRE(off + sizeof(T) <= v->size());
  return read_as<T>(*v, off);
}

// The verdict of program `name` on `pkt`.
XdpAction action_of(const Object& obj, const char* name, const std::vector<uint8_t>& pkt) {
  auto p = obj.program(name);
  REQUIRE(p.ok());
  XdpBuffer buf(pkt);
  auto r = p->run_xdp(buf);
  REQUIRE(r.ok());
  return r->action;
}

}  // namespace

TEST_CASE("open lists programs, maps and globals") {
  auto obj = Object::open(program_path("globals"));
  REQUIRE(obj.ok());
  REQUIRE(obj->programs().size() == 2);
  CHECK(obj->programs()[0].name == "first");
  CHECK(obj->programs()[0].section == "xdp");
  CHECK(obj->programs()[0].type == ProgType::Xdp);
  CHECK(obj->programs()[1].name == "second");
  CHECK(obj->has_btf());
  std::vector<std::string> maps;
  for (const MapSpec& m : obj->map_specs()) maps.push_back(m.name + ":" + std::string(to_string(m.type)) + ":" + std::to_string(m.value_size));
  CHECK(maps == std::vector<std::string>{".rodata:array:6", ".data:array:4", ".bss:array:12"});
  std::vector<std::string> globals;
  for (const auto& g : obj->globals()) globals.push_back(g.name + "@" + g.section + "+" + std::to_string(g.offset) + "/" + std::to_string(g.size));
  CHECK(globals == std::vector<std::string>{"cfg_action@.rodata+0/4", "cfg_port@.rodata+4/2", "base@.data+0/4",
                                            "runs@.bss+0/8", "last_sum@.bss+8/4"});
}

TEST_CASE("global data: .rodata set before load, .data and .bss written by programs") {
  auto obj = Object::open(program_path("globals"));
  REQUIRE(obj.ok());
  REQUIRE(obj->set_global("cfg_action", as_bytes(XdpAction::Drop)).ok());
  REQUIRE(obj->set_global("cfg_port", as_bytes<uint16_t>(1000)).ok());

  auto wrong_size = obj->set_global("cfg_action", as_bytes<uint16_t>(1));
  REQUIRE_FALSE(wrong_size.ok());
  CHECK(wrong_size.error().message == "global 'cfg_action' is 4 bytes, the value given is 2");
  auto missing = obj->set_global("nope", as_bytes<uint32_t>(1));
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().code == Errc::NotFound);

  auto early = obj->program("first");
  REQUIRE_FALSE(early.ok());
  CHECK(early.error().message == "program() needs a loaded object: call load() first");

  REQUIRE(obj->load().ok());
  const auto pkt = counting_bytes(40);
  for (int i = 0; i < 3; ++i) CHECK(action_of(*obj, "first", pkt) == XdpAction::Drop);  // cfg_action
  CHECK(global_at<uint64_t>(*obj, ".bss", 0) == 3);    // runs
  CHECK(global_at<uint32_t>(*obj, ".bss", 8) == 780);  // last_sum = 0 + 1 + ... + 39

  auto second = obj->program("second");
  REQUIRE(second.ok());
  XdpBuffer buf(pkt);
  auto r = second->run_xdp(buf, {0, 5, 0});
  REQUIRE(r.ok());
  CHECK(r->action == XdpAction::Drop);
  CHECK(global_at<uint32_t>(*obj, ".data", 0) == 100 + 5 + 1000);  // base + ingress_ifindex + cfg_port

  // .rodata is frozen after load; after load, globals cannot be set.
  auto rodata = obj->map(".rodata");
  REQUIRE(rodata.ok());
  CHECK(rodata->frozen());
  auto w = rodata->update(as_bytes<uint32_t>(0), std::vector<uint8_t>(6, 0));
  REQUIRE_FALSE(w.ok());
  CHECK(w.error().code == Errc::PermissionDenied);
  CHECK(obj->set_global("cfg_port", as_bytes<uint16_t>(1)).error().message == "global 'cfg_port' cannot be set after load");
}

TEST_CASE("subprograms are linked after the program, with source lines kept") {
  Object obj = open_loaded("globals");
  auto second = obj.program("second");
  REQUIRE(second.ok());
  // second (12 slots) + add_base + ifindex_of, each ending in exit.
  CHECK(second->code().slot_count() > 12);
  auto text = second->code().disassemble();
  CHECK(text.find("call pc+") != std::string::npos);
  auto line = second->source_line(0);
  REQUIRE(line.has_value());
  CHECK(line->file.find("globals.c") != std::string::npos);
  CHECK(line->line > 0);
}

TEST_CASE("selecting programs by name and section") {
  Object obj = open_loaded("globals");
  auto by_section = obj.program("xdp");
  REQUIRE_FALSE(by_section.ok());
  CHECK(by_section.error().message == "section 'xdp' holds 2 programs; select one by function name");
  auto none = obj.program("third");
  REQUIRE_FALSE(none.ok());
  CHECK(none.error().code == Errc::NotFound);
  CHECK(none.error().message == "no program or section 'third'; programs: first (xdp), second (xdp)");
  CHECK(none.error().to_string().find("globals.o: ") != std::string::npos);

  Object legacy = open_loaded("legacy_maps");
  CHECK(legacy.program("xdp_legacy").ok());  // the only program of its section
  auto missing_map = legacy.map("nope");
  REQUIRE_FALSE(missing_map.ok());
  CHECK(missing_map.error().message == "no map 'nope'");
}

TEST_CASE("legacy maps: struct bpf_map_def and iproute2's struct bpf_elf_map") {
  Object obj = open_loaded("legacy_maps");
  auto prog = obj.program("count_legacy");
  REQUIRE(prog.ok());
  for (size_t len : {60, 60, 90}) {
    XdpBuffer buf(std::vector<uint8_t>(len, 0));
    REQUIRE(prog->run_xdp(buf)->action == XdpAction::Pass);
  }
  auto count = obj.map("pkt_count")->lookup(as_bytes<uint32_t>(1));
  REQUIRE(count.ok());
  CHECK(read_as<uint64_t>(*count) == 3);
  auto seen = obj.map("seen");
  CHECK(seen->spec().type == MapType::Hash);
  CHECK(seen->keys().size() == 2);
  CHECK(seen->lookup(as_bytes<uint32_t>(90)).ok());

  auto tc = Object::open(program_path("legacy_iproute2"));
  REQUIRE(tc.ok());
  REQUIRE(tc->programs().size() == 1);
  CHECK(tc->programs()[0].type == ProgType::SchedCls);
  CHECK(tc->map_specs()[0].name == "tc_counter");
  CHECK(tc->map_specs()[0].max_entries == 4);
  // A tc program run on raw memory is verified for that memory: r1 = 32 bytes, r2 = 32.
  LoadOptions raw;
  raw.verify.context = VerifyOptions::Context::Memory;
  raw.verify.memory_size = 32;
  REQUIRE(tc->load(raw).ok());
  auto p = tc->program("count_tc");
  REQUIRE(p.ok());
  XdpBuffer buf(std::vector<uint8_t>(60, 0));
  auto wrong = p->run_xdp(buf);
  REQUIRE_FALSE(wrong.ok());
  CHECK(wrong.error().message == "not an XDP program (type sched_cls)");
  std::vector<uint8_t> small(16);
  CHECK(p->run_raw(small).error().message == "program 'count_tc' was verified for 32 bytes of memory; 16 given");
  std::vector<uint8_t> mem(32);
  REQUIRE(p->run_raw(mem).ok());
  REQUIRE(p->run_raw(mem).ok());
  CHECK(read_as<uint64_t>(*tc->map("tc_counter")->lookup(as_bytes<uint32_t>(3))) == 10);
}

TEST_CASE("a map declared with max_entries 0 is sized before load with set_max_entries, as libbpf's (issue 17)") {
  auto obj = Object::open(program_path("sized_by_loader"));
  REQUIRE(obj.ok());
  auto unsized = obj->load();
  REQUIRE_FALSE(unsized.ok());
  CHECK_THAT(unsized.error().to_string(), Catch::Contains("map 'counts' declares max_entries 0 (its own loader sizes it): set it with "
                                                          "Object::set_max_entries, or ubpf-run --map-size counts=N"));
  obj = Object::open(program_path("sized_by_loader"));
  CHECK(obj->set_max_entries("nope", 4).error().code == Errc::NotFound);
  CHECK(obj->set_max_entries("counts", 0).error().message == "map 'counts': max_entries must be above 0");
  CHECK(obj->set_max_entries(".data", 4).error().message == "map '.data': a global data section has one entry, its own size");
  REQUIRE(obj->set_max_entries("counts", 2).ok());
  CHECK(obj->map_specs()[0].max_entries == 2);
  // slot 3 does not exist in 2 entries: the lookup fails and nothing is counted
  REQUIRE(obj->load().ok());
  XdpBuffer buf(make_packet({}));
  REQUIRE(obj->program("count")->run_xdp(buf).ok());
  CHECK(obj->map("counts")->keys().size() == 2);
  CHECK(obj->set_max_entries("counts", 8).error().message == "map 'counts': max_entries cannot change after load");
  auto sized = Object::open(program_path("sized_by_loader"));
  REQUIRE(sized->set_max_entries("counts", 4).ok());
  REQUIRE(sized->load().ok());
  XdpBuffer again(make_packet({}));
  REQUIRE(sized->program("count")->run_xdp(again).ok());
  CHECK(read_as<uint64_t>(*sized->map("counts")->lookup(as_bytes<uint32_t>(3))) == 1);
}

TEST_CASE("an object whose code is only in .text: its global functions are its programs (issue 20)") {
  auto obj = Object::open(program_path("text_only"));
  REQUIRE(obj.ok());
  REQUIRE(obj->programs().size() == 2);  // not the static function
  for (const ProgramInfo& p : obj->programs()) {
    CHECK(p.section == ".text");
    CHECK(p.type == ProgType::Unspec);
  }
  LoadOptions opts;
  opts.verify.context = VerifyOptions::Context::Memory;
  opts.verify.memory_size = 4;
  REQUIRE(obj->load(opts).ok());
  std::vector<uint8_t> mem{21, 0, 0, 0};
  CHECK(*obj->program("first_byte_twice")->run_raw(mem) == 42);
  CHECK(*obj->program("length")->run_raw(mem) == 4);
}

TEST_CASE("a program type the section name does not tell must be given") {
  auto bytes = Object::open(program_path("legacy_maps"));
  REQUIRE(bytes.ok());
  // xdp_legacy starts with "xdp": typed. Override to show set_program_type works and is checked.
  REQUIRE(bytes->set_program_type("count_legacy", ProgType::SocketFilter).ok());
  CHECK(bytes->set_program_type("nope", ProgType::Xdp).error().code == Errc::NotFound);
  // Typed a socket filter, its loads of offsets 0 and 4 read __sk_buff's len and pkt_type: it
  // verifies for that context, runs on an skb, and run_xdp refuses it.
  REQUIRE(bytes->load().ok());
  auto p = bytes->program("count_legacy");
  REQUIRE(p.ok());
  std::vector<uint8_t> frame(60, 0);
  SkbBuffer skb(frame);
  auto r = p->run_skb(skb);
  REQUIRE(r.ok());
  CHECK(r->r0 == 2);
  CHECK(r->keep == 2);
  XdpBuffer xdp(frame);
  CHECK(p->run_xdp(xdp).error().message.find("not an XDP program (type socket_filter)") != std::string::npos);
  CHECK(p->type() == ProgType::SocketFilter);
  CHECK(prog_type_from_section("xdp.frags") == ProgType::Xdp);
  CHECK(prog_type_from_section("tcx/ingress") == ProgType::SchedCls);
  CHECK(prog_type_from_section("classifier/foo") == ProgType::SchedCls);
  CHECK(prog_type_from_section("socket1") == ProgType::SocketFilter);
  CHECK(prog_type_from_section("loadbalancer") == ProgType::SocketFilter);  // Suricata's
  CHECK(prog_type_from_section("filter") == ProgType::SocketFilter);
  CHECK(prog_type_from_section("action/police") == ProgType::SchedCls);     // sched_act
  CHECK(prog_type_from_section("balancer") == ProgType::Unspec);
}

TEST_CASE("tail calls: static prog_array initialisers, empty slots, the 33-call limit") {
  Object obj = open_loaded("tail_calls");
  const std::vector<uint8_t> pkt(60, 0);
  auto run = [&](const char* name) { return action_of(obj, name, pkt); };
  CHECK(run("entry") == XdpAction::Tx);       // slot 1 = target, from the object
  CHECK(run("empty_slot") == XdpAction::Drop);  // slot 2 empty: execution continues
  auto table = obj.map("jump_table");
  REQUIRE(table.ok());
  REQUIRE(set_tail_call(*table, 3, *obj.program("chain")).ok());
  CHECK(run("chain") == XdpAction::Drop);
  auto bss = obj.map(".bss")->lookup(as_bytes<uint32_t>(0));
  CHECK(read_as<uint32_t>(*bss) == 34);  // the first run plus 33 tail calls
  CHECK(set_tail_call(*table, 9, *obj.program("chain")).error().code == Errc::MapFull);
  // A program that was not verified (or was verified for another context) never joins the array:
  // a verified caller would run it unchecked.
  auto unverified = Object::open(program_path("tail_calls"));
  LoadOptions checked;
  checked.safety = Safety::Checked;
  REQUIRE(unverified->load(checked).ok());
  auto refused = set_tail_call(*table, 2, *unverified->program("target"));
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().message == "map 'jump_table' holds programs of another type or verified for another context than 'target'");
  CHECK(table->remove(as_bytes<uint32_t>(1)).ok());
  CHECK(run("entry") == XdpAction::Aborted);  // the slot is empty now
}

TEST_CASE("CO-RE relocations resolve against the object's own BTF") {
  Object obj = open_loaded("core");
  auto p = obj.program("read_second");
  REQUIRE(p.ok());
  XdpBuffer buf(counting_bytes(16));
  auto r = p->run_xdp(buf);
  REQUIRE(r.ok());
  CHECK(r->action == XdpAction::Tx);  // bytes 4..7 of the packet, read through the relocated offset
}

TEST_CASE("a map of maps declared the iproute2 way: inner_id names the inner maps, inner_idx their slots (issue 17)") {
  auto obj = Object::open(program_path("iproute2_map_in_map"));
  REQUIRE(obj.ok());
  REQUIRE(obj->load().ok());
  for (int i = 0; i < 3; ++i)
    CHECK(action_of(*obj, "through_outer", std::vector<uint8_t>(60, 0)) == XdpAction::Pass);  // slot 1 holds map_inner, whose slot 0 counts
  CHECK(read_as<uint32_t>(*obj->map("map_inner")->lookup(as_bytes<uint32_t>(0))) == 3);
  CHECK_FALSE(obj->map("map_outer")->lookup(as_bytes<uint32_t>(0)).ok());  // slot 0 is empty

  auto bad = Object::open(program_path("iproute2_bad_inner"));
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().message == "map 'lonely_outer': inner_id 7 is the id of no map in section maps");
}

TEST_CASE("the context reached through a copy of r10 or a caller's stack slot: its loads are rewritten as the verifier saw them (issue 17, D)") {
  Object obj = test::open_loaded("ctx_copy");
  PacketSpec v6;
  v6.ipv6 = true;
  const std::vector<uint8_t> ipv4 = make_packet({}), ipv6 = make_packet(v6), runt(10, 0);
  auto run = [&](const char* name, const std::vector<uint8_t>& pkt) { return action_of(obj, name, pkt); };
  // byte 13 of the EtherType: 0x00 for IPv4 drops, anything else passes, a runt drops
  CHECK(run("ctx_via_fp_copy", ipv4) == XdpAction::Drop);
  CHECK(run("ctx_via_fp_copy", ipv6) == XdpAction::Pass);
  CHECK(run("ctx_via_fp_copy", runt) == XdpAction::Drop);
  // byte 12: 0x08 (IPv4) passes, anything else drops, a runt aborts
  CHECK(run("ctx_via_caller_slot", ipv4) == XdpAction::Pass);
  CHECK(run("ctx_via_caller_slot", ipv6) == XdpAction::Drop);
  CHECK(run("ctx_via_caller_slot", runt) == XdpAction::Aborted);
}
