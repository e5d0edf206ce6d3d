/* libFuzzer target: chat templates (spqri_ct_render, src/tokenizer/chat_template*.c).
 *
 * The input is the template text (any bytes), rendered over a fixed
 * conversation (system, user, assistant, user; contents with spaces,
 * newlines, braces, quotes and non-ASCII) with tight limits so that each run
 * stays fast. A rejection must be FORMAT (syntax, evaluation), UNSUPPORTED
 * (limits) or INVALID_ARG (the template's raise_exception) with one line and
 * no output; an accepted render must stay within the output limit, be
 * NUL-terminated at its length, and come out the same a second time. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "tokenizer/chat_template.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const spqr_chat_message MSGS[4] = {
        {"system", "You are a helpful assistant."},
        {"user", "Hi {{ x }} {% y %} 'q' \"dq\"\n  café ✓"},
        {"assistant", "  <think>\nhmm\n</think>\n\nHello!  "},
        {"user", ""},
    };
    ct_limits lim = spqri_ct_default_limits();
    lim.max_output = 1u << 16;
    lim.max_memory = 16u << 20;
    lim.max_steps = 200000;
    lim.max_depth = 100;
    ct_context ctx = {.messages = MSGS, .n_messages = 4, .add_generation_prompt = (int)(size & 1),
                      .bos_token = "<s>", .eos_token = "</s>", .now = 1721995200};
    char *out = NULL, *out2 = NULL;
    size_t n = 0, n2 = 0;
    spqr_err err;
    err.msg[0] = 0;
    spqr_status s = spqri_ct_render((const char *)data, size, &ctx, &lim, &out, &n, &err);
    if (s != SPQR_OK) {
        fuzz_check_reject(s, &err, FUZZ_BIT(SPQR_ERR_FORMAT) | FUZZ_BIT(SPQR_ERR_UNSUPPORTED) |
                                       FUZZ_BIT(SPQR_ERR_INVALID_ARG));
        FUZZ_ASSERT(out == NULL, "output left after an error");
        return 0;
    }
    FUZZ_ASSERT(out != NULL && n <= lim.max_output && out[n] == 0, "render of %zu bytes", n);
    spqr_status s2 = spqri_ct_render((const char *)data, size, &ctx, &lim, &out2, &n2, &err);
    FUZZ_ASSERT(s2 == SPQR_OK && n2 == n && !memcmp(out, out2, n), "second render differs (%d)", (int)s2);
    free(out);
    free(out2);
    return 0;
}
