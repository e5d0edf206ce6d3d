/* fp16/bf16 conversions against brute force: every fp16 bit pattern must
 * round-trip, and fp32 -> fp16 must pick the nearest representable value
 * (ties to even), checked against the exhaustive table of fp16 values. */
#include "spqr.h"
#include "test_util.h"

#include <stdint.h>

int main(void) {
    /* every finite fp16 round-trips exactly */
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000u; h++) {
        if (((h >> 10) & 0x1f) == 0x1f) continue;
        float f = spqr_fp16_to_fp32((uint16_t)h);
        if (spqr_fp32_to_fp16(f) != h) bad++;
    }
    CHECK_MSG(bad == 0, "%d fp16 values do not round-trip", bad);

    /* nearest-even rounding: midpoints between consecutive positive fp16 values */
    bad = 0;
    for (uint32_t h = 0; h < 0x7bffu; h++) {
        double lo = spqr_fp16_to_fp32((uint16_t)h), hi = spqr_fp16_to_fp32((uint16_t)(h + 1));
        float mid = (float)((lo + hi) / 2); /* exact in fp32 */
        uint16_t want = (h & 1u) ? (uint16_t)(h + 1) : (uint16_t)h;
        if (spqr_fp32_to_fp16(mid) != want) bad++;
        float just_above = nextafterf(mid, 1e9f);
        if (spqr_fp32_to_fp16(just_above) != h + 1) bad++;
    }
    CHECK_MSG(bad == 0, "%d rounding mismatches", bad);

    CHECK(spqr_fp32_to_fp16(1e6f) == 0x7c00u);
    CHECK(spqr_fp32_to_fp16(-1e6f) == 0xfc00u);
    CHECK(spqr_fp32_to_fp16(65504.0f) == 0x7bffu);
    CHECK(spqr_fp16_to_fp32(0x3c00u) == 1.0f);

    /* bf16: round trip and nearest-even */
    bad = 0;
    for (uint32_t h = 0; h < 0x10000u; h++) {
        if (((h >> 7) & 0xff) == 0xff) continue;
        if (spqr_fp32_to_bf16(spqr_bf16_to_fp32((uint16_t)h)) != h) bad++;
    }
    CHECK_MSG(bad == 0, "%d bf16 values do not round-trip", bad);
    CHECK(spqr_fp32_to_bf16(1.00390625f) == 0x3f80u); /* tie -> even (down) */
    CHECK(spqr_fp32_to_bf16(1.01171875f) == 0x3f82u); /* tie -> even (up) */
    TEST_SUMMARY();
}
