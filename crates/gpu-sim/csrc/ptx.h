// What the software GPU reads from a module image before it accepts it, as the driver would:
// for PTX (ptx.cpp) the ISA version and target, for a CUBIN (cubin.cpp) the architecture and the
// CUDA version that compiled it; and per kernel its parameter sizes, thread limits, static shared
// memory and whether it can synchronise at all.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace sim {

struct KernelEntry {
    std::string name;
    std::vector<uint32_t> param_sizes;
    unsigned maxntid = 0;  // product of `.maxntid` (__launch_bounds__), 0 when absent
    unsigned reqntid = 0;  // product of `.reqntid`, 0 when absent
    uint64_t shared_bytes = 0;
    bool synchronizes = false;
};

struct ModuleImage {
    bool cubin = false;
    int version = 0;  // PTX: ISA major * 10 + minor. CUBIN: the CUDA version (major * 10 + minor) that made it
    int target = 0;   // sm_XY as XY
    std::vector<KernelEntry> entries;
};

// Parses PTX `text`; returns "" or what is malformed.
std::string parse_ptx(const std::string& text, ModuleImage& out);

// Whether `image` starts like an ELF file (a CUBIN; anything else is taken for PTX).
bool is_elf(const void* image);
// Parses the CUBIN at `image`; returns "" or what is malformed. Its kernels are marked as able
// to synchronise: machine code is not scanned for barriers.
std::string parse_cubin(const void* image, ModuleImage& out);

}  // namespace sim
