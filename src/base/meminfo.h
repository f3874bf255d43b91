/* What memory this process may still use: MemAvailable of /proc/meminfo,
 * lowered to the cgroup's limit (memory.max - memory.current) when there is
 * one, or the limit in $LEANDIFF_MEMORY_LIMIT (bytes, or with a K/M/G suffix)
 * when set. The size check of a generation (pipeline/memory_check.h) and the
 * weight loader (io/safetensors.c: read into memory or mapped) ask it. */
#ifndef LD_BASE_MEMINFO_H
#define LD_BASE_MEMINFO_H

#include "base/status.h"

#include <stddef.h>

/* Bytes available; `source` says where the number came from. A malformed
 * LEANDIFF_MEMORY_LIMIT is an error naming it. */
ld_status ld_memory_available(ld_ctx *ctx, double *bytes, char *source, size_t source_len);

#endif
