// The format language of bpf_trace_printk / bpf_trace_vprintk: %d %i %u %x %X %c %s %p %% with
// the h, l, ll and z length modifiers, flags '-', '0', '+', ' ' and a field width.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace ebpfvm::detail {

// nullopt (the helper then returns -EINVAL) when the format is not NUL-terminated within fmt_size,
// uses an unknown conversion, or asks for more than nargs arguments.
std::optional<std::string> format_printk(const char* fmt, uint64_t fmt_size, const uint64_t* args, uint64_t nargs);

}  // namespace ebpfvm::detail
