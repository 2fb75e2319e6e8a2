/*
 * truetime.h — the TrueTime client C ABI (libtruetime.so; `pkg-config --cflags --libs truetime`).
 *
 * Every interval returned with TT_OK contains true time under the assumptions timed publishes;
 * when the status is unsynchronized (3) or disrupted (4), calls return TT_ERR_NOT_USABLE instead.
 * Handles are thread-safe; reads take no lock and make no syscall beyond the vDSO clock read.
 * Times are int64 nanoseconds on the TrueTime timescale (UTC with a 24-hour leap smear).
 */
#ifndef TRUETIME_H
#define TRUETIME_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct TtHandle tt_handle;

typedef struct {
    int64_t earliest_ns;
    int64_t latest_ns;
    int32_t status; /* 1 synchronized, 2 holdover, 3 unsynchronized, 4 disrupted */
} tt_interval;

enum {
    TT_OK = 0,
    TT_ERR_NOT_USABLE = 1,
    TT_ERR_UNAVAILABLE = 2,
    TT_ERR_PAGE = 3,
    TT_ERR_RPC = 4,
    TT_ERR_TIMEOUT = 5,
    TT_ERR_ARG = 6,
    TT_ERR_INTERNAL = 7
};

/* Opens timed's page (NULL: /run/timed/page, else timed's gRPC at 127.0.0.1:7100). NULL on failure. */
tt_handle *tt_open(const char *page_path);
void tt_close(tt_handle *h);

/* TT.now(). On TT_ERR_NOT_USABLE *out is still filled and its status says why. */
int tt_now(const tt_handle *h, tt_interval *out);
/* The interval at a given CLOCK_MONOTONIC_RAW reading (page and simulated sources; for tests). */
int tt_interval_at_raw(const tt_handle *h, int64_t raw_ns, tt_interval *out);
/* TT.after(t) / TT.before(t): *out = 1 or 0. */
int tt_after(const tt_handle *h, int64_t t_ns, int *out);
int tt_before(const tt_handle *h, int64_t t_ns, int *out);
/* A commit timestamp >= now().latest, strictly increasing per handle. */
int tt_commit_timestamp(const tt_handle *h, int64_t *out);
/* Blocks until TT.after(s). waited_ns may be NULL. */
int tt_commit_wait(const tt_handle *h, int64_t s_ns, int64_t *waited_ns);

const char *tt_strerror(int code);

#ifdef __cplusplus
}
#endif

#endif
