/* Memory available to this process (see meminfo.h). */
#include "base/meminfo.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GIB (1024.0 * 1024.0 * 1024.0)

/* "12345", "512M", "8G": bytes; -1 when malformed. */
static double parse_size(const char *s) {
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (end == s || errno || !(v >= 0)) return -1;
    double mul = 1;
    switch (*end) {
    case 'k': case 'K': mul = 1024.0; end++; break;
    case 'm': case 'M': mul = 1024.0 * 1024.0; end++; break;
    case 'g': case 'G': mul = GIB; end++; break;
    case 't': case 'T': mul = GIB * 1024.0; end++; break;
    }
    if (*end == 'B' || *end == 'b') end++;
    return *end ? -1 : v * mul;
}

/* A number from a one-line file (cgroup); -1 when absent or "max". */
static double read_number(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char buf[64] = "";
    double v = -1;
    if (fgets(buf, sizeof buf, f) && strncmp(buf, "max", 3)) v = strtod(buf, NULL);
    fclose(f);
    return v;
}

ld_status ld_memory_available(ld_ctx *ctx, double *bytes, char *source, size_t source_len) {
    const char *env = getenv("LEANDIFF_MEMORY_LIMIT");
    if (env && *env) {
        double v = parse_size(env);
        if (v < 0)
            return ld_fail(ctx, LD_ERR_INVALID_ARGUMENT,
                           "LEANDIFF_MEMORY_LIMIT='%s' is not a size (bytes, or a number with K, M or G)", env);
        *bytes = v;
        snprintf(source, source_len, "LEANDIFF_MEMORY_LIMIT");
        return LD_OK;
    }
    double avail = -1;
    FILE *f = fopen("/proc/meminfo", "r");
    if (f) {
        char line[256];
        long long kb;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "MemAvailable: %lld kB", &kb) == 1) avail = (double)kb * 1024.0;
        fclose(f);
    }
    snprintf(source, source_len, "MemAvailable in /proc/meminfo");
    if (avail < 0) {
        long pages = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGESIZE);
        avail = pages > 0 && page > 0 ? (double)pages * (double)page : -1;
        snprintf(source, source_len, "free physical memory");
    }
    /* a container's limit is lower than what the host reports */
    double max = read_number("/sys/fs/cgroup/memory.max"), cur = read_number("/sys/fs/cgroup/memory.current");
    if (max >= 0 && cur >= 0 && (avail < 0 || max - cur < avail)) {
        avail = max > cur ? max - cur : 0;
        snprintf(source, source_len, "the cgroup's memory.max");
    }
    *bytes = avail;
    return LD_OK;
}
