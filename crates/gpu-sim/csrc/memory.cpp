// Device memory of the software GPU: host memory handed out as device addresses (a kernel twin
// dereferences them directly), with what the hardware enforces and more: a per-device budget
// (so out-of-memory is real), fresh allocations filled with a NaN pattern (cudaMalloc does not
// zero), and copies, sets and frees checked against the live allocations, naming a use after
// free, a double free or an address that was never allocated.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>

#include "runtime.h"

namespace sim {
namespace {

struct Allocation {
    size_t bytes;
    int device;
};

struct Memory {
    std::mutex mutex;
    std::map<uint64_t, Allocation> live;
    // Freed ranges still remembered (dropped when an allocation reuses their addresses), so a
    // late use is named as such.
    std::map<uint64_t, size_t> freed;
    std::map<int, size_t> used, peak;
};

Memory& memory() {
    static Memory* m = new Memory();
    return *m;
}

std::string address(uint64_t a) {
    char buf[32];
    snprintf(buf, sizeof buf, "0x%llx", (unsigned long long)a);
    return buf;
}

// The live allocation holding `a`, or live.end().
std::map<uint64_t, Allocation>::iterator holding(Memory& m, uint64_t a) {
    auto it = m.live.upper_bound(a);
    if (it == m.live.begin()) return m.live.end();
    --it;
    return a < it->first + it->second.bytes ? it : m.live.end();
}

}  // namespace

int mem_alloc(uint64_t* out, size_t bytes, int device) {
    // CUDA_ERROR_INVALID_VALUE, CUDA_ERROR_OUT_OF_MEMORY
    if (bytes == 0) return refuse(1, "cuMemAlloc of 0 bytes");
    Memory& m = memory();
    std::lock_guard<std::mutex> lock(m.mutex);
    size_t& used = m.used[device];
    if (used + bytes > device_memory(device)) {
        return refuse(2, "device " + std::to_string(device) + " cannot allocate " + std::to_string(bytes) + " bytes: " + std::to_string(used) + " of " +
                             std::to_string(device_memory(device)) + " bytes are in use (REKINDLE_SIM_MEMORY_MB sets the simulated card's memory)");
    }
    void* p = nullptr;
    if (posix_memalign(&p, 256, bytes) != 0 || !p) return refuse(2, "the host has no memory left for " + std::to_string(bytes) + " device bytes");
    // All bits set is a NaN in f32, bf16 and f64: a kernel that reads memory nobody wrote sees NaN.
    memset(p, 0xff, bytes);
    uint64_t a = (uint64_t)(uintptr_t)p;
    // Forget the freed ranges this allocation reuses. They never overlap each other (each was a
    // live allocation, which erased those it overlapped), so only the one before `a` can reach in.
    auto it = m.freed.lower_bound(a);
    if (it != m.freed.begin() && std::prev(it)->first + std::prev(it)->second > a) m.freed.erase(std::prev(it));
    while (it != m.freed.end() && it->first < a + bytes) it = m.freed.erase(it);
    m.live[a] = Allocation{bytes, device};
    used += bytes;
    m.peak[device] = std::max(m.peak[device], used);
    *out = a;
    return 0;
}

int mem_free(uint64_t a) {
    Memory& m = memory();
    std::lock_guard<std::mutex> lock(m.mutex);
    auto it = m.live.find(a);
    if (it == m.live.end()) {
        if (m.freed.count(a)) return refuse(1, "double free: device address " + address(a) + " was already freed");
        return refuse(1, "cuMemFree of " + address(a) + ", which is not the start of a device allocation");
    }
    size_t bytes = it->second.bytes;
    m.used[it->second.device] -= bytes;
    memset((void*)(uintptr_t)a, 0xff, bytes);  // a kernel reading it later sees NaN, not old values
    free((void*)(uintptr_t)a);
    m.live.erase(it);
    m.freed[a] = bytes;
    return 0;
}

std::string mem_check(uint64_t a, size_t bytes) {
    Memory& m = memory();
    std::lock_guard<std::mutex> lock(m.mutex);
    auto it = holding(m, a);
    if (it == m.live.end()) {
        auto f = m.freed.upper_bound(a);
        if (f != m.freed.begin() && a < std::prev(f)->first + std::prev(f)->second)
            return address(a) + " lies in an allocation that was freed (use after free)";
        return address(a) + " is not in any device allocation";
    }
    if (a + bytes > it->first + it->second.bytes)
        return address(a) + " + " + std::to_string(bytes) + " bytes runs past the end of its allocation of " + std::to_string(it->second.bytes) + " bytes at " +
               address(it->first);
    return "";
}

std::string mem_report() {
    Memory& m = memory();
    std::lock_guard<std::mutex> lock(m.mutex);
    std::string out;
    for (auto [device, peak] : m.peak)
        out += "  device " + std::to_string(device) + ": peak " + std::to_string(peak) + " bytes allocated, " + std::to_string(m.used[device]) + " still allocated\n";
    return out;
}

size_t mem_used(int device) {
    Memory& m = memory();
    std::lock_guard<std::mutex> lock(m.mutex);
    return m.used[device];
}

}  // namespace sim
