package tenantdb

// The memory cap. DuckDB takes memory two ways: data (vectors, string
// heaps, the buffer manager's blocks) through the jemalloc it bundles, and
// C++ objects and temporary buffers through the C library's malloc (a
// string replace() builds lands in a std::vector first). The plan's
// memory_limit bounds only what the buffer manager holds; a value one
// scalar call builds (replace, regexp_replace, ||, list_concat over large
// inputs) is allocated outside it. So that no SQL can take the process's
// memory past a known bound, duckgate counts both ways in C and refuses an
// allocation that would pass the cap: jemalloc's extents through its
// extent hooks (with retain:false, so that freed extents are unmapped and
// the count falls again), and malloc's blocks of at least capLargeBlock
// bytes by replacing the C library's malloc entry points in this process
// (DuckDB's library links with -rdynamic, so its C++ runtime calls them
// too). A refused allocation makes DuckDB fail the statement that asked
// for it with an "Out of Memory Error"; the process goes on.

/*
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

extern int duckdb_je_mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen);
extern void *duckdb_je_malloc(size_t size);
extern void duckdb_je_free(void *ptr);

// Read by jemalloc after DuckDB's own options, so it wins: unmap extents
// that are no longer used instead of keeping them mapped.
const char *duckdb_je_malloc_conf_2_conf_harder = "retain:false";

// jemalloc's extent_hooks_t (jemalloc/include/jemalloc/jemalloc_typedefs.h).
typedef struct extent_hooks_s extent_hooks_t;
struct extent_hooks_s {
	void *(*alloc)(extent_hooks_t *, void *, size_t, size_t, bool *, bool *, unsigned);
	bool (*dalloc)(extent_hooks_t *, void *, size_t, bool, unsigned);
	void (*destroy)(extent_hooks_t *, void *, size_t, bool, unsigned);
	bool (*commit)(extent_hooks_t *, void *, size_t, size_t, size_t, unsigned);
	bool (*decommit)(extent_hooks_t *, void *, size_t, size_t, size_t, unsigned);
	bool (*purge_lazy)(extent_hooks_t *, void *, size_t, size_t, size_t, unsigned);
	bool (*purge_forced)(extent_hooks_t *, void *, size_t, size_t, size_t, unsigned);
	bool (*split)(extent_hooks_t *, void *, size_t, size_t, size_t, bool, unsigned);
	bool (*merge)(extent_hooks_t *, void *, size_t, void *, size_t, bool, unsigned);
};

#define DG_LARGE ((size_t)256 << 10)

static extent_hooks_t *dg_default_hooks;
static extent_hooks_t dg_hooks;
static _Atomic long long dg_mapped;  // bytes of jemalloc extents mapped since the hooks went in
static _Atomic long long dg_heap;    // bytes of malloc blocks of at least DG_LARGE
static _Atomic long long dg_cap;     // 0: no cap
static _Atomic long long dg_refused; // allocations refused

// dg_room reports whether n more bytes fit under the cap when freed bytes
// are given back first, counting a refusal.
static bool dg_room(size_t n, long long freed) {
	long long cap = atomic_load_explicit(&dg_cap, memory_order_relaxed);
	if (cap <= 0) return true;
	long long used = atomic_load_explicit(&dg_mapped, memory_order_relaxed) +
		atomic_load_explicit(&dg_heap, memory_order_relaxed) - freed;
	if (used + (long long)n <= cap) return true;
	atomic_fetch_add_explicit(&dg_refused, 1, memory_order_relaxed);
	return false;
}

static void *dg_extent_alloc(extent_hooks_t *h, void *addr, size_t size, size_t align, bool *zero, bool *commit, unsigned ind) {
	if (!dg_room(size, 0)) return NULL;
	void *p = dg_default_hooks->alloc(dg_default_hooks, addr, size, align, zero, commit, ind);
	if (p != NULL) atomic_fetch_add_explicit(&dg_mapped, (long long)size, memory_order_relaxed);
	return p;
}

static bool dg_extent_dalloc(extent_hooks_t *h, void *addr, size_t size, bool committed, unsigned ind) {
	bool kept = dg_default_hooks->dalloc(dg_default_hooks, addr, size, committed, ind);
	if (!kept) atomic_fetch_sub_explicit(&dg_mapped, (long long)size, memory_order_relaxed);
	return kept;
}

static void dg_extent_destroy(extent_hooks_t *h, void *addr, size_t size, bool committed, unsigned ind) {
	dg_default_hooks->destroy(dg_default_hooks, addr, size, committed, ind);
	atomic_fetch_sub_explicit(&dg_mapped, (long long)size, memory_order_relaxed);
}

// The end of the program's data: the break (sbrk) region, where jemalloc's
// DSS extents live, lies between it and sbrk(0); mmap'ed extents lie
// elsewhere.
extern char end;

static bool dg_in_brk(void *p) {
	uintptr_t a = (uintptr_t)p;
	return a >= (uintptr_t)&end && a < (uintptr_t)sbrk(0);
}

// dg_extent_merge answers jemalloc's "may these two adjacent extents be
// merged?" as its default hook does (yes, unless one comes from the break
// and the other from mmap), but without jemalloc's wrapper for it, which
// fetches the thread's jemalloc state: on a thread whose first use of
// jemalloc is a free (a Go thread running a cgo call that frees what
// another thread allocated), that fetch initialises the thread's cache,
// which allocates from the very extent cache whose mutex the free holds,
// and the thread deadlocks on itself, every other DuckDB thread behind it
// (seen: 36 threads in duckdb_je_malloc_mutex_lock_slow, the owner in
// extent_record → extent_try_coalesce → ehooks_default_merge →
// tsd_fetch_slow → tcache init → extent_recycle). jemalloc calls the
// default hooks without that wrapper; custom hooks get it.
static bool dg_extent_merge(extent_hooks_t *h, void *addr_a, size_t size_a, void *addr_b, size_t size_b, bool committed, unsigned ind) {
	return dg_in_brk(addr_a) != dg_in_brk(addr_b);
}

// dg_install puts the counting hooks on every jemalloc arena, once. It
// returns 0, or a negative step that failed.
static int dg_install(void) {
	if (dg_default_hooks != NULL) return 0;
	// Allocations over DuckDB's oversize_threshold (256 MiB) go to a
	// separate arena made on first use; make it now so it takes the hooks.
	// Nothing touches the block, so it costs no memory.
	void *big = duckdb_je_malloc((size_t)1 << 29);
	if (big == NULL) return -1;
	duckdb_je_free(big);
	unsigned narenas = 0;
	size_t sz = sizeof(narenas);
	if (duckdb_je_mallctl("arenas.narenas", &narenas, &sz, NULL, 0) != 0) return -2;
	extent_hooks_t *def = NULL;
	sz = sizeof(def);
	if (duckdb_je_mallctl("arena.0.extent_hooks", &def, &sz, NULL, 0) != 0 || def == NULL) return -3;
	dg_default_hooks = def;
	dg_hooks = *def;
	dg_hooks.alloc = dg_extent_alloc;
	dg_hooks.dalloc = dg_extent_dalloc;
	dg_hooks.destroy = dg_extent_destroy;
	dg_hooks.merge = dg_extent_merge;
	extent_hooks_t *hooks = &dg_hooks;
	char name[64];
	for (unsigned i = 0; i < narenas; i++) {
		snprintf(name, sizeof(name), "arena.%u.extent_hooks", i);
		int rc = duckdb_je_mallctl(name, NULL, NULL, &hooks, sizeof(hooks));
		// EFAULT: an index past the automatic arenas that was never made.
		if (rc != 0 && rc != EFAULT) return -4;
	}
	return 0;
}

static void dg_set_cap(long long cap) { atomic_store(&dg_cap, cap); }
static long long dg_used(void) { return atomic_load(&dg_mapped) + atomic_load(&dg_heap); }
static long long dg_refusals(void) { return atomic_load(&dg_refused); }

// The C library's allocator, counted. glibc exports its implementations
// under these names for allocators that wrap it.
extern void *__libc_malloc(size_t);
extern void __libc_free(void *);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern size_t malloc_usable_size(void *);

// dg_large is the counted size of block p: its usable size if it is at
// least DG_LARGE, else 0. A block's usable size does not change, so what
// is added when it is made is exactly what is taken when it is freed.
static long long dg_large(void *p) {
	if (p == NULL) return 0;
	size_t u = malloc_usable_size(p);
	return u >= DG_LARGE ? (long long)u : 0;
}

static void *dg_counted(void *p) {
	long long u = dg_large(p);
	if (u) atomic_fetch_add_explicit(&dg_heap, u, memory_order_relaxed);
	return p;
}

void *malloc(size_t n) {
	if (n >= DG_LARGE && !dg_room(n, 0)) { errno = ENOMEM; return NULL; }
	return dg_counted(__libc_malloc(n));
}

void free(void *p) {
	long long u = dg_large(p);
	if (u) atomic_fetch_sub_explicit(&dg_heap, u, memory_order_relaxed);
	__libc_free(p);
}

void *calloc(size_t k, size_t n) {
	if (n != 0 && k > SIZE_MAX / n) { errno = ENOMEM; return NULL; }
	if (k * n >= DG_LARGE && !dg_room(k * n, 0)) { errno = ENOMEM; return NULL; }
	return dg_counted(__libc_calloc(k, n));
}

void *realloc(void *p, size_t n) {
	if (p == NULL) return malloc(n);
	if (n == 0) { free(p); return NULL; }
	long long old = dg_large(p);
	if (n >= DG_LARGE && !dg_room(n, old)) { errno = ENOMEM; return NULL; }
	void *q = __libc_realloc(p, n);
	if (q == NULL) return NULL;
	if (old) atomic_fetch_sub_explicit(&dg_heap, old, memory_order_relaxed);
	return dg_counted(q);
}

void *reallocarray(void *p, size_t k, size_t n) {
	if (n != 0 && k > SIZE_MAX / n) { errno = ENOMEM; return NULL; }
	return realloc(p, k * n);
}

void *memalign(size_t align, size_t n) {
	if (n >= DG_LARGE && !dg_room(n, 0)) { errno = ENOMEM; return NULL; }
	return dg_counted(__libc_memalign(align, n));
}

void *aligned_alloc(size_t align, size_t n) { return memalign(align, n); }

int posix_memalign(void **out, size_t align, size_t n) {
	if (align < sizeof(void *) || (align & (align - 1)) != 0) return EINVAL;
	void *p = memalign(align, n);
	if (p == NULL) return ENOMEM;
	*out = p;
	return 0;
}

void *valloc(size_t n) { return memalign((size_t)sysconf(_SC_PAGESIZE), n); }

void *pvalloc(size_t n) {
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	return memalign(pg, (n + pg - 1) / pg * pg);
}
*/
import "C"

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/VictoriaMetrics/metrics"
)

// capLargeBlock is the smallest malloc block the cap counts (DG_LARGE):
// smaller ones are C++ objects, whose number the statements' own limits
// bound, and refusing them would fail code that cannot handle it.
const capLargeBlock = 256 << 10

var memoryCap atomic.Int64 // the cap SetMemoryCap set last

var installCap = sync.OnceValue(func() error {
	if rc := C.dg_install(); rc != 0 {
		return fmt.Errorf("install DuckDB memory accounting: jemalloc step %d failed", -int(rc))
	}
	return nil
})

// SetMemoryCap caps the memory DuckDB holds in this process, over all
// databases, at limit bytes (0: count but refuse nothing). The cap is
// process-wide: the last call holds. Counting starts at the first call.
func SetMemoryCap(limit int64) error {
	if err := installCap(); err != nil {
		return err
	}
	limit = max(limit, 0)
	C.dg_set_cap(C.longlong(limit))
	memoryCap.Store(limit)
	return nil
}

// MemoryUsed is the memory DuckDB holds as the cap counts it: jemalloc's
// mapped extents plus malloc blocks of at least 256 KiB, since the first
// SetMemoryCap.
func MemoryUsed() int64 { return int64(C.dg_used()) }

// MemoryRefusals is how many allocations the cap has refused.
func MemoryRefusals() int64 { return int64(C.dg_refusals()) }

// DefaultMemoryCap is half the memory of the machine (MemTotal of
// /proc/meminfo), or of the cgroup's memory.max when that is lower; 0 if
// neither can be read.
func DefaultMemoryCap() int64 {
	total := memTotal()
	if b, err := os.ReadFile("/sys/fs/cgroup/memory.max"); err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && n > 0 && (total == 0 || n < total) {
			total = n
		}
	}
	return total / 2
}

func memTotal() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

// writeMemoryMetrics writes the cap's series to /metrics.
func writeMemoryMetrics(w io.Writer) {
	metrics.WriteGaugeUint64(w, "duckgate_duckdb_memory_bytes", uint64(max(MemoryUsed(), 0)))
	metrics.WriteGaugeUint64(w, "duckgate_duckdb_memory_cap_bytes", uint64(memoryCap.Load()))
	metrics.WriteCounterUint64(w, "duckgate_duckdb_memory_refusals_total", uint64(MemoryRefusals()))
}
