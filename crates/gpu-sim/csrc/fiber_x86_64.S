// sim_fiber_switch(void** save, void* load): saves the callee-saved registers and the SSE and x87
// control words on the current stack, stores the stack pointer in *save, switches to the stack
// `load` (saved the same way, or prepared by fiber_prepare in scheduler.cpp) and returns there.
// A simulated CUDA thread is a fiber; switching costs a few nanoseconds, which is what lets a
// block of 1024 threads with barriers run on one OS thread.
    .text
    .globl sim_fiber_switch
    .hidden sim_fiber_switch
    .type sim_fiber_switch, @function
sim_fiber_switch:
    .cfi_startproc
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .cfi_endproc
    .size sim_fiber_switch, .-sim_fiber_switch
    .section .note.GNU-stack,"",@progbits
