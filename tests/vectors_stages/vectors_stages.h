/* SPDX-License-Identifier: MIT */
/*
 * Compressed and encrypted test vectors (tests/vectors_stages/README.md):
 * their inputs, how libvmstream's writer builds them, and the decode listing
 * each must give. Shared by gen_vectors_stages.c (writes the files) and
 * tests/check_crypto.c (rebuilds and decodes them).
 *
 * Include after testutil.h (and after defining _GNU_SOURCE).
 */
#ifndef VMS_VECTORS_STAGES_H
#define VMS_VECTORS_STAGES_H

#include "testutil.h"
#include "stream/internal.h"

/* Fixed inputs (README.md "Inputs"). */
static const uint8_t vs_stream_id[16] = "vmstream vectors";
/* 40 41 ... 5f ("@ABC...XYZ[\]^_"): readable in a dump, unlike the key */
static const uint8_t vs_salt[32] = {
	0x40, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4a, 0x4b, 0x4c, 0x4d, 0x4e, 0x4f,
	0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x5b, 0x5c, 0x5d, 0x5e, 0x5f,
};
/* 00 01 02 ... 1f */
static const uint8_t vs_key[32] = {
	0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
	0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
};
#define VS_CHUNK 4096u

/* The text-like input: 9 lines, 461 bytes. */
static const char vs_text[] =
	"vmstream stage vectors: zstd level 1 on text\n"
	"line 1: the quick brown fox jumps over the lazy dog\n"
	"line 2: the quick brown fox jumps over the lazy dog\n"
	"line 3: the quick brown fox jumps over the lazy dog\n"
	"line 4: the quick brown fox jumps over the lazy dog\n"
	"line 5: the quick brown fox jumps over the lazy dog\n"
	"line 6: the quick brown fox jumps over the lazy dog\n"
	"line 7: the quick brown fox jumps over the lazy dog\n"
	"line 8: the quick brown fox jumps over the lazy dog\n";
#define VS_TEXT_LEN (sizeof(vs_text) - 1)

enum vs_content {
	VS_TEXT,       /* device "text": vs_text */
	VS_ZERO_HELLO, /* device "dev0": 4096 zero bytes, then "hello" */
	VS_HELLO,      /* device "dev0": "hello" */
};

struct vs_vector {
	const char *name;
	const char *what;
	const char *compress;  /* writer opts.compress */
	uint32_t cipher;       /* writer opts.cipher (key vs_key, salt vs_salt) */
	uint64_t epoch_limit;  /* 0 = the writer's default (2^34) */
	enum vs_content content;
	bool uses_zstd;        /* encoder output depends on the zstd version */
	const char *events;    /* expected decode with vs_key */
};

static const struct vs_vector vs_vectors[] = {
	{
		"zstd1_text",
		"zstd level 1 on a 461-byte text-like input, not encrypted",
		"zstd:1", VMS_CIPHER_NONE, 0, VS_TEXT, true,
		"preamble len=65 version=1.0 chunk_cap=4096 lanes=1 cipher=0 key_source=0 codecs=1:zstd\n"
		"0 DEVICE_BEGIN at=65 epoch=0 dev=0 kind=0 size_hint=unknown name=\"text\"\n"
		"1 DATA at=143 epoch=0 dev=0 off=0 len=461 codec=1 wire_len=122 xxh3=0x94521885ed135bcf\n"
		"2 DEVICE_END at=321 epoch=0 dev=0 total=461 digest=0x94521885ed135bcf\n"
		"3 EOS at=393 epoch=0 records=3 raw_bytes=461 devices=1\n",
	},
	{
		"aes_gcm",
		"AES-256-GCM: device \"dev0\" with 4096 zero bytes (a ZERO record) then \"hello\"",
		NULL, VMS_CIPHER_AES_256_GCM, 0, VS_ZERO_HELLO, false,
		"preamble len=92 version=1.0 chunk_cap=4096 lanes=1 cipher=1 key_source=1 codecs=none\n"
		"0 DEVICE_BEGIN at=92 epoch=0 dev=0 kind=0 size_hint=unknown name=\"dev0\"\n"
		"1 ZERO at=194 epoch=0 dev=0 off=0 len=4096 wire_len=24\n"
		"2 DATA at=274 epoch=0 dev=0 off=4096 len=5 codec=0 wire_len=29 data=68656c6c6f\n"
		"3 DEVICE_END at=359 epoch=0 dev=0 total=4101 digest=0xd6682bfc77aecd1a\n"
		"4 EOS at=455 epoch=0 records=4 raw_bytes=4101 devices=1\n",
	},
	{
		"chacha20_poly1305",
		"ChaCha20-Poly1305: the same input as aes_gcm",
		NULL, VMS_CIPHER_CHACHA20_POLY1305, 0, VS_ZERO_HELLO, false,
		"preamble len=92 version=1.0 chunk_cap=4096 lanes=1 cipher=2 key_source=1 codecs=none\n"
		"0 DEVICE_BEGIN at=92 epoch=0 dev=0 kind=0 size_hint=unknown name=\"dev0\"\n"
		"1 ZERO at=194 epoch=0 dev=0 off=0 len=4096 wire_len=24\n"
		"2 DATA at=274 epoch=0 dev=0 off=4096 len=5 codec=0 wire_len=29 data=68656c6c6f\n"
		"3 DEVICE_END at=359 epoch=0 dev=0 total=4101 digest=0xd6682bfc77aecd1a\n"
		"4 EOS at=455 epoch=0 records=4 raw_bytes=4101 devices=1\n",
	},
	{
		"zstd1_aes_gcm",
		"zstd level 1, then AES-256-GCM, on the text input of zstd1_text",
		"zstd:1", VMS_CIPHER_AES_256_GCM, 0, VS_TEXT, true,
		"preamble len=101 version=1.0 chunk_cap=4096 lanes=1 cipher=1 key_source=1 codecs=1:zstd\n"
		"0 DEVICE_BEGIN at=101 epoch=0 dev=0 kind=0 size_hint=unknown name=\"text\"\n"
		"1 DATA at=203 epoch=0 dev=0 off=0 len=461 codec=1 wire_len=146 xxh3=0x94521885ed135bcf\n"
		"2 DEVICE_END at=405 epoch=0 dev=0 total=461 digest=0x94521885ed135bcf\n"
		"3 EOS at=501 epoch=0 records=3 raw_bytes=461 devices=1\n",
	},
	{
		"aes_gcm_epochs",
		"AES-256-GCM with the epoch limit lowered to 32 sealed bytes (test hook "
		"vms_writer_set_epoch_limit), so records use epochs 0, 1, 2, 3: device \"dev0\" "
		"with \"hello\"",
		NULL, VMS_CIPHER_AES_256_GCM, 32, VS_HELLO, false,
		"preamble len=92 version=1.0 chunk_cap=4096 lanes=1 cipher=1 key_source=1 codecs=none\n"
		"0 DEVICE_BEGIN at=92 epoch=0 dev=0 kind=0 size_hint=unknown name=\"dev0\"\n"
		"1 DATA at=194 epoch=1 dev=0 off=0 len=5 codec=0 wire_len=29 data=68656c6c6f\n"
		"2 DEVICE_END at=279 epoch=2 dev=0 total=5 digest=0x9555e8555c62dcfd\n"
		"3 EOS at=375 epoch=3 records=3 raw_bytes=5 devices=1\n",
	},
};
#define VS_COUNT (sizeof(vs_vectors) / sizeof(vs_vectors[0]))

/* Build a vector with the library's writer, threads 0. NULL on failure
 * (message on stderr). */
static inline uint8_t *vs_build(const struct vs_vector *v, size_t *n)
{
	struct vms_writer_opts o = VMS_WRITER_OPTS_INIT;
	struct vms_device_desc d = VMS_DEVICE_DESC_INIT;
	struct vms_writer *w;
	uint8_t *out = NULL;
	int fd = tu_memfd_new();
	int rc;

	o.chunk_size = VS_CHUNK;
	o.stream_id = vs_stream_id;
	o.creator = "";
	o.compress = v->compress;
	o.threads = 0;
	if (v->cipher) {
		o.cipher = v->cipher;
		o.key = vs_key;
		o.salt = vs_salt;
	}
	rc = vms_writer_open_fd(&w, fd, &o);
	if (rc) {
		fprintf(stderr, "%s: writer open: %s\n", v->name, vms_last_error());
		goto out_close;
	}
	if (v->epoch_limit)
		vms_writer_set_epoch_limit(w, v->epoch_limit);
	d.name = v->content == VS_TEXT ? "text" : "dev0";
	rc = vms_writer_begin_device(w, &d, NULL);
	if (!rc && v->content == VS_TEXT)
		rc = vms_writer_write(w, 0, vs_text, VS_TEXT_LEN);
	if (!rc && v->content == VS_ZERO_HELLO) {
		static const uint8_t zeros[VS_CHUNK];

		rc = vms_writer_write(w, 0, zeros, sizeof(zeros));
	}
	if (!rc && (v->content == VS_ZERO_HELLO || v->content == VS_HELLO))
		rc = vms_writer_write(w, 0, "hello", 5);
	if (!rc)
		rc = vms_writer_end_device(w, 0);
	if (!rc)
		rc = vms_writer_finish(w);
	if (rc)
		fprintf(stderr, "%s: writing: %s\n", v->name, vms_last_error());
	vms_writer_free(w);
	if (!rc)
		out = tu_memfd_get(fd, n);
out_close:
	close(fd);
	return out;
}

static inline void vs_appendf(struct tu_bytes *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static inline void vs_appendf(struct tu_bytes *b, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line))
		tu_die("decode line too long");
	tu_bytes_add(b, line, (size_t)n);
}

/* Decode a stream with key (NULL = none), threads as given; return the
 * listing (NUL-terminated, malloc'ed) in the README's format, ending with
 * "error CODE at ..." if the reader failed. */
static inline char *vs_decode(const uint8_t *s, size_t n, const uint8_t *key, uint32_t threads)
{
	struct vms_reader_opts o = VMS_READER_OPTS_INIT;
	struct tu_bytes b = { 0 };
	struct tu_run r;
	struct tu_ed ed;
	int fd = tu_memfd_new();

	o.key = key;
	o.threads = threads;
	tu_memfd_set(fd, s, n);
	tu_run_fd(fd, &o, &r);
	close(fd);
	if (r.open_err == 0) {
		const struct vms_stream_info *i = &r.info;

		vs_appendf(&b, "preamble len=%u version=%u.%u chunk_cap=%u lanes=%u cipher=%u "
			       "key_source=%u codecs=",
			   i->preamble_len, i->version_major, i->version_minor, i->chunk_cap,
			   i->lanes, i->cipher, i->key_source);
		/* codec declarations are not in vms_stream_info: read them from
		 * the preamble bytes */
		if (tu_ed_parse(&ed, s, n) == 0) {
			size_t pos = 48, end = ed.pre_len - 8;
			int k = 0;

			while (end - pos >= 4) {
				uint16_t t = tu_le16(ed.pre + pos), len = tu_le16(ed.pre + pos + 2);

				if (len > end - pos - 4)
					break;
				if (t == 0x0001 && len >= 1)
					vs_appendf(&b, "%s%u:%.*s", k++ ? "," : "", ed.pre[pos + 4],
						   (int)(len - 1), (const char *)ed.pre + pos + 5);
				pos += 4u + len;
			}
			if (!k)
				vs_appendf(&b, "none");
			tu_ed_free(&ed);
		}
		vs_appendf(&b, "\n");
	}
	for (size_t k = 0; k < r.nev; k++) {
		const struct tu_ev *e = &r.ev[k];

		vs_appendf(&b, "%llu %s at=%llu epoch=%u", (unsigned long long)e->seq,
			   vms_rec_type_name(e->type) ? vms_rec_type_name(e->type) : "?",
			   (unsigned long long)e->stream_pos, e->epoch);
		switch (e->type) {
		case VMS_REC_DEVICE_BEGIN:
			vs_appendf(&b, " dev=%u kind=%llu size_hint=", e->device,
				   (unsigned long long)e->a);
			if (e->b == UINT64_MAX)
				vs_appendf(&b, "unknown");
			else
				vs_appendf(&b, "%llu", (unsigned long long)e->b);
			vs_appendf(&b, " name=\"%s\"", e->text);
			break;
		case VMS_REC_DATA: {
			vs_appendf(&b, " dev=%u off=%llu len=%u codec=%u wire_len=%u", e->device,
				   (unsigned long long)e->offset, e->raw_len, e->codec, e->wire_len);
			if (e->data_len <= 16 && e->device < TU_MAX_DEV) {
				/* bytes of this event: the tail of the device's buffer
				 * as it was after the event */
				size_t end = 0;

				for (size_t j = 0; j <= k; j++)
					if ((r.ev[j].type == VMS_REC_DATA || r.ev[j].type == VMS_REC_ZERO) &&
					    r.ev[j].device == e->device)
						end += r.ev[j].data_len;
				vs_appendf(&b, " data=");
				for (size_t j = end - e->data_len; j < end; j++)
					vs_appendf(&b, "%02x", r.dev[e->device].p[j]);
			} else {
				vs_appendf(&b, " xxh3=0x%016llx", (unsigned long long)e->data_sum);
			}
			break;
		}
		case VMS_REC_ZERO:
			vs_appendf(&b, " dev=%u off=%llu len=%u wire_len=%u", e->device,
				   (unsigned long long)e->offset, e->raw_len, e->wire_len);
			break;
		case VMS_REC_PHASE:
			vs_appendf(&b, " phase=%llu round=%llu", (unsigned long long)e->a,
				   (unsigned long long)e->b);
			break;
		case VMS_REC_DEVICE_END:
			vs_appendf(&b, " dev=%u total=%llu digest=0x%016llx", e->device,
				   (unsigned long long)e->a, (unsigned long long)e->b);
			break;
		case VMS_REC_EOS:
			vs_appendf(&b, " records=%llu raw_bytes=%llu devices=%u",
				   (unsigned long long)e->a, (unsigned long long)e->b, e->c);
			break;
		case VMS_REC_ABORT:
			vs_appendf(&b, " code=%lld text=\"%s\"", (long long)(int64_t)e->a, e->text);
			break;
		default:
			break;
		}
		vs_appendf(&b, "\n");
	}
	if (r.err)
		vs_appendf(&b, "error %s: %s\n", vms_errname(r.err) ? vms_errname(r.err) : "?", r.msg);
	tu_bytes_add(&b, "", 1);
	tu_run_free(&r);
	return (char *)b.p;
}

#endif
