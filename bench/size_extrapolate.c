/* Extrapolates the size of a .spqr file to more layers from its measured
 * per-tensor byte accounting (spqr_archive_tensor_bytes): every tensor
 * named model.layers.N.* counts for its layer; the rest (embedding, head,
 * final norm, text, container) once. Meant for synthetic checkpoints with
 * identical layers, written with a few layers where the full file would
 * not fit the disk or the time (bench/results/whole_file_size.md).
 *
 * usage: size_extrapolate FILE.spqr LAYERS */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spqr.h"

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: size_extrapolate FILE.spqr LAYERS\n");
        return 2;
    }
    const long target = strtol(argv[2], NULL, 10);
    spqr_archive *a = NULL;
    spqr_err err;
    if (spqr_archive_open(argv[1], &a, &err)) {
        fprintf(stderr, "size_extrapolate: %s\n", err.msg);
        return 1;
    }
    spqr_archive_bytes ab;
    spqr_archive_bytes_of(a, &ab);
    uint64_t layer_bytes = 0, other_bytes = ab.container_bytes + ab.text_bytes;
    int64_t layer_params = 0, other_params = 0;
    long layers = 0;
    for (int32_t i = 0; i < spqr_archive_count(a); i++) {
        const char *name = spqr_archive_name(a, i);
        const spqr_tensor *t = spqr_archive_packed_at(a, i);
        const spqr_st_tensor *d = spqr_archive_dense_at(a, i);
        const int64_t np = t ? (int64_t)t->rows * t->cols : d->numel;
        const uint64_t nb = spqr_archive_tensor_bytes(a, i);
        long l = -1;
        if (sscanf(name, "model.layers.%ld.", &l) == 1) {
            layer_bytes += nb;
            layer_params += np;
            if (l + 1 > layers) layers = l + 1;
        } else {
            other_bytes += nb;
            other_params += np;
            printf("%-32s %14lld params %14llu bytes %8.4f bits/param\n", name, (long long)np, (unsigned long long)nb,
                   8.0 * (double)nb / (double)np);
        }
    }
    if (layers < 1 || target < 1) {
        fprintf(stderr, "size_extrapolate: no layers in %s\n", argv[1]);
        spqr_archive_close(a);
        return 1;
    }
    const double per_layer = (double)layer_bytes / layers, per_layer_params = (double)layer_params / layers;
    printf("measured: %s, %llu bytes, %ld layers, %.0f bytes and %.0f params per layer (%.4f bits/param)\n", argv[1],
           (unsigned long long)ab.file_bytes, layers, per_layer, per_layer_params, 8.0 * per_layer / per_layer_params);
    printf("accounted: container %llu + text %llu + dense %llu + packed %llu = %llu bytes\n",
           (unsigned long long)ab.container_bytes, (unsigned long long)ab.text_bytes,
           (unsigned long long)ab.dense_bytes, (unsigned long long)ab.packed_bytes,
           (unsigned long long)(ab.container_bytes + ab.text_bytes + ab.dense_bytes + ab.packed_bytes));
    const double bytes = (double)other_bytes + per_layer * target;
    const double params = (double)other_params + per_layer_params * target;
    printf("extrapolated to %ld layers: %.0f bytes (%.3f GB, %.3f GiB), %.0f params, %.4f bits/param whole file\n",
           target, bytes, bytes / 1e9, bytes / (1024.0 * 1024 * 1024), params, 8.0 * bytes / params);
    spqr_archive_close(a);
    return 0;
}
