/* The library's version string, built from the macros in spqr.h. */
#include "spqr.h"

#define SPQR_STR_(x) #x
#define SPQR_STR(x) SPQR_STR_(x)

const char *spqr_version(void) {
    return SPQR_STR(SPQR_VERSION_MAJOR) "." SPQR_STR(SPQR_VERSION_MINOR) "." SPQR_STR(SPQR_VERSION_PATCH);
}
