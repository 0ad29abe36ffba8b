/*
 * A wall clock the tests can step, for a redis-server started with LD_PRELOAD.
 *
 * clock_gettime (CLOCK_REALTIME and CLOCK_REALTIME_COARSE), gettimeofday and time return the real
 * time plus an offset in microseconds, read on every call from the file named by the environment
 * variable CLOCK_SHIM_OFFSET_FILE (a signed decimal integer; a missing or unreadable file is 0).
 * Every other clock is passed through unchanged.
 *
 * Why raw system calls: redis-server links jemalloc, which reads clocks while it initialises;
 * anything that allocates or resolves symbols (dlsym, stdio) recurses into it and deadlocks, as
 * libfaketime does. This file uses nothing but syscall() and getenv(), neither of which allocates.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static long long offset_us(void) {
    const char *path = getenv("CLOCK_SHIM_OFFSET_FILE");
    if (path == NULL) return 0;
    long fd = syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char buffer[64];
    long got = syscall(SYS_read, fd, buffer, sizeof buffer - 1);
    syscall(SYS_close, fd);
    if (got <= 0) return 0;
    long long value = 0;
    int i = 0, negative = 0;
    while (i < got && (buffer[i] == ' ' || buffer[i] == '\t')) i++;
    if (i < got && (buffer[i] == '-' || buffer[i] == '+')) negative = buffer[i++] == '-';
    for (; i < got && buffer[i] >= '0' && buffer[i] <= '9'; i++) value = value * 10 + (buffer[i] - '0');
    return negative ? -value : value;
}

static int real_clock(clockid_t id, struct timespec *ts) {
    return (int)syscall(SYS_clock_gettime, id, ts);
}

static void shift(struct timespec *ts) {
    long long ns = (long long)ts->tv_sec * 1000000000LL + ts->tv_nsec + offset_us() * 1000LL;
    ts->tv_sec = (time_t)(ns / 1000000000LL);
    ts->tv_nsec = (long)(ns % 1000000000LL);
    if (ts->tv_nsec < 0) {
        ts->tv_nsec += 1000000000L;
        ts->tv_sec -= 1;
    }
}

int clock_gettime(clockid_t id, struct timespec *ts) {
    int result = real_clock(id, ts);
    if (result == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE)) shift(ts);
    return result;
}

/* glibc declares gettimeofday's first argument nonnull; callers may still pass NULL. */
__attribute__((noinline)) static int absent(const volatile void *pointer) { return pointer == NULL; }

int gettimeofday(struct timeval *restrict tv, void *restrict tz) {
    if (tz != NULL) {
        struct timezone *zone = tz;
        zone->tz_minuteswest = 0;
        zone->tz_dsttime = 0;
    }
    if (absent(tv)) return 0;
    struct timespec ts;
    int result = real_clock(CLOCK_REALTIME, &ts);
    if (result != 0) return result;
    shift(&ts);
    tv->tv_sec = ts.tv_sec;
    tv->tv_usec = ts.tv_nsec / 1000;
    return 0;
}

time_t time(time_t *out) {
    struct timespec ts;
    if (real_clock(CLOCK_REALTIME, &ts) != 0) return (time_t)-1;
    shift(&ts);
    if (out != NULL) *out = ts.tv_sec;
    return ts.tv_sec;
}
