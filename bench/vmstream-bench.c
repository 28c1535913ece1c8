/* SPDX-License-Identifier: MIT */
/*
 * vmstream-bench: throughput and memory benchmarks for vmstream, through the
 * public API only (linked against the shared library).
 *
 *   vmstream-bench gen --profile mixed --size 1G > file
 *   vmstream-bench stages [--runs N] [--size S] [--quick] [--json FILE]
 *
 * Measurement rules (see bench/README.md and /work/shared/LIMITS.md): the
 * machine is small and shared, so every figure is compared with baselines
 * measured in the same invocation; each run measures every row once, rows
 * and baselines interleaved and the order rotated from run to run; tables
 * give medians over the runs, and ratios are medians of per-run ratios (the
 * row and its baseline from the same run). Nothing printed is estimated.
 *
 * The baselines call OpenSSL, libzstd and libxxhash directly. This program
 * links only libvmstream, so it finds those functions at run time in the
 * copies libvmstream already loaded (dlsym), exactly the code the library
 * runs.
 *
 * Scenarios are entries of the `scenarios` table at the bottom; a new one
 * (network runs, Issue 7) adds its rows through add_row() and a measure
 * function, and reuses the run loop, the statistics and the output.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <zstd.h>
#include "vmstream.h"
#include "datagen.h"

extern char **environ;

#define MIB (1ull << 20)
#define GIB (1ull << 30)
#define CHUNK ((size_t)1 << 20)  /* 1 MiB records everywhere */
#define MAX_RUNS 101
#define AAD_LEN 56               /* a record header is the AAD (FORMAT.md) */
#define RSS_SLACK (16ull << 20)  /* Issue 4: peak RSS <= memory + 16 MiB */

/* ------------------------------------------------------------------------ */
/* Small utilities                                                          */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double tv_s(struct timeval tv)
{
	return (double)tv.tv_sec + (double)tv.tv_usec * 1e-6;
}

/* CPU seconds (user + system) of this process, all threads. */
static double cpu_self_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return tv_s(ru.ru_utime) + tv_s(ru.ru_stime);
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "vmstream-bench: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

/* Sizes: digits with an optional binary K/M/G/T (or KiB/MiB/GiB/TiB). */
static int parse_size(const char *s, uint64_t *out)
{
	static const struct {
		const char *suffix;
		unsigned shift;
	} sfx[] = { { "", 0 },	  { "K", 10 },	 { "KiB", 10 }, { "M", 20 },   { "MiB", 20 },
		    { "G", 30 },  { "GiB", 30 }, { "T", 40 },	{ "TiB", 40 } };
	uint64_t v = 0;
	const char *p = s;

	if (!s || *p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');

		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	for (size_t i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
		if (strcmp(p, sfx[i].suffix) == 0) {
			if (sfx[i].shift && v > (UINT64_MAX >> sfx[i].shift))
				return -1;
			*out = v << sfx[i].shift;
			return 0;
		}
	}
	return -1;
}

static const char *fmt_size(uint64_t n, char *buf, size_t len)
{
	if (n >= GIB && n % GIB == 0)
		snprintf(buf, len, "%llu GiB", (unsigned long long)(n / GIB));
	else if (n >= MIB && n % MIB == 0)
		snprintf(buf, len, "%llu MiB", (unsigned long long)(n / MIB));
	else if (n >= MIB)
		snprintf(buf, len, "%.1f MiB", (double)n / (double)MIB);
	else
		snprintf(buf, len, "%llu B", (unsigned long long)n);
	return buf;
}

/* snprintf that refuses to truncate (paths). */
static void xsnprintf(char *buf, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void xsnprintf(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= len)
		die("path or message too long: %.80s...", buf);
}

/* Anonymous memory, huge pages where allowed, touched once up front so that
 * no measurement pays for page faults (LIMITS.md: 10 us a 4 KiB fault). */
static void *big_alloc(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		die("cannot map %zu bytes: %s", len, strerror(errno));
	(void)madvise(p, len, MADV_HUGEPAGE);
	memset(p, 0, len);
	return p;
}

static void big_free(void *p, size_t len)
{
	if (p)
		munmap(p, len);
}

static long read_full(int fd, void *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t r = read(fd, (uint8_t *)buf + got, len - got);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (long)got;
}

static int write_full(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t w = write(fd, p, len);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, unsigned n)
{
	if (n == 0)
		return 0.0 / 0.0;
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ------------------------------------------------------------------------ */
/* OpenSSL, libzstd and libxxhash, found in the copies libvmstream loaded.  */

#define SYM(name) __typeof__(&name) name
static struct {
	SYM(EVP_CIPHER_CTX_new);
	SYM(EVP_CIPHER_CTX_free);
	SYM(EVP_EncryptInit_ex);
	SYM(EVP_EncryptUpdate);
	SYM(EVP_EncryptFinal_ex);
	SYM(EVP_CIPHER_CTX_ctrl);
	SYM(EVP_aes_256_gcm);
	SYM(EVP_chacha20_poly1305);
	SYM(OpenSSL_version);
	SYM(ZSTD_createCCtx);
	SYM(ZSTD_freeCCtx);
	SYM(ZSTD_CCtx_setParameter);
	SYM(ZSTD_compress2);
	SYM(ZSTD_compressBound);
	SYM(ZSTD_isError);
	SYM(ZSTD_versionString);
	uint64_t (*xxh3)(const void *, size_t);
	const char *xxh3_name;
	bool ok;
	char why[160];
} L;
#undef SYM

static void *find_sym(const char *name)
{
	static const char *const sonames[] = { "libcrypto.so.3", "libzstd.so.1", "libxxhash.so.0" };
	void *p = dlsym(RTLD_DEFAULT, name);

	for (size_t i = 0; !p && i < sizeof(sonames) / sizeof(sonames[0]); i++) {
		void *h = dlopen(sonames[i], RTLD_NOW | RTLD_LOCAL);

		if (h)
			p = dlsym(h, name);
	}
	return p;
}

static bool load_syms(void)
{
#define GET(name)                                                              \
	do {                                                                   \
		void *p_ = find_sym(#name);                                    \
		if (!p_) {                                                     \
			snprintf(L.why, sizeof(L.why), "symbol %s not found", #name); \
			return false;                                          \
		}                                                              \
		L.name = (__typeof__(L.name))p_;                               \
	} while (0)
	GET(EVP_CIPHER_CTX_new);
	GET(EVP_CIPHER_CTX_free);
	GET(EVP_EncryptInit_ex);
	GET(EVP_EncryptUpdate);
	GET(EVP_EncryptFinal_ex);
	GET(EVP_CIPHER_CTX_ctrl);
	GET(EVP_aes_256_gcm);
	GET(EVP_chacha20_poly1305);
	GET(OpenSSL_version);
	GET(ZSTD_createCCtx);
	GET(ZSTD_freeCCtx);
	GET(ZSTD_CCtx_setParameter);
	GET(ZSTD_compress2);
	GET(ZSTD_compressBound);
	GET(ZSTD_isError);
	GET(ZSTD_versionString);
#undef GET
	/* The library hashes through libxxhash's run-time dispatch: so do we. */
	L.xxh3_name = "XXH3_64bits_dispatch";
	L.xxh3 = (uint64_t(*)(const void *, size_t))find_sym(L.xxh3_name);
	if (!L.xxh3) {
		L.xxh3_name = "XXH3_64bits";
		L.xxh3 = (uint64_t(*)(const void *, size_t))find_sym(L.xxh3_name);
	}
	if (!L.xxh3) {
		snprintf(L.why, sizeof(L.why), "symbol XXH3_64bits not found");
		return false;
	}
	L.ok = true;
	return true;
}

/* ------------------------------------------------------------------------ */
/* Child processes                                                          */

struct child_result {
	double sec;      /* wall time from spawn to exit */
	double cpu;      /* user + system of the child and what it waited for */
	int status;      /* wait status */
};

/* Run argv with stdin from /dev/null and stdout to out_fd (or inherited when
 * -1); stderr is inherited. Returns 0 if the program ran and exited 0. */
static int run_child(char *const argv[], int out_fd, struct child_result *res)
{
	posix_spawn_file_actions_t fa;
	struct rusage ru;
	pid_t pid;
	double t0;
	int err;

	memset(res, 0, sizeof(*res));
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	if (out_fd >= 0)
		posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
	t0 = now_s();
	err = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (err)
		return -err;
	while (wait4(pid, &res->status, 0, &ru) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	res->sec = now_s() - t0;
	/* wait4 reports the child plus the children it waited for (a shell's
	 * pipeline included). */
	res->cpu = tv_s(ru.ru_utime) + tv_s(ru.ru_stime);
	return WIFEXITED(res->status) && WEXITSTATUS(res->status) == 0 ? 0 : -ECHILD;
}

/* Run argv and collect its stdout (up to cap bytes kept, all counted). */
static int run_capture(char *const argv[], char *buf, size_t cap, uint64_t *total,
		       struct child_result *res)
{
	posix_spawn_file_actions_t fa;
	struct rusage ru;
	int pfd[2], err;
	size_t kept = 0;
	uint64_t n = 0;
	pid_t pid;
	double t0;

	memset(res, 0, sizeof(*res));
	if (pipe2(pfd, O_CLOEXEC))
		return -errno;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 2);
	t0 = now_s();
	err = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(pfd[1]);
	if (err) {
		close(pfd[0]);
		return -err;
	}
	for (;;) {
		char tmp[65536];
		ssize_t r = read(pfd[0], tmp, sizeof(tmp));

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		if (buf && kept + 1 < cap) {
			size_t k = (size_t)r < cap - 1 - kept ? (size_t)r : cap - 1 - kept;

			memcpy(buf + kept, tmp, k);
			kept += k;
		}
		n += (uint64_t)r;
	}
	close(pfd[0]);
	if (buf && cap)
		buf[kept] = '\0';
	if (total)
		*total = n;
	while (wait4(pid, &res->status, 0, &ru) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	res->sec = now_s() - t0;
	res->cpu = tv_s(ru.ru_utime) + tv_s(ru.ru_stime);
	return WIFEXITED(res->status) && WEXITSTATUS(res->status) == 0 ? 0 : -ECHILD;
}

/* ------------------------------------------------------------------------ */
/* Rows, samples and the benchmark context                                  */

struct sample {
	double sec;        /* wall seconds of the measured window */
	double cpu;        /* CPU seconds in that window (process or child) */
	uint64_t raw;      /* raw bytes processed */
	uint64_t out;      /* bytes produced (stream, compressed), 0 if n/a */
	int32_t level;     /* codec level at the end (auto), else 0 */
	uint64_t stored;   /* DATA records stored raw (writer rows) */
	uint64_t records;  /* DATA records */
};

enum row_kind {
	RK_ENC,   /* writer: in-memory buffer -> /dev/null */
	RK_DEC,   /* reader: memfd stream -> events */
	RK_BASE,  /* a baseline (plain loop, CLI tool, memcpy) */
	RK_SEND,  /* send-equivalent: file -> library writer -> /dev/null */
	RK_TOOL,  /* vmstream-send itself */
};

enum base_kind {
	B_EVP_AES,
	B_EVP_CHACHA,
	B_ZSTD_1,
	B_ZSTD_M1,
	B_CLI_ZSTD,
	B_PIPE,
	B_CEILING,
	B_CEILING_NOZ,
	B_MEMCPY,
	B_XXH3,
	B_NKINDS,
};

static const char *const base_labels[B_NKINDS] = {
	[B_EVP_AES] = "EVP AES-256-GCM, 1 core, 1 MiB buffers",
	[B_EVP_CHACHA] = "EVP ChaCha20-Poly1305, 1 core, 1 MiB buffers",
	[B_ZSTD_1] = "libzstd ZSTD_compress2 level 1, 1 core, 1 MiB",
	[B_ZSTD_M1] = "libzstd ZSTD_compress2 level -1, 1 core, 1 MiB",
	[B_CLI_ZSTD] = "zstd -1 -T2 -c FILE > /dev/null",
	[B_PIPE] = "zstd -1 -T2 -c FILE | openssl enc -aes-256-ctr",
	[B_CEILING] = "CEILING: 2 threads zstd 1 + AES-GCM + XXH3",
	[B_CEILING_NOZ] = "2 threads AES-GCM + XXH3 (no zstd)",
	[B_MEMCPY] = "memcpy, large buffers, 1 thread",
	[B_XXH3] = "XXH3-64 (libxxhash), 1 core, 1 MiB pieces",
};

static const char *const base_ids[B_NKINDS] = {
	[B_EVP_AES] = "evp-aes-256-gcm",
	[B_EVP_CHACHA] = "evp-chacha20-poly1305",
	[B_ZSTD_1] = "zstd-1",
	[B_ZSTD_M1] = "zstd-neg1",
	[B_CLI_ZSTD] = "cli-zstd-T2",
	[B_PIPE] = "pipe-zstd-openssl",
	[B_CEILING] = "ceiling",
	[B_CEILING_NOZ] = "ceiling-nozstd",
	[B_MEMCPY] = "memcpy",
	[B_XXH3] = "xxh3",
};

/* Writer configurations of the stage matrix. */
struct wcfg {
	const char *name;
	const char *compress; /* opts.compress */
	uint32_t cipher;      /* opts.cipher */
	bool no_zero;         /* VMS_WRITER_F_NO_ZERO_ELISION */
};

static const struct wcfg wcfgs[] = {
	{ "checksum", NULL, VMS_CIPHER_NONE, true },
	{ "zero", NULL, VMS_CIPHER_NONE, false },
	{ "zstd:-1", "zstd:-1", VMS_CIPHER_NONE, false },
	{ "zstd:1", "zstd:1", VMS_CIPHER_NONE, false },
	{ "zstd:3", "zstd:3", VMS_CIPHER_NONE, false },
	{ "auto", "auto", VMS_CIPHER_NONE, false },
	{ "aes-256-gcm", NULL, VMS_CIPHER_AES_256_GCM, false },
	{ "chacha20-poly1305", NULL, VMS_CIPHER_CHACHA20_POLY1305, false },
	{ "zstd:1+aes-256-gcm", "zstd:1", VMS_CIPHER_AES_256_GCM, false },
	{ "auto+aes-256-gcm", "auto", VMS_CIPHER_AES_256_GCM, false },
};
#define NCFG (sizeof(wcfgs) / sizeof(wcfgs[0]))

#define MAX_THR 8 /* thread settings in the matrix (--threads) */

/* One data set (profile) and what is derived from it. */
struct pdata {
	int profile;
	const char *name;
	uint8_t *buf;          /* the data, in memory */
	size_t len;
	char path[PATH_MAX];   /* the same bytes in a file (CLI baselines, send) */
	int sfd[NCFG];         /* memfd with the stream of each config (decode) */
	uint64_t slen[NCFG];
	double gen_gbps;       /* datagen speed while filling buf */
	double cli_ratio;      /* zstd -1 -T2 CLI over the file */
	uint64_t cli_bytes;
};

struct row {
	char id[80];
	enum row_kind kind;
	int base;               /* enum base_kind for RK_BASE */
	struct pdata *pd;       /* data set, NULL if none */
	int cfg;                /* index in wcfgs, -1 if none */
	unsigned threads;
	struct sample s[MAX_RUNS];
	unsigned n;
	bool failed;
	char err[256];
};

enum part { P_MATRIX = 1, P_BASE = 2, P_TARGETS = 4, P_MEMORY = 8 };

struct ctx {
	/* options */
	unsigned runs;
	uint64_t size;
	bool quick;
	const char *json_path;
	const char *data_dir;
	uint64_t seed;
	unsigned parts;
	uint64_t rss_small, rss_large, rss_budget;
	const char *profiles;
	const char *rows_filter;   /* comma-separated substrings of row ids */
	unsigned thr[MAX_THR];     /* matrix thread settings (default 0, 2) */
	unsigned nthr;

	/* state */
	int devnull;
	uint8_t key[VMS_KEY_LEN];
	char dir[PATH_MAX];
	bool own_dir;
	char keyfile[PATH_MAX];
	char self[PATH_MAX];
	struct pdata pd[VMS_DATAGEN_NPROFILES];
	unsigned npd;
	uint8_t *scratch;       /* per-thread output buffers of the baselines */
	size_t scratch_len;
	uint8_t *copy_dst;      /* memcpy destination */
	struct row *rows;
	unsigned nrows, caprows;
	int errors;

	/* vmstream-send, if it has the options the send target needs */
	char tool[PATH_MAX];
	bool tool_ok;
	char tool_why[200];
	char *tool_argv[24];

	/* per-run noise accounting */
	double run_sec[MAX_RUNS], run_other[MAX_RUNS], run_steal[MAX_RUNS];
	double max_other;          /* --max-other: discard runs above this */
	unsigned runs_done;
	unsigned discarded;
	double discarded_other[MAX_RUNS];

	/* memory scenario */
	struct {
		uint64_t bytes;
		long hwm_kib, before_kib;
		double sec;
		bool ok;
	} rss[2];
};

/* Cleanup of the temporary directory, also from a signal handler (only
 * async-signal-safe calls). */
static char g_cleanup_dir[PATH_MAX];
static char g_cleanup_files[8][PATH_MAX];
static unsigned g_cleanup_n;

static void cleanup_tmp(void)
{
	for (unsigned i = 0; i < g_cleanup_n; i++)
		unlink(g_cleanup_files[i]);
	if (g_cleanup_dir[0])
		rmdir(g_cleanup_dir);
}

static void on_signal(int sig)
{
	cleanup_tmp();
	signal(sig, SIG_DFL);
	raise(sig);
}

static void cleanup_add(const char *path)
{
	if (g_cleanup_n < sizeof(g_cleanup_files) / sizeof(g_cleanup_files[0]))
		snprintf(g_cleanup_files[g_cleanup_n++], PATH_MAX, "%s", path);
}

static struct row *add_row(struct ctx *c, enum row_kind kind, struct pdata *pd, int cfg,
			   unsigned threads, int base, const char *fmt, ...)
	__attribute__((format(printf, 7, 8)));

static struct row *add_row(struct ctx *c, enum row_kind kind, struct pdata *pd, int cfg,
			   unsigned threads, int base, const char *fmt, ...)
{
	struct row *r;
	char id[sizeof(r->id)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(id, sizeof(id), fmt, ap);
	va_end(ap);
	if (c->rows_filter) {
		char buf[256], *save = NULL;
		bool hit = false;

		snprintf(buf, sizeof(buf), "%s", c->rows_filter);
		for (char *t = strtok_r(buf, ",", &save); t && !hit; t = strtok_r(NULL, ",", &save))
			hit = strstr(id, t) != NULL;
		if (!hit)
			return NULL;
	}
	if (c->nrows == c->caprows) {
		unsigned ncap = c->caprows ? 2 * c->caprows : 64;
		struct row *nr = realloc(c->rows, ncap * sizeof(*nr));

		if (!nr)
			die("out of memory");
		c->rows = nr;
		c->caprows = ncap;
	}
	r = &c->rows[c->nrows++];
	memset(r, 0, sizeof(*r));
	r->kind = kind;
	r->pd = pd;
	r->cfg = cfg;
	r->threads = threads;
	r->base = base;
	memcpy(r->id, id, sizeof(id));
	return r;
}

static struct row *find_row(struct ctx *c, const char *id)
{
	for (unsigned i = 0; i < c->nrows; i++)
		if (strcmp(c->rows[i].id, id) == 0)
			return &c->rows[i];
	return NULL;
}

static int row_fail(struct row *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int row_fail(struct row *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->err, sizeof(r->err), fmt, ap);
	va_end(ap);
	r->failed = true;
	return -1;
}

static int lib_fail(struct row *r, const char *what, int err)
{
	return row_fail(r, "%s: %s (%s)", what, vms_strerror(err), vms_last_error());
}

/* ------------------------------------------------------------------------ */
/* Library measurements                                                     */

static void writer_opts(struct ctx *c, const struct wcfg *cfg, unsigned threads,
			struct vms_writer_opts *o)
{
	o->threads = threads;
	o->compress = cfg->compress;
	o->cipher = cfg->cipher;
	o->key = cfg->cipher != VMS_CIPHER_NONE ? c->key : NULL;
	o->flags = cfg->no_zero ? VMS_WRITER_F_NO_ZERO_ELISION : 0;
}

/* Writer over an in-memory buffer: the window is begin..finish (opening,
 * which allocates and pre-faults the buffers and starts threads, is not). */
static int m_encode(struct ctx *c, struct row *r, struct sample *s)
{
	const struct wcfg *cfg = &wcfgs[r->cfg];
	struct vms_writer_opts o = VMS_WRITER_OPTS_INIT;
	struct vms_device_desc d = VMS_DEVICE_DESC_INIT;
	struct vms_stats st = { .size = sizeof(st) };
	struct vms_writer *w = NULL;
	double t0, c0;
	uint32_t dev;
	int err;

	writer_opts(c, cfg, r->threads, &o);
	o.size_hint = r->pd->len;
	err = vms_writer_open_fd(&w, c->devnull, &o);
	if (err)
		return lib_fail(r, "vms_writer_open_fd", err);
	d.name = "bench";
	d.size_hint = r->pd->len;
	t0 = now_s();
	c0 = cpu_self_s();
	err = vms_writer_begin_device(w, &d, &dev);
	if (!err)
		err = vms_writer_write(w, dev, r->pd->buf, r->pd->len);
	if (!err)
		err = vms_writer_end_device(w, dev);
	if (!err)
		err = vms_writer_finish(w);
	s->sec = now_s() - t0;
	s->cpu = cpu_self_s() - c0;
	if (err) {
		vms_writer_free(w);
		return lib_fail(r, "writer", err);
	}
	vms_writer_stats(w, &st);
	vms_writer_free(w);
	s->raw = st.raw_bytes;
	s->out = st.wire_bytes;
	s->level = st.level;
	s->stored = st.stored_records;
	s->records = st.data_records;
	if (st.raw_bytes != r->pd->len)
		return row_fail(r, "writer reports %llu raw bytes, wrote %zu",
				(unsigned long long)st.raw_bytes, r->pd->len);
	return 0;
}

/* Reader over the memfd stream of the row's config. Events are consumed
 * without copying the data out (a consumer's own copy is not counted). */
static int m_decode(struct ctx *c, struct row *r, struct sample *s)
{
	const struct wcfg *cfg = &wcfgs[r->cfg];
	struct vms_reader_opts o = VMS_READER_OPTS_INIT;
	struct vms_stats st = { .size = sizeof(st) };
	struct vms_reader *rd = NULL;
	struct vms_event ev = VMS_EVENT_INIT;
	uint64_t raw = 0;
	double t0, c0;
	int fd = r->pd->sfd[r->cfg], err;

	if (lseek(fd, 0, SEEK_SET) != 0)
		return row_fail(r, "lseek: %s", strerror(errno));
	o.threads = r->threads;
	o.key = cfg->cipher != VMS_CIPHER_NONE ? c->key : NULL;
	err = vms_reader_open_fd(&rd, fd, &o);
	if (err)
		return lib_fail(r, "vms_reader_open_fd", err);
	t0 = now_s();
	c0 = cpu_self_s();
	while ((err = vms_reader_next(rd, &ev)) == 1) {
		if (ev.type == VMS_REC_DATA || ev.type == VMS_REC_ZERO)
			raw += ev.raw_len;
	}
	s->sec = now_s() - t0;
	s->cpu = cpu_self_s() - c0;
	if (err) {
		vms_reader_free(rd);
		return lib_fail(r, "reader", err);
	}
	vms_reader_stats(rd, &st);
	vms_reader_free(rd);
	s->raw = raw;
	s->out = st.wire_bytes;
	s->records = st.data_records;
	if (raw != r->pd->len)
		return row_fail(r, "reader delivered %llu bytes, expected %zu",
				(unsigned long long)raw, r->pd->len);
	return 0;
}

/* What `vmstream-send --compress zstd:1 --encrypt aes-256-gcm --output
 * /dev/null FILE` does, through the library: read() from the (cached) file
 * straight into the writer's chunk buffers, 2 workers. The window is
 * everything from opening the file to freeing the writer. */
static int m_send(struct ctx *c, struct row *r, struct sample *s)
{
	const struct wcfg cfg = { "send", "zstd:1", VMS_CIPHER_AES_256_GCM, false };
	struct vms_writer_opts o = VMS_WRITER_OPTS_INIT;
	struct vms_device_desc d = VMS_DEVICE_DESC_INIT;
	struct vms_stats st = { .size = sizeof(st) };
	struct vms_writer *w = NULL;
	double t0, c0;
	uint32_t dev;
	bool eof = false;
	int fd, err;

	t0 = now_s();
	c0 = cpu_self_s();
	fd = open(r->pd->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return row_fail(r, "open %s: %s", r->pd->path, strerror(errno));
	(void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	writer_opts(c, &cfg, 2, &o);
	o.size_hint = r->pd->len;
	err = vms_writer_open_fd(&w, c->devnull, &o);
	d.name = "bench";
	d.size_hint = r->pd->len;
	if (!err)
		err = vms_writer_begin_device(w, &d, &dev);
	while (!err && !eof) {
		void *buf;
		size_t room;
		long got;

		err = vms_writer_acquire(w, dev, &buf, &room);
		if (err)
			break;
		got = read_full(fd, buf, room);
		if (got < 0) {
			close(fd);
			vms_writer_free(w);
			return row_fail(r, "read: %s", strerror((int)-got));
		}
		eof = (size_t)got < room;
		err = vms_writer_commit(w, dev, (size_t)got);
	}
	if (!err)
		err = vms_writer_end_device(w, dev);
	if (!err)
		err = vms_writer_finish(w);
	if (!err)
		vms_writer_stats(w, &st);
	vms_writer_free(w);
	close(fd);
	s->sec = now_s() - t0;
	s->cpu = cpu_self_s() - c0;
	if (err)
		return lib_fail(r, "send", err);
	s->raw = st.raw_bytes;
	s->out = st.wire_bytes;
	s->records = st.data_records;
	s->stored = st.stored_records;
	if (st.raw_bytes != r->pd->len)
		return row_fail(r, "send wrote %llu raw bytes, file has %zu",
				(unsigned long long)st.raw_bytes, r->pd->len);
	return 0;
}

static int m_tool(struct ctx *c, struct row *r, struct sample *s)
{
	char *argv[sizeof(c->tool_argv) / sizeof(c->tool_argv[0]) + 1];
	struct child_result res;
	unsigned n = 0;
	int err;

	while (c->tool_argv[n]) {
		argv[n] = c->tool_argv[n];
		n++;
	}
	argv[n++] = r->pd->path;
	argv[n] = NULL;
	err = run_child(argv, c->devnull, &res);

	if (err)
		return row_fail(r, "%s failed (wait status 0x%x)", c->tool, res.status);
	s->sec = res.sec;
	s->cpu = res.cpu;
	s->raw = r->pd->len;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Baselines                                                                */

static int evp_init(EVP_CIPHER_CTX **out, const EVP_CIPHER *cipher, const uint8_t *key)
{
	EVP_CIPHER_CTX *x = L.EVP_CIPHER_CTX_new();

	*out = x;
	if (!x || L.EVP_EncryptInit_ex(x, cipher, NULL, NULL, NULL) != 1 ||
	    L.EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_SET_IVLEN, 12, NULL) != 1 ||
	    L.EVP_EncryptInit_ex(x, NULL, NULL, key, NULL) != 1)
		return -1;
	return 0;
}

/* Seal one chunk (src may equal dst): nonce from the chunk number, an AAD
 * of a record header's size, tag appended. Returns sealed length or -1. */
static long evp_seal(EVP_CIPHER_CTX *x, uint64_t n, const uint8_t *aad, const uint8_t *src,
		     size_t len, uint8_t *dst)
{
	uint8_t nonce[12] = { 0 };
	int k = 0, fin = 0;

	memcpy(nonce + 4, &n, 8);
	if (L.EVP_EncryptInit_ex(x, NULL, NULL, NULL, nonce) != 1 ||
	    L.EVP_EncryptUpdate(x, NULL, &k, aad, AAD_LEN) != 1 ||
	    L.EVP_EncryptUpdate(x, dst, &k, src, (int)len) != 1 ||
	    L.EVP_EncryptFinal_ex(x, dst + k, &fin) != 1 ||
	    L.EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_GET_TAG, 16, dst + k + fin) != 1)
		return -1;
	return (long)k + fin + 16;
}

static int b_evp(struct ctx *c, struct row *r, struct sample *s, const EVP_CIPHER *cipher)
{
	const uint8_t aad[AAD_LEN] = { 1 };
	EVP_CIPHER_CTX *x;
	uint64_t out = 0;
	double t0, c0;

	if (evp_init(&x, cipher, c->key)) {
		L.EVP_CIPHER_CTX_free(x);
		return row_fail(r, "EVP setup failed");
	}
	t0 = now_s();
	c0 = cpu_self_s();
	for (size_t off = 0; off < r->pd->len; off += CHUNK) {
		size_t n = r->pd->len - off < CHUNK ? r->pd->len - off : CHUNK;
		long k = evp_seal(x, off / CHUNK, aad, r->pd->buf + off, n, c->scratch);

		if (k < 0) {
			L.EVP_CIPHER_CTX_free(x);
			return row_fail(r, "EVP encryption failed");
		}
		out += (uint64_t)k;
	}
	s->sec = now_s() - t0;
	s->cpu = cpu_self_s() - c0;
	s->raw = r->pd->len;
	s->out = out;
	L.EVP_CIPHER_CTX_free(x);
	return 0;
}

static int b_zstd(struct row *r, struct sample *s, uint8_t *dst, int level)
{
	ZSTD_CCtx *z = L.ZSTD_createCCtx();
	size_t cap = L.ZSTD_compressBound(CHUNK);
	uint64_t out = 0;
	double t0, c0;

	if (!z || L.ZSTD_isError(L.ZSTD_CCtx_setParameter(z, ZSTD_c_compressionLevel, level))) {
		L.ZSTD_freeCCtx(z);
		return row_fail(r, "zstd setup failed");
	}
	t0 = now_s();
	c0 = cpu_self_s();
	for (size_t off = 0; off < r->pd->len; off += CHUNK) {
		size_t n = r->pd->len - off < CHUNK ? r->pd->len - off : CHUNK;
		size_t k = L.ZSTD_compress2(z, dst, cap, r->pd->buf + off, n);

		if (L.ZSTD_isError(k)) {
			L.ZSTD_freeCCtx(z);
			return row_fail(r, "ZSTD_compress2 failed");
		}
		out += k;
	}
	s->sec = now_s() - t0;
	s->cpu = cpu_self_s() - c0;
	s->raw = r->pd->len;
	s->out = out;
	L.ZSTD_freeCCtx(z);
	return 0;
}

/* The ceiling: each thread owns its contexts and half of the chunks, and
 * does XXH3 + zstd level 1 + AES-256-GCM on each, in memory: no I/O, no
 * queue, no copy of the input. */
struct ceil_arg {
	const uint8_t *src;
	size_t len;
	const uint8_t *key;
	uint8_t *dst;       /* compressBound(1 MiB) + 16 bytes, this thread's */
	bool zstd;
	uint64_t first;     /* chunk number of src (nonces) */
	uint64_t out;
	uint64_t sum;
	int err;
};

static void *ceil_thread(void *p)
{
	struct ceil_arg *a = p;
	const uint8_t aad[AAD_LEN] = { 2 };
	size_t cap = L.ZSTD_compressBound(CHUNK);
	ZSTD_CCtx *z = NULL;
	EVP_CIPHER_CTX *x;

	a->err = evp_init(&x, L.EVP_aes_256_gcm(), a->key);
	if (!a->err && a->zstd) {
		z = L.ZSTD_createCCtx();
		if (!z || L.ZSTD_isError(L.ZSTD_CCtx_setParameter(z, ZSTD_c_compressionLevel, 1)))
			a->err = -1;
	}
	for (size_t off = 0; !a->err && off < a->len; off += CHUNK) {
		size_t n = a->len - off < CHUNK ? a->len - off : CHUNK;
		const uint8_t *in = a->src + off;
		long k;

		a->sum ^= L.xxh3(in, n);
		if (a->zstd) {
			size_t zn = L.ZSTD_compress2(z, a->dst, cap, in, n);

			if (L.ZSTD_isError(zn)) {
				a->err = -1;
				break;
			}
			k = evp_seal(x, a->first + off / CHUNK, aad, a->dst, zn, a->dst);
		} else {
			k = evp_seal(x, a->first + off / CHUNK, aad, in, n, a->dst);
		}
		if (k < 0)
			a->err = -1;
		else
			a->out += (uint64_t)k;
	}
	L.ZSTD_freeCCtx(z);
	L.EVP_CIPHER_CTX_free(x);
	return NULL;
}

static int b_ceiling(struct ctx *c, struct row *r, struct sample *s, bool zstd)
{
	struct ceil_arg a[2];
	pthread_t t[2];
	size_t chunks = (r->pd->len + CHUNK - 1) / CHUNK, half = (chunks + 1) / 2 * CHUNK;
	size_t per = c->scratch_len / 2;
	double t0, c0;

	if (half > r->pd->len)
		half = r->pd->len;
	memset(a, 0, sizeof(a));
	for (int i = 0; i < 2; i++) {
		a[i].src = r->pd->buf + (i ? half : 0);
		a[i].len = i ? r->pd->len - half : half;
		a[i].key = c->key;
		a[i].dst = c->scratch + (size_t)i * per;
		a[i].zstd = zstd;
		a[i].first = i ? half / CHUNK : 0;
	}
	t0 = now_s();
	c0 = cpu_self_s();
	for (int i = 0; i < 2; i++)
		if (pthread_create(&t[i], NULL, ceil_thread, &a[i]))
			die("pthread_create failed");
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	s->sec = now_s() - t0;
	s->cpu = cpu_self_s() - c0;
	if (a[0].err || a[1].err)
		return row_fail(r, "ceiling loop failed");
	s->raw = r->pd->len;
	s->out = a[0].out + a[1].out;
	return 0;
}

static int b_cli(struct ctx *c, struct row *r, struct sample *s, bool pipeline)
{
	char *zstd_argv[] = { "zstd", "-1", "-T2", "-q", "-c", r->pd->path, NULL };
	char *pipe_argv[] = { "/bin/sh", "-c",
			      "zstd -1 -T2 -q -c \"$1\" | openssl enc -aes-256-ctr -pass pass:x "
			      "-pbkdf2 > /dev/null",
			      "sh", r->pd->path, NULL };
	struct child_result res;
	int err = run_child(pipeline ? pipe_argv : zstd_argv, c->devnull, &res);

	if (err)
		return row_fail(r, "%s failed (wait status 0x%x)",
				pipeline ? "zstd | openssl pipeline" : "zstd CLI", res.status);
	s->sec = res.sec;
	s->cpu = res.cpu;
	s->raw = r->pd->len;
	return 0;
}

static int b_memcpy(struct ctx *c, struct row *r, struct sample *s)
{
	double t0 = now_s(), c0 = cpu_self_s();

	memcpy(c->copy_dst, r->pd->buf, r->pd->len);
	s->sec = now_s() - t0;
	s->cpu = cpu_self_s() - c0;
	s->raw = r->pd->len;
	/* keep the copy observable */
	s->out = c->copy_dst[r->pd->len / 2] == r->pd->buf[r->pd->len / 2] ? r->pd->len : 0;
	return 0;
}

static int b_xxh3(struct row *r, struct sample *s)
{
	double t0 = now_s(), c0 = cpu_self_s();
	uint64_t h = 0;

	for (size_t off = 0; off < r->pd->len; off += CHUNK)
		h ^= L.xxh3(r->pd->buf + off, r->pd->len - off < CHUNK ? r->pd->len - off : CHUNK);
	s->sec = now_s() - t0;
	s->cpu = cpu_self_s() - c0;
	s->raw = r->pd->len;
	s->out = h & 1; /* keep the result observable */
	return 0;
}

static int measure(struct ctx *c, struct row *r, struct sample *s)
{
	memset(s, 0, sizeof(*s));
	switch (r->kind) {
	case RK_ENC:
		return m_encode(c, r, s);
	case RK_DEC:
		return m_decode(c, r, s);
	case RK_SEND:
		return m_send(c, r, s);
	case RK_TOOL:
		return m_tool(c, r, s);
	case RK_BASE:
		break;
	}
	switch (r->base) {
	case B_EVP_AES:
		return b_evp(c, r, s, L.EVP_aes_256_gcm());
	case B_EVP_CHACHA:
		return b_evp(c, r, s, L.EVP_chacha20_poly1305());
	case B_ZSTD_1:
		return b_zstd(r, s, c->scratch, 1);
	case B_ZSTD_M1:
		return b_zstd(r, s, c->scratch, -1);
	case B_CLI_ZSTD:
		return b_cli(c, r, s, false);
	case B_PIPE:
		return b_cli(c, r, s, true);
	case B_CEILING:
		return b_ceiling(c, r, s, true);
	case B_CEILING_NOZ:
		return b_ceiling(c, r, s, false);
	case B_MEMCPY:
		return b_memcpy(c, r, s);
	case B_XXH3:
		return b_xxh3(r, s);
	default:
		return row_fail(r, "unknown baseline");
	}
}

/* ------------------------------------------------------------------------ */
/* Statistics                                                               */

static double s_gbps(const struct sample *s)
{
	return s->sec > 0 ? (double)s->raw / s->sec / 1e9 : 0.0 / 0.0;
}

static double s_cpu_per_gb(const struct sample *s)
{
	return s->raw ? s->cpu / ((double)s->raw / 1e9) : 0.0 / 0.0;
}

static double row_median(const struct row *r, double (*f)(const struct sample *))
{
	double v[MAX_RUNS];

	for (unsigned i = 0; i < r->n; i++)
		v[i] = f(&r->s[i]);
	return median(v, r->n);
}

static double row_gbps(const struct row *r)
{
	return r ? row_median(r, s_gbps) : 0.0 / 0.0;
}

static double row_cpu(const struct row *r)
{
	return r ? row_median(r, s_cpu_per_gb) : 0.0 / 0.0;
}

/* (max - min) / median of GB/s over the runs. */
static double row_spread(const struct row *r)
{
	double lo = 1e300, hi = 0, m = row_gbps(r);

	for (unsigned i = 0; i < r->n; i++) {
		double g = s_gbps(&r->s[i]);

		lo = g < lo ? g : lo;
		hi = g > hi ? g : hi;
	}
	return r->n > 1 && m > 0 ? (hi - lo) / m : 0;
}

static double s_wire_frac(const struct sample *s)
{
	return s->raw ? (double)s->out / (double)s->raw : 0.0 / 0.0;
}

/* Median over runs of a.gbps / (scale * b.gbps), pairing the same run. */
static double paired_ratio(const struct row *a, const struct row *b, double scale)
{
	double v[MAX_RUNS];
	unsigned n = 0;

	if (!a || !b)
		return 0.0 / 0.0;
	for (unsigned i = 0; i < a->n && i < b->n; i++)
		v[n++] = s_gbps(&a->s[i]) / (scale * s_gbps(&b->s[i]));
	return median(v, n);
}

/* ------------------------------------------------------------------------ */
/* Machine and noise                                                        */

/* System-wide busy and steal CPU seconds from /proc/stat. */
static int proc_stat(double *busy, double *steal)
{
	unsigned long long v[10] = { 0 };
	double hz = (double)sysconf(_SC_CLK_TCK);
	FILE *f = fopen("/proc/stat", "r");
	int n;

	if (!f)
		return -1;
	n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1],
		   &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9]);
	fclose(f);
	if (n < 8)
		return -1;
	/* user nice system idle iowait irq softirq steal: busy excludes idle,
	 * iowait and steal */
	*busy = (double)(v[0] + v[1] + v[2] + v[5] + v[6]) / hz;
	*steal = (double)v[7] / hz;
	return 0;
}

static double cpu_children_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_CHILDREN, &ru);
	return tv_s(ru.ru_utime) + tv_s(ru.ru_stime);
}

static void cpu_model(char *buf, size_t len)
{
	char line[256];
	FILE *f = fopen("/proc/cpuinfo", "r");

	snprintf(buf, len, "unknown CPU");
	while (f && fgets(line, sizeof(line), f)) {
		char *p = strchr(line, ':');

		if (strncmp(line, "model name", 10) == 0 && p) {
			p += 2;
			p[strcspn(p, "\n")] = '\0';
			snprintf(buf, len, "%s", p);
			break;
		}
	}
	if (f)
		fclose(f);
}

static void read_first_line(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");

	snprintf(buf, len, "?");
	if (f && fgets(buf, (int)len, f))
		buf[strcspn(buf, "\n")] = '\0';
	if (f)
		fclose(f);
}

static long proc_status_kib(const char *field)
{
	char line[256];
	size_t n = strlen(field);
	long v = -1;
	FILE *f = fopen("/proc/self/status", "r");

	while (f && fgets(line, sizeof(line), f)) {
		if (strncmp(line, field, n) == 0 && line[n] == ':') {
			v = strtol(line + n + 1, NULL, 10);
			break;
		}
	}
	if (f)
		fclose(f);
	return v;
}

/* ------------------------------------------------------------------------ */
/* JSON output                                                              */

struct jw {
	FILE *f;
	int depth;
	bool comma[32];
};

static void jw_raw_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; s && *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

static void jw_key(struct jw *j, const char *k)
{
	if (j->comma[j->depth])
		fputc(',', j->f);
	j->comma[j->depth] = true;
	if (k) {
		jw_raw_str(j->f, k);
		fputc(':', j->f);
	}
}

static void jw_open(struct jw *j, const char *k, char ch)
{
	jw_key(j, k);
	fputc(ch, j->f);
	j->comma[++j->depth] = false;
}

static void jw_close(struct jw *j, char ch)
{
	j->depth--;
	fputc(ch, j->f);
}

static void jw_str(struct jw *j, const char *k, const char *v)
{
	jw_key(j, k);
	if (v)
		jw_raw_str(j->f, v);
	else
		fputs("null", j->f);
}

static void jw_num(struct jw *j, const char *k, double v)
{
	jw_key(j, k);
	if (v != v || v > 1e300 || v < -1e300)
		fputs("null", j->f);
	else
		fprintf(j->f, "%.6g", v);
}

static void jw_u64(struct jw *j, const char *k, uint64_t v)
{
	jw_key(j, k);
	fprintf(j->f, "%llu", (unsigned long long)v);
}

static void jw_bool(struct jw *j, const char *k, bool v)
{
	jw_key(j, k);
	fputs(v ? "true" : "false", j->f);
}

/* ------------------------------------------------------------------------ */
/* Scenario: gen                                                            */

static int cmd_gen(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "profile", required_argument, NULL, 'p' }, { "size", required_argument, NULL, 's' },
		{ "seed", required_argument, NULL, 'S' },    { "offset", required_argument, NULL, 'o' },
		{ "speed", no_argument, NULL, 'x' },	     { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int profile = -1, opt;
	uint64_t size = 0, seed = VMS_DATAGEN_SEED_DEFAULT, offset = 0;
	bool have_size = false, speed = false;
	size_t cap = 4 * MIB;
	uint8_t *buf;

	while ((opt = getopt_long(argc, argv, "p:s:h", lo, NULL)) != -1) {
		switch (opt) {
		case 'p':
			profile = vms_datagen_profile_from_name(optarg);
			if (profile < 0)
				die("gen: unknown profile '%s' (random, zeros, sparse, text, mixed)",
				    optarg);
			break;
		case 's':
			if (parse_size(optarg, &size))
				die("gen: --size '%s' is not a size (e.g. 256M, 1G)", optarg);
			have_size = true;
			break;
		case 'S':
			if (parse_size(optarg, &seed))
				die("gen: --seed '%s' is not a number", optarg);
			break;
		case 'o':
			if (parse_size(optarg, &offset))
				die("gen: --offset '%s' is not a size", optarg);
			break;
		case 'x':
			speed = true;
			break;
		case 'h':
			printf("usage: vmstream-bench gen --profile P --size S [--seed N] [--offset O] [--speed]\n"
			       "Write bytes [O, O+S) of the data set (P, N) to stdout; --speed measures the\n"
			       "generator instead (into a reused 4 MiB buffer, nothing written).\n"
			       "Profiles:\n");
			for (int i = 0; i < VMS_DATAGEN_NPROFILES; i++)
				printf("  %-7s %s\n", vms_datagen_profile_name(i), vms_datagen_profile_desc(i));
			return 0;
		default:
			return 2;
		}
	}
	if (profile < 0 || !have_size)
		die("gen: --profile and --size are required (see gen --help)");
	if (optind < argc)
		die("gen: unexpected argument '%s'", argv[optind]);
	if (!speed && isatty(STDOUT_FILENO))
		die("gen: refusing to write binary data to a terminal; redirect stdout");
	buf = big_alloc(cap);
	if (speed) {
		double t0 = now_s(), c0 = cpu_self_s();

		for (uint64_t done = 0; done < size; done += cap) {
			size_t n = size - done < cap ? (size_t)(size - done) : cap;

			vms_datagen_fill((enum vms_datagen_profile)profile, seed, offset + done, buf, n);
		}
		printf("datagen %s: %.2f GB/s (%.3f CPU s/GB)\n", vms_datagen_profile_name(profile),
		       (double)size / (now_s() - t0) / 1e9, (cpu_self_s() - c0) / ((double)size / 1e9));
		big_free(buf, cap);
		return 0;
	}
	for (uint64_t done = 0; done < size; done += cap) {
		size_t n = size - done < cap ? (size_t)(size - done) : cap;
		int err;

		vms_datagen_fill((enum vms_datagen_profile)profile, seed, offset + done, buf, n);
		err = write_full(STDOUT_FILENO, buf, n);
		if (err)
			die("gen: write: %s", strerror(-err));
	}
	big_free(buf, cap);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Scenario: _rss-child (internal: one writer in a fresh process)           */

/* argv: SIZE MEMORY SEED. Writes a stream of SIZE bytes of mixed data,
 * generated on the fly into the writer's buffers, to /dev/null with
 * zstd:1 + AES-256-GCM and 2 workers under a MEMORY budget, then prints
 * VmHWM and the RSS it had before opening the writer. */
static int cmd_rss_child(int argc, char **argv)
{
	struct vms_writer_opts o = VMS_WRITER_OPTS_INIT;
	struct vms_device_desc d = VMS_DEVICE_DESC_INIT;
	struct vms_writer *w = NULL;
	uint8_t key[VMS_KEY_LEN];
	uint64_t size, memory, seed, done = 0;
	long before;
	uint32_t dev;
	double t0;
	int fd, err;

	if (argc != 4 || parse_size(argv[1], &size) || parse_size(argv[2], &memory) ||
	    parse_size(argv[3], &seed))
		die("_rss-child: usage SIZE MEMORY SEED");
	fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (fd < 0 || getrandom(key, sizeof(key), 0) != sizeof(key))
		die("_rss-child: setup failed");
	before = proc_status_kib("VmRSS");
	o.compress = "zstd:1";
	o.cipher = VMS_CIPHER_AES_256_GCM;
	o.key = key;
	o.threads = 2;
	o.memory = memory;
	o.size_hint = size;
	d.name = "generated";
	d.size_hint = size;
	t0 = now_s();
	err = vms_writer_open_fd(&w, fd, &o);
	if (!err)
		err = vms_writer_begin_device(w, &d, &dev);
	while (!err && done < size) {
		void *buf;
		size_t room;

		err = vms_writer_acquire(w, dev, &buf, &room);
		if (err)
			break;
		if (room > size - done)
			room = (size_t)(size - done);
		vms_datagen_fill(VMS_DATAGEN_MIXED, seed, done, buf, room);
		done += room;
		err = vms_writer_commit(w, dev, room);
	}
	if (!err)
		err = vms_writer_end_device(w, dev);
	if (!err)
		err = vms_writer_finish(w);
	if (err)
		die("_rss-child: %s (%s)", vms_strerror(err), vms_last_error());
	printf("hwm_kib=%ld before_kib=%ld sec=%.3f\n", proc_status_kib("VmHWM"), before,
	       now_s() - t0);
	vms_writer_free(w);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Scenario: stages                                                         */

static void usage_stages(FILE *f)
{
	fprintf(f,
		"usage: vmstream-bench stages [OPTIONS]\n"
		"Stage matrix (encode/decode, threads 0 and 2), baselines, the Issue 4 target\n"
		"ratios and writer peak RSS, in one invocation; tables print medians.\n"
		"  --runs N        runs; each measures every row once (default 5)\n"
		"  --size S        bytes per row and run and profile (default 256M)\n"
		"  --quick         tiny sizes (8M, RSS 32M/128M) for smoke tests\n"
		"  --json FILE     also write every sample as JSON\n"
		"  --data-dir DIR  keep the data files (PROFILE.bin) there; reused when\n"
		"                  they match (default: a temporary directory, removed)\n"
		"  --profiles L    comma-separated profiles (default mixed,random)\n"
		"  --only L        parts: matrix,baselines,targets,memory (default all)\n"
		"  --threads L     writer/reader threads of the matrix columns (default 0,2)\n"
		"  --max-other C   discard (and repeat, at most --runs times) a run during which\n"
		"                  other processes used more than C cores (default: keep all)\n"
		"  --rows L        only rows whose id contains one of these comma-separated\n"
		"                  strings, e.g. mixed/send,mixed/base/ceiling (profiling)\n"
		"  --seed N        data seed\n"
		"  --rss-sizes A,B stream sizes of the memory part (default 1G,8G)\n"
		"  --memory S      writer memory budget of the memory part (default 64M)\n");
}

static unsigned parse_parts(const char *s)
{
	unsigned parts = 0;
	char buf[128], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", s);
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (strcmp(t, "matrix") == 0)
			parts |= P_MATRIX;
		else if (strcmp(t, "baselines") == 0)
			parts |= P_BASE;
		else if (strcmp(t, "targets") == 0)
			parts |= P_TARGETS | P_BASE | P_MATRIX;
		else if (strcmp(t, "memory") == 0)
			parts |= P_MEMORY;
		else
			die("stages: --only: unknown part '%s'", t);
	}
	return parts;
}

/* Is the file at path exactly pd's data? (size and first/last MiB) */
static bool file_matches(const struct pdata *pd)
{
	struct stat st;
	size_t n = pd->len < MIB ? pd->len : MIB;
	uint8_t *tmp;
	bool ok = false;
	int fd = open(pd->path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return false;
	tmp = malloc(n);
	if (tmp && fstat(fd, &st) == 0 && (uint64_t)st.st_size == pd->len &&
	    pread(fd, tmp, n, 0) == (ssize_t)n && memcmp(tmp, pd->buf, n) == 0 &&
	    pread(fd, tmp, n, (off_t)(pd->len - n)) == (ssize_t)n &&
	    memcmp(tmp, pd->buf + pd->len - n, n) == 0)
		ok = true;
	free(tmp);
	close(fd);
	return ok;
}

static void prepare_profile(struct ctx *c, struct pdata *pd)
{
	double t0;
	int fd, err;

	pd->len = (size_t)c->size;
	pd->buf = big_alloc(pd->len);
	t0 = now_s();
	vms_datagen_fill((enum vms_datagen_profile)pd->profile, c->seed, 0, pd->buf, pd->len);
	pd->gen_gbps = (double)pd->len / (now_s() - t0) / 1e9;

	xsnprintf(pd->path, sizeof(pd->path), "%s/%s.bin", c->dir, pd->name);
	if (!file_matches(pd)) {
		fd = open(pd->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0)
			die("cannot create %s: %s", pd->path, strerror(errno));
		err = write_full(fd, pd->buf, pd->len);
		if (err || close(fd))
			die("cannot write %s: %s", pd->path, strerror(err ? -err : errno));
		if (c->own_dir)
			cleanup_add(pd->path);
	}

	/* One stream per config for the decode rows, written once, kept in
	 * memory (memfd). */
	for (unsigned k = 0; k < NCFG; k++) {
		struct vms_writer_opts o = VMS_WRITER_OPTS_INIT;
		struct vms_device_desc d = VMS_DEVICE_DESC_INIT;
		struct vms_writer *w = NULL;
		uint32_t dev;

		bool used = false;

		pd->sfd[k] = -1;
		for (unsigned i = 0; i < c->nrows; i++)
			used |= c->rows[i].kind == RK_DEC && c->rows[i].pd == pd &&
				c->rows[i].cfg == (int)k;
		if (!used)
			continue;
		fd = memfd_create("vmstream-bench", MFD_CLOEXEC);
		if (fd < 0)
			die("memfd_create: %s", strerror(errno));
		writer_opts(c, &wcfgs[k], 2, &o);
		d.name = "bench";
		err = vms_writer_open_fd(&w, fd, &o);
		if (!err)
			err = vms_writer_begin_device(w, &d, &dev);
		if (!err)
			err = vms_writer_write(w, dev, pd->buf, pd->len);
		if (!err)
			err = vms_writer_end_device(w, dev);
		if (!err)
			err = vms_writer_finish(w);
		vms_writer_free(w);
		if (err)
			die("writing the %s/%s decode stream: %s (%s)", pd->name, wcfgs[k].name,
			    vms_strerror(err), vms_last_error());
		pd->sfd[k] = fd;
		pd->slen[k] = (uint64_t)lseek(fd, 0, SEEK_END);
	}

	/* What the zstd CLI makes of the file (untimed; for the ratio lines). */
	{
		char *argv[] = { "zstd", "-1", "-T2", "-q", "-c", pd->path, NULL };
		struct child_result res;

		if (run_capture(argv, NULL, 0, &pd->cli_bytes, &res) == 0 && pd->cli_bytes)
			pd->cli_ratio = (double)pd->len / (double)pd->cli_bytes;
	}
}

/* vmstream-send next to this program: usable for the send target only if
 * it has --compress and --encrypt (and a key file option). */
static void probe_tool(struct ctx *c)
{
	char help[16384] = "", dir[PATH_MAX], *slash;
	char *keyopt = NULL;
	struct child_result res;
	unsigned n = 0;

	snprintf(dir, sizeof(dir), "%s", c->self);
	slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	xsnprintf(c->tool, sizeof(c->tool), "%s/vmstream-send", dir);
	if (access(c->tool, X_OK) != 0) {
		snprintf(c->tool_why, sizeof(c->tool_why), "vmstream-send not built next to vmstream-bench");
		return;
	}
	{
		char *argv[] = { c->tool, "--help", NULL };

		if (run_capture(argv, help, sizeof(help), NULL, &res) < 0 && !help[0]) {
			snprintf(c->tool_why, sizeof(c->tool_why), "vmstream-send --help failed");
			return;
		}
	}
	if (strstr(help, "--key-file"))
		keyopt = "--key-file";
	else if (strstr(help, "--key "))
		keyopt = "--key";
	if (!strstr(help, "--compress") || !strstr(help, "--encrypt") || !keyopt) {
		snprintf(c->tool_why, sizeof(c->tool_why),
			 "vmstream-send has no --compress/--encrypt/--key-file yet "
			 "(checked `vmstream-send --help`)");
		return;
	}
	c->tool_argv[n++] = c->tool;
	c->tool_argv[n++] = "--compress";
	c->tool_argv[n++] = "zstd:1";
	c->tool_argv[n++] = "--encrypt";
	c->tool_argv[n++] = "aes-256-gcm";
	c->tool_argv[n++] = keyopt;
	c->tool_argv[n++] = c->keyfile;
	if (strstr(help, "--threads")) {
		/* the same 2 workers as the library rows (its default is auto) */
		c->tool_argv[n++] = "--threads";
		c->tool_argv[n++] = "2";
	}
	c->tool_argv[n++] = "--output";
	c->tool_argv[n++] = "/dev/null";
	if (strstr(help, "--quiet"))
		c->tool_argv[n++] = "--quiet";
	c->tool_argv[n] = NULL; /* m_tool appends the input file */
	c->tool_ok = true;
}

static void write_keyfile(struct ctx *c)
{
	char hex[2 * VMS_KEY_LEN + 2];
	int fd;

	for (unsigned i = 0; i < VMS_KEY_LEN; i++)
		snprintf(hex + 2 * i, 3, "%02x", c->key[i]);
	hex[2 * VMS_KEY_LEN] = '\n';
	hex[2 * VMS_KEY_LEN + 1] = '\0';
	xsnprintf(c->keyfile, sizeof(c->keyfile), "%s/bench.key", c->dir);
	fd = open(c->keyfile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write_full(fd, hex, strlen(hex)) || close(fd))
		die("cannot write %s", c->keyfile);
	cleanup_add(c->keyfile);
}

static void build_rows(struct ctx *c)
{
	for (unsigned p = 0; p < c->npd; p++) {
		struct pdata *pd = &c->pd[p];

		if (c->parts & P_MATRIX) {
			for (unsigned k = 0; k < NCFG; k++) {
				for (unsigned t = 0; t < c->nthr; t++)
					add_row(c, RK_ENC, pd, (int)k, c->thr[t], -1, "%s/enc/%s/t%u",
						pd->name, wcfgs[k].name, c->thr[t]);
				for (unsigned t = 0; t < c->nthr; t++)
					add_row(c, RK_DEC, pd, (int)k, c->thr[t], -1, "%s/dec/%s/t%u",
						pd->name, wcfgs[k].name, c->thr[t]);
			}
		}
		if (c->parts & P_BASE) {
			for (int b = 0; b < B_NKINDS; b++) {
				bool any = b == B_MEMCPY || b == B_XXH3;

				if (any && p > 0)
					continue; /* data-independent: once */
				add_row(c, RK_BASE, pd, -1, 0, b, "%s/base/%s", any ? "any" : pd->name,
					base_ids[b]);
			}
		}
		if ((c->parts & P_TARGETS) && pd->profile == VMS_DATAGEN_MIXED) {
			add_row(c, RK_SEND, pd, -1, 2, -1, "%s/send/library", pd->name);
			if (c->tool_ok)
				add_row(c, RK_TOOL, pd, -1, 0, -1, "%s/send/vmstream-send", pd->name);
		}
	}
}

/* One run: every row once, baselines spread evenly between the others,
 * both lists rotated by the run number so no row always goes first.
 * Returns false if the run was discarded (other processes used more than
 * --max-other cores meanwhile): its samples are dropped. */
static bool run_once(struct ctx *c, unsigned run)
{
	unsigned nm = 0, nb = 0, no = 0, *m, *b, *order, *n0, every;
	bool keep;
	double busy0 = 0, steal0 = 0, busy1 = 0, steal1 = 0;
	double t0 = now_s(), ours0 = cpu_self_s() + cpu_children_s(), ours, other;

	m = calloc(c->nrows, sizeof(*m));
	b = calloc(c->nrows, sizeof(*b));
	order = calloc(c->nrows, sizeof(*order));
	n0 = calloc(c->nrows, sizeof(*n0));
	if (!m || !b || !order || !n0)
		die("out of memory");
	for (unsigned i = 0; i < c->nrows; i++) {
		n0[i] = c->rows[i].n;
		if (c->rows[i].kind == RK_BASE)
			b[nb++] = i;
		else
			m[nm++] = i;
	}
	every = nb ? (nm + nb - 1) / nb : 1;
	if (every == 0)
		every = 1;
	for (unsigned im = 0, ib = 0; im < nm || ib < nb;) {
		if (ib < nb && (im >= nm || im % every == 0) && ib <= im / every)
			order[no++] = b[(ib++ + run * nb / c->runs) % nb];
		else if (im < nm)
			order[no++] = m[(im++ + run * nm / c->runs) % nm];
		else
			order[no++] = b[(ib++ + run * nb / c->runs) % nb];
	}
	proc_stat(&busy0, &steal0);
	for (unsigned i = 0; i < no; i++) {
		struct row *r = &c->rows[order[i]];

		if (isatty(STDERR_FILENO)) {
			fprintf(stderr, "\rrun %u/%u  %3u/%u  %-44s", run + 1, c->runs, i + 1, no,
				r->id);
			fflush(stderr);
		}
		if (r->failed)
			continue;
		if (measure(c, r, &r->s[r->n]) == 0)
			r->n++;
		else
			fprintf(stderr, "\nvmstream-bench: %s: %s\n", r->id, r->err);
	}
	proc_stat(&busy1, &steal1);
	c->run_sec[run] = now_s() - t0;
	ours = cpu_self_s() + cpu_children_s() - ours0;
	other = (busy1 - busy0) - ours;
	c->run_other[run] = other > 0 ? other / c->run_sec[run] : 0;
	c->run_steal[run] = (steal1 - steal0) / c->run_sec[run];
	keep = c->max_other <= 0 || c->run_other[run] <= c->max_other;
	if (isatty(STDERR_FILENO))
		fprintf(stderr, "\r%80s\r", "");
	fprintf(stderr, "vmstream-bench: run %u/%u done in %.1f s (other processes: %.2f cores)%s\n",
		run + 1, c->runs, c->run_sec[run], c->run_other[run],
		keep ? "" : "; discarded, repeating it");
	if (!keep) {
		for (unsigned i = 0; i < c->nrows; i++)
			c->rows[i].n = n0[i];
		if (c->discarded < MAX_RUNS)
			c->discarded_other[c->discarded++] = c->run_other[run];
	}
	free(m);
	free(b);
	free(order);
	free(n0);
	return keep;
}

/* Peak RSS comes from the child's own VmHWM: ru_maxrss of a posix_spawn()ed
 * child also counts the parent's high-water mark (the vfork()ed child runs
 * on the parent's memory until exec), so it would report this process. */
static void run_memory(struct ctx *c)
{
	uint64_t sizes[2] = { c->rss_small, c->rss_large };

	for (int i = 0; i < 2; i++) {
		char a[32], b[32], s[32], out[512];
		char *argv[] = { c->self, "_rss-child", a, b, s, NULL };
		struct child_result res;

		snprintf(a, sizeof(a), "%llu", (unsigned long long)sizes[i]);
		snprintf(b, sizeof(b), "%llu", (unsigned long long)c->rss_budget);
		snprintf(s, sizeof(s), "%llu", (unsigned long long)c->seed);
		c->rss[i].bytes = sizes[i];
		fprintf(stderr, "vmstream-bench: memory: writer over %s generated on the fly...\n",
			fmt_size(sizes[i], out, sizeof(out)));
		if (run_capture(argv, out, sizeof(out), NULL, &res) == 0 &&
		    sscanf(out, "hwm_kib=%ld before_kib=%ld sec=%lf", &c->rss[i].hwm_kib,
			   &c->rss[i].before_kib, &c->rss[i].sec) == 3) {
			c->rss[i].ok = true;
		} else {
			fprintf(stderr, "vmstream-bench: memory child failed: %s\n", out);
			c->errors++;
		}
	}
}

/* ---- output ------------------------------------------------------------ */

static bool have_rows(struct ctx *c, const struct pdata *pd, enum row_kind kind)
{
	for (unsigned i = 0; i < c->nrows; i++)
		if (c->rows[i].pd == pd && c->rows[i].kind == kind)
			return true;
	return false;
}

static void print_cell(const struct row *r)
{
	if (r && r->failed && r->n == 0)
		printf(" %7s %8s", "error", "");
	else if (!r || r->n == 0)
		printf(" %7s %8s", "-", "-");
	else
		printf(" %7.2f %8.3f", row_gbps(r), row_cpu(r));
}

static void print_matrix(struct ctx *c, struct pdata *pd)
{
	char sz[32];

	printf("\n== %s data: stage matrix, %s per row, median of %u runs\n", pd->name,
	       fmt_size(pd->len, sz, sizeof(sz)), c->runs_done);
	printf("   encode: vms_writer_write() of the in-memory buffer -> /dev/null (window: begin_device..finish)\n");
	printf("   decode: memfd stream -> vms_reader_next() (window: first next() .. end; data not copied out)\n");
	printf("   GB/s = raw bytes / wall s / 1e9; CPU = s of CPU (all threads) per GB of raw data\n");
	printf("%-20s |", "");
	for (int side = 0; side < 2; side++) {
		for (unsigned t = 0; t < c->nthr; t++) {
			char h[32];

			snprintf(h, sizeof(h), "  %s t=%u", side ? "decode" : "encode", c->thr[t]);
			printf("%-17s|", h);
		}
	}
	printf(" %6s\n%-20s |", "wire", "config");
	for (unsigned t = 0; t < 2 * c->nthr; t++)
		printf("%7s %8s |", "GB/s", "CPU s/GB");
	printf(" %6s\n", "%raw");
	for (unsigned k = 0; k < NCFG; k++) {
		char id[96];
		const struct row *enc;
		bool any = false;

		for (unsigned i = 0; i < c->nrows; i++)
			any |= c->rows[i].pd == pd && c->rows[i].cfg == (int)k;
		if (!any)
			continue;
		printf("%-20s |", wcfgs[k].name);
		for (int side = 0; side < 2; side++) {
			for (unsigned t = 0; t < c->nthr; t++) {
				snprintf(id, sizeof(id), "%s/%s/%s/t%u", pd->name, side ? "dec" : "enc",
					 wcfgs[k].name, c->thr[t]);
				print_cell(find_row(c, id));
				printf(" |");
			}
		}
		/* stream size: from the encode row with the most threads */
		snprintf(id, sizeof(id), "%s/enc/%s/t%u", pd->name, wcfgs[k].name,
			 c->thr[c->nthr - 1]);
		enc = find_row(c, id);
		if (enc && enc->n)
			printf(" %5.1f%%", 100 * row_median(enc, s_wire_frac));
		printf("\n");
	}
	/* adaptive levels: where auto ended in each run */
	for (unsigned k = 0; k < NCFG; k++) {
		if (!wcfgs[k].compress || strcmp(wcfgs[k].compress, "auto") != 0)
			continue;
		for (unsigned t = 0; t < c->nthr; t++) {
			char id[96];
			const struct row *r;

			snprintf(id, sizeof(id), "%s/enc/%s/t%u", pd->name, wcfgs[k].name, c->thr[t]);
			r = find_row(c, id);
			if (!r || !r->n)
				continue;
			printf("   %s t=%u: zstd level at the end of each run:", wcfgs[k].name,
			       c->thr[t]);
			for (unsigned i = 0; i < r->n; i++)
				printf(" %d", r->s[i].level);
			printf("; stored raw: %llu of %llu DATA records (run 1)\n",
			       (unsigned long long)r->s[0].stored, (unsigned long long)r->s[0].records);
		}
	}
}

static void print_baselines(struct ctx *c, struct pdata *pd, bool with_memcpy)
{
	printf("\n== %s data: baselines (same runs, interleaved with the rows above)\n", pd->name);
	printf("%-50s %7s %8s %7s %7s\n", "baseline", "GB/s", "CPU s/GB", "spread", "out%raw");
	for (int b = 0; b < B_NKINDS; b++) {
		char id[96];
		const struct row *r;

		bool any = b == B_MEMCPY || b == B_XXH3;

		if (any && !with_memcpy)
			continue;
		snprintf(id, sizeof(id), "%s/base/%s", any ? "any" : pd->name, base_ids[b]);
		r = find_row(c, id);
		if (!r)
			continue;
		printf("%-50s", base_labels[b]);
		print_cell(r);
		if (r->n)
			printf(" %6.1f%%", 100 * row_spread(r));
		if (r->n && r->s[0].out && !any && b != B_EVP_AES && b != B_EVP_CHACHA)
			printf(" %6.1f%%", 100 * row_median(r, s_wire_frac));
		printf("\n");
	}
	if (pd->cli_ratio > 0)
		printf("   zstd -1 -T2 CLI over the whole file: ratio %.3f (%llu -> %llu bytes)\n",
		       pd->cli_ratio, (unsigned long long)pd->len, (unsigned long long)pd->cli_bytes);
}

struct target {
	const char *name;
	double value;   /* the ratio */
	double goal;
	const char *rel; /* ">=" or "<=" */
	char detail[256];
	bool have;
};

static void target_ratio(struct target *t, const char *name, const struct row *a,
			 const struct row *b, double scale, double goal, const char *what_b)
{
	memset(t, 0, sizeof(*t));
	t->name = name;
	t->goal = goal;
	t->rel = ">=";
	if (!a || !b || !a->n || !b->n) {
		snprintf(t->detail, sizeof(t->detail), "not measured");
		return;
	}
	t->value = paired_ratio(a, b, scale);
	t->have = true;
	snprintf(t->detail, sizeof(t->detail), "%.2f GB/s vs %s%.2f GB/s", row_gbps(a),
		 what_b, row_gbps(b));
}

static unsigned collect_targets(struct ctx *c, struct target *t, unsigned max)
{
	char id[96];
	unsigned n = 0;
	struct row *send = find_row(c, "mixed/send/library");
	struct row *tool = find_row(c, "mixed/send/vmstream-send");
	struct row *pipe = find_row(c, "mixed/base/pipe-zstd-openssl");
	struct row *ceil = find_row(c, "mixed/base/ceiling");

	if (!(c->parts & P_TARGETS))
		return 0;
	target_ratio(&t[n++], "send (library) vs zstd -1 -T2 | openssl enc, mixed", send, pipe, 1,
		     2.0, "");
	target_ratio(&t[n++], "send (library) vs CEILING, mixed", send, ceil, 1, 0.8, "");
	if (tool) {
		target_ratio(&t[n++], "vmstream-send vs zstd -1 -T2 | openssl enc, mixed", tool, pipe,
			     1, 2.0, "");
		target_ratio(&t[n++], "vmstream-send vs CEILING, mixed", tool, ceil, 1, 0.8, "");
	}
	for (unsigned p = 0; p < c->npd && n + 2 < max; p++) {
		struct pdata *pd = &c->pd[p];
		static char names[VMS_DATAGEN_NPROFILES][2][96];

		snprintf(id, sizeof(id), "%s/enc/aes-256-gcm/t2", pd->name);
		{
			struct row *a = find_row(c, id);

			snprintf(id, sizeof(id), "%s/base/evp-aes-256-gcm", pd->name);
			snprintf(names[p][0], sizeof(names[p][0]),
				 "aes-256-gcm, 2 workers vs 2 x EVP 1 core, %s", pd->name);
			target_ratio(&t[n++], names[p][0], a, find_row(c, id), 2, 0.8, "2 x ");
		}
		if (pd->profile == VMS_DATAGEN_RANDOM) {
			struct row *a, *b;

			snprintf(id, sizeof(id), "%s/enc/auto/t2", pd->name);
			a = find_row(c, id);
			snprintf(id, sizeof(id), "%s/enc/zero/t2", pd->name);
			b = find_row(c, id);
			snprintf(names[p][1], sizeof(names[p][1]),
				 "auto vs no compression, 2 workers, %s", pd->name);
			target_ratio(&t[n++], names[p][1], a, b, 1, 0.95, "");
		}
	}
	return n;
}

static void print_targets(struct ctx *c)
{
	struct target t[16];
	unsigned n = collect_targets(c, t, 16);

	if (!n && !(c->parts & P_MEMORY))
		return;
	printf("\n== Issue 4 targets (ratio = median over runs of row / baseline from the same run)\n");
	if (c->quick)
		printf("   (--quick: sizes too small for the verdicts to mean anything)\n");
	if (c->parts & P_TARGETS) {
		if (!c->tool_ok)
			printf("   vmstream-send not measured: %s; the library rows do the same work\n",
			       c->tool_why);
			else {
			printf("   vmstream-send measured as:");
			for (unsigned i = 0; c->tool_argv[i]; i++)
				printf(" %s", i ? c->tool_argv[i] : "vmstream-send");
			printf(" FILE\n");
		}
	}
	for (unsigned i = 0; i < n; i++) {
		if (!t[i].have)
			printf("[ n/a ] %-56s %s\n", t[i].name, t[i].detail);
		else
			printf("[%s] %-56s %5.2fx (goal %s %.2fx)  %s\n",
			       t[i].value >= t[i].goal ? " PASS" : " FAIL", t[i].name, t[i].value,
			       t[i].rel, t[i].goal, t[i].detail);
	}
	if (c->parts & P_MEMORY) {
		char b1[32], b2[32];
		double limit = (double)(c->rss_budget + RSS_SLACK) / (double)MIB;
		char names[2][128];

		for (int i = 0; i < 2; i++)
			snprintf(names[i], sizeof(names[i]), "peak RSS (VmHWM), --memory %s, %s stream",
				 fmt_size(c->rss_budget, b2, sizeof(b2)),
				 fmt_size(c->rss[i].bytes, b1, sizeof(b1)));

		for (int i = 0; i < 2; i++) {
			double hwm = (double)c->rss[i].hwm_kib / 1024.0;

			if (!c->rss[i].ok) {
				printf("[ n/a ] peak RSS, %s stream: child failed\n",
				       fmt_size(c->rss[i].bytes, b1, sizeof(b1)));
				continue;
			}
			printf("[%s] %-56s %5.1f MiB (goal <= %.0f MiB)  RSS before opening the writer "
			       "%.1f MiB; %.2f GB/s\n",
			       hwm <= limit ? " PASS" : " FAIL", names[i], hwm, limit,
			       (double)c->rss[i].before_kib / 1024.0,
			       (double)c->rss[i].bytes / c->rss[i].sec / 1e9);
		}
		if (c->rss[0].ok && c->rss[1].ok)
			printf("        peak RSS growth from %s to %s stream: %+.1f MiB\n",
			       fmt_size(c->rss[0].bytes, b1, sizeof(b1)),
			       fmt_size(c->rss[1].bytes, b2, sizeof(b2)),
			       (double)(c->rss[1].hwm_kib - c->rss[0].hwm_kib) / 1024.0);
	}
}

static struct ctx *g_sort_ctx; /* for cmp_spread (qsort has no context) */

static int cmp_spread(const void *a, const void *b)
{
	double x = row_spread(&g_sort_ctx->rows[*(const unsigned *)a]);
	double y = row_spread(&g_sort_ctx->rows[*(const unsigned *)b]);

	return x > y ? -1 : x < y;
}

static void print_noise(struct ctx *c)
{
	unsigned *idx = calloc(c->nrows + 1, sizeof(*idx)), n = 0;
	double *spreads = calloc(c->nrows + 1, sizeof(*spreads));

	if (!idx || !spreads)
		die("out of memory");
	printf("\n== noise\n");
	for (unsigned i = 0; i < c->runs_done; i++)
		printf("   run %u: %.1f s, other processes used %.2f cores on average, steal %.2f cores\n",
		       i + 1, c->run_sec[i], c->run_other[i], c->run_steal[i]);
	if (c->max_other > 0) {
		printf("   runs discarded because other processes used more than %.2f cores: %u",
		       c->max_other, c->discarded);
		for (unsigned i = 0; i < c->discarded; i++)
			printf("%s%.2f", i ? ", " : " (", c->discarded_other[i]);
		printf("%s\n", c->discarded ? ")" : "");
	}
	for (unsigned i = 0; i < c->nrows; i++) {
		if (c->rows[i].n < 2)
			continue;
		spreads[n] = row_spread(&c->rows[i]);
		idx[n++] = i;
	}
	if (n) {
		printf("   spread of a row over the runs, (max-min)/median of GB/s: median %.1f%%; widest:",
		       100 * median(spreads, n));
		g_sort_ctx = c;
		qsort(idx, n, sizeof(*idx), cmp_spread);
		for (unsigned k = 0; k < 3 && k < n; k++)
			printf(" %s %.0f%%%s", c->rows[idx[k]].id, 100 * row_spread(&c->rows[idx[k]]),
			       k + 1 < 3 && k + 1 < n ? "," : "");
		printf("\n");
	}
	free(idx);
	free(spreads);
}

static void write_json(struct ctx *c, const char *machine, const char *cpu)
{
	struct target t[16];
	unsigned nt = collect_targets(c, t, 16);
	struct jw j = { 0 };

	j.f = fopen(c->json_path, "w");
	if (!j.f) {
		fprintf(stderr, "vmstream-bench: cannot write %s: %s\n", c->json_path, strerror(errno));
		c->errors++;
		return;
	}
	jw_open(&j, NULL, '{');
	jw_str(&j, "program", "vmstream-bench");
	jw_str(&j, "scenario", "stages");
	jw_str(&j, "vmstream", vms_version_string());
	jw_str(&j, "openssl", L.ok ? L.OpenSSL_version(OPENSSL_VERSION) : NULL);
	jw_str(&j, "zstd", L.ok ? L.ZSTD_versionString() : NULL);
	jw_str(&j, "machine", machine);
	jw_str(&j, "cpu", cpu);
	jw_u64(&j, "online_cpus", (uint64_t)sysconf(_SC_NPROCESSORS_ONLN));
	jw_u64(&j, "size", c->size);
	jw_u64(&j, "runs", c->runs_done);
	jw_u64(&j, "seed", c->seed);
	jw_bool(&j, "quick", c->quick);
	jw_open(&j, "profiles", '[');
	for (unsigned p = 0; p < c->npd; p++) {
		jw_open(&j, NULL, '{');
		jw_str(&j, "name", c->pd[p].name);
		jw_num(&j, "zstd_cli_ratio", c->pd[p].cli_ratio);
		jw_num(&j, "datagen_gbps", c->pd[p].gen_gbps);
		jw_close(&j, '}');
	}
	jw_close(&j, ']');
	jw_open(&j, "rows", '[');
	for (unsigned i = 0; i < c->nrows; i++) {
		const struct row *r = &c->rows[i];

		jw_open(&j, NULL, '{');
		jw_str(&j, "id", r->id);
		jw_str(&j, "profile", r->pd ? r->pd->name : NULL);
		jw_str(&j, "config", r->cfg >= 0 ? wcfgs[r->cfg].name : NULL);
		jw_u64(&j, "threads", r->threads);
		jw_num(&j, "median_gbps", row_gbps(r));
		jw_num(&j, "median_cpu_s_per_gb", row_cpu(r));
		jw_num(&j, "spread", row_spread(r));
		if (r->failed)
			jw_str(&j, "error", r->err);
		jw_open(&j, "samples", '[');
		for (unsigned k = 0; k < r->n; k++) {
			const struct sample *s = &r->s[k];

			jw_open(&j, NULL, '{');
			jw_num(&j, "sec", s->sec);
			jw_num(&j, "cpu", s->cpu);
			jw_u64(&j, "raw", s->raw);
			jw_u64(&j, "out", s->out);
			if (r->cfg >= 0 && wcfgs[r->cfg].compress && r->kind == RK_ENC) {
				jw_num(&j, "level", s->level);
				jw_u64(&j, "stored", s->stored);
				jw_u64(&j, "records", s->records);
			}
			jw_close(&j, '}');
		}
		jw_close(&j, ']');
		jw_close(&j, '}');
	}
	jw_close(&j, ']');
	jw_open(&j, "targets", '[');
	for (unsigned i = 0; i < nt; i++) {
		jw_open(&j, NULL, '{');
		jw_str(&j, "name", t[i].name);
		jw_num(&j, "ratio", t[i].have ? t[i].value : 0.0 / 0.0);
		jw_num(&j, "goal", t[i].goal);
		if (t[i].have)
			jw_bool(&j, "pass", t[i].value >= t[i].goal);
		jw_close(&j, '}');
	}
	jw_close(&j, ']');
	if (c->parts & P_MEMORY) {
		jw_open(&j, "memory", '[');
		for (int i = 0; i < 2; i++) {
			jw_open(&j, NULL, '{');
			jw_u64(&j, "stream_bytes", c->rss[i].bytes);
			jw_u64(&j, "budget", c->rss_budget);
			jw_bool(&j, "ok", c->rss[i].ok);
			jw_num(&j, "vmhwm_mib", (double)c->rss[i].hwm_kib / 1024.0);
			jw_num(&j, "rss_before_open_mib", (double)c->rss[i].before_kib / 1024.0);
			jw_bool(&j, "pass", c->rss[i].ok && (uint64_t)c->rss[i].hwm_kib * 1024 <=
								    c->rss_budget + RSS_SLACK);
			jw_close(&j, '}');
		}
		jw_close(&j, ']');
	}
	jw_num(&j, "max_other", c->max_other);
	jw_open(&j, "discarded_runs_other_cores", '[');
	for (unsigned i = 0; i < c->discarded; i++)
		jw_num(&j, NULL, c->discarded_other[i]);
	jw_close(&j, ']');
	jw_open(&j, "runs_noise", '[');
	for (unsigned i = 0; i < c->runs_done; i++) {
		jw_open(&j, NULL, '{');
		jw_num(&j, "sec", c->run_sec[i]);
		jw_num(&j, "other_cores", c->run_other[i]);
		jw_num(&j, "steal_cores", c->run_steal[i]);
		jw_close(&j, '}');
	}
	jw_close(&j, ']');
	jw_close(&j, '}');
	fputc('\n', j.f);
	if (fclose(j.f)) {
		fprintf(stderr, "vmstream-bench: writing %s failed\n", c->json_path);
		c->errors++;
	}
}

static int cmd_stages(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "runs", required_argument, NULL, 'r' },     { "size", required_argument, NULL, 's' },
		{ "quick", no_argument, NULL, 'q' },	      { "json", required_argument, NULL, 'j' },
		{ "data-dir", required_argument, NULL, 'd' }, { "profiles", required_argument, NULL, 'p' },
		{ "only", required_argument, NULL, 'o' },     { "seed", required_argument, NULL, 'S' },
		{ "rss-sizes", required_argument, NULL, 'R' }, { "memory", required_argument, NULL, 'm' },
		{ "rows", required_argument, NULL, 'w' },     { "threads", required_argument, NULL, 't' },
		{ "max-other", required_argument, NULL, 'M' },
		{ "help", no_argument, NULL, 'h' },	      { NULL, 0, NULL, 0 },
	};
	struct ctx *c = calloc(1, sizeof(*c));
	bool size_set = false, rss_set = false;
	char machine[512], cpu[160], sz[32], thp[128];
	struct utsname un;
	ssize_t sl;
	int opt;

	if (!c)
		die("out of memory");
	c->runs = 5;
	c->size = 256 * MIB;
	c->seed = VMS_DATAGEN_SEED_DEFAULT;
	c->parts = P_MATRIX | P_BASE | P_TARGETS | P_MEMORY;
	c->rss_small = GIB;
	c->rss_large = 8 * GIB;
	c->rss_budget = 64 * MIB;
	c->profiles = "mixed,random";
	c->thr[0] = 0;
	c->thr[1] = 2;
	c->nthr = 2;
	while ((opt = getopt_long(argc, argv, "r:s:qj:h", lo, NULL)) != -1) {
		uint64_t v;

		switch (opt) {
		case 'r':
			if (parse_size(optarg, &v) || v < 1 || v > MAX_RUNS)
				die("stages: --runs must be 1..%d", MAX_RUNS);
			c->runs = (unsigned)v;
			break;
		case 's':
			if (parse_size(optarg, &c->size) || c->size < MIB || c->size > 64 * GIB)
				die("stages: --size must be 1M..64G");
			size_set = true;
			break;
		case 'q':
			c->quick = true;
			break;
		case 'j':
			c->json_path = optarg;
			break;
		case 'd':
			c->data_dir = optarg;
			break;
		case 'p':
			c->profiles = optarg;
			break;
		case 'o':
			c->parts = parse_parts(optarg);
			break;
		case 'S':
			if (parse_size(optarg, &c->seed))
				die("stages: --seed must be a number");
			break;
		case 'R': {
			char a[64], *comma;

			snprintf(a, sizeof(a), "%s", optarg);
			comma = strchr(a, ',');
			if (!comma)
				die("stages: --rss-sizes wants A,B");
			*comma = '\0';
			if (parse_size(a, &c->rss_small) || parse_size(comma + 1, &c->rss_large))
				die("stages: --rss-sizes wants two sizes");
			rss_set = true;
			break;
		}
		case 'm':
			if (parse_size(optarg, &c->rss_budget) || c->rss_budget < 4 * MIB)
				die("stages: --memory must be a size >= 4M");
			break;
		case 'w':
			c->rows_filter = optarg;
			break;
		case 'M': {
			char *end;

			c->max_other = strtod(optarg, &end);
			if (*end || end == optarg || c->max_other < 0)
				die("stages: --max-other wants a number of cores, e.g. 0.3");
			break;
		}
		case 't': {
			char buf[64], *save = NULL;

			snprintf(buf, sizeof(buf), "%s", optarg);
			c->nthr = 0;
			for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
				if (c->nthr == MAX_THR || parse_size(t, &v) || v > 64)
					die("stages: --threads wants up to %d numbers 0..64", MAX_THR);
				c->thr[c->nthr++] = (unsigned)v;
			}
			if (!c->nthr)
				die("stages: --threads wants a list such as 0,2");
			break;
		}
		case 'h':
			usage_stages(stdout);
			return 0;
		default:
			usage_stages(stderr);
			return 2;
		}
	}
	if (optind < argc)
		die("stages: unexpected argument '%s'", argv[optind]);
	if (c->quick) {
		if (!size_set)
			c->size = 8 * MIB;
		if (!rss_set) {
			c->rss_small = 32 * MIB;
			c->rss_large = 128 * MIB;
		}
	}
	c->size = (c->size + CHUNK - 1) / CHUNK * CHUNK;

	/* profiles */
	{
		char buf[128], *save = NULL;

		snprintf(buf, sizeof(buf), "%s", c->profiles);
		for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
			int p = vms_datagen_profile_from_name(t);

			if (p < 0)
				die("stages: unknown profile '%s'", t);
			if (c->npd == VMS_DATAGEN_NPROFILES)
				die("stages: too many profiles");
			c->pd[c->npd].profile = p;
			c->pd[c->npd].name = vms_datagen_profile_name(p);
			c->npd++;
		}
	}
	if (!load_syms())
		die("cannot find the baseline libraries' functions: %s", L.why);
	sl = readlink("/proc/self/exe", c->self, sizeof(c->self) - 1);
	if (sl <= 0)
		die("readlink /proc/self/exe: %s", strerror(errno));
	c->self[sl] = '\0';
	c->devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (c->devnull < 0)
		die("open /dev/null: %s", strerror(errno));
	if (getrandom(c->key, sizeof(c->key), 0) != sizeof(c->key))
		die("getrandom failed");

	/* data directory */
	if (c->data_dir) {
		snprintf(c->dir, sizeof(c->dir), "%s", c->data_dir);
		if (mkdir(c->dir, 0700) && errno != EEXIST)
			die("cannot create %s: %s", c->dir, strerror(errno));
	} else {
		const char *tmp = getenv("TMPDIR");

		snprintf(c->dir, sizeof(c->dir), "%s/vmstream-bench.XXXXXX", tmp && *tmp ? tmp : "/tmp");
		if (!mkdtemp(c->dir))
			die("mkdtemp %s: %s", c->dir, strerror(errno));
		c->own_dir = true;
		snprintf(g_cleanup_dir, sizeof(g_cleanup_dir), "%s", c->dir);
	}
	atexit(cleanup_tmp);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_signal);
	write_keyfile(c);
	probe_tool(c);

	uname(&un);
	cpu_model(cpu, sizeof(cpu));
	read_first_line("/sys/kernel/mm/transparent_hugepage/enabled", thp, sizeof(thp));
	snprintf(machine, sizeof(machine), "%s %s, %ld online CPUs, THP %s", un.sysname, un.release,
		 sysconf(_SC_NPROCESSORS_ONLN), thp);

	c->scratch_len = 2 * (L.ZSTD_compressBound(CHUNK) + 4096);
	c->scratch = big_alloc(c->scratch_len);
	if (c->parts & P_BASE)
		c->copy_dst = big_alloc(c->size);
	build_rows(c);
	if (c->nrows == 0 && !(c->parts & P_MEMORY))
		die("stages: no row selected");
	for (unsigned p = 0; p < c->npd; p++) {
		bool used = false;

		for (unsigned i = 0; i < c->nrows; i++)
			used |= c->rows[i].pd == &c->pd[p];
		for (unsigned k = 0; k < NCFG; k++)
			c->pd[p].sfd[k] = -1;
		if (!used)
			continue;
		fprintf(stderr, "vmstream-bench: preparing %s data (%s, streams for decode)...\n",
			c->pd[p].name, fmt_size(c->size, sz, sizeof(sz)));
		prepare_profile(c, &c->pd[p]);
	}

	printf("vmstream-bench stages: vmstream %s, %s, zstd %s, XXH3 via %s\n", vms_version_string(),
	       L.OpenSSL_version(OPENSSL_VERSION), L.ZSTD_versionString(), L.xxh3_name);
	printf("machine: %s; %s\n", cpu, machine);
	{
		char la[128];

		read_first_line("/proc/loadavg", la, sizeof(la));
		printf("load average at start: %s\n", la);
	}
	printf("data: %s per row and profile, seed 0x%llx, %u runs; each run measures every row\n"
	       "once, baselines interleaved, order rotated per run; medians reported\n",
	       fmt_size(c->size, sz, sizeof(sz)), (unsigned long long)c->seed, c->runs);
	for (unsigned p = 0; p < c->npd; p++)
		if (c->pd[p].buf)
			printf("profile %-7s %s; datagen %.2f GB/s\n", c->pd[p].name,
			       vms_datagen_profile_desc(c->pd[p].profile), c->pd[p].gen_gbps);
	fflush(stdout);

	/* A discarded run is repeated, up to as many times as --runs. */
	for (unsigned tries = 0; c->runs_done < c->runs && tries < 2 * c->runs; tries++) {
		if (run_once(c, c->runs_done))
			c->runs_done++;
		else if (tries + 1 == 2 * c->runs)
			fprintf(stderr, "vmstream-bench: too many noisy runs; giving up after %u\n",
				tries + 1);
	}
	if (c->parts & P_MEMORY)
		run_memory(c);

	for (unsigned p = 0; p < c->npd; p++) {
		if (have_rows(c, &c->pd[p], RK_ENC) || have_rows(c, &c->pd[p], RK_DEC))
			print_matrix(c, &c->pd[p]);
		if (have_rows(c, &c->pd[p], RK_BASE))
			print_baselines(c, &c->pd[p], p == 0);
	}
	if (c->parts & P_TARGETS) {
		const struct row *send = find_row(c, "mixed/send/library");
		const struct row *tool = find_row(c, "mixed/send/vmstream-send");

		if (send && send->n)
			printf("\n== send target rows, mixed data (file -> writer, zstd:1 + aes-256-gcm, 2 workers -> /dev/null)\n"
			       "   library (read() into vms_writer_acquire buffers)    %7.2f GB/s %8.3f CPU s/GB, wire %.1f%% of raw\n",
			       row_gbps(send), row_cpu(send), 100 * row_median(send, s_wire_frac));
		if (tool && tool->n)
			printf("   vmstream-send %-38s %7.2f GB/s %8.3f CPU s/GB\n", "", row_gbps(tool),
			       row_cpu(tool));
	}
	print_targets(c);
	print_noise(c);
	{
		char la[128];

		read_first_line("/proc/loadavg", la, sizeof(la));
		printf("   load average at end: %s\n", la);
	}
	for (unsigned i = 0; i < c->nrows; i++) {
		if (c->rows[i].failed) {
			printf("ERROR %s: %s\n", c->rows[i].id, c->rows[i].err);
			c->errors++;
		}
	}
	if (c->json_path)
		write_json(c, machine, cpu);
	fflush(stdout);

	for (unsigned p = 0; p < c->npd; p++) {
		for (unsigned k = 0; k < NCFG; k++)
			if (c->pd[p].sfd[k] >= 0)
				close(c->pd[p].sfd[k]);
		big_free(c->pd[p].buf, c->pd[p].len);
	}
	big_free(c->scratch, c->scratch_len);
	big_free(c->copy_dst, c->size);
	vms_wipe(c->key, sizeof(c->key));
	free(c->rows);
	{
		int rc = c->errors ? 1 : 0;

		free(c);
		return rc;
	}
}

/* ------------------------------------------------------------------------ */

struct scenario {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *help;
	bool hidden;
};

static const struct scenario scenarios[] = {
	{ "gen", cmd_gen, "write a generated data set to stdout (--profile, --size)", false },
	{ "stages", cmd_stages,
	  "stage matrix, baselines, Issue 4 target ratios and writer peak RSS", false },
	{ "_rss-child", cmd_rss_child, "internal: one writer for the memory part", true },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: vmstream-bench SCENARIO [OPTIONS]   (SCENARIO --help for its options)\n");
	for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++)
		if (!scenarios[i].hidden)
			fprintf(f, "  %-8s %s\n", scenarios[i].name, scenarios[i].help);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++)
		if (strcmp(argv[1], scenarios[i].name) == 0)
			return scenarios[i].run(argc - 1, argv + 1);
	fprintf(stderr, "vmstream-bench: unknown scenario '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
