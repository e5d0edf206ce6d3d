#include <cjson/cJSON.h>
#include <string.h>

#include "format/spqr_file.h"
#include "io/dtype.h"
#include "io/json_doc.h"

const char *spqrf_text_problem(uint32_t type, const char *p, size_t len) {
    const uint64_t cap = type == SPQRF_SEC_TOKENIZER ? SPQRF_MAX_TOKENIZER : SPQRF_MAX_JSON;
    if (!p) return "missing";
    if ((uint64_t)len + 1 > cap) return type == SPQRF_SEC_TOKENIZER ? "larger than 256 MiB" : "larger than 64 MiB";
    if (memchr(p, 0, len)) return "contains a NUL byte";
    if (type == SPQRF_SEC_TOKENIZER) return NULL;
    if (!spqr_utf8_valid(p, len)) return "not valid UTF-8";
    const char *why = NULL;
    cJSON *j = spqr_json_parse_doc(p, len, &why);
    const int ok = cJSON_IsObject(j);
    cJSON_Delete(j);
    if (why) return why;
    return ok ? NULL : "not a JSON object";
}
