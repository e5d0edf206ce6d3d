/* The exporters' cancel flag (SIGINT/SIGTERM in `spqr export`): raised
 * before the first tensor, both stop with SPQR_ERR_INTERRUPTED and leave
 * OUT_DIR without config.json and without any temporary; lowered, the same
 * export completes. (Timing a real signal against a run is not
 * deterministic; the flag is what the CLI's handler sets.) */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/export.h"
#include "test_util.h"

/* entries of dir other than . and .. */
static int count_entries(const char *dir, int *has_config) {
    DIR *d = opendir(dir);
    int n = 0;
    *has_config = 0;
    if (!d) return -1;
    for (struct dirent *e; (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        n++;
        if (!strcmp(e->d_name, "config.json")) *has_config = 1;
    }
    closedir(d);
    return n;
}

int main(int argc, char **argv) {
    const char *fix = argc > 1 ? argv[1] : "tests/fixtures";
    char in[512], dir[] = "/tmp/spqr_test_export_cancel.XXXXXX";
    snprintf(in, sizeof in, "%s/v1_tiny_gqa.spqr", fix);
    CHECK(mkdtemp(dir) != NULL);
    volatile int cancel = 1;
    spqr_err err = {0};
    int cfg = 0;
    CHECK_MSG(spqr_export_hf_dense(in, dir, SPQR_DTYPE_F16, 1000, &cancel, NULL, &err) == SPQR_ERR_INTERRUPTED, "%s",
              err.msg);
    CHECK_MSG(count_entries(dir, &cfg) == 0, "an interrupted dense export left files");
    CHECK(spqr_export_hf_spqr(in, dir, &cancel, NULL, &err) == SPQR_ERR_INTERRUPTED);
    CHECK_MSG(count_entries(dir, &cfg) == 0, "an interrupted hf-spqr export left files");
    cancel = 0;
    CHECK_MSG(spqr_export_hf_dense(in, dir, SPQR_DTYPE_F16, 1000, &cancel, NULL, &err) == SPQR_OK, "%s", err.msg);
    const int n = count_entries(dir, &cfg);
    CHECK_MSG(n > 3 && cfg, "the completed export has %d files, config.json %d", n, cfg);
    /* clean up */
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));) {
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) unlink(p);
    }
    if (d) closedir(d);
    rmdir(dir);
    TEST_SUMMARY();
}
