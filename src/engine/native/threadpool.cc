#include "threadpool.h"

#include <sched.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

namespace ml {
namespace {

// Kernels arrive in bursts (conv, add, relu, ... one after another from JS, tens of microseconds
// apart). Spinning that long before sleeping saves a futex wake-up per kernel, and bounding it
// keeps idle workers from stealing a core from JS between bursts.
constexpr auto kSpin = std::chrono::microseconds(200);

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

class Pool {
 public:
  ~Pool() { resize(1); }

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  void resize(int n) {
    if (n < 1) n = 1;
    std::lock_guard<std::mutex> owner(owner_);
    if (n == size()) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
      ++generation_;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
    stop_ = false;
    // The generation is read here, not in the new thread: a job started before the thread runs
    // must still count as new to it, or run() would wait for it forever.
    const unsigned long gen = generation_.load(std::memory_order_acquire);
    for (int i = 1; i < n; ++i) workers_.emplace_back([this, i, gen] { loop(i, gen); });
  }

  void run(long ntasks, TaskFn fn, void* ctx, int max_threads) {
    if (ntasks <= 0) return;
    // The pool is per process, but N-API calls may come from several JS threads (worker_threads).
    // Whoever finds it busy runs its tasks alone: correct, just not parallel. Thread index 0 is
    // safe for it because kernels allocate their per-thread scratch per call.
    std::unique_lock<std::mutex> owner(owner_, std::try_to_lock);
    if (!owner.owns_lock() || workers_.empty() || ntasks == 1) {
      for (long t = 0; t < ntasks; ++t) fn(ctx, t, 0);
      return;
    }
    fn_ = fn;
    ctx_ = ctx;
    ntasks_ = ntasks;
    max_threads_ = max_threads;
    next_.store(0, std::memory_order_relaxed);
    busy_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> lock(mu_);
      generation_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_all();
    work(0);
    // Workers hold no reference to fn_/ctx_ once busy_ reaches zero, so the caller's stack frame
    // (which owns ctx) may be left only after that.
    // On an oversubscribed machine a worker may be descheduled mid-task: stop burning the core it
    // needs after a short spin.
    for (unsigned spins = 0; busy_.load(std::memory_order_acquire) != 0; ++spins) {
      if (spins < 4096) cpu_relax();
      else std::this_thread::yield();
    }
  }

 private:
  void work(int thread) {
    if (thread >= max_threads_) return;
    for (;;) {
      long t = next_.fetch_add(1, std::memory_order_relaxed);
      if (t >= ntasks_) break;
      fn_(ctx_, t, thread);
    }
  }

  void loop(int thread, unsigned long seen) {
    for (;;) {
      auto until = std::chrono::steady_clock::now() + kSpin;
      unsigned spins = 0;
      while (generation_.load(std::memory_order_acquire) == seen) {
        cpu_relax();
        if ((++spins & 255) == 0 && std::chrono::steady_clock::now() > until) {
          std::unique_lock<std::mutex> lock(mu_);
          cv_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
          break;
        }
      }
      seen = generation_.load(std::memory_order_acquire);
      if (stop_) return;
      work(thread);
      busy_.fetch_sub(1, std::memory_order_acq_rel);
    }
  }

  std::vector<std::thread> workers_;
  std::mutex owner_;  // held by the thread running a job or resizing
  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<unsigned long> generation_{0};
  bool stop_ = false;
  TaskFn fn_ = nullptr;
  void* ctx_ = nullptr;
  long ntasks_ = 0;
  int max_threads_ = 1;
  std::atomic<long> next_{0};
  std::atomic<int> busy_{0};
};

Pool& pool() {
  static Pool* p = [] {
    auto* q = new Pool();  // never destroyed: worker threads must not be joined during exit
    q->resize(pool_default_size());
    return q;
  }();
  return *p;
}

}  // namespace

int pool_default_size() {
  if (const char* env = std::getenv("MASKLOOP_THREADS")) {
    char* end = nullptr;
    long v = std::strtol(env, &end, 10);
    if (end != env && *end == '\0' && v > 0 && v <= 256) return static_cast<int>(v);
  }
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  unsigned hc = std::thread::hardware_concurrency();
  return hc > 0 ? static_cast<int>(hc) : 1;
}

void pool_run(long ntasks, TaskFn fn, void* ctx, int max_threads) { pool().run(ntasks, fn, ctx, max_threads); }

int pool_size() { return pool().size(); }

void pool_set_size(int n) { pool().resize(n <= 0 ? pool_default_size() : n); }

}  // namespace ml
