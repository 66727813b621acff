// NCCL as rekindle uses it, for one rank: the unique id, a communicator, f32 all-reduce (sum and
// average, in place or out of place) and broadcast, each checked against device memory and run
// when enqueued. A communicator of several ranks is refused by name: collectives across
// processes are not built yet.
#include <unistd.h>

#include <atomic>
#include <cstring>

#include "runtime.h"

namespace {

enum : int { Success = 0, SystemError = 2, InternalError = 3, InvalidArgument = 4, InvalidUsage = 5 };
enum : int { Uint8 = 1, Float32 = 7 };
enum : int { Sum = 0, Avg = 4 };

struct Comm {
    int ranks, rank;
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

size_t type_bytes(int type) { return type == Float32 ? 4 : type == Uint8 ? 1 : 0; }

int check(const char* call, const void* buffer, const char* role, size_t bytes) {
    if (bytes == 0) return Success;
    std::string problem = sim::mem_check((uint64_t)(uintptr_t)buffer, bytes);
    return problem.empty() ? Success : fail(InvalidArgument, std::string(call) + ": the " + role + " buffer " + problem);
}

}  // namespace

SIM_EXPORT int ncclGetUniqueId(UniqueId* id) {
    static std::atomic<unsigned> counter{0};
    memset(id->internal, 0, sizeof id->internal);
    snprintf(id->internal, sizeof id->internal, "gpu-sim:%d:%u", (int)getpid(), counter++);
    return Success;
}

SIM_EXPORT int ncclCommInitRank(Comm** comm, int ranks, UniqueId id, int rank) {
    if (strncmp(id.internal, "gpu-sim:", 8) != 0) return fail(InvalidArgument, "ncclCommInitRank: the unique id was not made by the software GPU's ncclGetUniqueId");
    if (ranks < 1 || rank < 0 || rank >= ranks) return fail(InvalidArgument, "ncclCommInitRank: rank " + std::to_string(rank) + " of " + std::to_string(ranks));
    if (ranks > 1) return fail(InvalidUsage, "ncclCommInitRank: communicators of " + std::to_string(ranks) + " ranks are not built in the software GPU yet (one rank only)");
    *comm = new Comm{ranks, rank};
    return Success;
}

SIM_EXPORT int ncclCommDestroy(Comm* comm) {
    delete comm;
    return Success;
}

SIM_EXPORT int ncclCommCount(const Comm* comm, int* count) {
    *count = comm->ranks;
    return Success;
}

SIM_EXPORT int ncclCommUserRank(const Comm* comm, int* rank) {
    *rank = comm->rank;
    return Success;
}

SIM_EXPORT int ncclAllReduce(const void* send, void* recv, size_t count, int type, int op, Comm* comm, void*) {
    if (!comm) return fail(InvalidArgument, "ncclAllReduce without a communicator");
    if (type != Float32) return fail(InvalidArgument, "ncclAllReduce of data type " + std::to_string(type) + ": the software GPU reduces f32 only");
    if (op != Sum && op != Avg) return fail(InvalidArgument, "ncclAllReduce with reduction " + std::to_string(op) + ": the software GPU has sum and avg");
    size_t bytes = count * type_bytes(type);
    if (int e = check("ncclAllReduce", send, "send", bytes)) return e;
    if (int e = check("ncclAllReduce", recv, "receive", bytes)) return e;
    // One rank: the sum and the average of one contribution are the contribution.
    if (send != recv) memmove(recv, send, bytes);
    return Success;
}

SIM_EXPORT int ncclBroadcast(const void* send, void* recv, size_t count, int type, int root, Comm* comm, void*) {
    if (!comm) return fail(InvalidArgument, "ncclBroadcast without a communicator");
    if (!type_bytes(type)) return fail(InvalidArgument, "ncclBroadcast of data type " + std::to_string(type) + ": the software GPU moves f32 and u8");
    if (root < 0 || root >= comm->ranks) return fail(InvalidArgument, "ncclBroadcast from root " + std::to_string(root) + " of " + std::to_string(comm->ranks) + " ranks");
    size_t bytes = count * type_bytes(type);
    if (int e = check("ncclBroadcast", recv, "receive", bytes)) return e;
    if (comm->rank == root) {
        if (int e = check("ncclBroadcast", send, "send", bytes)) return e;
        if (send != recv) memmove(recv, send, bytes);
    }
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
        default: return "unknown result code";
    }
}

SIM_EXPORT const char* ncclGetLastError(Comm*) { return last_error.c_str(); }
