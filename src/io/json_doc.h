/* A JSON file read as Hugging Face's loaders read it (Python's json, Rust's
 * serde_json): the whole text is one value, with nothing but whitespace
 * after it and no byte-order mark before it. cJSON alone would skip a
 * mark and ignore trailing bytes, so a truncated-and-concatenated or
 * appended-to file would load here and fail there. */
#ifndef SPQR_IO_JSON_DOC_H
#define SPQR_IO_JSON_DOC_H

#include <cjson/cJSON.h>
#include <stddef.h>

/* The parsed value of p[0..len), or NULL with *why set to a short reason
 * ("missing" for a NULL p, "starts with a UTF-8 byte-order mark", "not
 * valid JSON" (cJSON's out of memory included), "not one JSON value (bytes
 * after its end)"). */
cJSON *spqr_json_parse_doc(const char *p, size_t len, const char **why);

#endif
