#include "verifier/cfg.hpp"

#include <algorithm>

namespace ebpfvm::verifier {

using isa::Kind;

void successors(const isa::Program& prog, uint32_t pc, std::vector<uint32_t>& out) {
  out.clear();
  const isa::Insn& in = prog.insns[pc];
  switch (isa::info(in.op).kind) {
    case Kind::Exit: return;
    case Kind::Ja: out.push_back(static_cast<uint32_t>(isa::jump_target(in, pc))); return;
    case Kind::Jcond:
      out.push_back(pc + 1);
      out.push_back(static_cast<uint32_t>(isa::jump_target(in, pc)));
      return;
    case Kind::Lddw: out.push_back(pc + 2); return;
    default: out.push_back(pc + 1); return;
  }
}

namespace {

struct FunctionGraph {
  const isa::Program& prog;
  uint32_t entry, end;
  std::vector<uint32_t> order;  // reverse postorder
  std::vector<int32_t> idom;    // by slot - entry; -1 unreachable
  std::vector<std::vector<uint32_t>> preds;

  uint32_t local(uint32_t pc) const { return pc - entry; }

  void build() {
    const uint32_t n = end - entry;
    preds.assign(n, {});
    std::vector<uint32_t> succ;
    // Iterative DFS for the postorder.
    std::vector<uint8_t> seen(n, 0);
    std::vector<std::pair<uint32_t, size_t>> stack{{entry, 0}};
    std::vector<std::vector<uint32_t>> succs(n);
    for (uint32_t pc = entry; pc < end; ++pc) {
      if (prog.insns[pc].op == isa::Op::LDDW_HI) continue;
      successors(prog, pc, succs[local(pc)]);
      for (uint32_t s : succs[local(pc)]) preds[local(s)].push_back(pc);
    }
    seen[0] = 1;
    std::vector<uint32_t> post;
    while (!stack.empty()) {
      auto& [pc, i] = stack.back();
      const auto& ss = succs[local(pc)];
      if (i < ss.size()) {
        const uint32_t s = ss[i++];
        if (!seen[local(s)]) {
          seen[local(s)] = 1;
          stack.push_back({s, 0});
        }
        continue;
      }
      post.push_back(pc);
      stack.pop_back();
    }
    order.assign(post.rbegin(), post.rend());
    dominators();
  }

  // Cooper, Harvey and Kennedy's iterative algorithm over the reverse postorder.
  void dominators() {
    const uint32_t n = end - entry;
    std::vector<int32_t> rpo(n, -1);
    for (size_t i = 0; i < order.size(); ++i) rpo[local(order[i])] = static_cast<int32_t>(i);
    idom.assign(n, -1);
    idom[0] = 0;
    auto intersect = [&](int32_t a, int32_t b) {
      while (a != b) {
        while (rpo[a] > rpo[b]) a = idom[a];
        while (rpo[b] > rpo[a]) b = idom[b];
      }
      return a;
    };
    for (bool changed = true; changed;) {
      changed = false;
      for (size_t i = 1; i < order.size(); ++i) {
        const uint32_t b = local(order[i]);
        int32_t nd = -1;
        for (uint32_t p : preds[b]) {
          const int32_t lp = static_cast<int32_t>(local(p));
          if (idom[lp] < 0) continue;
          nd = nd < 0 ? lp : intersect(lp, nd);
        }
        if (nd >= 0 && idom[b] != nd) idom[b] = nd, changed = true;
      }
    }
  }

  bool dominates(uint32_t a, uint32_t b) const {
    int32_t x = static_cast<int32_t>(local(b));
    const int32_t la = static_cast<int32_t>(local(a));
    while (true) {
      if (x == la) return true;
      if (x == 0 || idom[x] < 0) return false;
      x = idom[x];
    }
  }
};

}  // namespace

std::variant<Cfg, CfgError> build_cfg(const isa::Program& prog) {
  const uint32_t n = static_cast<uint32_t>(prog.insns.size());
  Cfg cfg;
  cfg.leader.assign(n, false);
  cfg.rank.assign(n, 0);
  cfg.loops_of.assign(n, {});
  std::vector<uint8_t> reached(n, 0);

  // Functions reachable from the entry by calls and by callbacks.
  std::vector<size_t> todo{0};
  std::vector<uint8_t> fn_seen(prog.functions.size(), 0);
  fn_seen[0] = 1;
  auto function_at = [&](uint32_t pc) -> std::optional<size_t> {
    for (size_t f = 0; f < prog.functions.size(); ++f)
      if (prog.functions[f].entry == pc) return f;
    return std::nullopt;
  };
  std::vector<uint32_t> succ;
  while (!todo.empty()) {
    const size_t f = todo.back();
    todo.pop_back();
    FunctionGraph g{prog, prog.functions[f].entry, prog.functions[f].end, {}, {}, {}};
    g.build();
    cfg.leader[g.entry] = true;
    for (size_t i = 0; i < g.order.size(); ++i) {
      const uint32_t pc = g.order[i];
      reached[pc] = 1;
      cfg.rank[pc] = static_cast<uint32_t>(i);
      const isa::Insn& in = prog.insns[pc];
      const Kind k = isa::info(in.op).kind;
      if (k == Kind::Lddw) reached[pc + 1] = 1;
      if (k == Kind::Jcond || k == Kind::Ja) {
        cfg.leader[isa::jump_target(in, pc)] = true;
        if (pc + 1 < n) cfg.leader[pc + 1] = true;
      }
      if (k == Kind::CallLocal || in.op == isa::Op::LDDW_CODE || k == Kind::Call) {
        if (pc + 1 < n) cfg.leader[pc + (k == Kind::Lddw ? 2 : 1)] = true;
        if (k == Kind::Call) continue;
        const auto target = static_cast<uint32_t>(isa::jump_target(in, pc));
        auto callee = function_at(target);
        if (!callee) return CfgError{pc, "call to insn " + std::to_string(target) + ", which does not start a function"};
        if (in.op == isa::Op::LDDW_CODE) cfg.callbacks.push_back(target);
        if (!fn_seen[*callee]) fn_seen[*callee] = 1, todo.push_back(*callee);
      }
    }
    // Loops: every retreating edge must go to a block that dominates its source.
    std::vector<uint8_t> on_path(g.end - g.entry, 0);
    for (size_t i = 0; i < g.order.size(); ++i) {
      const uint32_t u = g.order[i];
      successors(prog, u, succ);
      for (uint32_t v : succ) {
        if (cfg.rank[v] > cfg.rank[u] && v != u) continue;  // forward edge
        if (!g.dominates(v, u))
          return CfgError{u, "jump to insn " + std::to_string(v) + " enters a loop other than at its head (irreducible control flow)"};
        // the natural loop of u -> v: everything that reaches u without passing v
        Loop* loop = nullptr;
        for (Loop& l : cfg.loops)
          if (l.header == v) loop = &l;
        if (!loop) {
          cfg.loops.push_back({v, {v}});
          loop = &cfg.loops.back();
        }
        std::vector<uint32_t> work{u};
        std::vector<uint8_t> in_body(g.end - g.entry, 0);
        for (uint32_t b : loop->body) in_body[b - g.entry] = 1;
        while (!work.empty()) {
          const uint32_t x = work.back();
          work.pop_back();
          if (in_body[x - g.entry]) continue;
          in_body[x - g.entry] = 1;
          loop->body.push_back(x);
          for (uint32_t p : g.preds[x - g.entry]) work.push_back(p);
        }
        std::sort(loop->body.begin(), loop->body.end());
      }
    }
  }
  for (uint32_t pc = 0; pc < n; ++pc)
    if (!reached[pc]) return CfgError{pc, "unreachable insn " + std::to_string(pc)};
  // Nesting: a loop containing another has the larger body.
  std::vector<uint32_t> by_size(cfg.loops.size());
  for (uint32_t i = 0; i < by_size.size(); ++i) by_size[i] = i;
  std::sort(by_size.begin(), by_size.end(), [&](uint32_t a, uint32_t b) {
    return cfg.loops[a].body.size() > cfg.loops[b].body.size();
  });
  for (uint32_t l : by_size)
    for (uint32_t pc : cfg.loops[l].body) cfg.loops_of[pc].push_back(l);
  return cfg;
}

}  // namespace ebpfvm::verifier
