/* SPDX-License-Identifier: MIT */
/*
 * Benchmark data generator (see datagen.h). Each page gets its own 64-bit
 * state from a splitmix64 hash of (seed, profile, page); content comes from
 * wyrand, whose steps are independent multiplies, so a page of random data
 * costs about one multiply per 8 bytes. Text and code pages copy 16-byte
 * table entries with one unaligned store and advance by the entry's length.
 */
#include <string.h>
#include "datagen.h"

#define PAGE VMS_DATAGEN_PAGE

enum page_kind { PG_ZERO, PG_RANDOM, PG_TEXT, PG_CODE, PG_PTR, PG_NKINDS };

/* Share of each page kind per profile, in 1/256 (each row sums to 256).
 * mixed is tuned so that `zstd -1` on 256 MiB gives about 2:1, sparse about
 * 7:1 (bench/README.md has the measured ratios). */
static const uint16_t mix_table[VMS_DATAGEN_NPROFILES][PG_NKINDS] = {
	/*                      zero random text code  ptr */
	[VMS_DATAGEN_RANDOM] = { 0, 256, 0, 0, 0 },
	[VMS_DATAGEN_ZEROS] = { 256, 0, 0, 0, 0 },
	[VMS_DATAGEN_SPARSE] = { 204, 29, 23, 0, 0 },
	[VMS_DATAGEN_TEXT] = { 0, 0, 256, 0, 0 },
	[VMS_DATAGEN_MIXED] = { 72, 40, 44, 56, 44 },
};

static const char *const profile_names[VMS_DATAGEN_NPROFILES] = {
	"random", "zeros", "sparse", "text", "mixed",
};

static const char *const profile_descs[VMS_DATAGEN_NPROFILES] = {
	"incompressible pseudo-random bytes",
	"all zero bytes",
	"mostly zero 4 KiB pages, some random and some text pages (zstd -1 ratio ~7)",
	"text-like words from a skewed vocabulary (highly compressible)",
	("VM-memory-like 4 KiB pages: zero, text, x86-like code, pointer tables, random "
	 "(zstd -1 ratio ~2)"),
};

int vms_datagen_profile_from_name(const char *name)
{
	for (int i = 0; name && i < VMS_DATAGEN_NPROFILES; i++)
		if (strcmp(name, profile_names[i]) == 0)
			return i;
	return -1;
}

const char *vms_datagen_profile_name(int profile)
{
	return profile >= 0 && profile < VMS_DATAGEN_NPROFILES ? profile_names[profile] : NULL;
}

const char *vms_datagen_profile_desc(int profile)
{
	return profile >= 0 && profile < VMS_DATAGEN_NPROFILES ? profile_descs[profile] : NULL;
}

/* ---- generators -------------------------------------------------------- */

static inline uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static inline uint64_t wyrand(uint64_t *s)
{
	unsigned __int128 m;

	*s += 0xa0761d6478bd642full;
	m = (unsigned __int128)*s * (*s ^ 0xe7037ed1a0b428dbull);
	return (uint64_t)(m >> 64) ^ (uint64_t)m;
}

static inline void put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

static void gen_random(uint64_t s, uint8_t *p)
{
	for (unsigned i = 0; i < PAGE; i += 32) {
		put64(p + i, wyrand(&s));
		put64(p + i + 8, wyrand(&s));
		put64(p + i + 16, wyrand(&s));
		put64(p + i + 24, wyrand(&s));
	}
}

/* Vocabulary: entries padded to 16 bytes so a word is one 16-byte copy. */
struct token {
	char s[16];
	uint8_t len;
};
#define W(x) { x, (uint8_t)(sizeof(x) - 1) }

static const struct token words[256] = {
	W("the"), W("of"), W("and"), W("to"), W("a"), W("in"), W("is"), W("that"),
	W("for"), W("it"), W("as"), W("was"), W("with"), W("be"), W("by"), W("on"),
	W("not"), W("this"), W("are"), W("or"), W("from"), W("at"), W("which"), W("but"),
	W("have"), W("an"), W("had"), W("they"), W("you"), W("were"), W("their"), W("one"),
	W("all"), W("we"), W("can"), W("has"), W("there"), W("been"), W("if"), W("more"),
	W("when"), W("will"), W("would"), W("who"), W("so"), W("no"), W("page"), W("device"),
	W("memory"), W("return"), W("error"), W("state"), W("buffer"), W("queue"), W("data"),
	W("kernel"), W("struct"), W("int"), W("static"), W("void"), W("const"), W("char"),
	W("size"), W("offset"), W("length"), W("NULL"), W("0x0"), W("irq"), W("vcpu"),
	W("virtio"), W("pci"), W("dma"), W("mmio"), W("register"), W("interrupt"), W("timer"),
	W("migration"), W("guest"), W("host"), W("network"), W("disk"), W("block"), W("file"),
	W("user"), W("system"), W("process"), W("thread"), W("lock"), W("mutex"), W("read"),
	W("write"), W("open"), W("close"), W("start"), W("stop"), W("init"), W("free"),
	W("alloc"), W("table"), W("entry"), W("list"), W("node"), W("next"), W("prev"),
	W("value"), W("count"), W("index"), W("flags"), W("mode"), W("type"), W("name"),
	W("time"), W("request"), W("response"), W("packet"), W("address"), W("port"),
	W("config"), W("status"), W("ready"), W("done"), W("failed"), W("retry"), W("update"),
	W("version"), W("number"), W("first"), W("last"), W("new"), W("old"), W("other"),
	W("some"), W("what"), W("about"), W("out"), W("up"), W("into"), W("than"), W("them"),
	W("then"), W("only"), W("its"), W("over"), W("also"), W("after"), W("before"),
	W("under"), W("between"), W("through"), W("where"), W("while"), W("because"),
	W("each"), W("many"), W("most"), W("such"), W("these"), W("those"), W("very"),
	W("should"), W("could"), W("may"), W("must"), W("might"), W("use"), W("used"),
	W("using"), W("make"), W("made"), W("like"), W("just"), W("any"), W("same"),
	W("different"), W("large"), W("small"), W("high"), W("low"), W("long"), W("short"),
	W("fast"), W("slow"), W("check"), W("checksum"), W("verify"), W("compress"),
	W("encrypt"), W("stream"), W("record"), W("chunk"), W("header"), W("payload"),
	W("worker"), W("pipeline"), W("stage"), W("codec"), W("cipher"), W("key"),
	W("nonce"), W("tag"), W("digest"), W("total"), W("bytes"), W("records"), W("phase"),
	W("round"), W("dirty"), W("bitmap"), W("region"), W("slot"), W("range"), W("map"),
	W("unmap"), W("fault"), W("handler"), W("callback"), W("event"), W("signal"),
	W("wait"), W("notify"), W("poll"), W("epoll"), W("socket"), W("connect"),
	W("accept"), W("send"), W("recv"), W("bind"), W("listen"), W("shutdown"), W("reset"),
	W("abort"), W("timeout"), W("limit"), W("budget"), W("level"), W("ratio"),
	W("speed"), W("rate"), W("latency"), W("throughput"), W("cache"), W("line"),
	W("cpu"), W("core"), W("huge"), W("pages"), W("tlb"), W("vfio"), W("iommu"),
	W("group"), W("snapshot"), W("restore"), W("save"), W("load"), W("dump"),
};

static const struct token seps[8] = {
	W(" "), W(" "), W(" "), W(" "), W(" "), W("\n"), W(", "), W(". "),
};

/* Skewed pick from 2^bits entries: the product of two uniform bytes puts
 * small indexes first, a rough Zipf law, as in real text and code. */
static inline unsigned skew_pick(uint64_t r, unsigned bits)
{
	return (unsigned)(((r & 0xff) * ((r >> 8) & 0xff)) >> (16 - bits));
}

/* Skewed random words and separators, and every so often a copy of 16..47
 * bytes from earlier in the page, so phrases recur as they do in logs and
 * documents. TEXT_COPY/8 of the steps copy (3/8: zstd -1 ratio about 4). */
#define TEXT_COPY 3

static void gen_text(uint64_t s, uint8_t *p)
{
	unsigned pos = 0;

	while (pos + 64 <= PAGE) {
		uint64_t r = wyrand(&s);

		if (pos >= 128 && (r >> 61) < TEXT_COPY) {
			/* source at least 64 bytes back: the copy never overlaps */
			unsigned dist = 64 + (unsigned)((((r >> 32) & 0xffff) * (pos - 64)) >> 16);

			memcpy(p + pos, p + pos - dist, 64);
			pos += 16 + (unsigned)((r >> 48) & 31);
			continue;
		}
		for (int k = 0; k < 2; k++, r >>= 24) {
			const struct token *w = &words[skew_pick(r, 8)];
			const struct token *sep = &seps[(r >> 16) & 7];

			memcpy(p + pos, w->s, 16);
			pos += w->len;
			memcpy(p + pos, sep->s, 2);
			pos += sep->len;
		}
	}
	memset(p + pos, '\n', PAGE - pos);
}

/* x86-64-like instructions: opcode bytes, then imm immediate bytes (0, 1
 * or 4). */
struct insn {
	uint8_t b[8];
	uint8_t len, imm;
};

static const struct insn insns[64] = {
	{ { 0x48, 0x8b, 0x45 }, 3, 1 },      /* mov rax,[rbp+d8] */
	{ { 0x48, 0x89, 0x45 }, 3, 1 },      /* mov [rbp+d8],rax */
	{ { 0xe8 }, 1, 4 },                  /* call rel32 */
	{ { 0x48, 0x89, 0xc7 }, 3, 0 },      /* mov rdi,rax */
	{ { 0x85, 0xc0 }, 2, 0 },            /* test eax,eax */
	{ { 0x74 }, 1, 1 },                  /* je rel8 */
	{ { 0x48, 0x8b, 0x7d }, 3, 1 },      /* mov rdi,[rbp+d8] */
	{ { 0x31, 0xc0 }, 2, 0 },            /* xor eax,eax */
	{ { 0x75 }, 1, 1 },                  /* jne rel8 */
	{ { 0x48, 0x8b, 0x47 }, 3, 1 },      /* mov rax,[rdi+d8] */
	{ { 0x8b, 0x45 }, 2, 1 },            /* mov eax,[rbp+d8] */
	{ { 0x48, 0x85, 0xc0 }, 3, 0 },      /* test rax,rax */
	{ { 0x0f, 0x84 }, 2, 4 },            /* je rel32 */
	{ { 0x48, 0x8d, 0x05 }, 3, 4 },      /* lea rax,[rip+d32] */
	{ { 0x89, 0x45 }, 2, 1 },            /* mov [rbp+d8],eax */
	{ { 0xc3 }, 1, 0 },                  /* ret */
	{ { 0x55 }, 1, 0 },                  /* push rbp */
	{ { 0x48, 0x89, 0xe5 }, 3, 0 },      /* mov rbp,rsp */
	{ { 0x5d }, 1, 0 },                  /* pop rbp */
	{ { 0x48, 0x8b, 0x05 }, 3, 4 },      /* mov rax,[rip+d32] */
	{ { 0x48, 0x89, 0xde }, 3, 0 },      /* mov rsi,rbx */
	{ { 0x83, 0xf8 }, 2, 1 },            /* cmp eax,imm8 */
	{ { 0xe9 }, 1, 4 },                  /* jmp rel32 */
	{ { 0xeb }, 1, 1 },                  /* jmp rel8 */
	{ { 0x53 }, 1, 0 },                  /* push rbx */
	{ { 0x5b }, 1, 0 },                  /* pop rbx */
	{ { 0x41, 0x54 }, 2, 0 },            /* push r12 */
	{ { 0x41, 0x5c }, 2, 0 },            /* pop r12 */
	{ { 0x48, 0x83, 0xec }, 3, 1 },      /* sub rsp,imm8 */
	{ { 0x48, 0x83, 0xc4 }, 3, 1 },      /* add rsp,imm8 */
	{ { 0xb8 }, 1, 4 },                  /* mov eax,imm32 */
	{ { 0xbf }, 1, 4 },                  /* mov edi,imm32 */
	{ { 0x4c, 0x89, 0xe7 }, 3, 0 },      /* mov rdi,r12 */
	{ { 0x48, 0x8b, 0x43 }, 3, 1 },      /* mov rax,[rbx+d8] */
	{ { 0x48, 0x39, 0xc3 }, 3, 0 },      /* cmp rbx,rax */
	{ { 0x0f, 0x85 }, 2, 4 },            /* jne rel32 */
	{ { 0xf3, 0x0f, 0x1e, 0xfa }, 4, 0 },/* endbr64 */
	{ { 0x0f, 0x1f, 0x44, 0x00, 0x00 }, 5, 0 }, /* nopl */
	{ { 0x66, 0x90 }, 2, 0 },            /* xchg ax,ax */
	{ { 0x48, 0x8b, 0x15 }, 3, 4 },      /* mov rdx,[rip+d32] */
	{ { 0x89, 0xc6 }, 2, 0 },            /* mov esi,eax */
	{ { 0x89, 0xc2 }, 2, 0 },            /* mov edx,eax */
	{ { 0x48, 0x63, 0xd0 }, 3, 0 },      /* movsxd rdx,eax */
	{ { 0x48, 0x01, 0xd0 }, 3, 0 },      /* add rax,rdx */
	{ { 0x48, 0xc1, 0xe0 }, 3, 1 },      /* shl rax,imm8 */
	{ { 0x0f, 0xb6, 0x45 }, 3, 1 },      /* movzx eax,byte [rbp+d8] */
	{ { 0x3c }, 1, 1 },                  /* cmp al,imm8 */
	{ { 0x7e }, 1, 1 },                  /* jle rel8 */
	{ { 0x7f }, 1, 1 },                  /* jg rel8 */
	{ { 0x41, 0x55 }, 2, 0 },            /* push r13 */
	{ { 0x41, 0x5d }, 2, 0 },            /* pop r13 */
	{ { 0x4c, 0x8b, 0x65 }, 3, 1 },      /* mov r12,[rbp+d8] */
	{ { 0xc7, 0x45, 0xf8 }, 3, 4 },      /* mov dword [rbp-8],imm32 */
	{ { 0x48, 0xc7, 0xc0 }, 3, 4 },      /* mov rax,imm32 */
	{ { 0xff, 0x15 }, 2, 4 },            /* call [rip+d32] */
	{ { 0xcc }, 1, 0 },                  /* int3 */
	{ { 0x90 }, 1, 0 },                  /* nop */
	{ { 0xf0, 0x0f, 0xb1, 0x17 }, 4, 0 },/* lock cmpxchg [rdi],edx */
	{ { 0x0f, 0x05 }, 2, 0 },            /* syscall */
	{ { 0x48, 0x8b, 0x04, 0x24 }, 4, 0 },/* mov rax,[rsp] */
	{ { 0x48, 0x89, 0x04, 0x24 }, 4, 0 },/* mov [rsp],rax */
	{ { 0xc5, 0xf8, 0x77 }, 3, 0 },      /* vzeroupper */
	{ { 0x48, 0x8d, 0x64, 0x24 }, 4, 1 },/* lea rsp,[rsp+d8] */
	{ { 0x41, 0xff, 0xd4 }, 3, 0 },      /* call r12 */
};

/* Branch-free: the opcode bytes and a 4-byte immediate are always stored,
 * and pos advances by what the instruction really has. A one-byte
 * immediate is a small negative multiple of 8 (stack slots, short jumps), a
 * four-byte one a near displacement within +-1 MiB (high byte 00 or ff). */
static void gen_code(uint64_t s, uint8_t *p)
{
	unsigned pos = 0;

	while (pos + 16 <= PAGE) {
		uint64_t r = wyrand(&s);
		const struct insn *in = &insns[skew_pick(r, 6)];
		uint32_t imm1 = 0x100u - 8u * (1u + (unsigned)((r >> 16) & 15));
		uint32_t imm4 = (uint32_t)((r >> 20) & 0x1fffff) - 0x100000u;
		/* select with a mask: a branch here mispredicts every other time */
		uint32_t imm = imm4 ^ ((imm1 ^ imm4) & -(uint32_t)(in->imm == 1));

		memcpy(p + pos, in->b, 8);
		pos += in->len;
		memcpy(p + pos, &imm, 4);
		pos += in->imm;
	}
	memset(p + pos, 0xcc, PAGE - pos); /* int3 padding, as linkers do */
}

/* Pointer-ish tables: kernel/user addresses around a few bases, small
 * integers, NULLs, and runs of array elements (previous + stride).
 * Selected with masks, not branches (they would mispredict). */
static void gen_ptr(uint64_t s, uint8_t *p)
{
	static const uint64_t bases[4] = {
		0xffff888000000000ull, /* direct map */
		0xffffc90000000000ull, /* vmalloc */
		0xffffffff81000000ull, /* kernel text */
		0x00007f3a00000000ull, /* user mmap */
	};
	uint64_t prev = bases[0];

	for (unsigned i = 0; i < PAGE; i += 8) {
		uint64_t r = wyrand(&s);
		unsigned sel = (unsigned)(r & 7);
		uint64_t ptr = bases[(r >> 3) & 3] + (((r >> 8) & 0xffffff) << 4);
		uint64_t v = (ptr & -(uint64_t)(sel >= 4)) |
			     ((prev + 64) & -(uint64_t)(sel >> 1 == 1)) |
			     ((r >> 58) & -(uint64_t)(sel == 1));

		prev = v;
		put64(p + i, v);
	}
}

static void gen_page(enum vms_datagen_profile profile, uint64_t seed, uint64_t page, uint8_t *p)
{
	const uint16_t *mix = mix_table[profile];
	uint64_t h = mix64(seed ^ mix64(page * 0x9e3779b97f4a7c15ull + (uint64_t)profile + 1));
	unsigned pick = (unsigned)(h >> 56), acc = 0;
	int kind = PG_ZERO;
	uint64_t s = mix64(h);

	for (int k = 0; k < PG_NKINDS; k++) {
		acc += mix[k];
		if (pick < acc) {
			kind = k;
			break;
		}
	}
	switch (kind) {
	case PG_RANDOM:
		gen_random(s, p);
		break;
	case PG_TEXT:
		gen_text(s, p);
		break;
	case PG_CODE:
		gen_code(s, p);
		break;
	case PG_PTR:
		gen_ptr(s, p);
		break;
	default:
		memset(p, 0, PAGE);
		break;
	}
}

void vms_datagen_fill(enum vms_datagen_profile profile, uint64_t seed, uint64_t offset,
		      void *buf, size_t len)
{
	uint8_t *out = buf;

	if ((unsigned)profile >= VMS_DATAGEN_NPROFILES)
		profile = VMS_DATAGEN_RANDOM;
	while (len > 0) {
		uint64_t page = offset / PAGE;
		size_t in = (size_t)(offset % PAGE);
		size_t n = PAGE - in < len ? PAGE - in : len;

		if (n == PAGE) {
			gen_page(profile, seed, page, out);
		} else {
			uint8_t tmp[PAGE];

			gen_page(profile, seed, page, tmp);
			memcpy(out, tmp + in, n);
		}
		out += n;
		offset += n;
		len -= n;
	}
}
