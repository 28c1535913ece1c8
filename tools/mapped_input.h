/* SPDX-License-Identifier: MIT */
/* vmstream-send: a regular input file lent to the writer in mapped windows
 * (no read() copy). See mapped_input.c. */
#ifndef VMS_TOOLS_MAPPED_INPUT_H
#define VMS_TOOLS_MAPPED_INPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "vmstream.h"

/* fd is a regular file of exactly `size` bytes (size known, not 0). */
bool vms_mapped_input_usable(int fd, uint64_t size);

/* The file is now shorter than `size`: a failure while sending it (the
 * kernel fails a send from a vanished page with EFAULT) is really that. */
bool vms_mapped_input_shrank(int fd, uint64_t size);

/* Lend the whole file to the writer as device `dev`, window by window
 * (chunk: the stream's chunk size). Returns 0; 1 if the file cannot be
 * mapped at all (nothing was sent: read it instead); or an error: with *own
 * set, this function's (VMS_EIO, VMS_ENOMEM; reason in why), else the
 * library's (vms_last_error()). *sent: bytes handed over so far. If the file
 * shrinks meanwhile, the process exits with status exit_io after one
 * "error:" line naming the input (`what`). */
int vms_mapped_input_send(struct vms_writer *w, uint32_t dev, int fd, uint64_t size,
			  uint32_t chunk, const char *what, int exit_io, uint64_t *sent,
			  bool *own, char *why, size_t whylen);

#endif
