#include "io/json_doc.h"

#include <string.h>

cJSON *spqr_json_parse_doc(const char *p, size_t len, const char **why) {
    const char *dummy;
    if (!why) why = &dummy;
    *why = NULL;
    if (!p) {
        *why = "missing";
        return NULL;
    }
    if (len >= 3 && !memcmp(p, "\xEF\xBB\xBF", 3)) {
        *why = "starts with a UTF-8 byte-order mark";
        return NULL;
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(p, len, &end, 0);
    if (!root) {
        *why = "not valid JSON";
        return NULL;
    }
    for (; end && end < p + len; end++)
        if (*end != ' ' && *end != '\t' && *end != '\n' && *end != '\r') {
            cJSON_Delete(root);
            *why = "not one JSON value (bytes after its end)";
            return NULL;
        }
    return root;
}
