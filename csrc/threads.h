// How many threads llama.cpp should use by default.
#pragma once

#include <cstdint>

namespace fireside {

// Physical cores available to this process (SMT siblings counted once). llama.cpp slows
// down several-fold when its threads outnumber the cores, so this is the default.
int32_t physical_cores();

}  // namespace fireside
