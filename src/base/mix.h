/* SplitMix64's output function: a 64-bit value to a well-mixed one. The
 * training run derives every per-sample, per-step and per-epoch choice from
 * (seed, index) through it, so results depend on nothing else; random
 * weights (init-random) use it the same way.
 *
 *     uint64_t u = ld_mix64(seed ^ ld_mix64(tag + index));
 */
#ifndef LD_BASE_MIX_H
#define LD_BASE_MIX_H

#include <stdint.h>

static inline uint64_t ld_mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

#endif
