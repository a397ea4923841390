// ebpfvm: a userspace eBPF virtual machine. Include this for the whole public API.
#pragma once

#include "ebpfvm/asm.hpp"
#include "ebpfvm/error.hpp"
#include "ebpfvm/filter.hpp"
#include "ebpfvm/helpers.hpp"
#include "ebpfvm/interpreter.hpp"
#include "ebpfvm/jit.hpp"
#include "ebpfvm/maps.hpp"
#include "ebpfvm/object.hpp"
#include "ebpfvm/runtime.hpp"
#include "ebpfvm/skb.hpp"
#include "ebpfvm/verifier.hpp"
#include "ebpfvm/xdp.hpp"
#include "ebpfvm/program.hpp"
