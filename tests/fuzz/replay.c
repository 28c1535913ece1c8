/* Replays saved fuzz inputs through LLVMFuzzerTestOneInput without libFuzzer,
 * so ordinary (gcc, sanitizer) CI builds run every corpus file.
 *
 * usage: replay_<target> DIR|FILE...
 * Every directory named must hold at least one input (dot-files ignored);
 * a missing or empty one is an error, so a lost corpus cannot pass. */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static int replay_file(const char *path)
{
	struct stat st;
	uint8_t *buf = NULL;
	size_t len;
	int ret = -1;
	FILE *f = fopen(path, "rb");

	if (!f) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (fstat(fileno(f), &st) != 0) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		goto out_close;
	}
	len = (size_t)st.st_size;
	/* Exactly the input's size, so ASan flags any read past its end. */
	buf = malloc(len ? len : 1);
	if (!buf) {
		fprintf(stderr, "replay: %s: out of memory\n", path);
		goto out_close;
	}
	if (len && fread(buf, 1, len, f) != len) {
		fprintf(stderr, "replay: %s: short read\n", path);
		goto out_free_buf;
	}
	/* Named first so a crash report says which input did it. */
	fprintf(stderr, "replay: %s (%zu bytes)\n", path, len);
	LLVMFuzzerTestOneInput(buf, len);
	ret = 0;
out_free_buf:
	free(buf);
out_close:
	fclose(f);
	return ret;
}

static int not_dot_file(const struct dirent *ent)
{
	return ent->d_name[0] != '.';
}

/* Replays every regular file directly in dir, in name order. */
static int replay_dir(const char *dir, size_t *replayed)
{
	struct dirent **names;
	size_t found = 0;
	int ret = 0;
	int n = scandir(dir, &names, not_dot_file, alphasort);

	if (n < 0) {
		fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
		return -1;
	}
	for (int i = 0; i < n; i++) {
		char path[4096];
		struct stat st;
		int len = snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);

		if (ret == 0 && (len < 0 || (size_t)len >= sizeof(path))) {
			fprintf(stderr, "replay: %s/%s: path too long\n", dir, names[i]->d_name);
			ret = -1;
		}
		if (ret == 0 && stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
			ret = replay_file(path);
			found++;
		}
		free(names[i]);
	}
	free(names);
	if (ret == 0 && found == 0) {
		fprintf(stderr, "replay: %s: no inputs\n", dir);
		ret = -1;
	}
	*replayed += found;
	return ret;
}

int main(int argc, char **argv)
{
	size_t replayed = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s DIR|FILE...\n", argv[0]);
		return 2;
	}
	if (LLVMFuzzerInitialize)
		LLVMFuzzerInitialize(&argc, &argv);
	for (int i = 1; i < argc; i++) {
		struct stat st;

		if (stat(argv[i], &st) != 0) {
			fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
			return 1;
		}
		if (S_ISDIR(st.st_mode)) {
			if (replay_dir(argv[i], &replayed) != 0)
				return 1;
		} else {
			if (replay_file(argv[i]) != 0)
				return 1;
			replayed++;
		}
	}
	printf("replay: %zu inputs, no failure\n", replayed);
	return 0;
}
