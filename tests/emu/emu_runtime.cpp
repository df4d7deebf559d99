/* emu_runtime.cpp: the CUDA emulator's runtime (see include/cuda_runtime.h):
 * device memory with guard pages and host-access detection, streams,
 * copies, and the grid scheduler that runs kernels on the calling thread.
 *
 * Scheduling: blocks run one after another; the threads of a block run as
 * coroutines switched only at barriers, warp by warp in thread order, so a
 * barrier is released once every thread still running has reached it.
 * Block 0 of every launch runs this way; when none of its threads met a
 * barrier the kernel has none (barriers must be uniform in a block) and the
 * other blocks' threads run as plain calls, which keeps element-wise
 * kernels fast. A barrier met in such a block is reported as divergent.
 *
 * Memory: every allocation is its own mapping [guard][data][guard] with the
 * data ending at the second guard page (256-byte aligned, as cudaMalloc
 * aligns). Data pages are closed (PROT_NONE) while no emulated device work
 * runs. A fault on them from host code is reported with a backtrace; from
 * device work (a kernel, or a library call on this thread) it opens the
 * allocation, which stays open until no thread runs device work. Faults on
 * guard pages are out-of-bounds accesses and reported. New allocations
 * hold NaNs, as device memory holds whatever was there before. */
#include "cuda_runtime.h"

#include <errno.h>
#include <execinfo.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

thread_local uint3 threadIdx, blockIdx;
thread_local dim3 blockDim, gridDim;

namespace dx_emu {

/* ---- reports ---- */

static thread_local const char *t_kernel; /* the kernel or library call running on this thread */

[[noreturn]] void fatal(const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fprintf(stderr, "CUDA emulator: %s%s%s\n", msg, t_kernel ? " in " : "", t_kernel ? t_kernel : "");
  void *bt[64];
  int n = backtrace(bt, 64);
  backtrace_symbols_fd(bt, n, 2);
  abort();
}

/* ---- device memory ---- */

struct alloc_rec {
  char *map;       /* the whole mapping */
  size_t map_len;
  char *data;      /* first data page */
  size_t data_len; /* data pages' bytes */
  char *ptr;       /* what cudaMalloc returned (NULL: free slot) */
  size_t size;
  volatile int open;
};

#define MAX_ALLOCS (1 << 16)
static alloc_rec g_allocs[MAX_ALLOCS];
static volatile int g_n_allocs; /* slots in use or once used (scan bound) */
static pthread_mutex_t g_mem_lock = PTHREAD_MUTEX_INITIALIZER;
static size_t g_used, g_total;
static size_t g_page;
static int g_device_threads; /* threads running device work (under g_mem_lock) */
static thread_local int t_depth;

static size_t emulated_total(void) {
  if (!g_total) {
    const char *e = getenv("DEMIX_EMU_DEVICE_MB");
    long mb = e ? atol(e) : 0;
    g_total = (size_t)(mb > 0 ? mb : 8192) << 20;
  }
  return g_total;
}

/* Open a's data pages for device work. `open` cannot be stale: close_all
 * runs under g_mem_lock only while no thread does device work, and
 * device_enter takes that lock. */
static void open_alloc(alloc_rec *a) {
  if (a->open) return;
  mprotect(a->data, a->data_len, PROT_READ | PROT_WRITE);
  a->open = 1;
}

static void close_all(void) { /* with g_mem_lock held and no device work running */
  for (int i = 0; i < g_n_allocs; i++) {
    alloc_rec *a = &g_allocs[i];
    if (a->ptr && a->open) {
      a->open = 0;
      mprotect(a->data, a->data_len, PROT_NONE);
    }
  }
}

void device_enter(void) {
  if (t_depth++) return;
  pthread_mutex_lock(&g_mem_lock);
  g_device_threads++;
  pthread_mutex_unlock(&g_mem_lock);
}

void device_leave(void) {
  if (--t_depth) return;
  pthread_mutex_lock(&g_mem_lock);
  if (--g_device_threads == 0) close_all();
  pthread_mutex_unlock(&g_mem_lock);
}

/* The allocation whose data (or, with whole_mapping, whose mapping with
 * its guard pages) holds p. Lock-free: the fault handler uses it. */
static alloc_rec *find(const void *p, bool whole_mapping = false) {
  const char *c = (const char *)p;
  const int n = g_n_allocs;
  for (int i = 0; i < n; i++) {
    alloc_rec *a = &g_allocs[i];
    if (!a->ptr) continue;
    if (whole_mapping ? c >= a->map && c < a->map + a->map_len : c >= a->ptr && c < a->ptr + a->size) return a;
  }
  return NULL;
}

bool is_device(const void *p) { return p && find(p) != NULL; }

bool device_range(const void *p, size_t n) {
  if (!p) return false;
  alloc_rec *a = find(p);
  if (!a || (size_t)((const char *)p - a->ptr) + n > a->size) return false;
  open_alloc(a); /* library emulations run their own threads (OpenBLAS) on it */
  return true;
}

static void on_segv(int sig, siginfo_t *si, void *uc_) {
  (void)uc_;
  char *addr = (char *)si->si_addr;
  alloc_rec *a = find(addr, true);
  if (a) {
    if (addr >= a->ptr && addr < a->ptr + a->size) {
      if (t_depth > 0) {
        open_alloc(a);
        return; /* device work: retry the access */
      }
      fatal("host code accessed device memory at %p (offset %zu of an allocation of %zu bytes)", (void *)addr,
            (size_t)(addr - a->ptr), a->size);
    }
    if (addr >= a->ptr + a->size)
      fatal("access %zu bytes past the end of a device allocation of %zu bytes at %p", (size_t)(addr - a->ptr - a->size),
            a->size, (void *)a->ptr);
    fatal("access %zu bytes before the start of a device allocation of %zu bytes at %p", (size_t)(a->ptr - addr),
          a->size, (void *)a->ptr);
  }
  /* Not ours: the default action. */
  signal(sig, SIG_DFL);
  raise(sig);
}

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static void init_once(void) {
  g_page = (size_t)sysconf(_SC_PAGESIZE);
  emulated_total();
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_segv;
  sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, NULL);
}
static void init(void) { pthread_once(&g_once, init_once); }

/* ---- streams ---- */

struct stream_rec {
  int live;
};

bool stream_valid(cudaStream_t s) { return !s || ((stream_rec *)s)->live == 0x5ea3; }

/* ---- scheduler ---- */

#define STACK_BYTES (256 << 10)

enum { TH_READY, TH_BLOCK_BAR, TH_WARP_BAR, TH_DONE };

struct sched {
  unsigned char *state;
  uint3 *idx;               /* threadIdx of each thread */
  unsigned long long *slot; /* warp exchange */
  int *warp_alive;          /* per warp: threads not done */
  int n, cur;
  bool coroutines;
  long barriers; /* barriers met in this block */
  void (*body)(void *);
  void *arg;
};

static thread_local sched *t_sched;

/* Coroutines, one per thread index, made once per host thread; each loops:
 * run the kernel body for the current block, mark itself done, yield. The
 * switch saves only the callee-saved registers (x86-64); elsewhere it is
 * swapcontext, correct but slower. */
#if defined(__x86_64__)
extern "C" void dx_emu_switch(void **save_sp, void *to_sp);
asm(".text\n"
    ".globl dx_emu_switch\n"
    ".type dx_emu_switch,@function\n"
    "dx_emu_switch:\n"
    "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
    "  movq %rsp, (%rdi)\n"
    "  movq %rsi, %rsp\n"
    "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
    "  ret\n"
    ".size dx_emu_switch, .-dx_emu_switch\n");

struct co_ctx {
  void *sp;
};
static void co_make(co_ctx *c, char *stack, size_t size, void (*fn)(void)) {
  void **sp = (void **)(((uintptr_t)(stack + size)) & ~(uintptr_t)15);
  *--sp = NULL;         /* fn's return address slot: fn never returns */
  *--sp = (void *)fn;   /* where the first switch's ret goes */
  for (int k = 0; k < 6; k++) *--sp = NULL; /* rbp rbx r12-r15 */
  c->sp = sp;
}
static inline void co_switch(co_ctx *from, co_ctx *to) { dx_emu_switch(&from->sp, to->sp); }
#else
struct co_ctx {
  ucontext_t uc;
};
static void co_make(co_ctx *c, char *stack, size_t size, void (*fn)(void)) {
  getcontext(&c->uc);
  c->uc.uc_stack.ss_sp = stack;
  c->uc.uc_stack.ss_size = size;
  c->uc.uc_link = NULL;
  makecontext(&c->uc, fn, 0);
}
static inline void co_switch(co_ctx *from, co_ctx *to) { swapcontext(&from->uc, &to->uc); }
#endif

struct coroutines {
  co_ctx *co;
  char **stack;
  int n;
  co_ctx sched;
  ~coroutines() {
    for (int i = 0; i < n; i++) munmap(stack[i], STACK_BYTES);
    free(co);
    free(stack);
  }
};
static thread_local coroutines t_co;

static void coroutine_main(void) {
  for (;;) {
    sched *s = t_sched;
    const int me = s->cur;
    s->body(s->arg);
    s->state[me] = TH_DONE;
    s->warp_alive[me >> 5]--;
    co_switch(&t_co.co[me], &t_co.sched);
  }
}

static void coroutines_reserve(int n) {
  if (n <= t_co.n) return;
  co_ctx *nc = (co_ctx *)realloc(t_co.co, (size_t)n * sizeof *nc);
  char **ns = (char **)realloc(t_co.stack, (size_t)n * sizeof *ns);
  if (nc) t_co.co = nc;
  if (ns) t_co.stack = ns;
  if (!nc || !ns) fatal("out of memory for coroutines");
  for (int i = t_co.n; i < n; i++) {
    void *m = mmap(NULL, STACK_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) fatal("cannot map a coroutine stack");
    mprotect(m, g_page, PROT_NONE); /* overflow guard */
    t_co.stack[i] = (char *)m;
    /* Stack tops staggered by cache lines: at one offset in every stack the
     * coroutines' frames would all fall in the same cache sets. */
    co_make(&t_co.co[i], (char *)m, STACK_BYTES - 4096 - (size_t)(i * 3 % 64) * 64, coroutine_main);
    t_co.n = i + 1;
  }
}

static inline void enter_thread(sched *s, int i) {
  s->cur = i;
  threadIdx = s->idx[i];
}

/* Wait at a barrier (__syncthreads, or one step of a warp shuffle). */
static void yield_at(int state) {
  sched *s = t_sched;
  if (!s) fatal("a barrier or warp shuffle outside a kernel");
  if (!s->coroutines)
    fatal("a barrier in a block whose threads run without one (block 0 met none): barriers must be uniform");
  s->barriers++;
  const int me = s->cur;
  s->state[me] = (unsigned char)state;
  co_switch(&t_co.co[me], &t_co.sched);
  enter_thread(s, me);
}

unsigned long long warp_exchange(unsigned long long mine, int src_lane, int width) {
  sched *s = t_sched;
  if (!s) fatal("a warp shuffle outside a kernel");
  const int me = s->cur;
  const int base = me - me % width;
  s->slot[me] = mine;
  yield_at(TH_WARP_BAR);
  const int src = base + src_lane;
  unsigned long long got = src < s->n && s->state[src] != TH_DONE ? s->slot[src] : mine;
  yield_at(TH_WARP_BAR);
  return got;
}

/* Run one block with coroutines; returns the barriers met. Each warp runs
 * until all of its threads wait at __syncthreads or are done (its warp
 * barriers released as soon as every live lane reached one); then the
 * block barrier is released for all. */
static long run_block_coroutines(sched *s) {
  coroutines_reserve(s->n);
  s->coroutines = true;
  s->barriers = 0;
  const int n = s->n, warps = (n + 31) >> 5;
  memset(s->state, TH_READY, (size_t)n);
  for (int w = 0; w < warps; w++) s->warp_alive[w] = (w + 1) * 32 <= n ? 32 : n - w * 32;
  for (;;) {
    int alive = 0;
    for (int w = 0; w < warps; w++) {
      const int lo = w * 32, hi = lo + 32 < n ? lo + 32 : n;
      for (;;) {
        bool ran = false;
        for (int i = lo; i < hi; i++) {
          if (s->state[i] != TH_READY) continue;
          enter_thread(s, i);
          co_switch(&t_co.sched, &t_co.co[i]);
          ran = true;
        }
        if (!ran) break;
        int at_warp = 0;
        for (int i = lo; i < hi; i++) at_warp += s->state[i] == TH_WARP_BAR;
        if (!at_warp) break;
        if (at_warp != s->warp_alive[w])
          fatal("block (%u,%u,%u) warp %d: %d lanes wait at a warp shuffle, %d at __syncthreads", blockIdx.x,
                blockIdx.y, blockIdx.z, w, at_warp, s->warp_alive[w] - at_warp);
        for (int i = lo; i < hi; i++)
          if (s->state[i] == TH_WARP_BAR) s->state[i] = TH_READY;
      }
      alive += s->warp_alive[w];
    }
    if (!alive) break;
    for (int i = 0; i < n; i++)
      if (s->state[i] == TH_BLOCK_BAR) s->state[i] = TH_READY;
  }
  return s->barriers;
}

static thread_local cudaError_t t_last_error = cudaSuccess;

/* Record e as the thread's last error (cudaGetLastError) and return it. */
static cudaError_t fail(cudaError_t e) {
  t_last_error = e;
  return e;
}

void run_grid(const launch_cfg &cfg, void (*body)(void *), void *arg) {
  init();
  const dim3 g = cfg.grid, b = cfg.block;
  const unsigned long long threads = (unsigned long long)b.x * b.y * b.z;
  if (!g.x || !g.y || !g.z || !b.x || !b.y || !b.z || threads > 1024 || b.x > 1024 || b.y > 1024 || b.z > 64 ||
      g.x > 0x7fffffffu || g.y > 65535 || g.z > 65535 || cfg.smem > 48 * 1024) {
    fprintf(stderr, "CUDA emulator: kernel %s: invalid launch configuration grid (%u,%u,%u) block (%u,%u,%u)\n",
            cfg.name, g.x, g.y, g.z, b.x, b.y, b.z);
    fail(cudaErrorInvalidConfiguration);
    return;
  }
  if (!stream_valid(cfg.stream)) {
    fail(cudaErrorInvalidResourceHandle);
    return;
  }
  if (t_sched) fatal("kernel %s launched from inside a kernel", cfg.name);
  const int n = (int)threads;
  sched s;
  s.state = (unsigned char *)calloc((size_t)n, 1);
  s.idx = (uint3 *)calloc((size_t)n, sizeof *s.idx);
  s.slot = (unsigned long long *)calloc((size_t)n, sizeof *s.slot);
  s.warp_alive = (int *)calloc((size_t)(n + 31) / 32, sizeof *s.warp_alive);
  if (!s.state || !s.idx || !s.slot || !s.warp_alive) fatal("out of memory");
  for (int i = 0; i < n; i++)
    s.idx[i] = uint3{(unsigned)i % b.x, ((unsigned)i / b.x) % b.y, (unsigned)i / (b.x * b.y)};
  s.n = n;
  s.cur = 0;
  s.body = body;
  s.arg = arg;
  const char *outer = t_kernel;
  t_kernel = cfg.name;
  t_sched = &s;
  gridDim = g;
  blockDim = b;
  device_enter();
  enum { UNDECIDED, COROUTINES, DIRECT } mode = UNDECIDED;
  for (unsigned z = 0; z < g.z; z++)
    for (unsigned y = 0; y < g.y; y++)
      for (unsigned x = 0; x < g.x; x++) {
        blockIdx.x = x;
        blockIdx.y = y;
        blockIdx.z = z;
        if (mode != DIRECT) {
          const long met = run_block_coroutines(&s);
          if (mode == UNDECIDED) mode = met ? COROUTINES : DIRECT;
          continue;
        }
        s.coroutines = false;
        for (int i = 0; i < n; i++) {
          enter_thread(&s, i);
          body(arg);
        }
      }
  device_leave();
  t_sched = NULL;
  t_kernel = outer;
  free(s.state);
  free(s.idx);
  free(s.slot);
  free(s.warp_alive);
}

} // namespace dx_emu

using namespace dx_emu;

void __syncthreads(void) { yield_at(TH_BLOCK_BAR); }

/* ---- runtime API ---- */

cudaError_t cudaGetDeviceCount(int *count) {
  init();
  if (!count) return fail(cudaErrorInvalidValue);
  *count = 1;
  return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp *prop, int device) {
  init();
  if (!prop) return fail(cudaErrorInvalidValue);
  if (device != 0) return fail(cudaErrorInvalidDevice);
  memset(prop, 0, sizeof *prop);
  snprintf(prop->name, sizeof prop->name, "CUDA emulator on the CPU (tests/emu)");
  prop->totalGlobalMem = emulated_total();
  prop->major = 9;
  prop->minor = 0;
  prop->multiProcessorCount = 1;
  prop->maxThreadsPerBlock = 1024;
  prop->warpSize = 32;
  prop->sharedMemPerBlock = 48 * 1024;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : fail(cudaErrorInvalidDevice); }

cudaError_t cudaGetLastError(void) {
  cudaError_t e = t_last_error;
  t_last_error = cudaSuccess;
  return e;
}

const char *cudaGetErrorString(cudaError_t e) {
  switch (e) {
  case cudaSuccess: return "no error";
  case cudaErrorInvalidValue: return "invalid argument";
  case cudaErrorMemoryAllocation: return "out of memory";
  case cudaErrorInvalidConfiguration: return "invalid configuration argument";
  case cudaErrorInvalidDevice: return "invalid device ordinal";
  case cudaErrorNoDevice: return "no CUDA-capable device is detected";
  case cudaErrorInvalidResourceHandle: return "invalid resource handle";
  }
  return "unknown error";
}

cudaError_t cudaMalloc(void **p, size_t size) {
  init();
  if (!p) return fail(cudaErrorInvalidValue);
  *p = NULL;
  if (!size) return cudaSuccess;
  const size_t rounded = (size + 255) & ~(size_t)255;
  const size_t data_len = (rounded + g_page - 1) / g_page * g_page;
  const size_t map_len = data_len + 2 * g_page;
  pthread_mutex_lock(&g_mem_lock);
  if (g_used + data_len > g_total) {
    pthread_mutex_unlock(&g_mem_lock);
    return fail(cudaErrorMemoryAllocation);
  }
  int slot = -1;
  for (int i = 0; i < g_n_allocs; i++)
    if (!g_allocs[i].ptr) {
      slot = i;
      break;
    }
  if (slot < 0) {
    if (g_n_allocs == MAX_ALLOCS) {
      pthread_mutex_unlock(&g_mem_lock);
      return fail(cudaErrorMemoryAllocation);
    }
    slot = g_n_allocs;
  }
  void *m = mmap(NULL, map_len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (m == MAP_FAILED) {
    pthread_mutex_unlock(&g_mem_lock);
    return fail(cudaErrorMemoryAllocation);
  }
  alloc_rec *a = &g_allocs[slot];
  a->map = (char *)m;
  a->map_len = map_len;
  a->data = a->map + g_page;
  a->data_len = data_len;
  a->size = size;
  a->open = 0;
  /* cudaMalloc's memory is not zeroed: fill it with NaNs (0xff bytes), so a
   * kernel that reads what nothing wrote spoils its results here too. */
  mprotect(a->data, a->data_len, PROT_READ | PROT_WRITE);
  memset(a->data, 0xff, a->data_len);
  if (g_device_threads) { /* device work is running: born open, closed with the rest */
    a->open = 1;
  } else {
    mprotect(a->data, a->data_len, PROT_NONE);
  }
  __atomic_store_n(&a->ptr, a->data + data_len - rounded, __ATOMIC_RELEASE);
  if (slot == g_n_allocs) __atomic_store_n(&g_n_allocs, g_n_allocs + 1, __ATOMIC_RELEASE);
  g_used += data_len;
  *p = a->ptr;
  pthread_mutex_unlock(&g_mem_lock);
  return cudaSuccess;
}

cudaError_t cudaFree(void *p) {
  init();
  if (!p) return cudaSuccess;
  pthread_mutex_lock(&g_mem_lock);
  for (int i = 0; i < g_n_allocs; i++) {
    alloc_rec *a = &g_allocs[i];
    if (a->ptr != p) continue;
    __atomic_store_n(&a->ptr, (char *)NULL, __ATOMIC_RELEASE);
    munmap(a->map, a->map_len);
    g_used -= a->data_len;
    pthread_mutex_unlock(&g_mem_lock);
    return cudaSuccess;
  }
  pthread_mutex_unlock(&g_mem_lock);
  fprintf(stderr, "CUDA emulator: cudaFree(%p): not a pointer cudaMalloc returned\n", p);
  return fail(cudaErrorInvalidValue);
}

cudaError_t cudaMemGetInfo(size_t *free_b, size_t *total_b) {
  init();
  if (!free_b || !total_b) return fail(cudaErrorInvalidValue);
  pthread_mutex_lock(&g_mem_lock);
  *total_b = g_total;
  *free_b = g_total - g_used;
  pthread_mutex_unlock(&g_mem_lock);
  return cudaSuccess;
}

static cudaError_t copy(void *dst, const void *src, size_t n, cudaMemcpyKind kind, cudaStream_t s, const char *what) {
  init();
  if (!n) return cudaSuccess;
  if (!stream_valid(s)) return fail(cudaErrorInvalidResourceHandle);
  const bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  const bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  device_enter();
  const char *bad = NULL;
  if (dst_dev ? !device_range(dst, n) : is_device(dst)) bad = "destination";
  else if (src_dev ? !device_range(src, n) : is_device(src)) bad = "source";
  if (bad) {
    device_leave();
    fprintf(stderr, "CUDA emulator: %s of %zu bytes: the %s (%p) is not %s memory of that size\n", what, n, bad,
            bad[0] == 'd' ? dst : src, (bad[0] == 'd' ? dst_dev : src_dev) ? "device" : "host");
    return fail(cudaErrorInvalidValue);
  }
  memmove(dst, src, n);
  device_leave();
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, cudaMemcpyKind kind) {
  return copy(dst, src, n, kind, 0, "cudaMemcpy");
}
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, cudaMemcpyKind kind, cudaStream_t s) {
  return copy(dst, src, n, kind, s, "cudaMemcpyAsync");
}

cudaError_t cudaMemsetAsync(void *dst, int v, size_t n, cudaStream_t s) {
  init();
  if (!n) return cudaSuccess;
  if (!stream_valid(s)) return fail(cudaErrorInvalidResourceHandle);
  device_enter();
  if (!device_range(dst, n)) {
    device_leave();
    fprintf(stderr, "CUDA emulator: cudaMemsetAsync of %zu bytes at %p: not device memory of that size\n", n, dst);
    return fail(cudaErrorInvalidValue);
  }
  memset(dst, v, n);
  device_leave();
  return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags) {
  init();
  if (!s || flags > cudaStreamNonBlocking) return fail(cudaErrorInvalidValue);
  stream_rec *r = (stream_rec *)malloc(sizeof *r);
  if (!r) return fail(cudaErrorMemoryAllocation);
  r->live = 0x5ea3;
  *s = (cudaStream_t)r;
  return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t s) {
  if (!s || !stream_valid(s)) return fail(cudaErrorInvalidResourceHandle);
  ((stream_rec *)s)->live = 0; /* kept, so a stale handle reads as invalid */
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  return stream_valid(s) ? cudaSuccess : fail(cudaErrorInvalidResourceHandle);
}
