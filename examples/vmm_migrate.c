/* SPDX-License-Identifier: MIT */
/*
 * A VMM-style migration with libvmstream: the source migrates a set of
 * devices with precopy to a destination over loopback, authenticated by a
 * fresh PSK and encrypted; it prints every precopy round with its downtime
 * estimate, then the measured downtime per device.
 *
 * The devices are simulated (vms_device_open_sim) with the semantics of a
 * real VFIO data_fd; a real VMM passes vms_device_open_vfio(fd) instead.
 *
 *   vmm_migrate [GPU_SIZE]      (default 512M; e.g. 64M for a quick run)
 *
 * Build against an installed vmstream:
 *   cc vmm_migrate.c $(pkg-config --cflags --libs vmstream) -o vmm_migrate
 * or with CMake: find_package(vmstream) and link vmstream::vmstream.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <unistd.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <vmstream.h>

#define NDEV 6

static char specs[NDEV][128];
static const char *names[NDEV] = { "gpu0", "qat0", "qat1", "qat2", "qat3", "hisi0" };

static int die(const char *what, int err)
{
	fprintf(stderr, "vmm_migrate: %s: %s: %s\n", what, vms_errname(err) ? vms_errname(err) : "?",
		vms_last_error());
	return 1;
}

static int open_devices(struct vms_device **devs)
{
	for (int i = 0; i < NDEV; i++) {
		int err = vms_device_open_sim(&devs[i], names[i], specs[i]);

		if (err)
			return die(names[i], err);
	}
	return 0;
}

/* ---- destination (child process) -------------------------------------- */

static int destination(struct vms_listener *l)
{
	struct vms_device *devs[NDEV];
	struct vms_reader_opts ro = VMS_READER_OPTS_INIT;
	struct vms_migrate_dev_report dr[NDEV];
	struct vms_migrate_report rep = { .size = sizeof(rep), .devs = dr, .devs_cap = NDEV };
	struct vms_reader *r;
	int err;

	if (open_devices(devs))
		return 1;
	ro.threads = VMS_THREADS_AUTO;
	err = vms_accept(l, &r, &ro, 10000);
	if (err)
		return die("accept", err);
	err = vms_migrate_recv(r, devs, NDEV, NULL, &rep);
	vms_reader_free(r);
	for (int i = 0; i < NDEV; i++)
		vms_device_free(devs[i]);
	if (err)
		return die("destination", err);
	return 0;
}

/* ---- source ------------------------------------------------------------ */

static int on_round(void *user, const struct vms_round_info *ri)
{
	(void)user;
	printf("  precopy round %2u: sent %8.1f MiB in %6.3f s, remaining %8.1f MiB, "
	       "stop-copy %8.1f MiB at %7.1f MiB/s -> estimated downtime %8.2f ms\n",
	       ri->round, (double)ri->round_bytes / 1048576.0, ri->round_seconds,
	       (double)ri->remaining_bytes / 1048576.0, (double)ri->stop_copy_bytes / 1048576.0,
	       ri->throughput / 1048576.0, ri->est_downtime_ms);
	/* a VMM's policy: switch over once the estimate is below 50 ms, or
	 * after 8 rounds */
	return ri->est_downtime_ms < 50.0 || ri->round >= 8;
}

static int stop_vm(void *user)
{
	(void)user;
	printf("  switchover: vCPUs stopped\n");
	return 0;
}

static int resume_vm(void *user)
{
	(void)user;
	printf("  migration failed: vCPUs resumed on the source\n");
	return 0;
}

int main(int argc, char **argv)
{
	const char *gpu = argc > 1 ? argv[1] : "512M";
	struct vms_net_opts net = VMS_NET_OPTS_INIT;
	struct vms_writer_opts wo = VMS_WRITER_OPTS_INIT;
	struct vms_migrate_opts mo = VMS_MIGRATE_OPTS_INIT;
	struct vms_migrate_dev_report dr[NDEV];
	struct vms_migrate_report rep = { .size = sizeof(rep), .devs = dr, .devs_cap = NDEV };
	struct vms_device *devs[NDEV];
	struct vms_listener *l;
	struct vms_writer *w;
	uint8_t psk[VMS_KEY_LEN];
	char addr[64];
	pid_t child;
	int err, status;

	snprintf(specs[0], sizeof(specs[0]), "size=%s,profile=mixed,dirty=16M,seed=1", gpu);
	for (int i = 1; i <= 4; i++)
		snprintf(specs[i], sizeof(specs[i]), "size=4K,profile=text,dirty=4K,seed=%d", i + 1);
	snprintf(specs[5], sizeof(specs[5]), "size=176,profile=random,seed=9");

	if (getrandom(psk, sizeof(psk), 0) != sizeof(psk))
		return 1;
	net.psk = psk;
	err = vms_listen(&l, "127.0.0.1:0", &net);
	if (err)
		return die("listen", err);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", vms_listener_port(l));
	printf("vmm_migrate: libvmstream %s, destination on %s (PSK, %s)\n", vms_version_string(),
	       addr, vms_cipher_name(vms_cipher_preferred()));
	fflush(stdout);
	child = fork();
	if (child < 0)
		return 1;
	if (child == 0)
		_exit(destination(l));
	vms_listener_free(l);

	if (open_devices(devs))
		return 1;
	wo.compress = "auto";
	wo.cipher = vms_cipher_preferred();
	wo.threads = VMS_THREADS_AUTO;
	net.lanes = 2;
	err = vms_writer_connect(&w, addr, &net, &wo);
	if (err)
		return die("connect", err);
	mo.on_round = on_round;
	mo.stop_vm = stop_vm;
	mo.resume_vm = resume_vm;
	printf("migrating %d devices (%s over 2 lanes, compress auto):\n", NDEV,
	       vms_writer_engine(w));
	for (int i = 0; i < NDEV; i++)
		printf("  %-6s sim:%s\n", names[i], specs[i]);
	err = vms_migrate_send(w, devs, NDEV, &mo, &rep);
	vms_writer_free(w);
	waitpid(child, &status, 0);
	if (err)
		return die("migration", err);
	printf("done in %.2f s: %u precopy rounds, estimated downtime %.2f ms, measured %.2f ms "
	       "(until the destination acknowledged every device)\n",
	       rep.total_seconds, rep.rounds, rep.est_downtime_ms, rep.downtime_ms);
	printf("  %-6s %14s %14s %14s %12s\n", "device", "precopy", "stop-copy", "estimate",
	       "downtime");
	for (unsigned i = 0; i < rep.ndev; i++)
		printf("  %-6s %12llu B %12llu B %12llu B %9.3f ms\n", names[i],
		       (unsigned long long)dr[i].precopy_bytes, (unsigned long long)dr[i].stopcopy_bytes,
		       (unsigned long long)dr[i].est_stop_copy_bytes, dr[i].downtime_ms);
	for (int i = 0; i < NDEV; i++)
		vms_device_free(devs[i]);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "vmm_migrate: destination failed\n");
		return 1;
	}
	printf("destination loaded and validated every device\n");
	return 0;
}
