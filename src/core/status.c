#include "mien.h"

const char *mien_status_name(int status) {
    /* Indexed by status code; keep in the order of the enum in mien.h. */
    static const char *const names[] = {
        "OK",     "EINVAL",       "ENOMEM",  "EIO",        "EFORMAT",  "ETOOBIG",
        "EUNSUPPORTED", "ENOFACE", "ENOTFOUND", "EMISMATCH", "EINTERNAL",
    };
    _Static_assert(sizeof names / sizeof names[0] == MIEN_EINTERNAL + 1,
                   "status name table out of step with mien.h");
    if (status < 0 || status > MIEN_EINTERNAL) return "EUNKNOWN";
    return names[status];
}

const char *mien_version(void) { return MIEN_VERSION_STRING; }
