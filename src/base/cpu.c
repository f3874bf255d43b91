/* CPU feature detection, the LEANDIFF_CPU override and the FMA peak probe
 * (see cpu.h). On x86 the probe kernels use per-function target attributes so
 * this file itself is compiled for plain x86-64 and only runs them when the
 * CPU has the instructions; on aarch64 NEON is always there (the aarch64
 * code is run under qemu by tools/cross-test-arm64.sh). */
#include "base/cpu.h"

#include <omp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#define LD_X86 1
#include <cpuid.h>
#include <immintrin.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#endif
#if defined(__aarch64__)
#include <arm_neon.h>
#if defined(__linux__)
#include <sys/auxv.h>
#endif
#endif

static ld_cpu_info g_info;
static ld_cpu_level_t g_level;
static int g_amx_on; /* AMX in use: amx_bf16, unless turned off */
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

/* The value of a "key : value" line of /proc/cpuinfo into out (n bytes);
 * returns 0 for another key or an empty value. */
static int cpuinfo_value(const char *line, const char *key, char *out, size_t n) {
    if (strncmp(line, key, strlen(key))) return 0;
    const char *colon = strchr(line, ':');
    if (!colon) return 0;
    const char *v = colon + 1;
    while (*v == ' ' || *v == '\t') v++;
    size_t len = strcspn(v, "\r\n");
    if (len == 0) return 0;
    if (len >= n) len = n - 1;
    memcpy(out, v, len);
    out[len] = 0;
    return 1;
}

/* First "model name" (x86) or "Model"/"Hardware" line of /proc/cpuinfo; else
 * (arm64 kernels print neither) "aarch64 implementer 0x41 part 0xd0c" from
 * the "CPU implementer" and "CPU part" lines. */
static int model_from_proc(char *out, size_t n) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return 0;
    char line[512], impl[32] = "", part[32] = "";
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        found = cpuinfo_value(line, "model name", out, n) || cpuinfo_value(line, "Model", out, n) ||
                cpuinfo_value(line, "Hardware", out, n);
        if (!impl[0]) cpuinfo_value(line, "CPU implementer", impl, sizeof impl);
        if (!part[0]) cpuinfo_value(line, "CPU part", part, sizeof part);
    }
    fclose(f);
    if (!found && impl[0] && part[0]) {
        snprintf(out, n, "aarch64 implementer %s part %s", impl, part);
        found = 1;
    }
    return found;
}

#ifdef LD_X86
static uint64_t read_xcr0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

/* Asks Linux for this process's AMX tile data (the registers are off until
 * a process asks: arch_prctl ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA);
 * 1 when granted. Elsewhere 0. */
static int grant_amx(void) {
#if defined(__linux__) && defined(SYS_arch_prctl)
    enum { ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18 };
    return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
#else
    return 0;
#endif
}

static void detect_x86(ld_cpu_info *ci) {
    unsigned a, b, c, d;
    if (__get_cpuid(0, &a, &b, &c, &d)) {
        memcpy(ci->vendor, &b, 4);
        memcpy(ci->vendor + 4, &d, 4);
        memcpy(ci->vendor + 8, &c, 4);
        ci->vendor[12] = 0;
    }
    if (!__get_cpuid(1, &a, &b, &c, &d)) return;
    ci->family = (int)((a >> 8) & 0xf);
    ci->model_id = (int)((a >> 4) & 0xf);
    if (ci->family == 0x6 || ci->family == 0xf) ci->model_id += (int)((a >> 16) & 0xf) << 4;
    if (ci->family == 0xf) ci->family += (int)((a >> 20) & 0xff);
    int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
    int fma = (c >> 12) & 1, f16c = (c >> 29) & 1;
    uint64_t xcr0 = osxsave ? read_xcr0() : 0;
    int os_ymm = (xcr0 & 0x6) == 0x6;     /* SSE + AVX state */
    int os_zmm = (xcr0 & 0xe6) == 0xe6;   /* + opmask, ZMM_Hi256, Hi16_ZMM */
    unsigned max_leaf = (unsigned)__get_cpuid_max(0, NULL);
    unsigned b7 = 0, c7 = 0, d7 = 0, a71 = 0;
    if (max_leaf >= 7) {
        __cpuid_count(7, 0, a, b7, c7, d7);
        __cpuid_count(7, 1, a71, b, c, d);
    }
    if (avx && os_ymm) {
        ci->fma = fma;
        ci->f16c = f16c;
        ci->avx2 = (b7 >> 5) & 1;
    }
    if (os_zmm) {
        ci->avx512f = (b7 >> 16) & 1;
        ci->avx512dq = (b7 >> 17) & 1;
        ci->avx512bw = (b7 >> 30) & 1;
        ci->avx512vl = (b7 >> 31) & 1;
        ci->avx512vnni = (c7 >> 11) & 1;
        ci->avx512bf16 = (a71 >> 5) & 1;
    }
    /* AMX-BF16 (leaf 7 edx bit 22), AMX-TILE (bit 24), tile state in XCR0 (bits 17, 18) */
    const int os_tiles = (xcr0 & 0x60000) == 0x60000;
    if (ci->avx512bf16 && ((d7 >> 22) & 1) && ((d7 >> 24) & 1) && os_tiles) ci->amx_bf16 = grant_amx();
    if (ci->avx2 && ci->fma && ci->f16c) ci->best = LD_CPU_AVX2;
    if (ci->best == LD_CPU_AVX2 && ci->avx512f && ci->avx512bw && ci->avx512dq && ci->avx512vl)
        ci->best = LD_CPU_AVX512;
    /* Brand string (leaves 0x80000002..4) when /proc/cpuinfo is absent. */
    if (!ci->model[0] && (unsigned)__get_cpuid_max(0x80000000u, NULL) >= 0x80000004u) {
        unsigned regs[12];
        for (unsigned i = 0; i < 3; i++)
            __get_cpuid(0x80000002u + i, &regs[4 * i], &regs[4 * i + 1], &regs[4 * i + 2], &regs[4 * i + 3]);
        char brand[49];
        memcpy(brand, regs, 48);
        brand[48] = 0;
        const char *s = brand;
        while (*s == ' ') s++;
        snprintf(ci->model, sizeof ci->model, "%s", s);
    }
}
#endif

/* The path for a requested level on this CPU: NEON and the x86 levels are
 * different families, so a level of the other family falls back to portable
 * (an x86 level on aarch64 first clamps to neon, the best there), and one
 * above the CPU's best to the best. */
static ld_cpu_level_t clamp_level(const ld_cpu_info *ci, ld_cpu_level_t level) {
    if (level > ci->best) level = ci->best;
    if (level == LD_CPU_NEON && ci->best != LD_CPU_NEON) level = LD_CPU_PORTABLE;
    if (level != LD_CPU_NEON && level != LD_CPU_PORTABLE && ci->best == LD_CPU_NEON) level = LD_CPU_PORTABLE;
    return level;
}

/* ld_cpu_parse_level with the best level given: detect() uses it directly,
 * because calling ld_cpu_info_get() from inside detect() would wait forever
 * on its own pthread_once (LEANDIFF_CPU=auto used to hang). */
static int parse_level(const char *name, ld_cpu_level_t best, ld_cpu_level_t *out) {
    static const struct {
        const char *name;
        int level;
    } names[] = {{"portable", LD_CPU_PORTABLE}, {"c", LD_CPU_PORTABLE}, {"neon", LD_CPU_NEON},
                 {"avx2", LD_CPU_AVX2},         {"avx512", LD_CPU_AVX512}, {"auto", 99}, {"", 99}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(name, names[i].name) == 0) {
            *out = names[i].level == 99 ? best : (ld_cpu_level_t)names[i].level;
            return 1;
        }
    }
    return 0;
}

static void detect(void) {
    ld_cpu_info *ci = &g_info;
    memset(ci, 0, sizeof *ci);
    ci->best = LD_CPU_PORTABLE;
    model_from_proc(ci->model, sizeof ci->model);
#ifdef LD_X86
    detect_x86(ci);
#endif
#if defined(__aarch64__)
    ci->neon = 1; /* Advanced SIMD is mandatory on aarch64 */
#if defined(__linux__)
#ifndef HWCAP2_BF16
#define HWCAP2_BF16 (1UL << 14) /* arch/arm64/include/uapi/asm/hwcap.h */
#endif
    ci->neon_bf16 = (getauxval(AT_HWCAP2) & HWCAP2_BF16) != 0; /* BFDOT/BFMMLA (not used yet) */
#endif
    ci->best = LD_CPU_NEON;
#endif
    if (!ci->model[0]) snprintf(ci->model, sizeof ci->model, "unknown");
    if (ci->vendor[0]) /* bounded: 12 letters, 6 + 2 hex digits and the words, under 64 */
        snprintf(ci->id, sizeof ci->id, "%.12s family 0x%x model 0x%x", ci->vendor, (unsigned)ci->family & 0xffffffu,
                 (unsigned)ci->model_id & 0xffu);
    else
        snprintf(ci->id, sizeof ci->id, "no cpuid");
    g_level = ci->best;
    const char *amx = getenv("LEANDIFF_AMX");
    g_amx_on = ci->amx_bf16 && !(amx && !strcmp(amx, "0"));
    const char *env = getenv("LEANDIFF_CPU");
    ld_cpu_level_t want;
    if (env && *env) {
        if (parse_level(env, ci->best, &want)) {
            g_level = clamp_level(ci, want);
        } else {
            fprintf(stderr, "leandiff: LEANDIFF_CPU=%s is not one of portable, avx2, avx512, neon, auto; ignored\n",
                    env);
        }
    }
}

const ld_cpu_info *ld_cpu_info_get(void) {
    pthread_once(&g_once, detect);
    return &g_info;
}

ld_cpu_level_t ld_cpu_level(void) {
    pthread_once(&g_once, detect);
    return g_level;
}

int ld_cpu_has_bf16(void) { return ld_cpu_level() == LD_CPU_AVX512 && g_info.avx512bf16; }

int ld_cpu_has_amx(void) { return ld_cpu_has_bf16() && g_amx_on; }

int ld_cpu_set_amx(int on) {
    g_amx_on = on && ld_cpu_info_get()->amx_bf16;
    return ld_cpu_has_amx();
}

int ld_cpu_parse_level(const char *name, ld_cpu_level_t *out) {
    return parse_level(name, ld_cpu_info_get()->best, out);
}

ld_cpu_level_t ld_cpu_force(ld_cpu_level_t level) {
    g_level = clamp_level(ld_cpu_info_get(), level);
    return g_level;
}

const char *ld_cpu_level_name(ld_cpu_level_t level) {
    switch (level) {
    case LD_CPU_NEON: return "neon";
    case LD_CPU_AVX2: return "avx2";
    case LD_CPU_AVX512: return "avx512";
    default: return "portable";
    }
}

/* ---- FMA throughput probe ---- */

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Each probe runs `reps` rounds of independent FMA chains (enough to cover
 * the FMA latency on every pipe) and returns the flops done; x = x * m + c
 * converges, so no overflow or denormals. */
#define PROBE_CHAINS 16

#ifdef LD_X86
__attribute__((target("avx512f,fma"))) static double probe_avx512(long reps, float *sink) {
    __m512 x[PROBE_CHAINS];
    __m512 m = _mm512_set1_ps(0.999f), c = _mm512_set1_ps(0.001f);
    for (int i = 0; i < PROBE_CHAINS; i++) x[i] = _mm512_set1_ps((float)i);
    for (long r = 0; r < reps; r++) {
#pragma GCC unroll 16
        for (int i = 0; i < PROBE_CHAINS; i++) x[i] = _mm512_fmadd_ps(x[i], m, c);
    }
    __m512 s = x[0];
    for (int i = 1; i < PROBE_CHAINS; i++) s = _mm512_add_ps(s, x[i]);
    *sink += _mm512_reduce_add_ps(s);
    return (double)reps * PROBE_CHAINS * 16 * 2;
}

/* 12 chains: with 16 ymm registers, 16 chains plus the constants would spill. */
__attribute__((target("avx2,fma"))) static double probe_avx2(long reps, float *sink) {
    enum { CH = 12 };
    __m256 x[CH];
    __m256 m = _mm256_set1_ps(0.999f), c = _mm256_set1_ps(0.001f);
    for (int i = 0; i < CH; i++) x[i] = _mm256_set1_ps((float)i);
    for (long r = 0; r < reps; r++) {
#pragma GCC unroll 12
        for (int i = 0; i < CH; i++) x[i] = _mm256_fmadd_ps(x[i], m, c);
    }
    __m256 s = x[0];
    for (int i = 1; i < CH; i++) s = _mm256_add_ps(s, x[i]);
    float t[8];
    _mm256_storeu_ps(t, s);
    for (int i = 0; i < 8; i++) *sink += t[i];
    return (double)reps * CH * 8 * 2;
}
#endif

#if defined(__aarch64__)
static double probe_neon(long reps, float *sink) {
    float32x4_t x[PROBE_CHAINS];
    float32x4_t m = vdupq_n_f32(0.999f), c = vdupq_n_f32(0.001f);
    for (int i = 0; i < PROBE_CHAINS; i++) x[i] = vdupq_n_f32((float)i);
    for (long r = 0; r < reps; r++) {
#pragma GCC unroll 16
        for (int i = 0; i < PROBE_CHAINS; i++) x[i] = vfmaq_f32(c, x[i], m);
    }
    for (int i = 0; i < PROBE_CHAINS; i++) *sink += vaddvq_f32(x[i]);
    return (double)reps * PROBE_CHAINS * 4 * 2;
}
#endif

/* Plain C: 16 chains of 8 lanes the compiler may vectorize. */
static double probe_portable(long reps, float *sink) {
    float x[PROBE_CHAINS * 8];
    for (int i = 0; i < PROBE_CHAINS * 8; i++) x[i] = (float)i;
    for (long r = 0; r < reps; r++)
        for (int i = 0; i < PROBE_CHAINS * 8; i++) x[i] = x[i] * 0.999f + 0.001f;
    for (int i = 0; i < PROBE_CHAINS * 8; i++) *sink += x[i];
    return (double)reps * PROBE_CHAINS * 8 * 2;
}

static double probe_round(ld_cpu_level_t level, long reps, float *sink) {
    switch (level) {
#ifdef LD_X86
    case LD_CPU_AVX512: return probe_avx512(reps, sink);
    case LD_CPU_AVX2: return probe_avx2(reps, sink);
#endif
#if defined(__aarch64__)
    case LD_CPU_NEON: return probe_neon(reps, sink);
#endif
    default: return probe_portable(reps, sink);
    }
}

double ld_cpu_run_probe(int threads, double seconds, ld_cpu_probe_fn round) {
    if (threads <= 0) threads = omp_get_num_procs();
    if (seconds <= 0) seconds = 0.1;
    double total_flops = 0, max_elapsed = 0;
    float sink = 0;
#pragma omp parallel num_threads(threads) reduction(+ : total_flops, sink) reduction(max : max_elapsed)
    {
        float s = 0;
        round(1000, &s); /* warm up (clock ramp, AVX-512 licence) */
        double t0 = now_seconds(), t = t0, flops = 0;
        while (t - t0 < seconds) {
            flops += round(20000, &s);
            t = now_seconds();
        }
        total_flops += flops;
        max_elapsed = t - t0;
        sink += s;
    }
    volatile float keep = sink; /* the chains' results must look used */
    (void)keep;
    return max_elapsed > 0 ? total_flops / max_elapsed * 1e-9 : 0.0;
}

/* A round of FMA chains with the widest SIMD of the current level. */
static double fma_round(long reps, float *sink) { return probe_round(ld_cpu_level(), reps, sink); }

double ld_cpu_peak_gflops(int threads, double seconds) { return ld_cpu_run_probe(threads, seconds, fma_round); }
