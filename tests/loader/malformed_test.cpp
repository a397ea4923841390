// Bad objects give errors that name the problem, never crashes: specific malformations with their
// messages, then truncated and bit-flipped versions of every test object and every shipped object
// through the fuzz target's entry point (run under ASan+UBSan in the sanitizer build).
#include <elf.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <catch2/catch.hpp>
#include <fstream>
#include <random>

#include "maps/map_impl.hpp"
#include "packets.hpp"
#include "support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

using namespace ebpfvm;
using namespace ebpfvm::test;

namespace {

std::vector<uint8_t> read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string open_error(const std::vector<uint8_t>& bytes) {
  auto obj = Object::open(bytes, "bad.o");
  if (obj) return "(opened)";
  return obj.error().to_string();
}

std::vector<std::string> all_objects() {
  std::vector<std::string> out;
  for (const char* p : {"globals", "parse", "map_ops", "tail_calls", "adjust", "helpers", "legacy_maps", "legacy_iproute2"})
    out.push_back(program_path(p));
  const auto shipped = libxdp_objects();
  out.insert(out.end(), shipped.begin(), shipped.end());
  // readdir order differs between file systems; the bit flips below must be the same everywhere.
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST_CASE("malformed objects: each problem named") {
  const auto good = read_all(program_path("globals"));
  REQUIRE(good.size() > 1000);
  CHECK(open_error({}) == "bad.o: not an ELF file");
  CHECK(open_error({0x7f, 'E', 'L', 'F'}) == "bad.o: not an ELF file");
  auto b = good;
  b[4] = 1;  // ELFCLASS32
  CHECK(open_error(b) == "bad.o: not a 64-bit ELF file");
  b = good;
  b[5] = 2;  // ELFDATA2MSB
  CHECK(open_error(b) == "bad.o: not a little-endian ELF file (big-endian BPF is not supported)");
  b = good;
  b[18] = 62;  // e_machine = EM_X86_64
  CHECK(open_error(b) == "bad.o: ELF machine is 62, not BPF (247)");
  // EM_NONE, as old clang wrote it: read as BPF, with a warning (issue 17)
  b = good;
  b[18] = 0;
  {
    auto old = Object::open(b, "old.o");
    REQUIRE(old.ok());
    REQUIRE(old->warnings().size() == 1);
    CHECK(old->warnings()[0] == "ELF machine is 0 (none), as old clang wrote it: read as BPF (247)");
    CHECK(old->load().ok());
  }
  CHECK(Object::open(good, "good.o")->warnings().empty());
  b = good;
  b[16] = 2;  // e_type = ET_EXEC
  CHECK(open_error(b) == "bad.o: not a relocatable object (compile with clang -c -target bpf)");
  // Cut the file in the middle: the section headers (at the end) are gone.
  b.assign(good.begin(), good.begin() + static_cast<long>(good.size() / 2));
  CHECK(open_error(b).rfind("bad.o: ", 0) == 0);
  CHECK(open_error(b) != "(opened)");

  auto missing = Object::open("/nonexistent/prog.o");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().code == Errc::Io);
  CHECK(missing.error().to_string() == "/nonexistent/prog.o: cannot open: No such file or directory");
}

TEST_CASE("malformed objects: initialisers only on prog arrays and maps of maps") {
  auto obj = Object::open(program_path("bad_init"));
  REQUIRE(!obj);
  CHECK(obj.error().code == Errc::MalformedObject);
  CHECK(obj.error().to_string().find(
            "map 'plain': only prog arrays and maps of maps with 4-byte keys and values take initialisers") !=
        std::string::npos);
  CHECK(obj.error().where.section == ".maps");
}

TEST_CASE("malformed objects: an unknown helper names the helper and the instruction") {
  // Patch `call 6` (bpf_trace_printk) in helpers.o's misc into `call 999`.
  auto bytes = read_all(program_path("helpers"));
  size_t patched = 0;
  for (size_t i = 0; i + 8 <= bytes.size(); i += 8) {
    if (bytes[i] == 0x85 && bytes[i + 1] == 0 && bytes[i + 4] == 6 && bytes[i + 5] == 0 && bytes[i + 6] == 0 && bytes[i + 7] == 0) {
      bytes[i + 4] = 0xe7;  // 999 = 0x3e7
      bytes[i + 5] = 0x03;
      ++patched;
      break;
    }
  }
  REQUIRE(patched == 1);
  auto obj = Object::open(bytes, "helpers.o");
  REQUIRE(obj.ok());
  auto r = obj->load();
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == Errc::UnknownHelper);
  CHECK(r.error().message == "invalid func unknown#999");
  CHECK(r.error().where.section == "xdp");
  CHECK(r.error().where.program == "misc");
  REQUIRE(r.error().where.insn.has_value());
  REQUIRE(r.error().where.line.has_value());  // from BTF line info
  CHECK(r.error().where.source.find("helpers.c:") != std::string::npos);
}

TEST_CASE("malformed objects: truncated and bit-flipped objects never crash") {
  std::mt19937 rng(12345);
  size_t variants = 0, opened = 0;
  for (const std::string& path : all_objects()) {
    INFO(path);
    const auto good = read_all(path);
    REQUIRE(!good.empty());
    // Every truncation point at 1/64 steps, and the last 64 bytes one by one.
    for (size_t cut = 0; cut < good.size(); cut += std::max<size_t>(1, good.size() / 64)) {
      LLVMFuzzerTestOneInput(good.data(), cut);
      ++variants;
    }
    for (size_t cut = good.size() > 64 ? good.size() - 64 : 0; cut < good.size(); ++cut) {
      LLVMFuzzerTestOneInput(good.data(), cut);
      ++variants;
    }
    // Single and multiple bit flips anywhere, and byte overwrites inside the headers.
    for (int i = 0; i < 300; ++i) {
      auto b = good;
      const int flips = 1 + static_cast<int>(rng() % 4);
      for (int f = 0; f < flips; ++f) b[rng() % b.size()] ^= static_cast<uint8_t>(1u << (rng() % 8));
      if (i % 3 == 0) b[rng() % std::min<size_t>(b.size(), 64)] = static_cast<uint8_t>(rng());
      LLVMFuzzerTestOneInput(b.data(), b.size());
      opened += Object::open(b, "x.o").ok();
      ++variants;
    }
  }
  CHECK(variants > (libxdp_objects().empty() ? 3000 : 5000));  // libxdp1's 15 objects give about 2,000
  CHECK(opened > 0);  // many flips land in bytes that do not matter, and those objects still work
}

TEST_CASE("malformed objects: maps that may grow past the memory allowed are refused, not allocated") {
  // What each map may take when full: preallocated arrays and buckets (567 bytes) plus the
  // entries of the maps that grow: small_hash and lru (2 + 2 spares) x (80 + 8 + 8), pc_hash
  // 8 x 96, fifo and lifo 2 x (8 + 48). 2,327 bytes in all.
  auto obj = Object::open(program_path("map_ops"));
  REQUIRE(obj.ok());
  LoadOptions o;
  o.max_map_memory = 2326;
  auto r = obj->load(o);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message == "the maps may take 2327 bytes when full, more than LoadOptions::max_map_memory (2326 bytes); the "
                             "largest is 'pc_hash' (percpu_hash, 8 entries: 896 bytes)");
  o.max_map_memory = 2327;
  CHECK(Object::open(program_path("map_ops"))->load(o).ok());
  auto huge = Map::create({"p", MapType::ProgArray, 4, 4, 0xffffffffu, 0, nullptr});
  REQUIRE_FALSE(huge.ok());
  CHECK(huge.error().message == "map 'p' (prog_array): max_entries 4294967295 may take 131071 MiB when full, more than the limit of 1024 MiB");
  // A hash map preallocates only its buckets (64 MiB here) but holds 10^8 x 152 bytes when full.
  auto grows = Map::create({"h", MapType::Hash, 8, 64, 100'000'000, 0, nullptr});
  REQUIRE_FALSE(grows.ok());
  CHECK(grows.error().message == "map 'h' (hash): max_entries 100000000 may take 14559 MiB when full, more than the limit of 1024 MiB");
}

namespace {

// Edits an ELF object in memory, for the malformations a compiler does not make.
struct ElfEdit {
  std::vector<uint8_t>& b;
  const Elf64_Ehdr& eh() const { return *reinterpret_cast<const Elf64_Ehdr*>(b.data()); }
  Elf64_Shdr& sh(size_t i) { return *reinterpret_cast<Elf64_Shdr*>(b.data() + eh().e_shoff + i * sizeof(Elf64_Shdr)); }
  const char* name(size_t i) { return reinterpret_cast<const char*>(b.data() + sh(eh().e_shstrndx).sh_offset + sh(i).sh_name); }
  size_t section(const std::string& n) {
    for (size_t i = 0; i < eh().e_shnum; ++i)
      if (n == name(i)) return i;
    FAIL("no section " << n);
    return 0;
  }
  void rename(const std::string& from, char last) {  // same length: the last letter changes
    char* s = const_cast<char*>(name(section(from)));
    s[from.size() - 1] = last;
  }
  Elf64_Sym& symbol(const std::string& n) {
    Elf64_Shdr& symtab = sh(section(".symtab"));
    const char* strtab = reinterpret_cast<const char*>(b.data() + sh(symtab.sh_link).sh_offset);
    for (size_t off = 0; off + sizeof(Elf64_Sym) <= symtab.sh_size; off += sizeof(Elf64_Sym)) {
      auto& sym = *reinterpret_cast<Elf64_Sym*>(b.data() + symtab.sh_offset + off);
      if (n == strtab + sym.st_name) return sym;
    }
    FAIL("no symbol " << n);
    return *reinterpret_cast<Elf64_Sym*>(b.data());
  }
};

}  // namespace

TEST_CASE("malformed objects: a global whose symbol offset wraps past its section is not a global") {
  // Without BTF the globals come from the symbol table; `runs` (.bss, 8 bytes at 0) gets an offset
  // near 2^64 whose sum with its size wraps to inside the section.
  auto bytes = read_all(program_path("globals"));
  ElfEdit e{bytes};
  e.rename(".BTF", 'X');
  e.rename(".BTF.ext", 't');
  e.symbol("runs").st_value = ~0ull - 3;
  e.symbol("last_sum").st_value = 0xfffffff8;  // past the section, no wrap
  auto obj = Object::open(bytes, "globals.o");
  REQUIRE(obj.ok());
  REQUIRE_FALSE(obj->has_btf());
  auto named = [&](const char* n) {
    return std::count_if(obj->globals().begin(), obj->globals().end(), [&](const Object::Global& g) { return g.name == n; });
  };
  CHECK(named("base") == 1);  // the symbols left as they were still are globals
  CHECK(named("runs") == 0);
  CHECK(named("last_sum") == 0);
  auto set = obj->set_global("runs", as_bytes<uint64_t>(7));
  REQUIRE_FALSE(set.ok());
  CHECK(set.error().code == Errc::NotFound);
  CHECK(obj->set_global("base", as_bytes<uint32_t>(5)).ok());
}

TEST_CASE("malformed objects: what is not a regular ELF file is refused before it is read") {
  const std::string dir = temp_path("a-directory");
  std::filesystem::create_directories(dir);
  auto d = Object::open(dir);
  REQUIRE_FALSE(d.ok());
  CHECK(d.error().code == Errc::Io);
  CHECK(d.error().to_string() == dir + ": is a directory");
  // A FIFO nobody writes to: refused at once, not waited on.
  const std::string fifo = temp_path("a-fifo");
  REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
  CHECK(Object::open(fifo).error().to_string() == fifo + ": is a FIFO, not a regular file");
  CHECK(Object::open("/dev/zero").error().to_string() == "/dev/zero: is a device, not a regular file");
  // Too large (sparse: no disk is used), and large but not ELF: refused on its first bytes.
  const std::string huge = temp_path("huge.o"), capture = temp_path("capture.o");
  for (const auto& [path, size] : {std::pair{huge, kMaxObjectSize + 1}, std::pair{capture, kMaxObjectSize}}) {
    std::ofstream(path) << "\xd4\xc3\xb2\xa1";  // a pcap's magic
    std::filesystem::resize_file(path, size);
  }
  auto big = Object::open(huge);
  CHECK(big.error().code == Errc::Unsupported);
  CHECK(big.error().to_string() == huge + ": is 268435457 bytes, more than the 268435456 allowed");
  CHECK(Object::open(capture).error().to_string() == capture + ": not an ELF file");
}

TEST_CASE("malformed objects: global data that adds up to more than 1 GiB is refused at open") {
  // A .bss takes no room in the file: 16 bytes of object asking for 2 GiB.
  auto bytes = read_all(program_path("globals"));
  ElfEdit e{bytes};
  e.sh(e.section(".bss")).sh_size = 2ull << 30;
  auto obj = Object::open(bytes, "globals.o");
  REQUIRE_FALSE(obj.ok());
  CHECK(obj.error().to_string().find("global data sections add up to more than 1 GiB (.bss is 2147483648 bytes)") != std::string::npos);
}

TEST_CASE("malformed objects: a small object with a large .bss takes memory only for what is written (found by globals_fuzz)") {
  // 768 MiB of .bss in an object of a few KiB: opening it and setting a global used to fill
  // 768 MiB with zeros (under ASan, 11 s per open). Loading it is refused: a value that large is
  // no array the kernel (or ebpfvm) makes. Measured in a child process, whose peak resident memory
  // wait4() reports.
  auto bytes = read_all(program_path("globals"));
  ElfEdit e{bytes};
  e.sh(e.section(".bss")).sh_size = 768ull << 20;
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    auto obj = Object::open(bytes, "globals.o");
    if (!obj || !obj->set_global("last_sum", as_bytes<uint32_t>(41))) _exit(2);
    auto loaded = obj->load();
    _exit(!loaded && loaded.error().message.find("map '.bss' (array): key or value is too large") != std::string::npos ? 0 : 3);
  }
  int status = 0;
  struct rusage ru {};
  REQUIRE(wait4(pid, &status, 0, &ru) == pid);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  INFO("peak resident memory " << ru.ru_maxrss << " KiB");
  CHECK(ru.ru_maxrss < 256 * 1024);
}
