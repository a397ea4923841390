#include "support.hpp"

#include <pcap/pcap.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace ebpfvm::test {
namespace {

void finish(std::vector<Case>& out, Case& c) {
  if (c.name.empty()) return;
  if (!c.result && c.error.empty()) throw std::runtime_error(c.where() + ": no expected result");
  out.push_back(std::move(c));
  c = Case{};
}

std::vector<Case> parse(const std::string& path) {
  std::ifstream in(path);
  std::vector<Case> out;
  Case c;
  std::string line;
  int n = 0;
  const std::string file = std::filesystem::path(path).filename();
  while (std::getline(in, line)) {
    ++n;
    if (line.rfind("== ", 0) == 0) {
      finish(out, c);
      c.file = file;
      c.name = line.substr(3);
      c.line = n;
    } else if (c.name.empty()) {
      continue;  // header comments
    } else if (line.rfind("mem: ", 0) == 0) {
      c.mem_hex = line.substr(5);
    } else if (line == "helpers: test") {
      c.test_helpers = true;
    } else if (line.rfind("-> error: ", 0) == 0) {
      c.error = line.substr(10);
    } else if (line.rfind("-> ", 0) == 0) {
      c.result = std::stoull(line.substr(3), nullptr, 0);
    } else {
      c.source += line + "\n";
    }
  }
  finish(out, c);
  return out;
}

uint64_t sum5(uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e, void*) { return a + b + c + d + e; }
uint64_t mul2(uint64_t a, uint64_t b, uint64_t, uint64_t, uint64_t, void*) { return a * b; }
uint64_t zero(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, void*) { return 0; }

}  // namespace

std::vector<Case> load_cases() {
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(EBPFVM_TEST_CASES_DIR))
    if (e.path().extension() == ".txt") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  std::vector<Case> all;
  for (const auto& f : files) {
    auto cases = parse(f);
    all.insert(all.end(), cases.begin(), cases.end());
  }
  if (all.size() < 100) throw std::runtime_error("expected at least 100 cases in " EBPFVM_TEST_CASES_DIR);
  return all;
}

HelperRegistry test_helpers(bool with_test_ids) {
  HelperRegistry r;
  (void)r.add({5, "zero", zero, nullptr, {}});
  if (with_test_ids) {
    (void)r.add({1, "sum5", sum5, nullptr, {}});
    (void)r.add({2, "mul2", mul2, nullptr, {}});
  }
  return r;
}

std::vector<uint8_t> hex_bytes(const std::string& hex) {
  std::vector<uint8_t> out;
  std::istringstream in(hex);
  for (std::string w; in >> w;) out.push_back(static_cast<uint8_t>(std::stoul(w, nullptr, 16)));
  return out;
}

std::vector<uint8_t> must_assemble(const std::string& text) {
  auto code = assemble(text);
  if (!code) throw std::runtime_error("assembly failed: " + code.error().to_string() + "\n" + text);
  return *code;
}

}  // namespace ebpfvm::test

#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace ebpfvm::test {

namespace {

// One scratch folder per test process, removed when the process ends.
struct ScratchDir {
  std::filesystem::path path =
      std::filesystem::temp_directory_path() / ("ebpfvm-test-" + std::to_string(getpid()));
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

}  // namespace

std::vector<std::string> libxdp_objects() {
  const char* env = std::getenv("LIBXDP_OBJECT_PATH");
  const std::filesystem::path dir = env && *env ? env : EBPFVM_LIBXDP_OBJECTS;
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec))
    if (e.path().extension() == ".o") out.push_back(e.path().string());
  // Directory order differs between file systems; tests that mutate these must see one order.
  std::sort(out.begin(), out.end());
  static bool said = false;
  if (out.empty() && !said) {
    std::printf("SKIP libxdp1's XDP objects: none in %s (scripts/setup.sh installs libxdp1)\n", dir.c_str());
    std::fflush(stdout);
    said = true;
  }
  return out;
}

bool jit_available() {
  static const bool ok = [] {
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    void* p = mmap(nullptr, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    std::string why = p == MAP_FAILED ? std::string("mmap: ") + std::strerror(errno) : "";
    if (p != MAP_FAILED) {
      if (mprotect(p, page, PROT_READ | PROT_EXEC) != 0) why = std::string("mprotect(PROT_EXEC): ") + std::strerror(errno);
      munmap(p, page);
    }
    if (!why.empty()) {
      std::printf("SKIP the tests that run JIT code: this host refuses executable memory to the JIT (%s)\n", why.c_str());
      std::fflush(stdout);
    }
    return why.empty();
  }();
  return ok;
}

std::string hex(std::span<const uint8_t> bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  for (uint8_t b : bytes) s += kHex[b >> 4], s += kHex[b & 15];
  return s;
}

std::string temp_path(const std::string& name) {
  static ScratchDir dir;
  std::filesystem::create_directories(dir.path);
  return (dir.path / name).string();
}

std::vector<std::string> under_emulator(std::vector<std::string> argv) {
  const char* emu = std::getenv("EBPFVM_TEST_EMULATOR");
  if (!emu || !*emu || argv.empty()) return argv;
  // Only the project's own programs, built for this (emulated) CPU: the host's tools run as they are.
  unsigned char h[20] = {};
  std::ifstream f(argv[0], std::ios::binary);
  f.read(reinterpret_cast<char*>(h), sizeof h);
#if defined(__aarch64__)
  constexpr unsigned kMachine = 183;  // EM_AARCH64
#else
  constexpr unsigned kMachine = 62;  // EM_X86_64
#endif
  if (f.gcount() != sizeof h || h[0] != 0x7f || h[1] != 'E' || (h[18] | h[19] << 8) != kMachine) return argv;
  std::vector<std::string> out;
  std::istringstream words(emu);
  for (std::string w; words >> w;) out.push_back(w);
  if (out.empty()) return argv;
  if (out[0].find('/') == std::string::npos)  // execv does not search PATH
    if (const char* path = std::getenv("PATH")) {
      std::istringstream dirs(path);
      for (std::string d; std::getline(dirs, d, ':');)
        if (!d.empty() && access((d + "/" + out[0]).c_str(), X_OK) == 0) {
          out[0] = d + "/" + out[0];
          break;
        }
    }
  out.insert(out.end(), argv.begin(), argv.end());
  return out;
}

Proc run_process(const std::vector<std::string>& argv_in, const std::string& input, bool merge_stderr) {
  const std::vector<std::string> argv = under_emulator(argv_in);
  std::string in_path = temp_path("stdin");
  std::ofstream(in_path, std::ios::binary) << input;
  int out_pipe[2];
  if (pipe(out_pipe) != 0) throw std::runtime_error("pipe failed");
  pid_t pid = fork();
  if (pid == 0) {
    FILE* in = std::fopen(in_path.c_str(), "rb");
    dup2(fileno(in), 0);
    dup2(out_pipe[1], 1);
    if (merge_stderr) dup2(out_pipe[1], 2);
    close(out_pipe[0]);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  close(out_pipe[1]);
  Proc p;
  char buf[4096];
  for (ssize_t n; (n = read(out_pipe[0], buf, sizeof buf)) > 0;) p.out.append(buf, static_cast<size_t>(n));
  close(out_pipe[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  p.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return p;
}

}  // namespace ebpfvm::test

namespace ebpfvm::test {

void write_capture(const std::string& path, const std::vector<std::vector<uint8_t>>& packets) {
  pcap_t* dead = pcap_open_dead(DLT_EN10MB, 65535);
  pcap_dumper_t* d = pcap_dump_open(dead, path.c_str());
  REQUIRE(d);
  for (size_t i = 0; i < packets.size(); ++i) {
    pcap_pkthdr h{};
    h.ts.tv_sec = 100 + static_cast<long>(i);
    h.caplen = h.len = static_cast<bpf_u_int32>(packets[i].size());
    pcap_dump(reinterpret_cast<u_char*>(d), &h, packets[i].data());
  }
  pcap_dump_close(d);
  pcap_close(dead);
}

std::vector<std::vector<uint8_t>> read_capture(const std::string& path) {
  char err[PCAP_ERRBUF_SIZE];
  pcap_t* p = pcap_open_offline(path.c_str(), err);
  INFO(err);
  REQUIRE(p);
  std::vector<std::vector<uint8_t>> out;
  pcap_pkthdr* h;
  const u_char* data;
  while (pcap_next_ex(p, &h, &data) == 1) out.emplace_back(data, data + h->caplen);
  pcap_close(p);
  return out;
}

}  // namespace ebpfvm::test
