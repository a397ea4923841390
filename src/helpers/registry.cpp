#include "ebpfvm/helpers.hpp"

namespace ebpfvm {

unsigned HelperProto::arg_count() const {
  unsigned n = 0;
  while (n < args.size() && args[n] != ArgKind::None) ++n;
  return n;
}

Result<void> HelperRegistry::add(Helper helper) {
  if (!helper.fn) return make_error(Errc::InvalidArgument, "helper " + std::to_string(helper.id) + " has no function");
  if (by_id_.count(helper.id))
    return make_error(Errc::InvalidArgument, "helper id " + std::to_string(helper.id) + " is already registered");
  if (!helper.name.empty() && find(helper.name))
    return make_error(Errc::InvalidArgument, "helper name '" + helper.name + "' is already registered");
  by_id_[helper.id] = helpers_.size();
  helpers_.push_back(std::move(helper));
  return {};
}

void HelperRegistry::set(Helper helper) {
  auto it = by_id_.find(helper.id);
  if (it != by_id_.end()) {
    helpers_[it->second] = std::move(helper);
    return;
  }
  by_id_[helper.id] = helpers_.size();
  helpers_.push_back(std::move(helper));
}

const Helper* HelperRegistry::find(uint32_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &helpers_[it->second];
}

const Helper* HelperRegistry::find(std::string_view name) const {
  for (const Helper& h : helpers_)
    if (h.name == name) return &h;
  return nullptr;
}

}  // namespace ebpfvm
