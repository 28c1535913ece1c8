/* SPDX-License-Identifier: MIT */
/*
 * Shared plumbing of the vmstream command-line tools: the exit-code table,
 * table-driven option parsing, strict number parsing, error reporting,
 * progress display, a streaming JSON emitter, and crash-safe output files
 * (temporary name, fsync, rename, directory fsync).
 *
 * The tools use the public API (vmstream.h) only. Each tool keeps main()
 * thin: an option table, a handler for its own keys, and a run function.
 */
#ifndef VMS_TOOLS_COMMON_H
#define VMS_TOOLS_COMMON_H

#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include "vmstream.h"

/* ------------------------------------------------------------------------ */
/* Exit codes: one table (common.c), printed by every --help.               */

enum vms_exit {
	VMS_EXIT_OK = 0,       /* success */
	VMS_EXIT_FAIL = 1,     /* any other failure */
	VMS_EXIT_USAGE = 2,    /* usage error, bad option or argument */
	VMS_EXIT_IO = 3,       /* local I/O: input/output files, output exists */
	VMS_EXIT_STREAM = 4,   /* invalid, corrupt or truncated stream */
	VMS_EXIT_AUTH = 5,     /* authentication or key failure */
	VMS_EXIT_ABORTED = 6,  /* the peer aborted the stream */
	VMS_EXIT_NET = 7,      /* network, timeout or session protocol */
	VMS_EXIT_DEVICE = 8,   /* device error */
};

/* Exit status for a negative enum vms_err (0 for VMS_OK). */
int vms_tool_exit_code(int vms_err);

/* The exit-code table as help text ("Exit status:" and one line per code). */
void vms_tool_print_exit_codes(FILE *f);

/* ------------------------------------------------------------------------ */
/* Options.                                                                  */

/* Keys handled by vms_tool_parse() itself. A tool lists the ones it supports
 * in its table (with the VMS_TOOL_OPT_* entries below); its own keys are
 * short-option characters or values >= VMS_OPT_TOOL_BASE. */
enum vms_opt_key {
	VMS_OPT_HELP = 'h',
	VMS_OPT_VERSION = 'V',
	VMS_OPT_QUIET = 'q',
	VMS_OPT_VERBOSE = 'v',
	VMS_OPT_JSON = 0x100,
	VMS_OPT_PROGRESS,
	VMS_OPT_NO_PROGRESS,
	VMS_OPT_FORCE,
	/* Shared by send and recv (stored in struct vms_tool_shared). */
	VMS_OPT_KEY_FILE,
	VMS_OPT_THREADS,
	VMS_OPT_MEMORY,
	VMS_OPT_PSK_FILE,
	VMS_OPT_PSK_IDENTITY,
	VMS_OPT_CERT,
	VMS_OPT_TLS_KEY,
	VMS_OPT_CA,
	VMS_OPT_IO,
	VMS_OPT_CONNECT_TIMEOUT,
	VMS_OPT_IDLE_TIMEOUT,
	VMS_OPT_INSECURE,
	VMS_OPT_TOOL_BASE = 0x200,
};

struct vms_tool_opt {
	const char *name;  /* long name, without "--" */
	int has_arg;       /* no_argument, required_argument, optional_argument */
	int key;           /* short option character, or a key >= 0x100 */
	const char *arg;   /* argument name for --help ("FILE"), or NULL */
	const char *help;  /* one line of help */
};

#define VMS_TOOL_OPT_JSON                                                     \
	{ "json", optional_argument, VMS_OPT_JSON, "FILE",                    \
	  "one-line JSON summary on stderr, or in FILE" }
#define VMS_TOOL_OPT_QUIET                                                    \
	{ "quiet", no_argument, VMS_OPT_QUIET, NULL,                          \
	  "no progress or notes (errors are still reported)" }
#define VMS_TOOL_OPT_VERBOSE                                                  \
	{ "verbose", no_argument, VMS_OPT_VERBOSE, NULL,                      \
	  "device mode: notes on stderr (send: each device, precopy rounds, switchover; " \
	  "both: a line per device at the end)" }
#define VMS_TOOL_OPT_PROGRESS                                                 \
	{ "progress", no_argument, VMS_OPT_PROGRESS, NULL,                    \
	  "progress on stderr (default: if stderr is a terminal)" }
#define VMS_TOOL_OPT_NO_PROGRESS                                              \
	{ "no-progress", no_argument, VMS_OPT_NO_PROGRESS, NULL, "never show progress" }
#define VMS_TOOL_OPT_FORCE                                                    \
	{ "force", no_argument, VMS_OPT_FORCE, NULL,                          \
	  "replace an existing output file" }
#define VMS_TOOL_OPT_HELP                                                     \
	{ "help", no_argument, VMS_OPT_HELP, NULL, "show this help and exit" }
#define VMS_TOOL_OPT_VERSION                                                  \
	{ "version", no_argument, VMS_OPT_VERSION, NULL,                      \
	  "show version information and exit" }
#define VMS_TOOL_OPT_THREADS                                                  \
	{ "threads", required_argument, VMS_OPT_THREADS, "N",                 \
	  "worker threads, 0..64 or 'auto' (default auto: one per online CPU)" }
#define VMS_TOOL_OPT_MEMORY                                                   \
	{ "memory", required_argument, VMS_OPT_MEMORY, "SIZE",                \
	  "buffer memory budget (default 64M, or more if the chunk size and stages need it; binary K/M/G)" }
#define VMS_TOOL_OPT_PSK_FILE                                                 \
	{ "psk-file", required_argument, VMS_OPT_PSK_FILE, "FILE",            \
	  "network: authenticate with the TLS 1.3 pre-shared key in FILE (64 hex, mode 0600)" }
#define VMS_TOOL_OPT_PSK_IDENTITY                                             \
	{ "psk-identity", required_argument, VMS_OPT_PSK_IDENTITY, "ID",      \
	  "network: PSK identity (default 'vmstream')" }
#define VMS_TOOL_OPT_CERT                                                     \
	{ "cert", required_argument, VMS_OPT_CERT, "FILE",                    \
	  "network: own X.509 certificate chain (PEM); needs --key and --ca" }
#define VMS_TOOL_OPT_TLS_KEY                                                  \
	{ "key", required_argument, VMS_OPT_TLS_KEY, "FILE",                  \
	  "network: private key of --cert (PEM, no passphrase)" }
#define VMS_TOOL_OPT_CA                                                       \
	{ "ca", required_argument, VMS_OPT_CA, "FILE",                        \
	  "network: CA certificate(s) the peer's certificate must chain to (PEM)" }
#define VMS_TOOL_OPT_IO                                                       \
	{ "io", required_argument, VMS_OPT_IO, "ENGINE",                      \
	  "network: I/O engine uring|posix|auto (default auto; env VMS_IO overrides auto)" }
#define VMS_TOOL_OPT_CONNECT_TIMEOUT                                          \
	{ "connect-timeout", required_argument, VMS_OPT_CONNECT_TIMEOUT, "SECONDS", \
	  "network: connection and handshake timeout (default 10)" }
#define VMS_TOOL_OPT_IDLE_TIMEOUT                                             \
	{ "idle-timeout", required_argument, VMS_OPT_IDLE_TIMEOUT, "SECONDS", \
	  "network: fail after this long without progress (default 30)" }
#define VMS_TOOL_OPT_INSECURE                                                 \
	{ "insecure", no_argument, VMS_OPT_INSECURE, NULL,                    \
	  "network: allow an unauthenticated, unencrypted session with a non-loopback peer" }
#define VMS_TOOL_OPT_END { NULL, 0, 0, NULL, NULL }

/* Groups of entries send and recv list alike, in --help order: the network
 * session options, and the options that end each table. */
#define VMS_TOOL_OPTS_NET                                                     \
	VMS_TOOL_OPT_PSK_FILE, VMS_TOOL_OPT_PSK_IDENTITY, VMS_TOOL_OPT_CERT,  \
	VMS_TOOL_OPT_TLS_KEY, VMS_TOOL_OPT_CA, VMS_TOOL_OPT_IO,               \
	VMS_TOOL_OPT_CONNECT_TIMEOUT, VMS_TOOL_OPT_IDLE_TIMEOUT, VMS_TOOL_OPT_INSECURE
#define VMS_TOOL_OPTS_TAIL                                                    \
	VMS_TOOL_OPT_FORCE, VMS_TOOL_OPT_JSON, VMS_TOOL_OPT_PROGRESS,         \
	VMS_TOOL_OPT_NO_PROGRESS, VMS_TOOL_OPT_VERBOSE, VMS_TOOL_OPT_QUIET,   \
	VMS_TOOL_OPT_HELP, VMS_TOOL_OPT_VERSION, VMS_TOOL_OPT_END

/* Settings of the options shared by send and recv (and inspect's --key-file). */
struct vms_tool_shared {
	const char *key_file;      /* --key-file (file mode stream key) */
	uint32_t threads;          /* default VMS_THREADS_AUTO */
	uint64_t memory;           /* 0 = the library's self-sizing default */
	const char *psk_file;
	const char *psk_identity;
	const char *cert, *key, *ca;
	uint32_t io;               /* enum vms_io_kind */
	int connect_timeout_ms;    /* default 10000 */
	int idle_timeout_ms;       /* default 30000 */
	bool insecure;
	const char *net_opt;       /* first network-only option given ("--psk-file"), or NULL */
};

enum vms_progress_mode { VMS_PROGRESS_AUTO = -1, VMS_PROGRESS_OFF = 0, VMS_PROGRESS_ON = 1 };

/* One tool invocation: what it is, its common settings, and its outcome. */
struct vms_tool {
	/* set by the tool before vms_tool_parse() */
	const char *prog;      /* "vmstream-send" */
	const char *synopsis;  /* "[OPTIONS] --output FILE [INPUT]" */
	const char *summary;   /* one-line description */
	const char *details;   /* extra help paragraph, or NULL */
	const struct vms_tool_opt *opts; /* ends with VMS_TOOL_OPT_END */

	/* common settings, filled by vms_tool_parse() */
	bool quiet;
	bool verbose;          /* --verbose (only tools that list it) */
	bool force;
	int progress;          /* enum vms_progress_mode */
	bool json;
	const char *json_path; /* NULL = stderr */
	FILE *json_file;       /* opened by vms_tool_parse() for --json=FILE */

	/* shared options, defaults set by vms_tool_parse() */
	struct vms_tool_shared sh;

	/* outcome: the first failure recorded wins */
	int err;               /* enum vms_err, 0 = success */
	int exit_override;     /* non-zero: exit status to use instead of the table's */
	char msg[1024];
};

/* Handler for a tool's own keys: 0 to continue, or an exit status (after
 * reporting through vms_tool_usage_error()). */
typedef int (*vms_tool_opt_fn)(struct vms_tool *t, void *ctx, int key, const char *arg);

/* Parse argv against t->opts. Returns -1 to go on (operands start at
 * *operands), or an exit status for main() to return (--help, --version,
 * usage error). */
int vms_tool_parse(struct vms_tool *t, int argc, char **argv, vms_tool_opt_fn fn, void *ctx,
		   int *operands);

struct vms_tool_devset;

/* main() of a transfer tool (send, recv): parse argv with opt_fn, check the
 * option combinations with check, take at most one operand (none with
 * --device: the devices are the tool's input or output), and run. */
struct vms_tool_main {
	vms_tool_opt_fn opt_fn;
	/* mode-dependent usage checks: 0, or an exit status (error reported) */
	int (*check)(struct vms_tool *t, void *args);
	/* operand: as given, or "-" when absent; returns the exit status */
	int (*run)(struct vms_tool *t, void *args, const char *operand);
	const char *operand;       /* "INPUT" */
	const char *role;          /* "input": "the devices are the input" */
};

/* Returns main()'s exit status; devs (the --device set inside args) is freed
 * unless run was called (run frees it). */
int vms_tool_main(struct vms_tool *t, int argc, char **argv, const struct vms_tool_main *m,
		  void *args, struct vms_tool_devset *devs);

/* Report a usage error on one line and return VMS_EXIT_USAGE. */
int vms_tool_usage_error(struct vms_tool *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Strict size: decimal digits with an optional binary suffix K, M, G, KiB,
 * MiB, GiB (all powers of 1024). No sign, space, fraction or other junk.
 * 0 on success; otherwise -1 with a reason in why. */
int vms_tool_parse_size(const char *s, uint64_t min, uint64_t max, uint64_t *out, char *why,
			size_t whylen);

/* Seconds for a timeout option: digits with an optional fraction of up to 3
 * digits ("2", "0.5"), min_ms..max_ms after conversion to milliseconds. */
int vms_tool_parse_seconds(const char *s, int min_ms, int max_ms, int *out_ms, char *why,
			   size_t whylen);

/* A plain decimal integer min..max (no sign, no suffix). */
int vms_tool_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out, char *why,
			size_t whylen);

/* ------------------------------------------------------------------------ */
/* Network addresses and settings.                                           */

/* Option handlers for a tool's mode-selecting options (0, or an exit status
 * after a usage error): a FILE that may be '-' (must not be empty), and an
 * address checked by vms_addr_parse() with flags (name: "--to"; host and
 * port as there, NULL if not wanted). Both set *val = arg. */
int vms_tool_opt_file(struct vms_tool *t, const char *name, const char *arg, const char **val);
int vms_tool_opt_addr(struct vms_tool *t, const char *name, const char *arg, uint32_t flags,
		      char *host, size_t hostlen, uint16_t *port, const char **val);

/* Is authentication configured (--psk-file or --cert/--key/--ca)? */
bool vms_tool_net_authenticated(const struct vms_tool *t);

/* Network mode with --insecure, no authentication and an address (addr,
 * parsed with flags) that is not loopback only: the case that deserves a
 * warning. */
bool vms_tool_insecure_remote(const struct vms_tool *t, bool net_mode, const char *addr,
			      uint32_t flags);

/* Usage checks of the shared network options for the chosen mode: in file
 * mode none may be given; in network mode --key-file may not, X.509 needs all
 * three files, and PSK and X.509 exclude each other. Returns 0 or an exit
 * status (usage error reported). */
int vms_tool_check_net_usage(struct vms_tool *t, bool net_mode);

/* Fill *no from the shared options; loads the PSK (VMS_EKEY problems are
 * recorded as the run's failure) into psk, which the caller wipes. */
int vms_tool_net_opts(struct vms_tool *t, struct vms_net_opts *no, uint8_t psk[VMS_KEY_LEN]);

/* Load a key file (--key-file, --psk-file) and record a failure (exit 5) with
 * the library's message naming the file. */
int vms_tool_load_key(struct vms_tool *t, const char *path, uint8_t key[VMS_KEY_LEN]);

/* One "prog: WARNING: ..." line on stderr (always shown, also with --quiet). */
void vms_tool_warn(const struct vms_tool *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Process CPU time so far (all threads), in seconds. */
void vms_tool_cpu(double *user, double *sys);

/* ------------------------------------------------------------------------ */
/* Outcome.                                                                  */

/* Record a failure (the first one wins) and return code. */
int vms_tool_fail(struct vms_tool *t, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Record a failure returned by a vms_ call, with vms_last_error() as text. */
int vms_tool_fail_lib(struct vms_tool *t, int code);
/* The same for a session call (connect, listen, accept, ack): a socket-level
 * VMS_EIO is a network error (VMS_ENET, exit 7), not a local file error. */
int vms_tool_fail_net(struct vms_tool *t, int code);

/* Print the error line (`prog: error: VMS_EXXX: text`) if the run failed and
 * return the exit status. */
int vms_tool_report(struct vms_tool *t);

/* Path for messages: "stdin"/"stdout" for "-". */
const char *vms_tool_path_name(const char *path, bool output);

/* Human-readable byte count ("1.50 GiB") into buf. */
const char *vms_tool_human_bytes(uint64_t n, char *buf, size_t len);

/* Names of preamble values (FORMAT.md section 2); ciphers: vms_cipher_name(). */
const char *vms_tool_key_source_name(unsigned key_source);
const char *vms_tool_devkind_name(unsigned kind);
const char *vms_tool_phase_name(unsigned phase);

double vms_tool_now(void);

/* ------------------------------------------------------------------------ */
/* Progress line on stderr: bytes, percent, rate, ETA, compression ratio
 * (raw/wire), lanes and I/O engine; at most 10 per second. On a terminal it
 * is redrawn in place and erased at the end; elsewhere (forced with
 * --progress) it prints one line per second.                                */

struct vms_progress {
	bool on;
	bool tty;
	bool drawn;
	uint64_t total;        /* UINT64_MAX = unknown */
	uint64_t bytes;        /* raw device bytes */
	uint64_t wire;         /* stream bytes */
	unsigned lanes;        /* 0 = not shown */
	const char *engine;    /* NULL = not shown */
	double t0;
	double last;
};

void vms_progress_init(struct vms_progress *p, const struct vms_tool *t, uint64_t total);
void vms_progress_update(struct vms_progress *p, uint64_t bytes);
void vms_progress_end(struct vms_progress *p);
/* A vms_progress_fn for writer/reader options; user = struct vms_progress *. */
void vms_progress_cb(void *user, const struct vms_stats *st);

/* ------------------------------------------------------------------------ */
/* Streaming JSON emitter (one line, no trailing newline until the end).     */

struct vms_json {
	FILE *f;
	int depth;
	bool need_comma[16];
};

void vms_json_init(struct vms_json *j, FILE *f);
void vms_json_obj_begin(struct vms_json *j, const char *key); /* key NULL in arrays/top */
void vms_json_obj_end(struct vms_json *j);
void vms_json_arr_begin(struct vms_json *j, const char *key);
void vms_json_arr_end(struct vms_json *j);
void vms_json_str(struct vms_json *j, const char *key, const char *val); /* NULL = null */
void vms_json_u64(struct vms_json *j, const char *key, uint64_t val);
void vms_json_i64(struct vms_json *j, const char *key, int64_t val);
void vms_json_double(struct vms_json *j, const char *key, double val);
void vms_json_bool(struct vms_json *j, const char *key, bool val);
void vms_json_null(struct vms_json *j, const char *key);
void vms_json_hex(struct vms_json *j, const char *key, const uint8_t *p, size_t n);

/* Transfer summary written by --json (send and recv). */
struct vms_summary {
	const char *bytes_key;     /* "bytes_in" (send) or "bytes_out" (recv) */
	uint64_t bytes;            /* raw device bytes read (send) / written (recv) */
	uint64_t wire_bytes;       /* stream bytes written (send) / read (recv) */
	uint64_t records;
	double seconds;
	const char *device;        /* device name, or NULL */
	bool have_digest;
	uint64_t digest;           /* DEVICE_END digest (verified by recv) */
	const char *mode;          /* "file" or "net" */
	unsigned lanes;            /* 0 = unknown */
	const char *engine;        /* "io_uring", "posix", "fd" or NULL */
	const char *cipher;        /* "none", "aes-256-gcm", ... or NULL */
	const char *compress;      /* as asked (send) / as seen (recv), or NULL */
	const char *peer;          /* "psk:vmstream", a certificate subject, or NULL */
	const char *address;       /* network address (--to / --listen), or NULL */
	int acknowledged;          /* send, net: 1 / 0; -1 = not applicable */
	/* Optional: more members of the top-level object (device mode's
	 * "devices" array), written before error_code. */
	void (*extra)(struct vms_json *j, void *user);
	void *extra_user;
};

/* Write the --json summary if asked; reports its own failure as an error of
 * the run. Call before vms_tool_report(). */
void vms_tool_write_summary(struct vms_tool *t, const struct vms_summary *s);

/* Fill mode, wire_bytes, records and seconds (since t0) of s. */
void vms_summary_set_stats(struct vms_summary *s, bool net_mode, const struct vms_stats *st,
			   double t0);
/* Is the final verdict line shown (success, not --quiet, and stderr a
 * terminal or --progress)? */
bool vms_tool_verdict_wanted(const struct vms_tool *t, const struct vms_progress *p);
/* Pieces of the verdict line: ", ratio R" ("" without wire bytes), raw
 * bytes per second, and "N lane(s), ENGINE". */
const char *vms_summary_ratio(const struct vms_summary *s, char *buf, size_t len);
double vms_summary_rate(const struct vms_summary *s);
const char *vms_summary_lanes(const struct vms_summary *s, char *buf, size_t len);

/* Device mode: raw bytes of every device in a migration report, and one
 * device's precopy_bytes, stopcopy_bytes and bytes as JSON members. */
uint64_t vms_tool_report_bytes(const struct vms_migrate_report *rep);
void vms_json_dev_bytes(struct vms_json *j, const struct vms_migrate_dev_report *d);

/* ------------------------------------------------------------------------ */
/* Signals: SIGPIPE is ignored (a closed pipe becomes a write error handled
 * like any other), SIGINT/SIGTERM/SIGHUP remove the temporary output file,
 * print one error line and end the process with the signal.                 */

void vms_tool_signals_init(const struct vms_tool *t);

/* ------------------------------------------------------------------------ */
/* Output file: "-" is stdout; an existing non-regular file (/dev/null, a
 * FIFO, a terminal is refused) is written in place; a regular path is
 * written to `.NAME.vms-XXXXXX` in the same directory and renamed into
 * place by vms_output_commit() only, without replacing an existing file
 * unless force. vms_output_discard() removes the temporary file.            */

struct vms_output {
	const char *path;      /* as given */
	int fd;
	bool is_stdout;
	bool in_place;         /* stdout or an existing non-regular file */
	bool seekable;         /* a regular temporary file: holes allowed */
	bool force;
	char dir[PATH_MAX];
	char base[NAME_MAX + 1];
};

/* On SIGBUS (a mapped input file shrank): remove the temporary output file,
 * print "PROG: error: LINE" and exit with status. */
void vms_tool_sigbus_exit(const char *line, int status);

/* Checks that the output can be created (refusing an existing file without
 * force: VMS_EEXIST) and opens it. Call before reading any input. */
int vms_output_open(struct vms_tool *t, struct vms_output *o, const char *path, bool force);
/* fsync, rename into place, fsync the directory. */
int vms_output_commit(struct vms_tool *t, struct vms_output *o);
/* Close and remove the temporary file (no-op after commit). */
void vms_output_discard(struct vms_output *o);

/* Write all of buf to fd (EINTR and short writes handled): 0 or -errno. */
int vms_write_all(int fd, const void *buf, size_t len);

/* ------------------------------------------------------------------------ */
/* Input file: "-" is stdin; otherwise path is opened read-only. *fd is the
 * descriptor (-1 if the open failed; the caller closes it, also after a
 * failure), *st its fstat(). A directory is refused. Messages name it as
 * label + 'path' ("input '/tmp'"; label "" gives "'/tmp'"). 0 or the error
 * recorded (VMS_EIO).                                                       */
int vms_tool_open_input(struct vms_tool *t, const char *path, const char *label, int *fd,
			struct stat *st);

/* ------------------------------------------------------------------------ */
/* --device SPEC (send and recv): the devices a migration moves.
 *
 *   vfio:PATH[,name=NAME]   a VFIO device (e.g. /dev/vfio/devices/vfio0),
 *                           opened O_RDWR; NAME defaults to PATH's basename
 *   sim:KEY=VALUE,...       a simulated device (vms_device_open_sim); an
 *                           item name=NAME is taken out by the tool, the rest
 *                           goes to the library; NAME defaults to devN, N
 *                           being the position among all --device options
 *
 * vms_tool_device_add() checks the syntax while options are parsed (usage
 * errors), vms_tool_devices_check() the names once all are known (two
 * devices with one name), vms_tool_devices_open() opens them at run time:
 * a bad sim spec is VMS_EINVAL (exit 2) with the library's message; a VFIO
 * path that cannot be opened, or a device that is not a migratable VFIO
 * device, is a device error (exit 8).                                       */

enum vms_tool_dev_kind { VMS_TOOL_DEV_VFIO = 1, VMS_TOOL_DEV_SIM = 2 };

struct vms_tool_dev {
	const char *spec;      /* as given on the command line */
	int kind;              /* enum vms_tool_dev_kind */
	char *arg;             /* vfio: PATH; sim: the spec without name= */
	char name[VMS_NAME_MAX + 1];
	int fd;                /* vfio: the device fd while open, else -1 */
};

struct vms_tool_devset {
	unsigned n;
	struct vms_tool_dev *dev;
	struct vms_device **devs; /* n entries once opened (NULL until then) */
};

/* Add one --device SPEC (at option time). 0, or an exit status after a
 * usage error. */
int vms_tool_device_add(struct vms_tool *t, struct vms_tool_devset *s, const char *spec);
/* Once all options are parsed: names unique. 0 or exit status. */
int vms_tool_devices_check(struct vms_tool *t, struct vms_tool_devset *s);
/* Open every device, in order; on failure the run's error is recorded and
 * nothing stays open. */
int vms_tool_devices_open(struct vms_tool *t, struct vms_tool_devset *s);
/* Free the devices, close the VFIO fds and release the set. */
void vms_tool_devices_free(struct vms_tool_devset *s);
/* "vfio" or "sim". */
const char *vms_tool_dev_kind_name(int kind);

#endif
