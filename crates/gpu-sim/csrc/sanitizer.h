// What the scheduler tells AddressSanitizer or ThreadSanitizer about its fibers, when build.rs
// builds the kernel twins under one (REKINDLE_SIM_SANITIZE; scripts/gpu-sim-sanitize.sh). Only
// the twins are instrumented; the sim's own code is not, and says through these calls what it
// does. Without a sanitizer every function here is an empty inline.
//
// AddressSanitizer (memcheck): every stack switch is announced, and a reused fiber stack is
// unpoisoned (a block abandoned mid-function leaves its frames' redzones behind). `__shared__`
// arrays become plain statics (shim.h), which get redzones as thread-locals do not, so the pool
// runs one worker (driver.cpp).
//
// ThreadSanitizer (racecheck within a block): every simulated thread is a TSan fiber, and
// switches do not order memory. Only what orders memory on a GPU does: a thread's start comes
// after the launch (and after the blocks that ran before on its worker), `__syncthreads` and
// `__syncwarp` order their participants (release on arrival, acquire on leaving), and the end of
// a block comes before what runs after it. Shuffles and the wmma twins exchange values but do not
// order memory; their exchange slots are hidden from TSan. Blocks of barrier-free kernels run as
// fibers too, so two threads of a block writing one address are caught.
#pragma once
#include <cstddef>

#if defined(REKINDLE_SIM_ASAN)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#elif defined(REKINDLE_SIM_TSAN)
#include <sanitizer/tsan_interface.h>
// In the TSan runtime, not in its public header.
extern "C" void __tsan_ignore_thread_begin();
extern "C" void __tsan_ignore_thread_end();
#endif

namespace sim::sanitizer {

#if defined(REKINDLE_SIM_TSAN)
constexpr bool kRaceCheck = true;
#else
constexpr bool kRaceCheck = false;
#endif
#if defined(REKINDLE_SIM_ASAN)
constexpr bool kOneWorker = true;
#else
constexpr bool kOneWorker = false;
#endif

// The sanitizers' view of one execution context: a fiber, or the worker thread itself.
struct Context {
    void* fake_stack = nullptr;  // ASan: the context's fake stack while it is switched out
    void* tsan = nullptr;        // TSan: the fiber
    const void* stack = nullptr;  // ASan: the context's stack, once known
    size_t stack_bytes = 0;
};

// The calling worker thread as a context (its own stack is learnt on the first switch back).
inline void enter_worker(Context& worker) {
#if defined(REKINDLE_SIM_TSAN)
    worker.tsan = __tsan_get_current_fiber();
#else
    (void)worker;
#endif
}

// Makes `fiber`, running on `stack`, ready to be switched to; `stack` may hold a previous
// fiber's poisoned frames.
inline void prepare_fiber(Context& fiber, char* stack, size_t bytes) {
    fiber.stack = stack;
    fiber.stack_bytes = bytes;
#if defined(REKINDLE_SIM_ASAN)
    __asan_unpoison_memory_region(stack, bytes);
#elif defined(REKINDLE_SIM_TSAN)
    if (!fiber.tsan) fiber.tsan = __tsan_create_fiber(0);
#endif
}

// Forgets a fiber that will never be resumed (its block was abandoned); TSan's view of its
// unfinished calls goes with it.
inline void abandon_fiber(Context& fiber) {
#if defined(REKINDLE_SIM_TSAN)
    if (fiber.tsan) __tsan_destroy_fiber(fiber.tsan);
    fiber.tsan = nullptr;
#else
    (void)fiber;
#endif
}

// Called just before switching from `from` to `to`. `orders` makes everything `from` did
// happen before what `to` does next; `leaving_for_good` says `from` will never run again.
inline void before_switch(Context& from, Context& to, bool orders, bool leaving_for_good) {
#if defined(REKINDLE_SIM_ASAN)
    (void)orders;
    __sanitizer_start_switch_fiber(leaving_for_good ? nullptr : &from.fake_stack, to.stack, to.stack_bytes);
#elif defined(REKINDLE_SIM_TSAN)
    (void)from, (void)leaving_for_good;
    __tsan_switch_to_fiber(to.tsan, orders ? 0 : __tsan_switch_to_fiber_no_sync);
#else
    (void)from, (void)to, (void)orders, (void)leaving_for_good;
#endif
}

// Called first thing in `now` after a switch into it; learns the stack of the context that was
// left when that is the worker (`left`, or null).
inline void after_switch(Context& now, Context* left) {
#if defined(REKINDLE_SIM_ASAN)
    const void* bottom = nullptr;
    size_t bytes = 0;
    __sanitizer_finish_switch_fiber(now.fake_stack, &bottom, &bytes);
    if (left) left->stack = bottom, left->stack_bytes = bytes;
#else
    (void)now, (void)left;
#endif
}

// A barrier's ordering: each participant releases `token` on arrival and acquires it on leaving.
inline void release(const void* token) {
#if defined(REKINDLE_SIM_TSAN)
    __tsan_release(const_cast<void*>(token));
#else
    (void)token;
#endif
}
inline void acquire(const void* token) {
#if defined(REKINDLE_SIM_TSAN)
    __tsan_acquire(const_cast<void*>(token));
#else
    (void)token;
#endif
}

// Brackets the sim's own accesses to a warp's exchange slots, which are not kernel memory.
inline void hide_begin() {
#if defined(REKINDLE_SIM_TSAN)
    __tsan_ignore_thread_begin();
#endif
}
inline void hide_end() {
#if defined(REKINDLE_SIM_TSAN)
    __tsan_ignore_thread_end();
#endif
}

}  // namespace sim::sanitizer
