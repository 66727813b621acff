// The CUDA driver API subset rekindle (through cudarc) calls, written from the CUDA Driver API
// reference: devices, primary contexts, streams, events, memory, PTX modules and launches.
//
// Streams execute each operation when it is enqueued, so stream order holds trivially, argument
// bytes are copied at the launch, and a device-to-host copy has completed when it returns (as
// it has for pageable memory on a GPU). Errors are returned, with their explanation recorded for
// cuGetErrorString; a failed kernel (a deadlocked block) is sticky, like an illegal address.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "ptx.h"
#include "runtime.h"
#include "sanitizer.h"

namespace sim {

enum : int {
    SUCCESS = 0,
    INVALID_VALUE = 1,
    OUT_OF_MEMORY = 2,
    NOT_INITIALIZED = 3,
    INVALID_DEVICE = 101,
    INVALID_IMAGE = 200,
    INVALID_CONTEXT = 201,
    NO_BINARY_FOR_GPU = 209,
    INVALID_PTX = 218,
    UNSUPPORTED_PTX_VERSION = 222,
    INVALID_HANDLE = 400,
    NOT_FOUND = 500,
    LAUNCH_OUT_OF_RESOURCES = 701,
    LAUNCH_FAILED = 719,
    NOT_SUPPORTED = 801,
};

namespace {

// `text`, a whole number read from variable `name` (which a bad value names).
uint64_t number(const char* name, const std::string& text) {
    char* end = nullptr;
    unsigned long long n = strtoull(text.c_str(), &end, 10);
    if (text.empty() || *end) {
        fprintf(stderr, "gpu-sim: %s: '%s' is not a whole number\n", name, text.c_str());
        abort();
    }
    return n;
}

uint64_t env_number(const char* name, uint64_t fallback) {
    const char* v = getenv(name);
    return v && *v ? number(name, v) : fallback;
}

std::mutex explanations_mutex;
std::map<int, std::unique_ptr<std::string>>& explanations() {
    static auto* m = new std::map<int, std::unique_ptr<std::string>>();
    return *m;
}

}  // namespace

const Config& config() {
    static const Config c = [] {
        Config c;
        c.devices = (int)env_number("REKINDLE_SIM_DEVICES", 1);
        const char* name = getenv("REKINDLE_SIM_NAME");
        c.name = name && *name ? name : "rekindle gpu-sim (software GPU, not a real device)";
        const char* compute = getenv("REKINDLE_SIM_COMPUTE");
        c.compute_major = 9;
        c.compute_minor = 0;
        if (compute && sscanf(compute, "%d.%d", &c.compute_major, &c.compute_minor) != 2) {
            fprintf(stderr, "gpu-sim: REKINDLE_SIM_COMPUTE=%s is not MAJOR.MINOR (e.g. 9.0)\n", compute);
            abort();
        }
        // One number for every device, or a comma-separated list (the last repeats): "16384,64"
        // gives device 1 a 64 MiB card, so out-of-memory can strike one rank of a job.
        std::string memory = getenv("REKINDLE_SIM_MEMORY_MB") ? getenv("REKINDLE_SIM_MEMORY_MB") : "";
        for (size_t start = 0; !memory.empty() && start <= memory.size();) {
            size_t comma = std::min(memory.find(',', start), memory.size());
            c.memory_bytes.push_back(number("REKINDLE_SIM_MEMORY_MB", memory.substr(start, comma - start)) << 20);
            start = comma + 1;
        }
        if (c.memory_bytes.empty()) c.memory_bytes.push_back(16384ull << 20);
        c.driver_version = (int)env_number("REKINDLE_SIM_DRIVER", 13050);
        unsigned cores = std::thread::hardware_concurrency();
        c.threads = (unsigned)env_number("REKINDLE_SIM_THREADS", cores ? cores : 1);
        if (c.threads == 0 || sanitizer::kOneWorker) c.threads = 1;
        c.stack_bytes = env_number("REKINDLE_SIM_STACK_KB", 64) << 10;
        return c;
    }();
    return c;
}

uint64_t device_memory(int device) {
    const std::vector<uint64_t>& m = config().memory_bytes;
    return m[std::min((size_t)device, m.size() - 1)];
}

int max_ptx_isa(int driver) {
    int major = driver / 1000, minor = (driver % 1000) / 10;
    if (major >= 13) return 90 + minor;  // CUDA 13.x reads PTX ISA 9.x
    if (major == 12) {
        static const int isa[] = {80, 81, 82, 83, 84, 85, 85, 86, 87, 88};
        return isa[minor < 10 ? minor : 9];
    }
    if (major == 11) return 70 + minor;
    return 0;
}

void report(const std::string& message) {
    if (!getenv("REKINDLE_SIM_QUIET")) fprintf(stderr, "gpu-sim: %s\n", message.c_str());
}

int refuse(int code, const std::string& message) {
    {
        std::lock_guard<std::mutex> lock(explanations_mutex);
        explanations()[code] = std::make_unique<std::string>("gpu-sim: " + message);
    }
    report(message);
    return code;
}

const char* explanation(int code) {
    std::lock_guard<std::mutex> lock(explanations_mutex);
    auto it = explanations().find(code);
    return it == explanations().end() ? nullptr : it->second->c_str();
}

const Twin* find_twin(const std::string& name) {
    static const std::map<std::string, const Twin*> by_name = [] {
        std::map<std::string, const Twin*> m;
        for (size_t t = 0; t < twin_table_count; t++)
            for (size_t k = 0; k < twin_tables[t]->count; k++) m[twin_tables[t]->twins[k].name] = &twin_tables[t]->twins[k];
        return m;
    }();
    auto it = by_name.find(name);
    return it == by_name.end() ? nullptr : it->second;
}

}  // namespace sim

using namespace sim;

namespace {

struct Context {
    int device;
};
struct Stream {
    int device;
};
struct Event {
    std::chrono::steady_clock::time_point at;
    bool recorded;
};
struct Function {
    const Twin* twin;
    KernelEntry entry;
};
struct Module {
    std::map<std::string, std::unique_ptr<Function>> functions;
};

std::atomic<bool> initialized{false};
std::atomic<int> sticky{0};
thread_local Context* current = nullptr;

Context* primary(int device) {
    static std::vector<Context>* contexts = [] {
        auto* v = new std::vector<Context>();
        for (int d = 0; d < config().devices; d++) v->push_back(Context{d});
        return v;
    }();
    return &(*contexts)[device];
}

// The first checks of every call: initialised, no sticky kernel failure.
#define GUARD()                                        \
    do {                                               \
        if (!initialized) return NOT_INITIALIZED;      \
        if (int s = sticky.load()) return s;           \
    } while (0)

int device_of_current(int* device) {
    if (!current) return refuse(INVALID_CONTEXT, "no current context on this thread (cuCtxSetCurrent first)");
    *device = current->device;
    return SUCCESS;
}

int copy_check(const char* call, const char* role, uint64_t address, size_t bytes) {
    if (bytes == 0) return SUCCESS;
    std::string problem = mem_check(address, bytes);
    return problem.empty() ? SUCCESS : refuse(INVALID_VALUE, std::string(call) + ": the " + role + " " + problem);
}

}  // namespace

SIM_EXPORT int cuInit(unsigned flags) {
    if (flags != 0) return refuse(INVALID_VALUE, "cuInit flags must be 0");
    initialized = true;
    return SUCCESS;
}

// NVRTC opens the driver while it compiles and asks for the driver's private export tables,
// which are undocumented: none is offered, and NVRTC carries on as on a machine without a driver
// (without this symbol it crashed, as it would on any driver lacking it).
SIM_EXPORT int cuGetExportTable(const void** table, const void* id) {
    if (table) *table = nullptr;
    return NOT_SUPPORTED;
}

SIM_EXPORT int cuDriverGetVersion(int* version) {
    if (!version) return INVALID_VALUE;
    *version = config().driver_version;
    return SUCCESS;
}

SIM_EXPORT int cuDeviceGetCount(int* count) {
    GUARD();
    *count = config().devices;
    return SUCCESS;
}

SIM_EXPORT int cuDeviceGet(int* device, int ordinal) {
    GUARD();
    if (ordinal < 0 || ordinal >= config().devices) return refuse(INVALID_DEVICE, "device " + std::to_string(ordinal) + " does not exist (REKINDLE_SIM_DEVICES=" + std::to_string(config().devices) + ")");
    *device = ordinal;
    return SUCCESS;
}

SIM_EXPORT int cuDeviceGetName(char* name, int length, int device) {
    GUARD();
    if (device < 0 || device >= config().devices) return INVALID_DEVICE;
    snprintf(name, (size_t)length, "%s", config().name.c_str());
    return SUCCESS;
}

SIM_EXPORT int cuDeviceTotalMem_v2(size_t* bytes, int device) {
    GUARD();
    if (device < 0 || device >= config().devices) return INVALID_DEVICE;
    *bytes = device_memory(device);
    return SUCCESS;
}

SIM_EXPORT int cuDeviceGetAttribute(int* value, int attribute, int device) {
    GUARD();
    if (device < 0 || device >= config().devices) return INVALID_DEVICE;
    const Config& c = config();
    switch (attribute) {
        case 1: *value = 1024; break;                 // max threads per block
        case 2: case 3: *value = 1024; break;         // max block dim x, y
        case 4: *value = 64; break;                   // max block dim z
        case 5: *value = 2147483647; break;           // max grid dim x
        case 6: case 7: *value = 65535; break;        // max grid dim y, z
        case 8: *value = 48 * 1024; break;            // static shared memory per block
        case 10: *value = 32; break;                  // warp size
        case 13: *value = 1000000; break;             // clock rate, kHz
        case 16: *value = 1; break;                   // multiprocessors
        case 36: *value = 1000000; break;             // memory clock, kHz
        case 37: *value = 256; break;                 // memory bus width
        case 39: *value = 2048; break;                // max threads per multiprocessor
        case 41: *value = 1; break;                   // unified addressing
        case 75: *value = c.compute_major; break;
        case 76: *value = c.compute_minor; break;
        case 97: *value = 48 * 1024; break;           // opt-in shared memory: none beyond static
        case 115: *value = 1; break;                  // memory pools (stream-ordered allocation)
        default: *value = 0; break;
    }
    return SUCCESS;
}

SIM_EXPORT int cuDevicePrimaryCtxRetain(void** context, int device) {
    GUARD();
    if (device < 0 || device >= config().devices) return INVALID_DEVICE;
    *context = primary(device);
    return SUCCESS;
}

// Primary contexts live as long as the process: retaining and releasing count nothing.
SIM_EXPORT int cuDevicePrimaryCtxRelease_v2(int device) { return device < 0 || device >= config().devices ? INVALID_DEVICE : SUCCESS; }

SIM_EXPORT int cuCtxSetCurrent(void* context) {
    GUARD();
    current = (Context*)context;
    return SUCCESS;
}

SIM_EXPORT int cuCtxGetCurrent(void** context) {
    GUARD();
    *context = current;
    return SUCCESS;
}

SIM_EXPORT int cuCtxGetDevice(int* device) {
    GUARD();
    return device_of_current(device);
}

SIM_EXPORT int cuCtxPushCurrent_v2(void* context) { return cuCtxSetCurrent(context); }

SIM_EXPORT int cuCtxPopCurrent_v2(void** context) {
    if (context) *context = current;
    current = nullptr;
    return SUCCESS;
}

SIM_EXPORT int cuCtxSynchronize() {
    GUARD();
    return SUCCESS;
}

SIM_EXPORT int cuStreamCreate(void** stream, unsigned) {
    GUARD();
    int device;
    if (int e = device_of_current(&device)) return e;
    *stream = new Stream{device};
    return SUCCESS;
}

SIM_EXPORT int cuStreamCreateWithPriority(void** stream, unsigned flags, int) { return cuStreamCreate(stream, flags); }

SIM_EXPORT int cuStreamDestroy_v2(void* stream) {
    delete (Stream*)stream;
    return SUCCESS;
}

SIM_EXPORT int cuStreamSynchronize(void*) {
    GUARD();
    return SUCCESS;
}

SIM_EXPORT int cuStreamQuery(void*) {
    GUARD();
    return SUCCESS;
}

SIM_EXPORT int cuStreamWaitEvent(void*, void*, unsigned) {
    GUARD();
    return SUCCESS;
}

SIM_EXPORT int cuEventCreate(void** event, unsigned) {
    GUARD();
    *event = new Event{std::chrono::steady_clock::now(), false};
    return SUCCESS;
}

SIM_EXPORT int cuEventRecord(void* event, void*) {
    GUARD();
    *(Event*)event = Event{std::chrono::steady_clock::now(), true};
    return SUCCESS;
}

SIM_EXPORT int cuEventSynchronize(void*) {
    GUARD();
    return SUCCESS;
}

SIM_EXPORT int cuEventQuery(void*) {
    GUARD();
    return SUCCESS;
}

SIM_EXPORT int cuEventElapsedTime(float* ms, void* start, void* end) {
    GUARD();
    Event *a = (Event*)start, *b = (Event*)end;
    if (!a->recorded || !b->recorded) return refuse(INVALID_HANDLE, "cuEventElapsedTime of an event that was never recorded");
    *ms = std::chrono::duration<float, std::milli>(b->at - a->at).count();
    return SUCCESS;
}

SIM_EXPORT int cuEventElapsedTime_v2(float* ms, void* start, void* end) { return cuEventElapsedTime(ms, start, end); }

SIM_EXPORT int cuEventDestroy_v2(void* event) {
    delete (Event*)event;
    return SUCCESS;
}

SIM_EXPORT int cuMemAlloc_v2(uint64_t* address, size_t bytes) {
    GUARD();
    int device;
    if (int e = device_of_current(&device)) return e;
    return mem_alloc(address, bytes, device);
}

SIM_EXPORT int cuMemAllocAsync(uint64_t* address, size_t bytes, void* stream) {
    GUARD();
    return mem_alloc(address, bytes, stream ? ((Stream*)stream)->device : (current ? current->device : 0));
}

SIM_EXPORT int cuMemFree_v2(uint64_t address) {
    GUARD();
    return mem_free(address);
}

SIM_EXPORT int cuMemFreeAsync(uint64_t address, void*) { return cuMemFree_v2(address); }

SIM_EXPORT int cuMemGetInfo_v2(size_t* free_bytes, size_t* total) {
    GUARD();
    int device;
    if (int e = device_of_current(&device)) return e;
    *total = device_memory(device);
    *free_bytes = device_memory(device) - mem_used(device);
    return SUCCESS;
}

SIM_EXPORT int cuMemsetD8Async(uint64_t address, unsigned char value, size_t count, void*) {
    GUARD();
    if (int e = copy_check("cuMemsetD8", "destination", address, count)) return e;
    memset((void*)(uintptr_t)address, value, count);
    return SUCCESS;
}

SIM_EXPORT int cuMemsetD8_v2(uint64_t address, unsigned char value, size_t count) { return cuMemsetD8Async(address, value, count, nullptr); }

SIM_EXPORT int cuMemcpyHtoDAsync_v2(uint64_t dst, const void* src, size_t bytes, void*) {
    GUARD();
    if (int e = copy_check("cuMemcpyHtoD", "destination", dst, bytes)) return e;
    memcpy((void*)(uintptr_t)dst, src, bytes);
    return SUCCESS;
}

SIM_EXPORT int cuMemcpyHtoD_v2(uint64_t dst, const void* src, size_t bytes) { return cuMemcpyHtoDAsync_v2(dst, src, bytes, nullptr); }

SIM_EXPORT int cuMemcpyDtoHAsync_v2(void* dst, uint64_t src, size_t bytes, void*) {
    GUARD();
    if (int e = copy_check("cuMemcpyDtoH", "source", src, bytes)) return e;
    memcpy(dst, (const void*)(uintptr_t)src, bytes);
    return SUCCESS;
}

SIM_EXPORT int cuMemcpyDtoH_v2(void* dst, uint64_t src, size_t bytes) { return cuMemcpyDtoHAsync_v2(dst, src, bytes, nullptr); }

SIM_EXPORT int cuMemcpyDtoDAsync_v2(uint64_t dst, uint64_t src, size_t bytes, void*) {
    GUARD();
    if (int e = copy_check("cuMemcpyDtoD", "source", src, bytes)) return e;
    if (int e = copy_check("cuMemcpyDtoD", "destination", dst, bytes)) return e;
    memmove((void*)(uintptr_t)dst, (const void*)(uintptr_t)src, bytes);
    return SUCCESS;
}

SIM_EXPORT int cuMemcpyDtoD_v2(uint64_t dst, uint64_t src, size_t bytes) { return cuMemcpyDtoDAsync_v2(dst, src, bytes, nullptr); }

// PTX is accepted as the driver's JIT would accept it: no newer than this driver reads, for an
// architecture this device runs, each entry within the 48 KiB of static shared memory.
static int accept_ptx(const ModuleImage& m) {
    const Config& c = config();
    int accepted = max_ptx_isa(c.driver_version);
    if (m.version > accepted) {
        char msg[256];
        snprintf(msg, sizeof msg, "cuModuleLoadData: PTX ISA %d.%d is newer than driver %d.%d reads (PTX ISA %d.%d at most)", m.version / 10,
                 m.version % 10, c.driver_version / 1000, (c.driver_version % 1000) / 10, accepted / 10, accepted % 10);
        return refuse(UNSUPPORTED_PTX_VERSION, msg);
    }
    int compute = c.compute_major * 10 + c.compute_minor;
    if (m.target > compute)
        return refuse(NO_BINARY_FOR_GPU, "cuModuleLoadData: the PTX targets sm_" + std::to_string(m.target) + ", newer than this device (sm_" +
                                             std::to_string(compute) + ")");
    for (const KernelEntry& e : m.entries) {
        if (e.shared_bytes > 48 * 1024) {
            char msg[256];
            snprintf(msg, sizeof msg, "cuModuleLoadData: entry function '%s' uses too much shared data (0x%llx bytes, 0xc000 max)", e.name.c_str(),
                     (unsigned long long)e.shared_bytes);
            return refuse(INVALID_PTX, msg);
        }
    }
    return SUCCESS;
}

// A CUBIN is machine code: it runs only on its own architecture's major version, at the same or
// a later minor, and loads on a driver of the CUDA major version that compiled it or later
// (minor version compatibility). ptxas already held its shared memory to the limit.
static int accept_cubin(const ModuleImage& m) {
    const Config& c = config();
    if (m.target / 10 != c.compute_major || m.target % 10 > c.compute_minor)
        return refuse(NO_BINARY_FOR_GPU, "cuModuleLoadData: the CUBIN is machine code for sm_" + std::to_string(m.target) + ", which this device (sm_" +
                                             std::to_string(c.compute_major) + std::to_string(c.compute_minor) + ") cannot run");
    int driver_major = c.driver_version / 1000;
    if (m.version / 10 > driver_major) {
        char msg[256];
        snprintf(msg, sizeof msg, "cuModuleLoadData: the CUBIN was made by CUDA %d.%d, and driver %d.%d loads CUBINs of CUDA %d.x and older", m.version / 10,
                 m.version % 10, driver_major, (c.driver_version % 1000) / 10, driver_major);
        return refuse(INVALID_IMAGE, msg);
    }
    return SUCCESS;
}

// A module is accepted as the driver would accept it (accept_ptx, accept_cubin); and, the sim's
// own condition, each kernel has a host twin whose parameters match.
SIM_EXPORT int cuModuleLoadData(void** module, const void* image) {
    GUARD();
    if (!image) return INVALID_VALUE;
    ModuleImage m;
    bool cubin = is_elf(image);
    std::string problem = cubin ? parse_cubin(image, m) : parse_ptx((const char*)image, m);
    if (!problem.empty()) return refuse(cubin ? INVALID_IMAGE : INVALID_PTX, "cuModuleLoadData: " + problem);
    if (int status = cubin ? accept_cubin(m) : accept_ptx(m)) return status;
    const char* kind = cubin ? "CUBIN" : "PTX";
    auto loaded = std::make_unique<Module>();
    for (const KernelEntry& e : m.entries) {
        const Twin* twin = find_twin(e.name);
        if (!twin)
            return refuse(INVALID_IMAGE, "cuModuleLoadData: kernel " + e.name + " has no host twin in the software GPU (a kernel not listed in "
                                         "crates/cuda/src/kernels.rs, or a sim built from other sources)");
        bool same = twin->param_count == e.param_sizes.size();
        for (size_t i = 0; same && i < e.param_sizes.size(); i++) same = twin->param_sizes[i] == e.param_sizes[i];
        if (!same) {
            std::string image_sizes, twin_sizes;
            for (uint32_t s : e.param_sizes) image_sizes += (image_sizes.empty() ? "" : ", ") + std::to_string(s);
            for (uint32_t i = 0; i < twin->param_count; i++) twin_sizes += (twin_sizes.empty() ? "" : ", ") + std::to_string(twin->param_sizes[i]);
            return refuse(INVALID_IMAGE, "cuModuleLoadData: kernel " + e.name + " takes parameters of (" + image_sizes + ") bytes in the " + kind + " but (" +
                                             twin_sizes + ") in its host twin: the sim was built from other kernel sources");
        }
        loaded->functions[e.name] = std::make_unique<Function>(Function{twin, e});
    }
    *module = loaded.release();
    return SUCCESS;
}

SIM_EXPORT int cuModuleLoadDataEx(void** module, const void* image, unsigned, void*, void**) { return cuModuleLoadData(module, image); }

SIM_EXPORT int cuModuleUnload(void* module) {
    delete (Module*)module;
    return SUCCESS;
}

SIM_EXPORT int cuModuleGetFunction(void** function, void* module, const char* name) {
    GUARD();
    Module* m = (Module*)module;
    auto it = m->functions.find(name);
    if (it == m->functions.end()) return refuse(NOT_FOUND, std::string("cuModuleGetFunction: the module has no kernel ") + name);
    *function = it->second.get();
    return SUCCESS;
}

SIM_EXPORT int cuFuncGetAttribute(int* value, int attribute, void* function) {
    GUARD();
    Function* f = (Function*)function;
    switch (attribute) {
        case 0: *value = f->entry.maxntid ? (int)f->entry.maxntid : 1024; break;  // max threads per block
        case 1: *value = (int)f->entry.shared_bytes; break;                        // static shared bytes
        default: *value = 0; break;
    }
    return SUCCESS;
}

// Checks the launch as the hardware does, copies the argument bytes (the PTX's sizes), and runs
// the grid on the host.
SIM_EXPORT int cuLaunchKernel(void* function, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, unsigned shared_bytes,
                              void*, void** params, void** extra) {
    GUARD();
    Function* f = (Function*)function;
    const std::string& name = f->entry.name;
    auto dims = [](unsigned x, unsigned y, unsigned z) { return "(" + std::to_string(x) + ", " + std::to_string(y) + ", " + std::to_string(z) + ")"; };
    uint64_t threads = (uint64_t)bx * by * bz;
    if (threads == 0 || (uint64_t)gx * gy * gz == 0)
        return refuse(INVALID_VALUE, "launch of " + name + " with an empty grid " + dims(gx, gy, gz) + " or block " + dims(bx, by, bz));
    if (threads > 1024 || bx > 1024 || by > 1024 || bz > 64)
        return refuse(INVALID_VALUE, "launch of " + name + " with block " + dims(bx, by, bz) + " = " + std::to_string(threads) +
                                         " threads; a block holds at most 1024 threads (x, y <= 1024, z <= 64)");
    if (gx > 2147483647u || gy > 65535 || gz > 65535)
        return refuse(INVALID_VALUE, "launch of " + name + " with grid " + dims(gx, gy, gz) + "; the limits are (2^31 - 1, 65535, 65535)");
    if (f->entry.maxntid && threads > f->entry.maxntid)
        return refuse(LAUNCH_OUT_OF_RESOURCES, "launch of " + name + " with " + std::to_string(threads) + " threads per block, more than its .maxntid of " +
                                                   std::to_string(f->entry.maxntid) + " (__launch_bounds__)");
    if (f->entry.reqntid && threads != f->entry.reqntid)
        return refuse(INVALID_VALUE, "launch of " + name + " with " + std::to_string(threads) + " threads per block; its .reqntid demands " + std::to_string(f->entry.reqntid));
    if (shared_bytes)
        return refuse(NOT_SUPPORTED, "launch of " + name + " with " + std::to_string(shared_bytes) + " bytes of dynamic shared memory, which the software GPU does not model");
    if (extra) return refuse(NOT_SUPPORTED, "launch of " + name + " with `extra` arguments, which the software GPU does not take");
    size_t count = f->entry.param_sizes.size();
    if (count && !params) return refuse(INVALID_VALUE, "launch of " + name + " without its " + std::to_string(count) + " arguments");
    std::vector<std::vector<uint64_t>> copies(count);
    std::vector<void*> args(count);
    for (size_t i = 0; i < count; i++) {
        copies[i].resize((f->entry.param_sizes[i] + 7) / 8);
        memcpy(copies[i].data(), params[i], f->entry.param_sizes[i]);
        args[i] = copies[i].data();
    }
    Launch launch{f->twin, args.data(), Dim3{gx, gy, gz}, Dim3{bx, by, bz}, f->entry.synchronizes};
    std::string failure = run_grid(launch);
    if (!failure.empty()) {
        sticky = LAUNCH_FAILED;
        return refuse(LAUNCH_FAILED, failure);
    }
    return SUCCESS;
}

SIM_EXPORT int cuGetErrorName(int code, const char** name) {
    static const std::map<int, const char*> names = {
        {SUCCESS, "CUDA_SUCCESS"}, {INVALID_VALUE, "CUDA_ERROR_INVALID_VALUE"}, {OUT_OF_MEMORY, "CUDA_ERROR_OUT_OF_MEMORY"},
        {NOT_INITIALIZED, "CUDA_ERROR_NOT_INITIALIZED"}, {INVALID_DEVICE, "CUDA_ERROR_INVALID_DEVICE"}, {INVALID_IMAGE, "CUDA_ERROR_INVALID_IMAGE"},
        {INVALID_CONTEXT, "CUDA_ERROR_INVALID_CONTEXT"}, {NO_BINARY_FOR_GPU, "CUDA_ERROR_NO_BINARY_FOR_GPU"}, {INVALID_PTX, "CUDA_ERROR_INVALID_PTX"},
        {UNSUPPORTED_PTX_VERSION, "CUDA_ERROR_UNSUPPORTED_PTX_VERSION"}, {INVALID_HANDLE, "CUDA_ERROR_INVALID_HANDLE"}, {NOT_FOUND, "CUDA_ERROR_NOT_FOUND"},
        {LAUNCH_OUT_OF_RESOURCES, "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES"}, {LAUNCH_FAILED, "CUDA_ERROR_LAUNCH_FAILED"}, {NOT_SUPPORTED, "CUDA_ERROR_NOT_SUPPORTED"},
    };
    auto it = names.find(code);
    *name = it == names.end() ? "CUDA_ERROR_UNKNOWN" : it->second;
    return it == names.end() ? INVALID_VALUE : SUCCESS;
}

// The explanation of the last refusal with this code, so the caller's error message says what
// the software GPU found; the plain name where there is none.
SIM_EXPORT int cuGetErrorString(int code, const char** text) {
    if (const char* e = explanation(code)) {
        *text = e;
        return SUCCESS;
    }
    return cuGetErrorName(code, text);
}
