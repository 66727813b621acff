// A reader for the parts of a CUBIN (an NVIDIA ELF file, as nvrtcGetCUBIN makes it) the software
// GPU checks (ptx.h): the architecture, in the ELF header's flags (bits 8-15); the CUDA version
// that compiled it, in the `.note.nv.cuinfo` note; the kernels, the global function symbols; and
// from each kernel's `.nv.info.<kernel>` section its parameter sizes (EIATTR_KPARAM_INFO) and
// `__launch_bounds__` (EIATTR_MAX_THREADS), from `.nv.shared.<kernel>` its shared memory.
//
// NVIDIA does not document these encodings; they were read off NVRTC 13.5's output for sm_80,
// sm_86 and sm_90 with kernels of known signatures. `.nv.info` is a list of records: a format
// byte, an attribute byte, then for format 4 a 16-bit length and that many bytes, for the other
// formats a 16-bit value. A KPARAM_INFO record holds: index (u32), ordinal (u16), offset (u16),
// and flags (u32) whose bits 18-31 are the parameter's size in bytes.
#include <elf.h>

#include <cstring>
#include <map>

#include "ptx.h"

namespace sim {
namespace {

constexpr uint16_t kMachineCuda = 190;
constexpr uint8_t kFormatSized = 0x04;
constexpr uint8_t kMaxThreads = 0x05, kParamInfo = 0x17;

struct Elf {
    const unsigned char* base;
    const Elf64_Ehdr* header;
    const Elf64_Shdr* sections;
    const char* section_names;

    const Elf64_Shdr* find(const std::string& name) const {
        for (unsigned i = 0; i < header->e_shnum; i++)
            if (name == section_names + sections[i].sh_name) return &sections[i];
        return nullptr;
    }
    const unsigned char* data(const Elf64_Shdr& s) const { return base + s.sh_offset; }
};

template <typename T> T read(const unsigned char* p) {
    T v;
    memcpy(&v, p, sizeof v);
    return v;
}

// Reads kernel `e`'s `.nv.info.<kernel>` records; returns "" or what is malformed.
std::string read_info(const Elf& elf, KernelEntry& e) {
    const Elf64_Shdr* info = elf.find(".nv.info." + e.name);
    if (!info) return "kernel " + e.name + " has no .nv.info section";
    const unsigned char *p = elf.data(*info), *end = p + info->sh_size;
    std::map<uint16_t, uint32_t> params;  // ordinal -> size
    while (p + 4 <= end) {
        uint8_t format = p[0], attribute = p[1];
        uint16_t length = read<uint16_t>(p + 2);
        const unsigned char* value = p + 4;
        p += format == kFormatSized ? 4 + length : 4;
        if (p > end) return "kernel " + e.name + ": a .nv.info record runs past its section";
        if (format != kFormatSized) continue;
        if (attribute == kParamInfo && length >= 12) params[read<uint16_t>(value + 4)] = read<uint32_t>(value + 8) >> 18;
        if (attribute == kMaxThreads && length >= 12) e.maxntid = read<uint32_t>(value) * read<uint32_t>(value + 4) * read<uint32_t>(value + 8);
    }
    for (auto [ordinal, size] : params) {
        if (ordinal != e.param_sizes.size()) return "kernel " + e.name + ": parameter " + std::to_string(e.param_sizes.size()) + " is missing from .nv.info";
        e.param_sizes.push_back(size);
    }
    return "";
}

}  // namespace

bool is_elf(const void* image) { return memcmp(image, ELFMAG, SELFMAG) == 0; }

std::string parse_cubin(const void* image, ModuleImage& out) {
    Elf elf{(const unsigned char*)image, (const Elf64_Ehdr*)image, nullptr, nullptr};
    const Elf64_Ehdr& h = *elf.header;
    if (h.e_ident[EI_CLASS] != ELFCLASS64 || h.e_ident[EI_DATA] != ELFDATA2LSB) return "an ELF image that is not 64-bit little-endian";
    if (h.e_machine != kMachineCuda) return "an ELF image for machine " + std::to_string(h.e_machine) + ", not NVIDIA CUDA (190)";
    if (h.e_shentsize != sizeof(Elf64_Shdr) || h.e_shnum == 0 || h.e_shstrndx >= h.e_shnum) return "a CUBIN without readable section headers";
    elf.sections = (const Elf64_Shdr*)(elf.base + h.e_shoff);
    elf.section_names = (const char*)elf.data(elf.sections[h.e_shstrndx]);
    out.cubin = true;
    out.target = (int)((h.e_flags >> 8) & 0xff);

    // The note: name "NVIDIA Corp" padded to 4 bytes, then u16 note version, u16 arch, u32 CUDA
    // version (major * 10 + minor).
    const Elf64_Shdr* note = elf.find(".note.nv.cuinfo");
    if (!note || note->sh_size < sizeof(Elf64_Nhdr)) return "a CUBIN without a .note.nv.cuinfo note (which CUDA version made it?)";
    const unsigned char* n = elf.data(*note);
    auto header = read<Elf64_Nhdr>(n);
    size_t desc = sizeof(Elf64_Nhdr) + ((header.n_namesz + 3) & ~3u);
    if (header.n_descsz < 8 || desc + 8 > note->sh_size) return "a CUBIN whose .note.nv.cuinfo is too short";
    out.version = (int)read<uint32_t>(n + desc + 4);

    const Elf64_Shdr* symtab = elf.find(".symtab");
    if (!symtab || symtab->sh_link >= h.e_shnum) return "a CUBIN without a symbol table";
    const char* names = (const char*)elf.data(elf.sections[symtab->sh_link]);
    const Elf64_Sym* symbols = (const Elf64_Sym*)elf.data(*symtab);
    for (size_t i = 0; i < symtab->sh_size / sizeof(Elf64_Sym); i++) {
        const Elf64_Sym& s = symbols[i];
        if (ELF64_ST_TYPE(s.st_info) != STT_FUNC || ELF64_ST_BIND(s.st_info) != STB_GLOBAL) continue;
        KernelEntry e;
        e.name = names + s.st_name;
        std::string problem = read_info(elf, e);
        if (!problem.empty()) return problem;
        if (const Elf64_Shdr* shared = elf.find(".nv.shared." + e.name)) e.shared_bytes = shared->sh_size;
        e.synchronizes = true;
        out.entries.push_back(std::move(e));
    }
    return "";
}

}  // namespace sim
