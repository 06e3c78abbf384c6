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
// [0, pool_size()) and unique among concurrently running tasks (index per-thread scratch with it).
// Returns when every task has finished. Not reentrant: kernels never nest parallel regions.
void pool_run(long ntasks, TaskFn fn, void* ctx);

int pool_size();

// n <= 0 restores the default (MASKLOOP_THREADS, else the CPUs this process may run on).
void pool_set_size(int n);

int pool_default_size();

}  // namespace ml
