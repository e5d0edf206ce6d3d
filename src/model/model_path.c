#include "model/model_path.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "format/spqr_file.h"
#include "io/file.h"

#define WANT "spqr runs a Hugging Face checkpoint directory or a .spqr file"

spqr_status spqr_model_path_classify(const char *path, spqr_model_path_kind *kind, spqr_err *err) {
    *kind = SPQR_MODEL_PATH_DIR;
    if (!path || !*path) return spqr_err_set(err, SPQR_ERR_INVALID_ARG, "empty model path");
    struct stat sb;
    if (stat(path, &sb) != 0) {
        if (errno == ENOENT || errno == ENOTDIR) return spqr_err_set(err, SPQR_ERR_IO, "%s does not exist", path);
        return spqr_err_set(err, SPQR_ERR_IO, "%s: cannot access: %s", path, strerror(errno));
    }
    if (S_ISDIR(sb.st_mode)) return SPQR_OK;
    if (!S_ISREG(sb.st_mode))
        return spqr_err_set(err, SPQR_ERR_IO, "%s is %s, not a model; " WANT, path, spqr_file_kind(sb.st_mode));
    int fd;
    struct stat st;
    spqr_status s = spqr_file_open_input(path, &fd, &st, err);
    if (s) return s;
    uint8_t head[16];
    const ssize_t n = spqri_file_read_head(fd, head, sizeof head);
    const int e = errno;
    close(fd);
    if (n < 0) return spqr_err_set(err, SPQR_ERR_IO, "%s: read failed: %s", path, strerror(e));
    if (n >= 8 && !memcmp(head, SPQRF_MAGIC, 8)) {
        *kind = SPQR_MODEL_PATH_SPQR;
        return SPQR_OK;
    }
    if (n >= 4 && !memcmp(head, "GGUF", 4))
        return spqr_err_set(err, SPQR_ERR_FORMAT, "%s is a GGUF file (llama.cpp); " WANT, path);
    /* safetensors: a little-endian u64 header length, then the JSON header. */
    uint64_t hlen = 0;
    for (int i = 7; n >= 9 && i >= 0; i--) hlen = (hlen << 8) | head[i];
    if (n >= 9 && head[8] == '{' && hlen >= 2 && hlen <= (uint64_t)st.st_size - 8)
        return spqr_err_set(err, SPQR_ERR_FORMAT,
                            "%s is a bare safetensors file: pass the directory that holds it with config.json and "
                            "tokenizer.json",
                            path);
    if (n == 0) return spqr_err_set(err, SPQR_ERR_FORMAT, "%s is an empty file, not a model; " WANT, path);
    return spqr_err_set(err, SPQR_ERR_FORMAT, "%s is neither a .spqr file (no SPQRMDL magic) nor a directory; " WANT,
                        path);
}
