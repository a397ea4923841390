// libFuzzer target: packets for fuzz/programs/map_filler.c, whose every four packet bytes are one
// operation on a map that grows (hash, LRU, per-CPU hashes, queue, stack, LPM trie, ring buffer,
// perf event array). The input is a list of packets (a length byte, then the bytes). The program
// runs, verified, in the interpreter and in the JIT, each over its own copy of the maps, and:
//   - the two must leave identical maps and send identical ring and perf records;
//   - the hash map, the queue, the stack and their result counters must hold what a model of the
//     kernel's semantics (update flags, full maps, BPF_EXIST pushes that drop the oldest) says;
//   - no map may hold more than max_entries, nor a record have a size the program never sends.
// Any exception or crash is a bug: a full map must fail the helper, never the host.
#include <cstdlib>
#include <deque>
#include <map>
#include <vector>

#include "ebpfvm/ebpfvm.hpp"

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

constexpr uint32_t kOps = 16;

struct Side {
  ebpfvm::Object obj;
  ebpfvm::LoadedProgram prog;
};

Side load(ebpfvm::Engine engine) {
  auto obj = ebpfvm::Object::open(EBPFVM_MAP_FILLER);
  check(obj.ok());
  ebpfvm::LoadOptions o;
  o.engine = engine;
  o.max_map_memory = 8u << 20;
  check(obj->load(o).ok());
  auto prog = obj->program("fill");
  check(prog.ok());
  return {std::move(*obj), *prog};
}

// Every map back to empty (the counters to zero), as a fresh load would leave them.
void reset(ebpfvm::Object& obj) {
  for (ebpfvm::Map m : obj.maps()) {
    switch (m.spec().type) {
      case ebpfvm::MapType::Queue: case ebpfvm::MapType::Stack:
        while (m.pop().ok()) {
        }
        break;
      case ebpfvm::MapType::Ringbuf: case ebpfvm::MapType::PerfEventArray: (void)m.drain(); break;
      case ebpfvm::MapType::Array:
        for (uint32_t k = 0; k < m.spec().max_entries; ++k) check(m.update(ebpfvm::as_bytes(k), std::vector<uint8_t>(m.spec().value_size, 0)).ok());
        break;
      default:
        for (const auto& k : m.keys()) check(m.remove(k).ok());
    }
  }
}

uint64_t u64(const std::vector<uint8_t>& b) {
  uint64_t v = 0;
  std::memcpy(&v, b.data(), std::min<size_t>(8, b.size()));
  return v;
}

// The kernel's semantics for the operations the model follows (map_filler.c's step()).
struct Model {
  std::map<uint32_t, uint64_t> hash;
  std::deque<uint64_t> queue, stack;  // oldest first
  uint64_t counts[kOps * 2] = {};

  bool push(std::deque<uint64_t>& d, uint64_t v, bool exist) {
    if (d.size() == 12) {
      if (!exist) return false;
      d.pop_front();
    }
    d.push_back(v);
    return true;
  }
  // true: the operation succeeded (the program counts it in the even slot)
  bool step(uint8_t op, uint8_t a, uint8_t b, uint8_t c) {
    const uint32_t key = a % 64;
    const uint64_t val = uint64_t{b} << 8 | c;
    const bool present = hash.count(key) != 0;
    switch (op) {
      case 0:
        if ((c % 3 == 1 && present) || (c % 3 == 2 && !present) || (!present && hash.size() == 48)) return false;
        hash[key] = val;
        return true;
      case 1: return hash.erase(key) != 0;
      case 2:
        if (!present) return false;
        hash[key] += val;
        return true;
      case 7: return push(queue, val, c & 1);
      case 8: {
        if (queue.empty()) return false;
        const uint64_t v = queue.front();
        queue.pop_front();
        return !(v & 1);
      }
      case 9: return push(stack, static_cast<uint32_t>(val), c & 1);
      case 10: {
        if (stack.empty()) return false;
        const uint64_t v = stack.back();
        stack.pop_back();
        return !(v & 1);
      }
      default: return true;  // not modelled
    }
  }
};

bool modelled(uint32_t op) { return op <= 2 || (op >= 7 && op <= 10); }

void check_model(const Model& m, ebpfvm::Object& obj) {
  auto hash = obj.map("hash");
  check(hash->keys().size() == m.hash.size());
  for (const auto& [k, v] : m.hash) {
    auto got = hash->lookup(ebpfvm::as_bytes(k));
    check(got.ok() && u64(*got) == v);
  }
  for (auto [name, want] : {std::pair{"queue", m.queue}, std::pair{"stack", m.stack}}) {
    auto map = obj.map(name);
    std::deque<uint64_t> have;  // popped: the queue gives oldest first, the stack newest first
    for (auto v = map->pop(); v.ok(); v = map->pop()) name[0] == 'q' ? have.push_back(u64(*v)) : have.push_front(u64(*v));
    check(have == want);
  }
  auto results = obj.map("results");
  for (uint32_t slot = 0; slot < kOps * 2; ++slot) {
    if (!modelled(slot / 2)) continue;
    auto got = results->lookup(ebpfvm::as_bytes(slot));
    check(got.ok() && u64(*got) == m.counts[slot]);
  }
}

std::vector<ebpfvm::MapRecord> records(ebpfvm::Object& obj, const char* name, const std::vector<size_t>& sizes) {
  auto recs = obj.map(name)->drain();
  for (const auto& r : recs) check(std::find(sizes.begin(), sizes.end(), r.data.size()) != sizes.end());
  return recs;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Side interp = load(ebpfvm::Engine::Interpreter);
#if defined(__x86_64__)
  static Side jit = load(ebpfvm::Engine::Jit);
  Side* sides[] = {&interp, &jit};
#else
  Side* sides[] = {&interp};
#endif
  for (Side* s : sides) reset(s->obj);
  Model model;
  for (size_t i = 0; i < size;) {
    const size_t len = std::min<size_t>(data[i], size - i - 1);
    const std::span<const uint8_t> packet(data + i + 1, len);
    i += 1 + len;
    for (Side* s : sides) {
      ebpfvm::XdpBuffer buf(packet);
      auto r = s->prog.run_xdp(buf);
      check(r.ok() && r->action == ebpfvm::XdpAction::Pass);
    }
    for (size_t k = 0; k + 4 <= std::min<size_t>(len, 64 * 4); k += 4) {
      const uint8_t op = packet[k] % kOps;
      const bool ok = model.step(op, packet[k + 1], packet[k + 2], packet[k + 3]);
      ++model.counts[op * 2 + !ok];
    }
  }
  for (Side* s : sides)
    for (const ebpfvm::Map& m : s->obj.maps()) check(m.keys().size() <= m.spec().max_entries);
  if (std::size(sides) > 1) {
    check(sides[0]->obj.dump_maps_json() == sides[1]->obj.dump_maps_json());
    const std::pair<const char*, std::vector<size_t>> kinds[] = {{"ring", {8, 64}}, {"perf", {0, 64}}};
    for (const auto& [name, sizes] : kinds) {
      auto a = records(sides[0]->obj, name, sizes), b = records(sides[1]->obj, name, sizes);
      check(a.size() == b.size());
      for (size_t k = 0; k < a.size(); ++k) check(a[k].data == b[k].data);
    }
  }
  for (Side* s : sides) check_model(model, s->obj);
  // Emptied again: what the input allocated is freed within it, so libFuzzer sees no leak to
  // look for (a leak scan after every input would be most of the time).
  for (Side* s : sides) reset(s->obj);
  return 0;
}
