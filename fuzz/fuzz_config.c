/* libFuzzer target: config.json parsing (spqr_config_parse, src/model/config.c).
 *
 * The input is parsed as is (an exact-size buffer, not NUL-terminated: the
 * API takes a length). An accepted config must satisfy what the loader and
 * the forward pass rely on (ranges, GQA divisibility, even head_dim, bos/eos
 * -1 or >= 0, rope parameters), and its RoPE frequencies must be finite and
 * positive. A rejection must be SPQR_ERR_FORMAT or SPQR_ERR_UNSUPPORTED with
 * one line. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_util.h"
#include "model/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *json = fuzz_copy(data, size);
    spqr_config c;
    spqr_err err;
    err.msg[0] = 0;
    spqr_status s = spqr_config_parse(json, size, &c, &err);
    free(json);
    if (s != SPQR_OK) {
        fuzz_check_reject(s, &err, FUZZ_BIT(SPQR_ERR_FORMAT) | FUZZ_BIT(SPQR_ERR_UNSUPPORTED));
        return 0;
    }
    FUZZ_ASSERT(c.vocab_size >= 1 && c.hidden_size >= 1 && c.intermediate_size >= 1 && c.n_layers >= 1,
                "sizes %d %d %d %d", c.vocab_size, c.hidden_size, c.intermediate_size, c.n_layers);
    FUZZ_ASSERT(c.n_heads >= 1 && c.n_kv_heads >= 1 && c.n_heads % c.n_kv_heads == 0, "heads %d/%d", c.n_heads,
                c.n_kv_heads);
    FUZZ_ASSERT(c.head_dim >= 2 && c.head_dim % 2 == 0, "head_dim %d", c.head_dim);
    FUZZ_ASSERT(c.max_position_embeddings >= 1, "max_position_embeddings %d", c.max_position_embeddings);
    FUZZ_ASSERT(c.bos_token_id >= -1 && c.eos_token_id >= -1, "bos/eos %d %d", c.bos_token_id, c.eos_token_id);
    FUZZ_ASSERT(isfinite(c.rms_norm_eps) && c.rms_norm_eps >= 0, "rms_norm_eps %g", c.rms_norm_eps);
    FUZZ_ASSERT(isfinite(c.rope_theta) && c.rope_theta > 0, "rope_theta %g", c.rope_theta);
    FUZZ_ASSERT(c.rope_scaling == SPQR_ROPE_NONE || c.rope_scaling == SPQR_ROPE_LLAMA3, "rope_scaling %d",
                (int)c.rope_scaling);
    if (c.rope_scaling == SPQR_ROPE_LLAMA3)
        FUZZ_ASSERT(isfinite(c.rope_factor) && c.rope_factor > 0 && c.rope_low_freq_factor > 0 &&
                        c.rope_high_freq_factor > c.rope_low_freq_factor && c.rope_original_max_position >= 1,
                    "llama3 rope %g %g %g %d", c.rope_factor, c.rope_low_freq_factor, c.rope_high_freq_factor,
                    c.rope_original_max_position);
    float *inv = malloc((size_t)(c.head_dim / 2) * sizeof *inv);
    if (!inv) return 0;
    spqr_config_rope_inv_freq(&c, inv);
    for (int32_t i = 0; i < c.head_dim / 2; i++)
        FUZZ_ASSERT(isfinite(inv[i]) && inv[i] >= 0, "inv_freq[%d] = %g (theta %g, head_dim %d)", i, inv[i],
                    c.rope_theta, c.head_dim);
    free(inv);
    return 0;
}
