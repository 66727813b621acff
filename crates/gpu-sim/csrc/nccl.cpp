// NCCL as rekindle uses it, across the processes of one host: the unique id, communicators of any
// number of ranks, f32 all-reduce (sum and average, in place or out of place) and broadcast, each
// checked against device memory and run when enqueued (the sim's streams are synchronous).
//
// The unique id names a shared-memory segment (in the spirit of NCCL's own bootstrap, which
// names a socket). Each rank maps it, and a collective moves through it in chunks: every rank
// copies its chunk into its own slot, all wait until all have (a phase), each computes the
// result from the slots in rank order (so every rank gets the same bits, and the sum's order is
// fixed), and all wait again before the slots are reused. Every rank also posts what it called
// (collective, count, type, reduction, root): a rank that called something else is an error on
// every rank, as is a rank whose process exited while the others wait for it. A rank that is
// alive but never arrives is waited for, as NCCL does; rekindle's watchdog ends that wait.
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>

#include "runtime.h"

namespace {

enum : int { Success = 0, SystemError = 2, InternalError = 3, InvalidArgument = 4, InvalidUsage = 5, RemoteError = 6 };
enum : int { Uint8 = 1, Float32 = 7 };
enum : int { Sum = 0, Avg = 4 };
enum : int { AllReduce = 1, Broadcast = 2 };

constexpr int kMaxRanks = 64;
constexpr size_t kChunkBytes = 1 << 20;  // per rank and round

// What a rank called, posted before it arrives at a collective's first phase.
struct Call {
    int32_t collective, type, op, root;
    uint64_t count;
};

struct RankSlot {
    std::atomic<uint64_t> phase;  // phases this rank has completed
    std::atomic<int32_t> pid;
    int32_t ranks;  // the world size this rank was given
    Call call;
};

// The shared segment: this header, then one chunk of data per rank.
struct Segment {
    RankSlot ranks[kMaxRanks];
};
static_assert(std::atomic<uint64_t>::is_always_lock_free, "a shared-memory counter must be address-free");

struct Comm {
    int ranks, rank;
    Segment* segment;
    size_t bytes;
    uint64_t phase;
    std::string broken;  // why the communicator can no longer be used, or ""
    unsigned char* slot(int r) const { return (unsigned char*)(segment + 1) + (size_t)r * kChunkBytes; }
};

struct UniqueId {
    char internal[128];
};

thread_local std::string last_error;

int fail(int code, const std::string& message) {
    last_error = "gpu-sim: " + message;
    sim::report(message);
    return code;
}

// Fails, and marks `comm` unusable: the ranks no longer agree on where they are.
int break_comm(Comm* comm, int code, const std::string& message) {
    comm->broken = message;
    return fail(code, message);
}

size_t type_bytes(int type) { return type == Float32 ? 4 : type == Uint8 ? 1 : 0; }

const char* type_name(int type) { return type == Float32 ? "f32" : type == Uint8 ? "u8" : "?"; }

std::string describe(const Call& c) {
    std::string out = c.collective == AllReduce ? "ncclAllReduce" : c.collective == Broadcast ? "ncclBroadcast" : "nothing";
    out += " of " + std::to_string(c.count) + " " + type_name(c.type);
    if (c.collective == AllReduce) out += c.op == Avg ? " (avg)" : " (sum)";
    if (c.collective == Broadcast) out += " from rank " + std::to_string(c.root);
    return out;
}

int check(const char* call, const void* buffer, const char* role, size_t bytes) {
    if (bytes == 0) return Success;
    std::string problem = sim::mem_check((uint64_t)(uintptr_t)buffer, bytes);
    return problem.empty() ? Success : fail(InvalidArgument, std::string(call) + ": the " + role + " buffer " + problem);
}

// Whether process `pid` has exited (gone, or a zombie its parent has not reaped yet: its
// sockets, for NCCL, would be closed either way).
bool exited(int pid) {
    if (kill(pid, 0) != 0) return errno == ESRCH;
    char path[64], state = 0;
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    if (FILE* f = fopen(path, "r")) {
        // "pid (comm) state ...": the state follows the last ')'.
        char buf[512];
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = 0;
        if (const char* close = strrchr(buf, ')')) state = close[2];
    }
    return state == 'Z' || state == 'X';
}

std::string segment_name(const UniqueId& id) { return std::string("/rekindle-") + (id.internal + 8); }

// Marks this rank past `phase` and waits until every rank is. A rank whose process has exited
// fails the wait (NCCL's remote error); one that is alive is waited for.
int arrive_and_wait(Comm* comm, const char* what) {
    uint64_t phase = ++comm->phase;
    comm->segment->ranks[comm->rank].phase.store(phase, std::memory_order_release);
    auto last_check = std::chrono::steady_clock::now();
    for (unsigned spins = 0;; spins++) {
        int missing = -1;
        for (int r = 0; r < comm->ranks && missing < 0; r++)
            if (comm->segment->ranks[r].phase.load(std::memory_order_acquire) < phase) missing = r;
        if (missing < 0) return Success;
        if (spins < 200) {
            sched_yield();
            continue;
        }
        timespec pause{0, 200000};
        nanosleep(&pause, nullptr);
        if (std::chrono::steady_clock::now() - last_check > std::chrono::milliseconds(100)) {
            last_check = std::chrono::steady_clock::now();
            // Read the phase again after the exit check: a rank may arrive and then exit (having
            // done its part) between the scan above and this check.
            int pid = comm->segment->ranks[missing].pid.load();
            if (pid > 0 && exited(pid) && comm->segment->ranks[missing].phase.load(std::memory_order_acquire) < phase)
                return break_comm(comm, RemoteError, std::string(what) + ": rank " + std::to_string(missing) + " (process " + std::to_string(pid) + ") exited while rank " +
                                                         std::to_string(comm->rank) + " waited for it");
        }
    }
}

// One round of a collective: posts `call`, copies `mine` (n bytes) into this rank's slot,
// waits for every rank, checks that all called the same, runs `combine`, and waits again before
// the slots may be reused.
template <typename Combine> int round(Comm* comm, const Call& call, const void* mine, size_t n, const char* what, Combine combine) {
    RankSlot& self = comm->segment->ranks[comm->rank];
    self.call = call;
    if (mine && n) memcpy(comm->slot(comm->rank), mine, n);
    if (int e = arrive_and_wait(comm, what)) return e;
    for (int r = 0; r < comm->ranks; r++) {
        const Call& other = comm->segment->ranks[r].call;
        if (memcmp(&other, &call, sizeof call) != 0)
            return break_comm(comm, InvalidUsage, std::string(what) + ": rank " + std::to_string(comm->rank) + " calls " + describe(call) + " while rank " + std::to_string(r) +
                                                      " calls " + describe(other) + " (every rank must call the same collectives in the same order)");
    }
    combine();
    return arrive_and_wait(comm, what);
}

int usable(const Comm* comm, const char* what) {
    if (!comm) return fail(InvalidArgument, std::string(what) + " without a communicator");
    if (!comm->broken.empty()) return fail(InvalidUsage, std::string(what) + " on a communicator broken by an earlier error: " + comm->broken);
    return Success;
}

}  // namespace

SIM_EXPORT int ncclGetUniqueId(UniqueId* id) {
    static std::atomic<unsigned> counter{0};
    memset(id->internal, 0, sizeof id->internal);
    auto now = (unsigned long long)std::chrono::steady_clock::now().time_since_epoch().count();
    snprintf(id->internal, sizeof id->internal, "gpu-sim:nccl-%d-%u-%llx", (int)getpid(), counter++, now);
    return Success;
}

// Maps the segment the id names (the first rank to arrive creates it), joins, and waits for every
// rank; rank 0 then unlinks the name, so nothing is left behind however the job ends.
SIM_EXPORT int ncclCommInitRank(Comm** out, int ranks, UniqueId id, int rank) {
    if (strncmp(id.internal, "gpu-sim:", 8) != 0) return fail(InvalidArgument, "ncclCommInitRank: the unique id was not made by the software GPU's ncclGetUniqueId");
    if (ranks < 1 || rank < 0 || rank >= ranks) return fail(InvalidArgument, "ncclCommInitRank: rank " + std::to_string(rank) + " of " + std::to_string(ranks));
    if (ranks > kMaxRanks) return fail(InvalidUsage, "ncclCommInitRank: the software GPU joins at most " + std::to_string(kMaxRanks) + " ranks, not " + std::to_string(ranks));
    std::string name = segment_name(id);
    size_t bytes = sizeof(Segment) + (size_t)ranks * kChunkBytes;
    int fd = shm_open(name.c_str(), O_CREAT | O_RDWR, 0600);
    if (fd < 0) return fail(SystemError, "ncclCommInitRank: cannot open shared memory " + name + ": " + strerror(errno));
    // Grow only: a rank given another world size must not shrink the others' mapping.
    struct stat st;
    if (fstat(fd, &st) != 0 || ((size_t)st.st_size < bytes && ftruncate(fd, (off_t)bytes) != 0)) {
        close(fd);
        return fail(SystemError, "ncclCommInitRank: cannot size shared memory " + name + ": " + strerror(errno));
    }
    void* map = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return fail(SystemError, "ncclCommInitRank: cannot map shared memory " + name + ": " + strerror(errno));
    auto* comm = new Comm{ranks, rank, (Segment*)map, bytes, 0, ""};
    RankSlot& self = comm->segment->ranks[rank];
    if (self.pid.load() != 0) {
        delete comm;
        munmap(map, bytes);
        return fail(InvalidUsage, "ncclCommInitRank: rank " + std::to_string(rank) + " joined twice");
    }
    self.ranks = ranks;
    self.pid.store((int32_t)getpid());
    int e = arrive_and_wait(comm, "ncclCommInitRank");
    if (rank == 0 && e == Success) shm_unlink(name.c_str());
    for (int r = 0; r < ranks && e == Success; r++)
        if (comm->segment->ranks[r].ranks != ranks)
            e = fail(InvalidUsage, "ncclCommInitRank: rank " + std::to_string(rank) + " was given " + std::to_string(ranks) + " ranks and rank " + std::to_string(r) + " " +
                                       std::to_string(comm->segment->ranks[r].ranks));
    if (e != Success) {
        munmap(map, bytes);
        delete comm;
        return e;
    }
    *out = comm;
    return Success;
}

SIM_EXPORT int ncclCommDestroy(Comm* comm) {
    if (!comm) return InvalidArgument;
    munmap(comm->segment, comm->bytes);
    delete comm;
    return Success;
}

SIM_EXPORT int ncclCommAbort(Comm* comm) { return ncclCommDestroy(comm); }

SIM_EXPORT int ncclCommCount(const Comm* comm, int* count) {
    *count = comm->ranks;
    return Success;
}

SIM_EXPORT int ncclCommUserRank(const Comm* comm, int* rank) {
    *rank = comm->rank;
    return Success;
}

SIM_EXPORT int ncclAllReduce(const void* send, void* recv, size_t count, int type, int op, Comm* comm, void*) {
    if (int e = usable(comm, "ncclAllReduce")) return e;
    if (type != Float32) return fail(InvalidArgument, "ncclAllReduce of data type " + std::to_string(type) + ": the software GPU reduces f32 only");
    if (op != Sum && op != Avg) return fail(InvalidArgument, "ncclAllReduce with reduction " + std::to_string(op) + ": the software GPU has sum and avg");
    size_t bytes = count * 4;
    if (int e = check("ncclAllReduce", send, "send", bytes)) return e;
    if (int e = check("ncclAllReduce", recv, "receive", bytes)) return e;
    Call call{AllReduce, type, op, 0, count};
    size_t offset = 0;
    do {
        size_t n = std::min(kChunkBytes, bytes - offset);
        int e = round(comm, call, (const char*)send + offset, n, "ncclAllReduce", [&] {
            float* out = (float*)((char*)recv + offset);
            for (size_t i = 0; i < n / 4; i++) {
                float sum = 0.0f;
                for (int r = 0; r < comm->ranks; r++) sum += ((const float*)comm->slot(r))[i];
                out[i] = op == Avg ? sum / (float)comm->ranks : sum;
            }
        });
        if (e) return e;
        offset += n;
    } while (offset < bytes);
    return Success;
}

SIM_EXPORT int ncclBroadcast(const void* send, void* recv, size_t count, int type, int root, Comm* comm, void*) {
    if (int e = usable(comm, "ncclBroadcast")) return e;
    if (!type_bytes(type)) return fail(InvalidArgument, "ncclBroadcast of data type " + std::to_string(type) + ": the software GPU moves f32 and u8");
    if (root < 0 || root >= comm->ranks) return fail(InvalidArgument, "ncclBroadcast from root " + std::to_string(root) + " of " + std::to_string(comm->ranks) + " ranks");
    size_t bytes = count * type_bytes(type);
    if (int e = check("ncclBroadcast", recv, "receive", bytes)) return e;
    bool is_root = comm->rank == root;
    if (is_root)
        if (int e = check("ncclBroadcast", send, "send", bytes)) return e;
    Call call{Broadcast, type, 0, root, count};
    size_t offset = 0;
    do {
        size_t n = std::min(kChunkBytes, bytes - offset);
        int e = round(comm, call, is_root ? (const char*)send + offset : nullptr, n, "ncclBroadcast", [&] { memcpy((char*)recv + offset, comm->slot(root), n); });
        if (e) return e;
        offset += n;
    } while (offset < bytes);
    return Success;
}

SIM_EXPORT int ncclGroupStart() { return Success; }
SIM_EXPORT int ncclGroupEnd() { return Success; }

SIM_EXPORT const char* ncclGetErrorString(int code) {
    switch (code) {
        case Success: return "no error";
        case SystemError: return "unhandled system error";
        case InternalError: return "internal error";
        case InvalidArgument: return "invalid argument";
        case InvalidUsage: return "invalid usage";
        case RemoteError: return "remote process exited or there was a network error";
        default: return "unknown result code";
    }
}

SIM_EXPORT const char* ncclGetLastError(Comm*) { return last_error.c_str(); }
