// Persistent worker pool shared by every kernel. The calling (JS) thread always takes part, so a
// pool of size n owns n - 1 std::threads.
//
// The interface is plain C types on purpose: it is called from the AVX2 translation units, and
// keeping std:: templates out of the boundary keeps AVX2-compiled inline code from being picked by
// the linker for this non-AVX translation unit (which must run on any x86-64 to report
// "unsupported CPU").
#pragma once

namespace ml {

using TaskFn = void (*)(void* ctx, long task, int thread);

// Runs fn(ctx, task, thread) for task in [0, ntasks), tasks claimed dynamically; thread is in
// [0, max_threads) and unique among concurrently running tasks, so callers index per-thread
// scratch with it (sized from a pool_size() read earlier: passing that as max_threads keeps a
// concurrent resize from another JS thread from overrunning it). Returns when every task has
// finished. Kernels never nest parallel regions; concurrent calls from different threads are
// safe (the later one runs alone).
void pool_run(long ntasks, TaskFn fn, void* ctx, int max_threads = 1 << 30);

int pool_size();

// n <= 0 restores the default (MASKLOOP_THREADS, else the CPUs this process may run on).
void pool_set_size(int n);

int pool_default_size();

}  // namespace ml
