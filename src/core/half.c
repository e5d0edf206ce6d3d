/* IEEE binary16 and bfloat16 conversions, bit-exact and portable (no F16C
 * dependency), so stored statistics dequantize identically everywhere. */
#include "spqr.h"

#include <string.h>

static uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

uint16_t spqr_fp32_to_fp16(float f) {
    uint32_t x = f2u(f);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t absx = x & 0x7fffffffu;
    if (absx >= 0x7f800000u) { /* inf or nan */
        return (uint16_t)(sign | 0x7c00u | (absx > 0x7f800000u ? 0x200u | ((absx >> 13) & 0x3ffu) : 0));
    }
    if (absx >= 0x477ff000u) { /* rounds to >= 65520: overflow to inf */
        return (uint16_t)(sign | 0x7c00u);
    }
    if (absx < 0x38800000u) { /* result is subnormal or zero in fp16 */
        /* value = absx as float; fp16 subnormal unit is 2^-24 */
        float a = u2f(absx);
        /* scale to units of 2^-24 and round to nearest even via the FPU */
        float scaled = a * 16777216.0f; /* exact: power of two */
        /* rint in default rounding mode gives round-half-even */
        uint32_t m = (uint32_t)__builtin_rintf(scaled);
        return (uint16_t)(sign | m); /* m may be 0x400 = smallest normal: still correct encoding */
    }
    /* normal: rebias exponent, round mantissa 23->10 bits half-to-even */
    uint32_t mant = absx & 0x7fffffu;
    uint32_t exp = (absx >> 23) - 127 + 15;
    uint32_t h = (exp << 10) | (mant >> 13);
    uint32_t rest = mant & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h += 1; /* carry may bump exponent: correct */
    return (uint16_t)(sign | h);
}

float spqr_fp16_to_fp32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    if (exp == 0) {
        float v = (float)mant * (1.0f / 16777216.0f); /* exact */
        return sign ? -v : v;
    }
    if (exp == 31) return u2f(sign | 0x7f800000u | (mant << 13));
    return u2f(sign | ((exp - 15 + 127) << 23) | (mant << 13));
}

uint16_t spqr_fp32_to_bf16(float f) {
    uint32_t x = f2u(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u); /* quiet nan */
    uint32_t lsb = (x >> 16) & 1u;
    x += 0x7fffu + lsb;
    return (uint16_t)(x >> 16);
}

float spqr_bf16_to_fp32(uint16_t h) { return u2f((uint32_t)h << 16); }
