// Runs a launch's blocks: blocks in parallel on a pool of worker threads, the threads of one block
// as fibers on one worker, switched at barriers and warp operations (fiber_x86_64.S). A block
// whose threads can no longer all meet (some exited, or wait at a different barrier) fails the
// launch with a message naming them; on a GPU that is a hang or undefined behaviour.
//
// Kernels whose PTX has no barrier, shuffle or warp-wide instruction cannot synchronise, so
// their threads run one after another on the worker's own stack, without fibers (except under
// ThreadSanitizer, which needs each thread to be its own fiber: sanitizer.h); a twin that
// synchronises anyway is reported (its source and its PTX disagree).
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>

#include "runtime.h"
#include "sanitizer.h"

extern "C" void sim_fiber_switch(void** save, void* load);

namespace sim {

thread_local Here* here = nullptr;

namespace {

enum class State : uint8_t { Fresh, Ready, Barrier, Warp, Done };

struct Fiber {
    void* sp = nullptr;
    char* stack = nullptr;
    State state = State::Fresh;
    sanitizer::Context context;  // kept across blocks: a TSan fiber is costly to create
};

// One warp's operation in progress. Contributions go into one of two buffers by the parity of
// the operation's number: a lane cannot reach operation g + 2 (which reuses g's buffer) before
// every lane has passed g + 1, so every lane has read g's results by then.
struct WarpOp {
    unsigned arrived, mask;
    size_t bytes;
    const char* what;
    uint64_t generation;
    char tokens[2];  // what `__syncwarp` releases and acquires under TSan, by generation parity
    alignas(16) unsigned char slots[2][32][kExchangeStride];
};

// "3", "3..7" or "3..7, 9" for a sorted list of thread numbers (at most a few ranges shown).
std::string ranges(const std::vector<unsigned>& ids) {
    std::string out;
    size_t shown = 0;
    for (size_t i = 0; i < ids.size();) {
        size_t j = i;
        while (j + 1 < ids.size() && ids[j + 1] == ids[j] + 1) j++;
        if (shown == 4) {
            out += ", ...";
            break;
        }
        if (!out.empty()) out += ", ";
        out += std::to_string(ids[i]);
        if (j > i) out += ".." + std::to_string(ids[j]);
        shown++;
        i = j + 1;
    }
    return out;
}

std::string hex(unsigned v) {
    char buf[16];
    snprintf(buf, sizeof buf, "0x%08x", v);
    return buf;
}

void fiber_entry();

// The blocks one worker thread runs, one at a time.
class Block {
public:
    std::string run(const Launch& launch, uint64_t linear_block);
    void syncthreads();
    const unsigned char* exchange(unsigned mask, const void* mine, size_t bytes, const char* what, bool orders_memory);
    void entry();

private:
    Dim3 thread_of(unsigned t) const {
        const Dim3& d = here_.block_dim;
        return Dim3{t % d.x, (t / d.x) % d.y, t / (d.x * d.y)};
    }
    char* take_stack();
    void resume(unsigned t);
    void yield(State state);
    void fail(std::string message);
    std::string deadlock() const;
    std::string where() const;

    Here here_{};
    const Launch* launch_ = nullptr;
    std::string violation_;
    std::vector<Fiber> fibers_;
    std::vector<WarpOp> warps_;
    std::vector<char*> free_stacks_;
    void* scheduler_sp_ = nullptr;
    sanitizer::Context worker_;
    unsigned count_ = 0, current_ = 0, done_ = 0, at_barrier_ = 0;
    uint64_t barriers_passed_ = 0;
    char barrier_tokens_[2];  // what `__syncthreads` releases and acquires under TSan, by parity
    std::string error_;
};

thread_local Block* current_block = nullptr;

std::string Block::where() const {
    const Dim3& b = here_.block;
    return std::string("kernel ") + launch_->twin->name + " block (" + std::to_string(b.x) + "," + std::to_string(b.y) + "," +
           std::to_string(b.z) + ")";
}

char* Block::take_stack() {
    if (!free_stacks_.empty()) {
        char* s = free_stacks_.back();
        free_stacks_.pop_back();
        return s;
    }
    size_t page = (size_t)sysconf(_SC_PAGESIZE), size = config().stack_bytes;
    void* base = mmap(nullptr, size + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED) {
        fprintf(stderr, "gpu-sim: cannot map a %zu-byte stack for a simulated thread\n", size);
        abort();
    }
    // A guard page below the stack: an overflow faults instead of writing over a neighbour.
    mprotect(base, page, PROT_NONE);
    return (char*)base + page;
}

// Prepares a fresh stack so that switching to it "returns" into fiber_entry (see
// fiber_x86_64.S for the frame it pops): control words, six registers, the entry address, and a
// zero return address for the entry itself, with the stack aligned as at a call.
void* prepare(char* stack) {
    uintptr_t top = ((uintptr_t)stack + config().stack_bytes) & ~(uintptr_t)15;
    uint64_t* base = (uint64_t*)(top - 8);
    base[0] = 0;
    base[-1] = (uint64_t)(uintptr_t)&fiber_entry;
    for (int r = 2; r <= 7; r++) base[-r] = 0;
    uint32_t* control = (uint32_t*)(base - 8);
    control[0] = 0x1f80;  // MXCSR: all exceptions masked, round to nearest
    control[1] = 0x037f;  // x87 control word, as at process start
    return base - 8;
}

void fiber_entry() {
    current_block->entry();
    __builtin_unreachable();
}

void Block::entry() {
    Fiber& f = fibers_[current_];
    sanitizer::after_switch(f.context, &worker_);
    launch_->twin->call(launch_->args);
    f.state = State::Done;
    done_++;
    sanitizer::before_switch(f.context, worker_, true, true);
    void* discard;
    sim_fiber_switch(&discard, scheduler_sp_);
}

void Block::resume(unsigned t) {
    Fiber& f = fibers_[t];
    bool fresh = f.state == State::Fresh;
    if (fresh) {
        f.stack = take_stack();
        f.sp = prepare(f.stack);
        sanitizer::prepare_fiber(f.context, f.stack, config().stack_bytes);
        f.state = State::Ready;
    }
    current_ = t;
    here_.thread = thread_of(t);
    sanitizer::before_switch(worker_, f.context, fresh, false);
    sim_fiber_switch(&scheduler_sp_, f.sp);
    sanitizer::after_switch(worker_, nullptr);
    if (f.state == State::Done) {
        free_stacks_.push_back(f.stack);
        f.stack = nullptr;
    }
}

void Block::yield(State state) {
    Fiber& f = fibers_[current_];
    f.state = state;
    sanitizer::before_switch(f.context, worker_, false, false);
    sim_fiber_switch(&f.sp, scheduler_sp_);
    sanitizer::after_switch(f.context, &worker_);
}

void Block::fail(std::string message) {
    if (error_.empty()) error_ = where() + ": " + message;
    yield(State::Warp);  // never resumed: the scheduler sees the error and abandons the block
}

std::string Block::run(const Launch& launch, uint64_t linear) {
    launch_ = &launch;
    current_block = this;
    here = &here_;
    here_.grid_dim = launch.grid;
    here_.block_dim = launch.block;
    here_.block = Dim3{(unsigned)(linear % launch.grid.x), (unsigned)((linear / launch.grid.x) % launch.grid.y),
                       (unsigned)(linear / ((uint64_t)launch.grid.x * launch.grid.y))};
    count_ = launch.block.x * launch.block.y * launch.block.z;
    error_.clear();
    violation_.clear();
    if (!launch.synchronizes && !sanitizer::kRaceCheck) {
        for (unsigned t = 0; t < count_; t++) {
            here_.thread = thread_of(t);
            launch.twin->call(launch.args);
            if (!violation_.empty()) return where() + ": " + violation_;
        }
        return "";
    }
    sanitizer::enter_worker(worker_);
    if (fibers_.size() < count_) fibers_.resize(count_);
    for (unsigned t = 0; t < count_; t++) fibers_[t].state = State::Fresh;
    warps_.resize((count_ + 31) / 32);
    for (WarpOp& w : warps_) w.arrived = 0, w.generation = 0;
    done_ = at_barrier_ = 0;
    while (done_ < count_ && error_.empty()) {
        bool progressed = false;
        for (unsigned t = 0; t < count_ && error_.empty(); t++) {
            if (fibers_[t].state == State::Fresh || fibers_[t].state == State::Ready) {
                resume(t);
                progressed = true;
            }
        }
        if (!progressed && error_.empty()) error_ = where() + ": " + deadlock();
    }
    for (unsigned t = 0; t < count_; t++) {
        Fiber& f = fibers_[t];
        if (f.state != State::Fresh && f.state != State::Done) sanitizer::abandon_fiber(f.context);
        if (f.stack) free_stacks_.push_back(f.stack);
        f.stack = nullptr;
    }
    return error_;
}

void Block::syncthreads() {
    if (!launch_->synchronizes) {
        violation_ = "calls __syncthreads, but its PTX has no barrier (the host twin and the PTX disagree)";
        return;
    }
    const char* token = &barrier_tokens_[barriers_passed_ & 1];
    sanitizer::release(token);
    if (++at_barrier_ == count_) {
        for (unsigned t = 0; t < count_; t++)
            if (fibers_[t].state == State::Barrier) fibers_[t].state = State::Ready;
        at_barrier_ = 0;
        barriers_passed_++;
    } else {
        yield(State::Barrier);
    }
    sanitizer::acquire(token);
}

const unsigned char* Block::exchange(unsigned mask, const void* mine, size_t bytes, const char* what, bool orders_memory) {
    if (!launch_->synchronizes) {
        violation_ = std::string("calls ") + what + ", but its PTX has no warp-wide instruction (the host twin and the PTX disagree)";
        static thread_local unsigned char nothing[32][kExchangeStride];
        return &nothing[0][0];
    }
    unsigned lane = current_ & 31, warp = current_ >> 5;
    if (!((mask >> lane) & 1)) fail("thread " + std::to_string(current_) + " calls " + what + " with mask " + hex(mask) + ", which leaves its own lane out");
    WarpOp& w = warps_[warp];
    if (w.arrived == 0) {
        w.mask = mask;
        w.bytes = bytes;
        w.what = what;
    } else if (w.mask != mask || w.bytes != bytes || (w.what != what && strcmp(w.what, what) != 0)) {
        fail("warp " + std::to_string(warp) + ": thread " + std::to_string(current_) + " reaches " + what + " (mask " + hex(mask) + ", " +
             std::to_string(bytes) + " bytes) while other lanes wait at " + w.what + " (mask " + hex(w.mask) + ", " + std::to_string(w.bytes) +
             " bytes)");
    }
    unsigned char* slots = &w.slots[w.generation & 1][0][0];
    const char* token = &w.tokens[w.generation & 1];
    if (orders_memory) sanitizer::release(token);
    sanitizer::hide_begin();
    switch (bytes) {
        case 0: break;
        case 4: memcpy(slots + lane * kExchangeStride, mine, 4); break;
        case 8: memcpy(slots + lane * kExchangeStride, mine, 8); break;
        default: memcpy(slots + lane * kExchangeStride, mine, bytes); break;
    }
    sanitizer::hide_end();
    w.arrived |= 1u << lane;
    if (w.arrived == w.mask) {
        for (unsigned l = 0; l < 32; l++)
            if (((mask >> l) & 1) && l != lane) fibers_[warp * 32 + l].state = State::Ready;
        w.arrived = 0;
        w.generation++;
    } else {
        yield(State::Warp);
    }
    if (orders_memory) sanitizer::acquire(token);
    return slots;
}

std::string Block::deadlock() const {
    std::vector<unsigned> barrier, exited;
    for (unsigned t = 0; t < count_; t++) {
        if (fibers_[t].state == State::Barrier) barrier.push_back(t);
        if (fibers_[t].state == State::Done) exited.push_back(t);
    }
    std::string out = "threads can no longer all meet (on a GPU: a hang or undefined behaviour):";
    if (!barrier.empty()) out += " threads " + ranges(barrier) + " wait at __syncthreads;";
    for (size_t w = 0; w < warps_.size(); w++) {
        const WarpOp& op = warps_[w];
        if (op.arrived == 0) continue;
        std::vector<unsigned> waiting, missing, absent;
        for (unsigned l = 0; l < 32; l++) {
            unsigned t = (unsigned)w * 32 + l;
            if ((op.arrived >> l) & 1) waiting.push_back(t);
            else if ((op.mask >> l) & 1) (t < count_ ? missing : absent).push_back(t);
        }
        out += " threads " + ranges(waiting) + " wait at " + op.what + " (mask " + hex(op.mask) + ")";
        if (!missing.empty()) out += " for threads " + ranges(missing);
        if (!absent.empty()) out += " and for threads " + ranges(absent) + ", which do not exist in a block of " + std::to_string(count_);
        out += ";";
    }
    if (!exited.empty()) out += " threads " + ranges(exited) + " have exited";
    return out;
}

// The worker pool: the launching thread and `config().threads - 1` workers take blocks from one
// counter. Launches are serialised (one process's streams are executed in issue order).
class Pool {
public:
    static Pool& get() {
        static Pool* pool = new Pool();  // never destroyed: workers may be waiting at exit
        return *pool;
    }

    std::string run(const Launch& launch) {
        std::lock_guard<std::mutex> one_launch(launch_mutex_);
        total_ = (uint64_t)launch.grid.x * launch.grid.y * launch.grid.z;
        next_ = 0;
        failed_ = false;
        error_.clear();
        if (total_ == 1 || config().threads <= 1) {
            work(launch);
            return error_;
        }
        start_workers();
        {
            std::lock_guard<std::mutex> lock(mutex_);
            launch_ = &launch;
            generation_++;
            busy_ = (unsigned)workers_;
        }
        wake_.notify_all();
        work(launch);
        std::unique_lock<std::mutex> lock(mutex_);
        finished_.wait(lock, [&] { return busy_ == 0; });
        return error_;
    }

private:
    void start_workers() {
        if (workers_) return;
        workers_ = config().threads - 1;
        for (size_t i = 0; i < workers_; i++) std::thread([this] { worker(); }).detach();
    }

    void worker() {
        uint64_t seen = 0;
        std::unique_lock<std::mutex> lock(mutex_);
        for (;;) {
            wake_.wait(lock, [&] { return generation_ != seen; });
            seen = generation_;
            const Launch* launch = launch_;
            lock.unlock();
            work(*launch);
            lock.lock();
            if (--busy_ == 0) finished_.notify_one();
        }
    }

    void work(const Launch& launch) {
        static thread_local Block block;
        for (;;) {
            if (failed_.load(std::memory_order_relaxed)) return;
            uint64_t i = next_.fetch_add(1, std::memory_order_relaxed);
            if (i >= total_) return;
            std::string e = block.run(launch, i);
            if (!e.empty()) {
                std::lock_guard<std::mutex> lock(mutex_);
                if (error_.empty()) error_ = e;
                failed_ = true;
            }
        }
    }

    std::mutex launch_mutex_, mutex_;
    std::condition_variable wake_, finished_;
    const Launch* launch_ = nullptr;
    uint64_t generation_ = 0, total_ = 0;
    unsigned busy_ = 0;
    size_t workers_ = 0;
    std::atomic<uint64_t> next_{0};
    std::atomic<bool> failed_{false};
    std::string error_;
};

}  // namespace

void syncthreads() { current_block->syncthreads(); }
void syncwarp(unsigned mask) { current_block->exchange(mask, nullptr, 0, "__syncwarp", true); }
const unsigned char* warp_exchange(unsigned mask, const void* mine, size_t bytes, const char* what) {
    return current_block->exchange(mask, mine, bytes, what, false);
}

// Per-kernel launches and time, printed at exit (REKINDLE_SIM_PROFILE): where the sim spends
// its time, not what a GPU would.
struct Profile {
    std::mutex mutex;
    std::map<std::string, std::pair<uint64_t, double>> kernels;
    static Profile* get() {
        static Profile* profile = [] {
            if (!getenv("REKINDLE_SIM_PROFILE")) return (Profile*)nullptr;
            atexit([] { Profile::get()->print(); });
            return new Profile();
        }();
        return profile;
    }
    void print() {
        std::vector<std::pair<double, std::string>> rows;
        double total = 0;
        for (auto& [name, v] : kernels) rows.push_back({v.second, name}), total += v.second;
        std::sort(rows.rbegin(), rows.rend());
        fprintf(stderr, "gpu-sim profile: device memory\n%s", mem_report().c_str());
        fprintf(stderr, "gpu-sim profile: %.1f s in kernels\n", total);
        for (auto& [seconds, name] : rows) fprintf(stderr, "  %8.3f s %5.1f%% %8llu launches  %s\n", seconds, 100 * seconds / total, (unsigned long long)kernels[name].first, name.c_str());
    }
};

std::string run_grid(const Launch& launch) {
    Profile* profile = Profile::get();
    if (!profile) return Pool::get().run(launch);
    auto start = std::chrono::steady_clock::now();
    std::string result = Pool::get().run(launch);
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::lock_guard<std::mutex> lock(profile->mutex);
    auto& entry = profile->kernels[launch.twin->name];
    entry.first++;
    entry.second += seconds;
    return result;
}

}  // namespace sim
