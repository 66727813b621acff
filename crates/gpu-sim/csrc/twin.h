// The host twin of a kernel: a function of the launch's argument pointers that calls the kernel
// with its parameters read from them, and the sizes of those parameters, both derived from the
// kernel's own C++ signature (so the PTX's `.param` list can be checked against it).
#pragma once
#include <cstdint>
#include <type_traits>
#include <utility>

#include "runtime.h"

namespace sim {

template <typename F> struct TwinOf;

template <typename... Params> struct TwinOf<void (*)(Params...)> {
    static constexpr uint32_t count = sizeof...(Params);
    static constexpr uint32_t sizes[count ? count : 1] = {(uint32_t)sizeof(Params)...};

    template <void (*Kernel)(Params...), size_t... I> static void call_with(void** args, std::index_sequence<I...>) {
        Kernel(*static_cast<std::remove_cv_t<Params>*>(args[I])...);
    }
    template <void (*Kernel)(Params...)> static void call(void** args) { call_with<Kernel>(args, std::index_sequence_for<Params...>{}); }
};

}  // namespace sim

#define SIM_TWIN(kernel) \
    sim::Twin { #kernel, &sim::TwinOf<decltype(&kernel)>::call<&kernel>, sim::TwinOf<decltype(&kernel)>::sizes, sim::TwinOf<decltype(&kernel)>::count }
