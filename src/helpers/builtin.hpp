// What engines need to know about the built-in helpers beyond their prototypes.
#pragma once

#include "ebpfvm/helpers.hpp"

namespace ebpfvm::detail {

// Whether a call of fn needs a run state of its own: true for the built-ins that record or
// consult what one run did (redirects, locks, ring buffer reservations, callbacks, tail calls).
// The rest read at most the worker, environment and XDP context of the run in progress, or
// their defaults when there is none, which is what a fresh run state would hold. An embedder's
// helper cannot reach run state at all.
bool needs_run(HelperFn fn);

}  // namespace ebpfvm::detail
