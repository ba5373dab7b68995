#include "threads.h"

#include <algorithm>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <utility>

#ifdef __linux__
#include <sched.h>
#endif

namespace fireside {

int32_t physical_cores() {
    const int32_t logical = static_cast<int32_t>(std::max(1u, std::thread::hardware_concurrency()));
#ifdef __linux__
    cpu_set_t mask;
    if (sched_getaffinity(0, sizeof mask, &mask) != 0) return logical;
    std::set<std::pair<std::string, std::string>> cores;  // (package, core) pairs
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
        if (!CPU_ISSET(cpu, &mask)) continue;
        const std::string base = "/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/";
        std::string package, core;
        std::ifstream(base + "physical_package_id") >> package;
        std::ifstream(base + "core_id") >> core;
        if (package.empty() || core.empty()) return std::max(1, CPU_COUNT(&mask));
        cores.emplace(package, core);
    }
    return cores.empty() ? logical : static_cast<int32_t>(cores.size());
#else
    return logical;
#endif
}

}  // namespace fireside
