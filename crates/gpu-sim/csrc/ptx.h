// What the software GPU reads from a PTX module before it accepts it, as the driver's JIT would:
// the ISA version and target, and per entry point its parameter sizes, thread limits, static
// shared memory and whether it can synchronise at all.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace sim {

struct PtxEntry {
    std::string name;
    std::vector<uint32_t> param_sizes;
    unsigned maxntid = 0;  // product of `.maxntid`, 0 when absent
    unsigned reqntid = 0;  // product of `.reqntid`, 0 when absent
    uint64_t shared_bytes = 0;
    bool synchronizes = false;
};

struct PtxModule {
    int version = 0;  // ISA major * 10 + minor
    int target = 0;   // sm_XY as XY
    std::vector<PtxEntry> entries;
};

// Parses `text`; returns "" or what is malformed.
std::string parse_ptx(const std::string& text, PtxModule& out);

}  // namespace sim
