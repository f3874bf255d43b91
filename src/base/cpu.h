/* Run-time CPU feature detection and a peak-throughput probe.
 *
 *     const ld_cpu_info *ci = ld_cpu_info_get();     // detected once
 *     if (ld_cpu_level() >= LD_CPU_AVX512) ...       // the SIMD path to use
 *     double peak = ld_cpu_peak_gflops(2, 0.2);      // FMA probe, GFLOP/s
 *
 * Detection uses cpuid/xgetbv on x86 (instruction set AND operating-system
 * support for the register state); on aarch64 NEON is mandatory (level neon)
 * and HWCAP2 tells BF16; elsewhere nothing (portable C only). The environment
 * variable LEANDIFF_CPU=portable|avx2|avx512|neon forces a lower path (it is
 * clamped to what the CPU has: neon on x86 and avx2/avx512 on aarch64 are of
 * the other family and give portable resp. neon); ld_cpu_force does the same
 * from code (tests use it to cover every path on one machine).
 *
 * AMX (Intel's tile matrix unit, Sapphire Rapids and later) is not a level
 * but an extra the avx512 level may use for bf16 products: usable when the
 * CPU has AMX-TILE and AMX-BF16, the OS enables the tile state and (Linux)
 * grants this process the tile data (asked once, at detection).
 * LEANDIFF_AMX=0 turns it off; ld_cpu_set_amx does the same from code.
 */
#ifndef LD_BASE_CPU_H
#define LD_BASE_CPU_H

typedef enum {
    LD_CPU_PORTABLE = 0, /* plain C, any machine */
    LD_CPU_NEON = 1,     /* aarch64 Advanced SIMD */
    LD_CPU_AVX2 = 2,     /* x86-64 AVX2 + FMA + F16C */
    LD_CPU_AVX512 = 3,   /* x86-64 AVX-512 F/BW/DQ/VL + FMA + F16C */
} ld_cpu_level_t;

typedef struct {
    int avx2, fma, f16c;
    int avx512f, avx512bw, avx512dq, avx512vl, avx512bf16, avx512vnni;
    int amx_bf16;         /* AMX-TILE + AMX-BF16 present, enabled by the OS and granted */
    int neon, neon_bf16;
    ld_cpu_level_t best;  /* widest path the CPU (and OS) supports */
    char model[128];      /* "AMD EPYC 9654 ..." or "unknown" */
    char vendor[13];      /* x86 cpuid vendor ("AuthenticAMD", "GenuineIntel"), else "" */
    int family;           /* x86 display family (base + extended: 0x19 Zen 3/4, 0x1a Zen 5), else 0 */
    int model_id;         /* x86 display model (extended << 4 + base for families 6 and 15: 0x8f Sapphire
                           * Rapids, 0xcf Emerald Rapids, 0x11 Zen 4 EPYC), else 0 */
    char id[64];          /* "GenuineIntel family 0x6 model 0xcf", or "no cpuid": what results name the CPU by */
} ld_cpu_info;

const ld_cpu_info *ld_cpu_info_get(void);

/* The path in force: the best one, lowered by LEANDIFF_CPU or ld_cpu_force. */
ld_cpu_level_t ld_cpu_level(void);
/* AVX-512 BF16 dot products usable (level avx512 and the CPU has them). */
int ld_cpu_has_bf16(void);

/* AMX bf16 tiles usable: level avx512 with BF16, amx_bf16, and not turned
 * off by LEANDIFF_AMX=0 or ld_cpu_set_amx(0). */
int ld_cpu_has_amx(void);
/* Turns AMX use on (1, if the CPU has it) or off (0); returns the state now
 * in force. Call from serial code, not while kernels run. */
int ld_cpu_set_amx(int on);

/* Parses "portable", "avx2", "avx512", "neon" or "auto"/"" (= best). Returns
 * 0 on an unknown name. */
int ld_cpu_parse_level(const char *name, ld_cpu_level_t *out);
/* Forces the path (clamped to the best available); returns the level now in
 * force. Call from serial code, not while kernels run. */
ld_cpu_level_t ld_cpu_force(ld_cpu_level_t level);
const char *ld_cpu_level_name(ld_cpu_level_t level);

/* FMA throughput probe: `threads` OpenMP threads (0 = all) run independent
 * FMA chains with the widest SIMD of the current level for about `seconds`;
 * returns total GFLOP/s (one FMA = 2 flops). */
double ld_cpu_peak_gflops(int threads, double seconds);

/* One round of a throughput probe on the calling thread: reps iterations,
 * returns the flops done; results that must look used go into *sink. */
typedef double (*ld_cpu_probe_fn)(long reps, float *sink);
/* Runs `round` on `threads` OpenMP threads (0 = all) for about `seconds`
 * after a warm-up round and returns total GFLOP/s (the FMA probe above; the
 * AMX one of tensor/gemm.h). */
double ld_cpu_run_probe(int threads, double seconds, ld_cpu_probe_fn round);

#endif
