#include <cjson/cJSON.h>
#include <string.h>

#include "format/spqr_file.h"
#include "io/dtype.h"

const char *spqrf_text_problem(uint32_t type, const char *p, size_t len) {
    const uint64_t cap = type == SPQRF_SEC_TOKENIZER ? SPQRF_MAX_TOKENIZER : SPQRF_MAX_JSON;
    if (!p) return "missing";
    if ((uint64_t)len + 1 > cap) return type == SPQRF_SEC_TOKENIZER ? "larger than 256 MiB" : "larger than 64 MiB";
    if (memchr(p, 0, len)) return "contains a NUL byte";
    if (type == SPQRF_SEC_TOKENIZER) return NULL;
    if (!spqr_utf8_valid(p, len)) return "not valid UTF-8";
    /* Bytes after the object other than whitespace (a stray '}') are an
     * error, not ignored as cJSON would. */
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(p, len, &end, 0);
    const int parsed = j != NULL, ok = cJSON_IsObject(j);
    cJSON_Delete(j);
    if (!parsed) return "not valid JSON";
    if (!ok) return "not a JSON object";
    for (; end && end < p + len; end++)
        if (*end != ' ' && *end != '\t' && *end != '\n' && *end != '\r') return "not one JSON object (bytes after its end)";
    return NULL;
}
