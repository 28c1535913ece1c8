/* SPDX-License-Identifier: MIT */
/*
 * Shared plumbing of the vmstream tools (see common.h).
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include "common.h"

#define MAX_OPTS 64

/* ------------------------------------------------------------------------ */
/* Exit codes.                                                               */

struct exit_class {
	int status;
	const char *what;
	const int *errs;   /* enum vms_err values, ended by VMS_OK */
};

static const int errs_usage[] = { VMS_EINVAL, VMS_OK };
static const int errs_io[] = { VMS_EIO, VMS_EEXIST, VMS_ESINK, VMS_OK };
static const int errs_stream[] = {
	VMS_ETRUNCATED, VMS_EMAGIC, VMS_EVERSION, VMS_EPREAMBLE, VMS_EHDRSUM,
	VMS_EPAYLOADSUM, VMS_ELENGTH, VMS_ESEQ, VMS_EOFFSET, VMS_ERECTYPE,
	VMS_EDEVICE, VMS_EDIGEST, VMS_EEOS, VMS_ETRAILING, VMS_ECODEC,
	VMS_EDECOMPRESS, VMS_EFLAGS, VMS_ERESERVED, VMS_EEPOCH, VMS_EPHASE, VMS_OK,
};
static const int errs_auth[] = { VMS_EAUTH, VMS_EKEY, VMS_ETLS, VMS_OK };
static const int errs_abort[] = { VMS_EPEERABORT, VMS_OK };
static const int errs_net[] = { VMS_ENET, VMS_ETIMEOUT, VMS_EPROTO, VMS_OK };
static const int errs_dev[] = { VMS_EDEVIO, VMS_OK };

/* The one exit-code table: vms_tool_exit_code(), every --help and the man
 * pages follow it. */
static const struct exit_class exit_table[] = {
	{ VMS_EXIT_OK, "success", NULL },
	{ VMS_EXIT_FAIL, "other failure (out of memory, internal error, interrupted)", NULL },
	{ VMS_EXIT_USAGE, "usage error: unknown option, bad or missing argument", errs_usage },
	{ VMS_EXIT_IO, "local I/O error: input or output file, output exists", errs_io },
	{ VMS_EXIT_STREAM, "invalid, corrupt or truncated stream", errs_stream },
	{ VMS_EXIT_AUTH, "authentication or key failure", errs_auth },
	{ VMS_EXIT_ABORTED, "the peer aborted the stream (ABORT record)", errs_abort },
	{ VMS_EXIT_NET, "network, timeout or session protocol error", errs_net },
	{ VMS_EXIT_DEVICE, "device error", errs_dev },
};

int vms_tool_exit_code(int vms_err)
{
	if (vms_err == VMS_OK)
		return VMS_EXIT_OK;
	for (size_t i = 0; i < sizeof(exit_table) / sizeof(exit_table[0]); i++) {
		const int *e = exit_table[i].errs;

		for (; e && *e != VMS_OK; e++)
			if (*e == vms_err)
				return exit_table[i].status;
	}
	return VMS_EXIT_FAIL;
}

void vms_tool_print_exit_codes(FILE *f)
{
	fputs("Exit status:\n", f);
	for (size_t i = 0; i < sizeof(exit_table) / sizeof(exit_table[0]); i++) {
		const struct exit_class *c = &exit_table[i];
		int col;

		fprintf(f, "  %d  %s\n", c->status, c->what);
		if (!c->errs)
			continue;
		col = fprintf(f, "     ");
		for (const int *e = c->errs; *e != VMS_OK; e++) {
			const char *name = vms_errname(*e);
			int len = (int)strlen(name) + (e[1] != VMS_OK ? 1 : 0);

			if (col + len + 1 > 79) {
				fputs("\n     ", f);
				col = 5;
			}
			col += fprintf(f, " %s%s", name, e[1] != VMS_OK ? "," : "");
		}
		fputc('\n', f);
	}
}

/* ------------------------------------------------------------------------ */
/* Outcome and messages.                                                     */

int vms_tool_fail(struct vms_tool *t, int code, const char *fmt, ...)
{
	va_list ap;

	if (t->err)
		return code;
	t->err = code;
	va_start(ap, fmt);
	vsnprintf(t->msg, sizeof(t->msg), fmt, ap);
	va_end(ap);
	return code;
}

int vms_tool_fail_lib(struct vms_tool *t, int code)
{
	const char *m = vms_last_error();

	return vms_tool_fail(t, code, "%s", m && *m ? m : vms_strerror(code));
}

int vms_tool_fail_net(struct vms_tool *t, int code)
{
	return vms_tool_fail_lib(t, code == VMS_EIO ? VMS_ENET : code);
}

/* One line: newlines in a message (a peer's ABORT text, a file name) would
 * break it, so they are shown as spaces. */
static void print_error_line(const struct vms_tool *t, int code, const char *msg)
{
	const char *name = vms_errname(code);

	fprintf(stderr, "%s: error: %s: ", t->prog, name ? name : "VMS_EUNKNOWN");
	for (const char *p = msg; *p; p++)
		fputc(*p == '\n' || *p == '\r' ? ' ' : *p, stderr);
	fputc('\n', stderr);
}

int vms_tool_report(struct vms_tool *t)
{
	fflush(stdout);
	if (!t->err)
		return VMS_EXIT_OK;
	print_error_line(t, t->err, t->msg);
	return t->exit_override ? t->exit_override : vms_tool_exit_code(t->err);
}

int vms_tool_usage_error(struct vms_tool *t, const char *fmt, ...)
{
	char buf[512];
	char line[640];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	snprintf(line, sizeof(line), "%s; see '%s --help'", buf, t->prog);
	print_error_line(t, VMS_EINVAL, line);
	return VMS_EXIT_USAGE;
}

const char *vms_tool_path_name(const char *path, bool output)
{
	if (strcmp(path, "-") == 0)
		return output ? "stdout" : "stdin";
	return path;
}

const char *vms_tool_human_bytes(uint64_t n, char *buf, size_t len)
{
	static const char *const unit[] = { "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	double v = (double)n;
	int u = -1;

	if (n < 1024) {
		snprintf(buf, len, "%llu B", (unsigned long long)n);
		return buf;
	}
	while (v >= 1024.0 && u < 5) {
		v /= 1024.0;
		u++;
	}
	if ((n & ((1ull << (10 * (u + 1))) - 1)) == 0)
		snprintf(buf, len, "%.0f %s", v, unit[u]);
	else
		snprintf(buf, len, "%.2f %s", v, unit[u]);
	return buf;
}

const char *vms_tool_key_source_name(unsigned key_source)
{
	switch (key_source) {
	case 0: return "none";
	case 1: return "key-file";
	case 2: return "session";
	default: return "unknown";
	}
}

const char *vms_tool_devkind_name(unsigned kind)
{
	switch (kind) {
	case VMS_DEVKIND_BLOB: return "blob";
	case VMS_DEVKIND_VFIO: return "vfio";
	case VMS_DEVKIND_VMM: return "vmm";
	default: return "other";
	}
}

const char *vms_tool_phase_name(unsigned phase)
{
	switch (phase) {
	case VMS_PHASE_PRECOPY: return "precopy";
	case VMS_PHASE_SWITCHOVER: return "switchover";
	case VMS_PHASE_STOPCOPY: return "stop-copy";
	default: return "unknown";
	}
}

double vms_tool_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ------------------------------------------------------------------------ */
/* Numbers.                                                                  */

/* "4 KiB" when exact, else the plain number. */
static const char *exact_size(uint64_t n, char *buf, size_t len)
{
	static const char *const unit[] = { "GiB", "MiB", "KiB" };

	for (int i = 0; i < 3; i++) {
		uint64_t m = 1ull << (10 * (3 - i));

		if (n && n % m == 0) {
			snprintf(buf, len, "%llu %s", (unsigned long long)(n / m), unit[i]);
			return buf;
		}
	}
	snprintf(buf, len, "%llu", (unsigned long long)n);
	return buf;
}

int vms_tool_parse_size(const char *s, uint64_t min, uint64_t max, uint64_t *out, char *why,
			size_t whylen)
{
	static const struct {
		const char *suffix;
		unsigned shift;
	} suffixes[] = {
		{ "", 0 },    { "K", 10 },   { "KiB", 10 }, { "M", 20 },   { "MiB", 20 },
		{ "G", 30 },  { "GiB", 30 }, { "T", 40 },   { "TiB", 40 },
	};
	char a[32], b[32];
	const char *p = s;
	uint64_t v = 0;
	bool found = false;
	unsigned shift = 0;

	if (!s || !*s) {
		snprintf(why, whylen, "empty size");
		return -1;
	}
	if (!isdigit((unsigned char)*p)) {
		snprintf(why, whylen, "'%s' is not a size (digits with an optional K, M, G suffix)", s);
		return -1;
	}
	for (; isdigit((unsigned char)*p); p++) {
		unsigned d = (unsigned)(*p - '0');

		if (v > (UINT64_MAX - d) / 10) {
			snprintf(why, whylen, "'%s' is too large", s);
			return -1;
		}
		v = v * 10 + d;
	}
	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		if (strcmp(p, suffixes[i].suffix) == 0) {
			shift = suffixes[i].shift;
			found = true;
			break;
		}
	}
	if (!found) {
		snprintf(why, whylen, "'%s': unknown suffix '%s' (use K, M, G, KiB, MiB or GiB)", s, p);
		return -1;
	}
	if (shift && v > (UINT64_MAX >> shift)) {
		snprintf(why, whylen, "'%s' is too large", s);
		return -1;
	}
	v <<= shift;
	if (v < min || v > max) {
		snprintf(why, whylen, "'%s' is out of range (%s to %s)", s,
			 exact_size(min, a, sizeof(a)), exact_size(max, b, sizeof(b)));
		return -1;
	}
	*out = v;
	return 0;
}

int vms_tool_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out, char *why,
			size_t whylen)
{
	uint64_t v = 0;
	const char *p = s;

	if (!s || !isdigit((unsigned char)*s)) {
		snprintf(why, whylen, "'%s' is not a number", s ? s : "");
		return -1;
	}
	for (; isdigit((unsigned char)*p); p++) {
		unsigned d = (unsigned)(*p - '0');

		if (v > (UINT64_MAX - d) / 10) {
			snprintf(why, whylen, "'%s' is too large", s);
			return -1;
		}
		v = v * 10 + d;
	}
	if (*p) {
		snprintf(why, whylen, "'%s' is not a number", s);
		return -1;
	}
	if (v < min || v > max) {
		snprintf(why, whylen, "'%s' is out of range (%llu to %llu)", s,
			 (unsigned long long)min, (unsigned long long)max);
		return -1;
	}
	*out = v;
	return 0;
}

int vms_tool_parse_seconds(const char *s, int min_ms, int max_ms, int *out_ms, char *why,
			   size_t whylen)
{
	const char *p = s;
	uint64_t ms = 0;
	unsigned frac = 0, scale = 100;

	if (!s || !isdigit((unsigned char)*s)) {
		snprintf(why, whylen, "'%s' is not a number of seconds", s ? s : "");
		return -1;
	}
	for (; isdigit((unsigned char)*p); p++) {
		ms = ms * 10 + (unsigned)(*p - '0');
		if (ms > (uint64_t)INT_MAX / 1000) {
			snprintf(why, whylen, "'%s' is too large", s);
			return -1;
		}
	}
	if (*p == '.') {
		p++;
		if (!isdigit((unsigned char)*p)) {
			snprintf(why, whylen, "'%s' is not a number of seconds", s);
			return -1;
		}
		for (; isdigit((unsigned char)*p) && scale > 0; p++, scale /= 10)
			frac += (unsigned)(*p - '0') * scale;
		if (isdigit((unsigned char)*p)) {
			snprintf(why, whylen, "'%s': at most 3 decimals (milliseconds)", s);
			return -1;
		}
	}
	if (*p) {
		snprintf(why, whylen, "'%s' is not a number of seconds", s);
		return -1;
	}
	ms = ms * 1000 + frac;
	if (ms < (uint64_t)min_ms || ms > (uint64_t)max_ms) {
		snprintf(why, whylen, "'%s' is out of range (%g to %g seconds)", s, min_ms / 1000.0,
			 max_ms / 1000.0);
		return -1;
	}
	*out_ms = (int)ms;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Network addresses and settings.                                           */

int vms_tool_opt_file(struct vms_tool *t, const char *name, const char *arg, const char **val)
{
	if (!*arg)
		return vms_tool_usage_error(t, "%s needs a file name or '-'", name);
	*val = arg;
	return 0;
}

int vms_tool_opt_addr(struct vms_tool *t, const char *name, const char *arg, uint32_t flags,
		      char *host, size_t hostlen, uint16_t *port, const char **val)
{
	if (vms_addr_parse(arg, flags, host, hostlen, port))
		return vms_tool_usage_error(t, "%s %s", name, vms_last_error());
	*val = arg;
	return 0;
}

bool vms_tool_net_authenticated(const struct vms_tool *t)
{
	return t->sh.psk_file || t->sh.cert || t->sh.key || t->sh.ca;
}

bool vms_tool_insecure_remote(const struct vms_tool *t, bool net_mode, const char *addr,
			      uint32_t flags)
{
	return net_mode && !vms_tool_net_authenticated(t) && t->sh.insecure &&
	       vms_addr_is_loopback(addr, flags) != 1;
}

int vms_tool_check_net_usage(struct vms_tool *t, bool net_mode)
{
	const struct vms_tool_shared *sh = &t->sh;

	if (!net_mode) {
		if (sh->net_opt)
			return vms_tool_usage_error(t, "%s is a network option (use it with %s)",
						    sh->net_opt,
						    strcmp(t->prog, "vmstream-recv") == 0 ? "--listen"
											 : "--to");
		return 0;
	}
	if (sh->key_file)
		return vms_tool_usage_error(t, "--key-file is for stream files; in network mode the "
					       "keys come from the session (--psk-file or "
					       "--cert/--key/--ca)");
	if (sh->psk_file && (sh->cert || sh->key || sh->ca))
		return vms_tool_usage_error(t, "--psk-file and --cert/--key/--ca exclude each other");
	if (sh->psk_identity && !sh->psk_file)
		return vms_tool_usage_error(t, "--psk-identity needs --psk-file");
	if ((sh->cert || sh->key || sh->ca) && !(sh->cert && sh->key && sh->ca))
		return vms_tool_usage_error(t, "X.509 authentication needs all of --cert, --key "
					       "and --ca (missing %s)",
					    !sh->cert ? "--cert" : !sh->key ? "--key" : "--ca");
	if (sh->psk_identity) {
		size_t n = strlen(sh->psk_identity);

		if (n == 0 || n > 128)
			return vms_tool_usage_error(t, "--psk-identity must be 1..128 characters");
		for (const char *c = sh->psk_identity; *c; c++)
			if (*c < 0x21 || *c > 0x7e)
				return vms_tool_usage_error(t, "--psk-identity must be printable ASCII "
							       "without spaces");
	}
	return 0;
}

int vms_tool_load_key(struct vms_tool *t, const char *path, uint8_t key[VMS_KEY_LEN])
{
	int err = vms_key_load_file(path, key, 0);

	if (err)
		return vms_tool_fail_lib(t, err == VMS_EIO ? VMS_EKEY : err);
	return 0;
}

int vms_tool_net_opts(struct vms_tool *t, struct vms_net_opts *no, uint8_t psk[VMS_KEY_LEN])
{
	const struct vms_tool_shared *sh = &t->sh;

	if (sh->psk_file) {
		if (vms_tool_load_key(t, sh->psk_file, psk))
			return t->err;
		no->psk = psk;
		no->psk_identity = sh->psk_identity;
	}
	no->cert_file = sh->cert;
	no->key_file = sh->key;
	no->ca_file = sh->ca;
	no->connect_timeout_ms = sh->connect_timeout_ms;
	no->idle_timeout_ms = sh->idle_timeout_ms;
	no->io = sh->io;
	if (sh->insecure)
		no->flags |= VMS_NET_F_INSECURE;
	return 0;
}

void vms_tool_warn(const struct vms_tool *t, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s: WARNING: %s\n", t->prog, buf);
}

void vms_tool_cpu(double *user, double *sys)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) != 0) {
		*user = *sys = 0;
		return;
	}
	*user = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6;
	*sys = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

/* ------------------------------------------------------------------------ */
/* Options.                                                                  */

static void opt_left_column(const struct vms_tool_opt *o, char *buf, size_t len)
{
	char sh[8] = "    ";

	if (o->key < 0x100 && isalnum(o->key))
		snprintf(sh, sizeof(sh), "-%c, ", o->key);
	if (o->has_arg == required_argument)
		snprintf(buf, len, "  %s--%s %s", sh, o->name, o->arg ? o->arg : "ARG");
	else if (o->has_arg == optional_argument)
		snprintf(buf, len, "  %s--%s[=%s]", sh, o->name, o->arg ? o->arg : "ARG");
	else
		snprintf(buf, len, "  %s--%s", sh, o->name);
}

static void print_help(const struct vms_tool *t)
{
	char left[96];
	int width = 0;

	printf("Usage: %s %s\n%s\n", t->prog, t->synopsis, t->summary);
	if (t->details)
		printf("\n%s\n", t->details);
	printf("\nOptions:\n");
	for (const struct vms_tool_opt *o = t->opts; o->name; o++) {
		opt_left_column(o, left, sizeof(left));
		if ((int)strlen(left) > width)
			width = (int)strlen(left);
	}
	for (const struct vms_tool_opt *o = t->opts; o->name; o++) {
		const char *h = o->help;
		int col = width + 2;

		opt_left_column(o, left, sizeof(left));
		printf("%-*s", width, left);
		/* Wrap the help text at 79 columns, under its own column. */
		while (*h) {
			size_t n = strlen(h), cut = n;

			if (col + (int)n > 79 && 79 - col > 20) {
				cut = (size_t)(79 - col);
				while (cut > 0 && h[cut] != ' ')
					cut--;
				if (cut == 0)
					cut = n;
			}
			printf("  %.*s\n", (int)cut, h);
			h += cut;
			while (*h == ' ')
				h++;
			if (*h)
				printf("%*s", width, "");
		}
	}
	printf("\n");
	vms_tool_print_exit_codes(stdout);
	printf("\nErrors are one line on stderr: '%s: error: VMS_E...: reason'.\n",
	       t->prog);
}

static void print_version(const struct vms_tool *t)
{
	printf("%s %d.%d.%d (libvmstream %s, stream format %d.%d)\n", t->prog, VMS_VERSION_MAJOR,
	       VMS_VERSION_MINOR, VMS_VERSION_PATCH, vms_version_string(), VMS_FORMAT_MAJOR,
	       VMS_FORMAT_MINOR);
}

static const struct vms_tool_opt *find_long(const struct vms_tool *t, const char *name, size_t n)
{
	for (const struct vms_tool_opt *o = t->opts; o->name; o++)
		if (strlen(o->name) == n && memcmp(o->name, name, n) == 0)
			return o;
	return NULL;
}

/* getopt's own messages are off (opterr = 0) so that every error is one line
 * in the tools' format; work out what was wrong from argv. */
static int bad_option(struct vms_tool *t, int c, const char *arg)
{
	if (arg && strncmp(arg, "--", 2) == 0) {
		const char *eq = strchr(arg, '=');
		size_t n = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
		const struct vms_tool_opt *o = find_long(t, arg + 2, n);

		if (c == ':')
			return vms_tool_usage_error(t, "option '--%.*s' needs an argument", (int)n,
						    arg + 2);
		if (o && eq && o->has_arg == no_argument)
			return vms_tool_usage_error(t, "option '--%s' takes no argument", o->name);
		return vms_tool_usage_error(t, "unknown or ambiguous option '--%.*s'", (int)n,
					    arg + 2);
	}
	if (c == ':')
		return vms_tool_usage_error(t, "option '-%c' needs an argument", optopt);
	if (isprint(optopt))
		return vms_tool_usage_error(t, "unknown option '-%c'", optopt);
	return vms_tool_usage_error(t, "unknown option '%s'", arg ? arg : "?");
}

static const struct vms_tool_opt *find_key(const struct vms_tool *t, int key)
{
	for (const struct vms_tool_opt *o = t->opts; o->name; o++)
		if (o->key == key)
			return o;
	return NULL;
}

/* One case per shared option; values land in t->sh. */
static int shared_opt(struct vms_tool *t, int key, const char *arg)
{
	struct vms_tool_shared *sh = &t->sh;
	const struct vms_tool_opt *o = find_key(t, key);
	char why[160];
	uint64_t v;

	if (key >= VMS_OPT_PSK_FILE && key <= VMS_OPT_INSECURE && !sh->net_opt)
		sh->net_opt = key == VMS_OPT_PSK_FILE ? "--psk-file"
			    : key == VMS_OPT_PSK_IDENTITY ? "--psk-identity"
			    : key == VMS_OPT_CERT ? "--cert"
			    : key == VMS_OPT_TLS_KEY ? "--key"
			    : key == VMS_OPT_CA ? "--ca"
			    : key == VMS_OPT_IO ? "--io"
			    : key == VMS_OPT_CONNECT_TIMEOUT ? "--connect-timeout"
			    : key == VMS_OPT_IDLE_TIMEOUT ? "--idle-timeout" : "--insecure";
	if (o && o->has_arg == required_argument && !*arg)
		return vms_tool_usage_error(t, "--%s needs a non-empty argument", o->name);
	switch (key) {
	case VMS_OPT_KEY_FILE:
		sh->key_file = arg;
		return 0;
	case VMS_OPT_THREADS:
		if (strcmp(arg, "auto") == 0) {
			sh->threads = VMS_THREADS_AUTO;
			return 0;
		}
		if (vms_tool_parse_uint(arg, 0, VMS_THREADS_MAX, &v, why, sizeof(why)))
			return vms_tool_usage_error(t, "--threads %s (0..%u or auto)", why, VMS_THREADS_MAX);
		sh->threads = (uint32_t)v;
		return 0;
	case VMS_OPT_MEMORY:
		if (vms_tool_parse_size(arg, 64u << 10, VMS_MEMORY_MAX, &v, why, sizeof(why)))
			return vms_tool_usage_error(t, "--memory %s", why);
		sh->memory = v;
		return 0;
	case VMS_OPT_PSK_FILE:
		sh->psk_file = arg;
		return 0;
	case VMS_OPT_PSK_IDENTITY:
		sh->psk_identity = arg;
		return 0;
	case VMS_OPT_CERT:
		sh->cert = arg;
		return 0;
	case VMS_OPT_TLS_KEY:
		sh->key = arg;
		return 0;
	case VMS_OPT_CA:
		sh->ca = arg;
		return 0;
	case VMS_OPT_IO:
		if (strcmp(arg, "uring") == 0 || strcmp(arg, "io_uring") == 0)
			sh->io = VMS_IO_URING;
		else if (strcmp(arg, "posix") == 0)
			sh->io = VMS_IO_POSIX;
		else if (strcmp(arg, "auto") == 0)
			sh->io = VMS_IO_AUTO;
		else
			return vms_tool_usage_error(t, "--io '%s': expected uring, posix or auto", arg);
		return 0;
	case VMS_OPT_CONNECT_TIMEOUT:
		if (vms_tool_parse_seconds(arg, 1, 3600 * 1000, &sh->connect_timeout_ms, why,
					   sizeof(why)))
			return vms_tool_usage_error(t, "--connect-timeout %s", why);
		return 0;
	case VMS_OPT_IDLE_TIMEOUT:
		if (vms_tool_parse_seconds(arg, 1, 24 * 3600 * 1000, &sh->idle_timeout_ms, why,
					   sizeof(why)))
			return vms_tool_usage_error(t, "--idle-timeout %s", why);
		return 0;
	case VMS_OPT_INSECURE:
		sh->insecure = true;
		return 0;
	default:
		return vms_tool_usage_error(t, "unexpected option");
	}
}

/* vms_tool_parse()'s "go on" (an exit status is >= 0). */
#define PARSE_GO_ON (-1)

static void parse_defaults(struct vms_tool *t)
{
	t->progress = VMS_PROGRESS_AUTO;
	memset(&t->sh, 0, sizeof(t->sh));
	t->sh.threads = VMS_THREADS_AUTO;
	t->sh.memory = 0; /* the library's default: 64M, or what the chunks and stages need */
	t->sh.io = VMS_IO_AUTO;
	t->sh.connect_timeout_ms = 10000;
	t->sh.idle_timeout_ms = 30000;
}

/* getopt_long()'s tables from t->opts: lo has MAX_OPTS + 1 entries,
 * shortopts 3 * MAX_OPTS + 2 bytes. -1 (reported) if the table is too long. */
static int getopt_tables(const struct vms_tool *t, struct option *lo, char *shortopts)
{
	size_t n = 0, sl = 0;

	shortopts[sl++] = ':';
	for (const struct vms_tool_opt *o = t->opts; o->name; o++) {
		if (n == MAX_OPTS) {
			fprintf(stderr, "%s: internal error: more than %d options\n", t->prog, MAX_OPTS);
			return -1;
		}
		lo[n].name = o->name;
		lo[n].has_arg = o->has_arg;
		lo[n].flag = NULL;
		lo[n].val = o->key;
		n++;
		if (o->key < 0x100 && isalnum(o->key)) {
			shortopts[sl++] = (char)o->key;
			if (o->has_arg != no_argument)
				shortopts[sl++] = ':';
			if (o->has_arg == optional_argument)
				shortopts[sl++] = ':';
		}
	}
	shortopts[sl] = '\0';
	memset(&lo[n], 0, sizeof(lo[n]));
	return 0;
}

/* One option getopt_long() returned (c): PARSE_GO_ON, or an exit status. */
static int take_opt(struct vms_tool *t, int c, char **argv, vms_tool_opt_fn fn, void *ctx)
{
	int rc;

	switch (c) {
	case '?':
	case ':':
		return bad_option(t, c, argv[optind - 1]);
	case VMS_OPT_HELP:
		print_help(t);
		return VMS_EXIT_OK;
	case VMS_OPT_VERSION:
		print_version(t);
		return VMS_EXIT_OK;
	case VMS_OPT_QUIET:
		t->quiet = true;
		return PARSE_GO_ON;
	case VMS_OPT_VERBOSE:
		t->verbose = true;
		return PARSE_GO_ON;
	case VMS_OPT_FORCE:
		t->force = true;
		return PARSE_GO_ON;
	case VMS_OPT_PROGRESS:
		t->progress = VMS_PROGRESS_ON;
		return PARSE_GO_ON;
	case VMS_OPT_NO_PROGRESS:
		t->progress = VMS_PROGRESS_OFF;
		return PARSE_GO_ON;
	case VMS_OPT_JSON:
		if (optarg && !*optarg)
			return vms_tool_usage_error(t, "--json= needs a file name");
		t->json = true;
		t->json_path = optarg;
		return PARSE_GO_ON;
	case VMS_OPT_KEY_FILE:
	case VMS_OPT_THREADS:
	case VMS_OPT_MEMORY:
	case VMS_OPT_PSK_FILE:
	case VMS_OPT_PSK_IDENTITY:
	case VMS_OPT_CERT:
	case VMS_OPT_TLS_KEY:
	case VMS_OPT_CA:
	case VMS_OPT_IO:
	case VMS_OPT_CONNECT_TIMEOUT:
	case VMS_OPT_IDLE_TIMEOUT:
	case VMS_OPT_INSECURE:
		rc = shared_opt(t, c, optarg);
		break;
	default:
		rc = fn ? fn(t, ctx, c, optarg) : vms_tool_usage_error(t, "unexpected option");
		break;
	}
	return rc ? rc : PARSE_GO_ON;
}

int vms_tool_parse(struct vms_tool *t, int argc, char **argv, vms_tool_opt_fn fn, void *ctx,
		   int *operands)
{
	struct option lo[MAX_OPTS + 1];
	char shortopts[3 * MAX_OPTS + 2];
	int c;

	parse_defaults(t);
	if (getopt_tables(t, lo, shortopts))
		return VMS_EXIT_FAIL;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, shortopts, lo, NULL)) != -1) {
		int rc = take_opt(t, c, argv, fn, ctx);

		if (rc != PARSE_GO_ON)
			return rc;
	}
	/* Opened now, so that a bad path fails before any work is done. */
	if (t->json && t->json_path) {
		t->json_file = fopen(t->json_path, "we");
		if (!t->json_file) {
			vms_tool_fail(t, VMS_EIO, "opening the JSON output '%s': %s", t->json_path,
				      strerror(errno));
			return vms_tool_report(t);
		}
	}
	*operands = optind;
	return PARSE_GO_ON;
}

int vms_tool_main(struct vms_tool *t, int argc, char **argv, const struct vms_tool_main *m,
		  void *args, struct vms_tool_devset *devs)
{
	int first, rc;

	rc = vms_tool_parse(t, argc, argv, m->opt_fn, args, &first);
	if (rc < 0) {
		rc = m->check(t, args);
		if (!rc && devs->n && argc > first)
			rc = vms_tool_usage_error(t, "--device and %s ('%s') exclude each other: "
						     "the devices are the %s", m->operand,
						  argv[first], m->role);
		if (!rc && argc - first > 1)
			rc = vms_tool_usage_error(t, "more than one %s given ('%s')", m->operand,
						  argv[first + 1]);
		if (!rc)
			return m->run(t, args, argc > first ? argv[first] : "-");
	}
	vms_tool_devices_free(devs);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Progress.                                                                 */

void vms_progress_init(struct vms_progress *p, const struct vms_tool *t, uint64_t total)
{
	memset(p, 0, sizeof(*p));
	p->tty = isatty(STDERR_FILENO) == 1;
	p->on = !t->quiet &&
		(t->progress == VMS_PROGRESS_ON || (t->progress == VMS_PROGRESS_AUTO && p->tty));
	p->total = total;
	p->t0 = vms_tool_now();
	p->last = p->t0;
}

static void progress_draw(struct vms_progress *p, double now)
{
	char line[256], a[32], b[32], r[32];
	double el = now - p->t0;
	double rate = el > 0 ? (double)p->bytes / el : 0;
	size_t n;

	vms_tool_human_bytes(p->bytes, a, sizeof(a));
	vms_tool_human_bytes((uint64_t)rate, r, sizeof(r));
	if (p->total != UINT64_MAX && p->total > 0) {
		double pct = 100.0 * (double)p->bytes / (double)p->total;

		snprintf(line, sizeof(line), "%s / %s  %3.0f%%  %s/s", a,
			 vms_tool_human_bytes(p->total, b, sizeof(b)), pct > 100 ? 100 : pct, r);
		n = strlen(line);
		if (rate > 0 && p->bytes < p->total) {
			unsigned long eta = (unsigned long)((double)(p->total - p->bytes) / rate + 0.5);

			snprintf(line + n, sizeof(line) - n, "  ETA %lu:%02lu:%02lu", eta / 3600,
				 eta / 60 % 60, eta % 60);
		}
	} else {
		snprintf(line, sizeof(line), "%s  %s/s", a, r);
	}
	n = strlen(line);
	if (p->wire > 0)
		snprintf(line + n, sizeof(line) - n, "  ratio %.2f", (double)p->bytes / (double)p->wire);
	n = strlen(line);
	if (p->lanes)
		snprintf(line + n, sizeof(line) - n, "  %u lane%s", p->lanes, p->lanes == 1 ? "" : "s");
	n = strlen(line);
	if (p->engine)
		snprintf(line + n, sizeof(line) - n, "  %s", p->engine);
	if (p->tty)
		fprintf(stderr, "\r%s\033[K", line);
	else
		fprintf(stderr, "%s\n", line);
	p->drawn = true;
}

void vms_progress_update(struct vms_progress *p, uint64_t bytes)
{
	double now;

	if (!p->on)
		return;
	p->bytes = bytes;
	now = vms_tool_now();
	if (now - p->last < (p->tty ? 0.1 : 1.0))
		return;
	p->last = now;
	progress_draw(p, now);
}

void vms_progress_end(struct vms_progress *p)
{
	if (p->on && p->tty && p->drawn)
		fputs("\r\033[K", stderr);
	p->drawn = false;
}

void vms_progress_cb(void *user, const struct vms_stats *st)
{
	struct vms_progress *p = user;

	p->wire = st->wire_bytes;
	vms_progress_update(p, st->raw_bytes);
}

/* ------------------------------------------------------------------------ */
/* JSON.                                                                     */

void vms_json_init(struct vms_json *j, FILE *f)
{
	memset(j, 0, sizeof(*j));
	j->f = f;
}

/* Length of a valid UTF-8 sequence at p (at most n bytes), or 0. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
	size_t len;
	uint32_t cp;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		len = 2, cp = p[0] & 0x1fu;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		len = 3, cp = p[0] & 0x0fu;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		len = 4, cp = p[0] & 0x07u;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3fu);
	}
	if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return len;
}

/* JSON string; bytes that are not valid UTF-8 become U+FFFD. */
static void json_string(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s);

	fputc('"', f);
	while (n > 0) {
		size_t len = utf8_len(p, n);

		if (len == 0) {
			fputs("\\ufffd", f);
			len = 1;
		} else if (*p == '"' || *p == '\\') {
			fprintf(f, "\\%c", *p);
		} else if (*p == '\n') {
			fputs("\\n", f);
		} else if (*p == '\t') {
			fputs("\\t", f);
		} else if (*p < 0x20 || *p == 0x7f) {
			fprintf(f, "\\u%04x", *p);
		} else {
			fwrite(p, 1, len, f);
		}
		p += len;
		n -= len;
	}
	fputc('"', f);
}

static void json_key(struct vms_json *j, const char *key)
{
	if (j->need_comma[j->depth])
		fputc(',', j->f);
	j->need_comma[j->depth] = true;
	if (key) {
		json_string(j->f, key);
		fputc(':', j->f);
	}
}

static void json_open(struct vms_json *j, const char *key, char ch)
{
	json_key(j, key);
	fputc(ch, j->f);
	if (j->depth + 1 < (int)(sizeof(j->need_comma) / sizeof(j->need_comma[0])))
		j->depth++;
	j->need_comma[j->depth] = false;
}

void vms_json_obj_begin(struct vms_json *j, const char *key)
{
	json_open(j, key, '{');
}

void vms_json_obj_end(struct vms_json *j)
{
	fputc('}', j->f);
	if (j->depth > 0)
		j->depth--;
}

void vms_json_arr_begin(struct vms_json *j, const char *key)
{
	json_open(j, key, '[');
}

void vms_json_arr_end(struct vms_json *j)
{
	fputc(']', j->f);
	if (j->depth > 0)
		j->depth--;
}

void vms_json_str(struct vms_json *j, const char *key, const char *val)
{
	json_key(j, key);
	if (val)
		json_string(j->f, val);
	else
		fputs("null", j->f);
}

void vms_json_u64(struct vms_json *j, const char *key, uint64_t val)
{
	json_key(j, key);
	fprintf(j->f, "%llu", (unsigned long long)val);
}

void vms_json_i64(struct vms_json *j, const char *key, int64_t val)
{
	json_key(j, key);
	fprintf(j->f, "%lld", (long long)val);
}

void vms_json_double(struct vms_json *j, const char *key, double val)
{
	json_key(j, key);
	if (val != val || val > 1e300 || val < -1e300)
		fputs("null", j->f);
	else
		fprintf(j->f, "%.6f", val);
}

void vms_json_bool(struct vms_json *j, const char *key, bool val)
{
	json_key(j, key);
	fputs(val ? "true" : "false", j->f);
}

void vms_json_null(struct vms_json *j, const char *key)
{
	json_key(j, key);
	fputs("null", j->f);
}

void vms_json_hex(struct vms_json *j, const char *key, const uint8_t *p, size_t n)
{
	json_key(j, key);
	fputc('"', j->f);
	for (size_t i = 0; i < n; i++)
		fprintf(j->f, "%02x", p[i]);
	fputc('"', j->f);
}

void vms_tool_write_summary(struct vms_tool *t, const struct vms_summary *s)
{
	struct vms_json j;
	char ver[32], dg[24];
	FILE *f = stderr;
	double cu, cs;
	int status;

	if (!t->json)
		return;
	if (t->json_file)
		f = t->json_file;
	status = t->err ? (t->exit_override ? t->exit_override : vms_tool_exit_code(t->err)) : 0;
	snprintf(ver, sizeof(ver), "%d.%d.%d", VMS_VERSION_MAJOR, VMS_VERSION_MINOR,
		 VMS_VERSION_PATCH);
	vms_json_init(&j, f);
	vms_json_obj_begin(&j, NULL);
	vms_json_str(&j, "tool", t->prog);
	vms_json_str(&j, "version", ver);
	vms_json_str(&j, "mode", s->mode ? s->mode : "file");
	vms_json_str(&j, "status", t->err ? "error" : "ok");
	vms_json_i64(&j, "exit_code", status);
	vms_json_u64(&j, s->bytes_key, s->bytes);
	vms_json_u64(&j, "bytes_on_wire", s->wire_bytes);
	if (s->wire_bytes)
		vms_json_double(&j, "ratio", (double)s->bytes / (double)s->wire_bytes);
	else
		vms_json_null(&j, "ratio");
	vms_json_u64(&j, "records", s->records);
	vms_json_double(&j, "seconds", s->seconds);
	vms_json_double(&j, "rate_bytes_per_sec",
			s->seconds > 0 ? (double)s->bytes / s->seconds : 0.0);
	vms_tool_cpu(&cu, &cs);
	vms_json_double(&j, "cpu_user_s", cu);
	vms_json_double(&j, "cpu_sys_s", cs);
	if (s->bytes)
		vms_json_double(&j, "cpu_s_per_gb", (cu + cs) / ((double)s->bytes / 1e9));
	else
		vms_json_null(&j, "cpu_s_per_gb");
	if (s->lanes)
		vms_json_u64(&j, "lanes", s->lanes);
	else
		vms_json_null(&j, "lanes");
	vms_json_str(&j, "engine", s->engine);
	vms_json_str(&j, "cipher", s->cipher);
	vms_json_str(&j, "compress", s->compress);
	vms_json_str(&j, "peer", s->peer);
	vms_json_str(&j, "address", s->address);
	if (s->acknowledged >= 0)
		vms_json_bool(&j, "acknowledged", s->acknowledged > 0);
	vms_json_str(&j, "device", s->device);
	if (s->have_digest) {
		snprintf(dg, sizeof(dg), "%016llx", (unsigned long long)s->digest);
		vms_json_str(&j, "digest_xxh3", dg);
	} else {
		vms_json_null(&j, "digest_xxh3");
	}
	if (s->extra)
		s->extra(&j, s->extra_user);
	vms_json_str(&j, "error_code", t->err ? vms_errname(t->err) : NULL);
	vms_json_str(&j, "error_message", t->err ? t->msg : NULL);
	vms_json_obj_end(&j);
	fputc('\n', f);
	if (f != stderr) {
		bool bad = ferror(f) != 0;

		t->json_file = NULL;
		if (fclose(f) != 0 || bad)
			vms_tool_fail(t, VMS_EIO, "writing the JSON output '%s': %s", t->json_path,
				      strerror(errno ? errno : EIO));
	} else {
		fflush(f);
	}
}

void vms_summary_set_stats(struct vms_summary *s, bool net_mode, const struct vms_stats *st,
			   double t0)
{
	s->mode = net_mode ? "net" : "file";
	s->wire_bytes = st->wire_bytes;
	s->records = st->records;
	s->seconds = vms_tool_now() - t0;
}

bool vms_tool_verdict_wanted(const struct vms_tool *t, const struct vms_progress *p)
{
	return !t->err && !t->quiet && (p->tty || t->progress == VMS_PROGRESS_ON);
}

const char *vms_summary_ratio(const struct vms_summary *s, char *buf, size_t len)
{
	buf[0] = '\0';
	if (s->wire_bytes)
		snprintf(buf, len, ", ratio %.2f", (double)s->bytes / (double)s->wire_bytes);
	return buf;
}

double vms_summary_rate(const struct vms_summary *s)
{
	return s->seconds > 0 ? (double)s->bytes / s->seconds : 0;
}

const char *vms_summary_lanes(const struct vms_summary *s, char *buf, size_t len)
{
	snprintf(buf, len, "%u lane%s, %s", s->lanes, s->lanes == 1 ? "" : "s",
		 s->engine ? s->engine : "?");
	return buf;
}

uint64_t vms_tool_report_bytes(const struct vms_migrate_report *rep)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < rep->ndev; i++)
		n += rep->devs[i].precopy_bytes + rep->devs[i].stopcopy_bytes;
	return n;
}

void vms_json_dev_bytes(struct vms_json *j, const struct vms_migrate_dev_report *d)
{
	vms_json_u64(j, "precopy_bytes", d->precopy_bytes);
	vms_json_u64(j, "stopcopy_bytes", d->stopcopy_bytes);
	vms_json_u64(j, "bytes", d->precopy_bytes + d->stopcopy_bytes);
}

/* ------------------------------------------------------------------------ */
/* Signals and the temporary output file.                                    */

static const char *sig_prog = "vmstream";
static char sig_tmp[PATH_MAX];
static volatile sig_atomic_t sig_tmp_live;

static void put_err(const char *s)
{
	ssize_t r = write(STDERR_FILENO, s, strlen(s));

	(void)r;
}

/* Async-signal-safe: remove the temporary output file if there is one. */
static bool remove_tmp(void)
{
	if (!sig_tmp_live)
		return false;
	unlink(sig_tmp);
	sig_tmp_live = 0;
	return true;
}

/* Async-signal-safe: unlink, write, raise. */
static void on_fatal_signal(int sig)
{
	const char *name = sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "SIGHUP";
	bool removed = remove_tmp();

	put_err(sig_prog);
	put_err(": error: VMS_ECANCELED: interrupted by ");
	put_err(name);
	put_err(removed ? "; partial output removed\n" : "\n");
	signal(sig, SIG_DFL);
	raise(sig);
}

static const int fatal_signals[] = { SIGINT, SIGTERM, SIGHUP };

static char sigbus_line[PATH_MAX + 200];
static int sigbus_status = VMS_EXIT_FAIL;

/* A mapped input lost pages under us (the file shrank): no return is
 * possible from the faulting access. Async-signal-safe. */
static void on_sigbus(int sig)
{
	(void)sig;
	(void)remove_tmp();
	put_err(sigbus_line);
	_exit(sigbus_status);
}

void vms_tool_sigbus_exit(const char *line, int status)
{
	struct sigaction sa;

	snprintf(sigbus_line, sizeof(sigbus_line), "%s: error: %s\n", sig_prog, line);
	sigbus_status = status;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigbus;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
}

void vms_tool_signals_init(const struct vms_tool *t)
{
	struct sigaction sa;

	sig_prog = t->prog;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sa.sa_handler = on_fatal_signal;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(fatal_signals) / sizeof(fatal_signals[0]); i++)
		sigaddset(&sa.sa_mask, fatal_signals[i]);
	for (size_t i = 0; i < sizeof(fatal_signals) / sizeof(fatal_signals[0]); i++) {
		struct sigaction old;

		/* A signal ignored by the parent (nohup, background jobs of a
		 * script) stays ignored. */
		if (sigaction(fatal_signals[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN)
			continue;
		sigaction(fatal_signals[i], &sa, NULL);
	}
}

/* The temporary file's existence and sig_tmp_live change together, with the
 * fatal signals held, so a signal never leaves a temporary file behind. */
static void block_fatal(sigset_t *old)
{
	sigset_t set;

	sigemptyset(&set);
	for (size_t i = 0; i < sizeof(fatal_signals) / sizeof(fatal_signals[0]); i++)
		sigaddset(&set, fatal_signals[i]);
	sigprocmask(SIG_BLOCK, &set, old);
}

static void unblock_fatal(const sigset_t *old)
{
	sigprocmask(SIG_SETMASK, old, NULL);
}

int vms_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

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

int vms_tool_open_input(struct vms_tool *t, const char *path, const char *label, int *fd,
			struct stat *st)
{
	if (strcmp(path, "-") == 0) {
		*fd = STDIN_FILENO;
	} else {
		*fd = open(path, O_RDONLY | O_NOCTTY | O_CLOEXEC);
		if (*fd < 0)
			return vms_tool_fail(t, VMS_EIO, "opening %s'%s': %s", label, path,
					     strerror(errno));
	}
	if (fstat(*fd, st) != 0)
		return vms_tool_fail(t, VMS_EIO, "examining %s'%s': %s", label,
				     vms_tool_path_name(path, false), strerror(errno));
	if (S_ISDIR(st->st_mode))
		return vms_tool_fail(t, VMS_EIO, "%s'%s' is a directory", label, path);
	(void)posix_fadvise(*fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	return 0;
}

static int split_path(struct vms_tool *t, struct vms_output *o, const char *path)
{
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;
	size_t dlen = slash ? (size_t)(slash - path) : 0;

	if (!*base || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
		return vms_tool_fail(t, VMS_EIO, "'%s' names a directory, not a file", path);
	if (strlen(base) > NAME_MAX || dlen + 1 >= sizeof(o->dir))
		return vms_tool_fail(t, VMS_EIO, "'%s': file name too long", path);
	if (!slash)
		snprintf(o->dir, sizeof(o->dir), ".");
	else if (dlen == 0)
		snprintf(o->dir, sizeof(o->dir), "/");
	else
		snprintf(o->dir, sizeof(o->dir), "%.*s", (int)dlen, path);
	snprintf(o->base, sizeof(o->base), "%s", base);
	return 0;
}

int vms_output_open(struct vms_tool *t, struct vms_output *o, const char *path, bool force)
{
	struct stat st;
	sigset_t old;
	int err, n;

	memset(o, 0, sizeof(*o));
	o->fd = -1;
	o->path = path;
	o->force = force;
	if (strcmp(path, "-") == 0) {
		if (isatty(STDOUT_FILENO) == 1)
			return vms_tool_fail(t, VMS_EINVAL,
					     "refusing to write binary data to a terminal; "
					     "redirect stdout or name an output file");
		o->fd = STDOUT_FILENO;
		o->is_stdout = o->in_place = true;
		return 0;
	}
	if (lstat(path, &st) == 0) {
		struct stat target = st;
		bool dangling = false;

		if (S_ISLNK(st.st_mode) && stat(path, &target) != 0)
			dangling = true;
		if (!dangling && S_ISDIR(target.st_mode))
			return vms_tool_fail(t, VMS_EIO, "'%s' is a directory", path);
		if (!dangling && !S_ISREG(target.st_mode)) {
			/* A device or FIFO (/dev/null, a pipe to another program): write
			 * to it directly, there is nothing to replace atomically. */
			o->fd = open(path, O_WRONLY | O_NOCTTY | O_CLOEXEC);
			if (o->fd < 0)
				return vms_tool_fail(t, VMS_EIO, "opening '%s': %s", path,
						     strerror(errno));
			if (isatty(o->fd) == 1) {
				close(o->fd);
				o->fd = -1;
				return vms_tool_fail(t, VMS_EINVAL,
						     "refusing to write binary data to a terminal ('%s')",
						     path);
			}
			o->in_place = true;
			return 0;
		}
		if (!force)
			return vms_tool_fail(t, VMS_EEXIST,
					     "output '%s' already exists; use --force to replace it",
					     path);
	} else if (errno != ENOENT) {
		return vms_tool_fail(t, VMS_EIO, "checking output '%s': %s", path, strerror(errno));
	}
	err = split_path(t, o, path);
	if (err)
		return err;

	/* .NAME.vms-XXXXXX, NAME shortened so the whole fits in NAME_MAX. */
	if (strcmp(o->dir, "/") == 0)
		n = snprintf(sig_tmp, sizeof(sig_tmp), "/.%.*s.vms-XXXXXX", NAME_MAX - 12, o->base);
	else
		n = snprintf(sig_tmp, sizeof(sig_tmp), "%s/.%.*s.vms-XXXXXX", o->dir, NAME_MAX - 12,
			     o->base);
	if (n < 0 || (size_t)n >= sizeof(sig_tmp))
		return vms_tool_fail(t, VMS_EIO, "'%s': path too long", path);
	block_fatal(&old);
	o->fd = mkostemp(sig_tmp, O_CLOEXEC);
	if (o->fd >= 0)
		sig_tmp_live = 1;
	err = errno;
	unblock_fatal(&old);
	if (o->fd < 0)
		return vms_tool_fail(t, VMS_EIO, "creating a temporary file in '%s': %s", o->dir,
				     strerror(err));
	o->seekable = true;
	return 0;
}

static int fsync_dir(struct vms_tool *t, const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int err = 0;

	if (fd < 0)
		return vms_tool_fail(t, VMS_EIO, "opening directory '%s' to sync it: %s", dir,
				     strerror(errno));
	if (fsync(fd) != 0 && errno != EINVAL)
		err = vms_tool_fail(t, VMS_EIO, "syncing directory '%s': %s", dir, strerror(errno));
	close(fd);
	return err;
}

/* Move the temporary file to its name without replacing anything. */
static int rename_noreplace(const char *from, const char *to)
{
	if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
		return -1;
	/* Filesystem without RENAME_NOREPLACE: link() also refuses to replace. */
	if (link(from, to) != 0)
		return -1;
	unlink(from);
	return 0;
}

int vms_output_commit(struct vms_tool *t, struct vms_output *o)
{
	sigset_t old;
	mode_t mask;
	int rc, err;

	if (o->in_place) {
		/* Devices and FIFOs have nothing to sync (EINVAL); a real error
		 * (EIO on a block device) must not pass silently. */
		if (!o->is_stdout && fsync(o->fd) != 0 && errno != EINVAL && errno != EROFS)
			return vms_tool_fail(t, VMS_ESINK, "syncing '%s': %s", o->path,
					     strerror(errno));
		return 0;
	}
	mask = umask(0);
	umask(mask);
	if (fchmod(o->fd, 0666 & ~mask) != 0)
		return vms_tool_fail(t, VMS_EIO, "setting the mode of '%s': %s", sig_tmp,
				     strerror(errno));
	if (fsync(o->fd) != 0)
		return vms_tool_fail(t, VMS_EIO, "syncing '%s': %s", sig_tmp, strerror(errno));
	rc = close(o->fd);
	o->fd = -1;
	if (rc != 0)
		return vms_tool_fail(t, VMS_EIO, "closing '%s': %s", sig_tmp, strerror(errno));

	block_fatal(&old);
	rc = o->force ? rename(sig_tmp, o->path) : rename_noreplace(sig_tmp, o->path);
	err = errno;
	if (rc == 0)
		sig_tmp_live = 0;
	unblock_fatal(&old);
	if (rc != 0) {
		if (err == EEXIST)
			return vms_tool_fail(t, VMS_EEXIST,
					     "output '%s' appeared while writing; not replaced "
					     "(use --force to replace it)", o->path);
		return vms_tool_fail(t, VMS_EIO, "renaming '%s' to '%s': %s", sig_tmp, o->path,
				     strerror(err));
	}
	return fsync_dir(t, o->dir);
}

void vms_output_discard(struct vms_output *o)
{
	sigset_t old;

	if (o->fd >= 0 && !o->is_stdout)
		close(o->fd);
	o->fd = -1;
	if (o->in_place)
		return;
	block_fatal(&old);
	(void)remove_tmp();
	unblock_fatal(&old);
}

/* ------------------------------------------------------------------------ */
/* --device SPEC.                                                            */

const char *vms_tool_dev_kind_name(int kind)
{
	return kind == VMS_TOOL_DEV_VFIO ? "vfio" : kind == VMS_TOOL_DEV_SIM ? "sim" : "?";
}

static int dev_name_set(struct vms_tool *t, struct vms_tool_dev *d, const char *name, size_t n)
{
	if (n == 0)
		return vms_tool_usage_error(t, "--device '%s': name= needs a value", d->spec);
	if (n > VMS_NAME_MAX)
		return vms_tool_usage_error(t, "--device '%s': the name is longer than %d bytes",
					    d->spec, VMS_NAME_MAX);
	memcpy(d->name, name, n);
	d->name[n] = '\0';
	return 0;
}

/* vfio:PATH[,name=NAME] */
static int dev_parse_vfio(struct vms_tool *t, struct vms_tool_dev *d, const char *rest)
{
	const char *opt = NULL, *p, *base;
	size_t plen;

	/* The last ",name=" ends the path (a path may contain commas). */
	for (p = strstr(rest, ",name="); p; p = strstr(p + 1, ",name="))
		opt = p;
	plen = opt ? (size_t)(opt - rest) : strlen(rest);
	if (plen == 0)
		return vms_tool_usage_error(t, "--device '%s': vfio: needs a device path "
					       "(vfio:/dev/vfio/devices/vfio0)", d->spec);
	if (opt && strchr(opt + 6, ','))
		return vms_tool_usage_error(t, "--device '%s': vfio:PATH takes only ,name=NAME "
					       "after the path", d->spec);
	d->arg = strndup(rest, plen);
	if (!d->arg)
		return vms_tool_fail(t, VMS_ENOMEM, "out of memory");
	if (opt)
		return dev_name_set(t, d, opt + 6, strlen(opt + 6));
	/* Default name: the path's basename (trailing '/' dropped). */
	while (plen > 1 && d->arg[plen - 1] == '/')
		plen--;
	base = memrchr(d->arg, '/', plen);
	base = base && plen > 1 ? base + 1 : d->arg;
	return dev_name_set(t, d, base, plen - (size_t)(base - d->arg));
}

/* sim:ITEMS — take name=NAME out, hand the rest to the library untouched
 * (its own grammar, defaults, errors and messages). */
static int dev_parse_sim(struct vms_tool *t, struct vms_tool_dev *d, const char *rest,
			 unsigned index)
{
	size_t len = strlen(rest), o = 0;
	const char *item = rest;
	bool named = false;
	/* An empty item is the library's error to report, and it checks that
	 * before any key: then rest goes to it as it is. */
	bool empty_item = len && (rest[0] == ',' || rest[len - 1] == ',' || strstr(rest, ",,"));

	d->arg = malloc(len + 1);
	if (!d->arg)
		return vms_tool_fail(t, VMS_ENOMEM, "out of memory");
	for (;;) {
		const char *comma = strchr(item, ',');
		size_t n = comma ? (size_t)(comma - item) : strlen(item);

		if (n >= 5 && memcmp(item, "name=", 5) == 0) {
			int rc;

			if (named)
				return vms_tool_usage_error(t, "--device '%s': name= given twice",
							    d->spec);
			rc = dev_name_set(t, d, item + 5, n - 5);
			if (rc)
				return rc;
			named = true;
		} else if (n) {
			if (o)
				d->arg[o++] = ',';
			memcpy(d->arg + o, item, n);
			o += n;
		}
		if (!comma)
			break;
		item = comma + 1;
	}
	d->arg[o] = '\0';
	if (empty_item)
		memcpy(d->arg, rest, len + 1);
	if (!named)
		snprintf(d->name, sizeof(d->name), "dev%u", index);
	return 0;
}

int vms_tool_device_add(struct vms_tool *t, struct vms_tool_devset *s, const char *spec)
{
	struct vms_tool_dev *nd, *d;

	if (s->n >= VMS_DEVICES_MAX) {
		/* the code a receiver gives for the device that crosses the cap,
		 * before anything connects or opens */
		vms_tool_fail(t, VMS_EDEVICE, "more than %u --device options: a stream carries at most %u devices",
			      VMS_DEVICES_MAX, VMS_DEVICES_MAX);
		return vms_tool_report(t);
	}
	nd = realloc(s->dev, (s->n + 1) * sizeof(*s->dev));
	if (!nd)
		return vms_tool_fail(t, VMS_ENOMEM, "out of memory");
	s->dev = nd;
	d = &s->dev[s->n];
	memset(d, 0, sizeof(*d));
	d->spec = spec;
	d->fd = -1;
	s->n++;
	if (strncmp(spec, "vfio:", 5) == 0) {
		d->kind = VMS_TOOL_DEV_VFIO;
		return dev_parse_vfio(t, d, spec + 5);
	}
	if (strncmp(spec, "sim:", 4) == 0) {
		d->kind = VMS_TOOL_DEV_SIM;
		return dev_parse_sim(t, d, spec + 4, s->n - 1);
	}
	return vms_tool_usage_error(t, "--device '%s': expected vfio:PATH[,name=NAME] or "
				       "sim:KEY=VALUE,... (size, profile, dirty, seed, precopy, p2p, "
				       "fault, fault_at, slow, name)", spec);
}

static int dev_name_cmp(const void *a, const void *b)
{
	const struct vms_tool_dev *x = *(const struct vms_tool_dev *const *)a;
	const struct vms_tool_dev *y = *(const struct vms_tool_dev *const *)b;
	int c = strcmp(x->name, y->name);

	/* equal names keep their command-line order */
	return c ? c : (x < y ? -1 : x > y);
}

int vms_tool_devices_check(struct vms_tool *t, struct vms_tool_devset *s)
{
	struct vms_tool_dev **by_name;
	int err = 0;

	if (s->n < 2)
		return 0;
	by_name = malloc(s->n * sizeof(*by_name));
	if (!by_name) {
		vms_tool_fail(t, VMS_ENOMEM, "out of memory");
		return vms_tool_report(t);
	}
	for (unsigned i = 0; i < s->n; i++)
		by_name[i] = &s->dev[i];
	qsort(by_name, s->n, sizeof(*by_name), dev_name_cmp);
	for (unsigned i = 1; i < s->n && !err; i++)
		if (strcmp(by_name[i - 1]->name, by_name[i]->name) == 0)
			err = vms_tool_usage_error(t, "--device '%s' and --device '%s' are "
						      "both named '%s' (devices are "
						      "matched by name: use name=)",
						   by_name[i - 1]->spec, by_name[i]->spec, by_name[i]->name);
	free(by_name);
	return err;
}

static int dev_open_one(struct vms_tool *t, struct vms_tool_dev *d, struct vms_device **out)
{
	int err;

	if (d->kind == VMS_TOOL_DEV_SIM) {
		err = vms_device_open_sim(out, d->name, d->arg);
		if (err)
			return vms_tool_fail(t, err, "--device '%s': %s", d->spec, vms_last_error());
		return 0;
	}
	d->fd = open(d->arg, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (d->fd < 0) {
		/* The device is the problem (missing, no permission, busy):
		 * a device error, exit 8. */
		return vms_tool_fail(t, VMS_EDEVIO, "--device '%s': device '%s': cannot open '%s': %s",
				     d->spec, d->name, d->arg, strerror(errno));
	}
	err = vms_device_open_vfio(out, d->name, d->fd);
	if (err) {
		vms_tool_fail(t, err, "--device '%s': %s", d->spec, vms_last_error());
		/* Not a VFIO device, or one without migration support
		 * (VMS_EUNSUPPORTED): still a device error. */
		if (err != VMS_EINVAL && err != VMS_ENOMEM && t->err == err)
			t->exit_override = VMS_EXIT_DEVICE;
		close(d->fd);
		d->fd = -1;
		return err;
	}
	return 0;
}

int vms_tool_devices_open(struct vms_tool *t, struct vms_tool_devset *s)
{
	s->devs = calloc(s->n ? s->n : 1, sizeof(*s->devs));
	if (!s->devs)
		return vms_tool_fail(t, VMS_ENOMEM, "out of memory");
	for (unsigned i = 0; i < s->n; i++) {
		int err = dev_open_one(t, &s->dev[i], &s->devs[i]);

		if (err) {
			for (unsigned j = 0; j < i; j++) {
				vms_device_free(s->devs[j]);
				s->devs[j] = NULL;
				if (s->dev[j].fd >= 0)
					close(s->dev[j].fd);
				s->dev[j].fd = -1;
			}
			free(s->devs);
			s->devs = NULL;
			return err;
		}
	}
	return 0;
}

void vms_tool_devices_free(struct vms_tool_devset *s)
{
	for (unsigned i = 0; i < s->n; i++) {
		if (s->devs)
			vms_device_free(s->devs[i]);
		if (s->dev[i].fd >= 0)
			close(s->dev[i].fd);
		free(s->dev[i].arg);
	}
	free(s->devs);
	free(s->dev);
	memset(s, 0, sizeof(*s));
}
