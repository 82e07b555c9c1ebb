/*
 * An LD_PRELOAD shim that makes malloc, calloc and realloc fail on command,
 * for tests of how shortd survives allocation failure.
 *
 * The test writes three numbers to the file named by FAILMALLOC_CONTROL,
 * "skip min_size count", and sends SIGUSR1: from then on, allocations of at
 * least min_size bytes pass until skip of them have passed, and the next
 * count of them fail with ENOMEM. SIGUSR2 disarms the shim. Each signal
 * writes one line to stderr, "failmalloc: armed" or "failmalloc: disarmed
 * after N", where N counts the failed allocations, so that the test can
 * wait for the signal to take effect.
 *
 * shortd blocks signals in every thread but the main one, which takes them
 * here while it waits in sigtimedwait for SIGTERM. The handlers use only
 * async-signal-safe calls (open, read, close, write) and atomics.
 *
 * Build as a preloaded library:
 *   cc -shared -fPIC -O2 failmalloc.c -o failmalloc.so
 * or, for a sanitizer build, whose runtime replaces malloc and must come
 * first, link it into shortd with -DFAILMALLOC_WRAP and
 * -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc; then only calls from
 * shortd's own objects (jansson's too, through link_json_setup) can fail.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef FAILMALLOC_WRAP
#define SHIM_MALLOC  __wrap_malloc
#define SHIM_CALLOC  __wrap_calloc
#define SHIM_REALLOC __wrap_realloc
#define NEXT_MALLOC  __real_malloc
#define NEXT_CALLOC  __real_calloc
#define NEXT_REALLOC __real_realloc
#else
/* glibc's own allocator entry points, which the shim forwards to. */
#define SHIM_MALLOC  malloc
#define SHIM_CALLOC  calloc
#define SHIM_REALLOC realloc
#define NEXT_MALLOC  __libc_malloc
#define NEXT_CALLOC  __libc_calloc
#define NEXT_REALLOC __libc_realloc
#endif

void *NEXT_MALLOC(size_t size);
void *NEXT_CALLOC(size_t count, size_t size);
void *NEXT_REALLOC(void *ptr, size_t size);
void *SHIM_MALLOC(size_t size);
void *SHIM_CALLOC(size_t count, size_t size);
void *SHIM_REALLOC(void *ptr, size_t size);

static atomic_long skip_left;
static atomic_long fail_left;
static atomic_size_t min_size = 1;
static atomic_long failures;
static const char *control_path;

static bool should_fail(size_t size)
{
    if (atomic_load(&fail_left) <= 0 || size < atomic_load(&min_size))
        return false;
    if (atomic_fetch_sub(&skip_left, 1) > 0)
        return false;
    if (atomic_fetch_sub(&fail_left, 1) <= 0)
        return false;
    atomic_fetch_add(&failures, 1);
    return true;
}

void *SHIM_MALLOC(size_t size)
{
    if (should_fail(size)) {
        errno = ENOMEM;
        return NULL;
    }
    return NEXT_MALLOC(size);
}

void *SHIM_CALLOC(size_t count, size_t size)
{
    if (size != 0 && count > (size_t)-1 / size)
        return NEXT_CALLOC(count, size); /* let the allocator report the overflow */
    if (should_fail(count * size)) {
        errno = ENOMEM;
        return NULL;
    }
    return NEXT_CALLOC(count, size);
}

void *SHIM_REALLOC(void *ptr, size_t size)
{
    if (size > 0 && should_fail(size)) {
        errno = ENOMEM;
        return NULL;
    }
    return NEXT_REALLOC(ptr, size);
}

static void say(const char *text, long number)
{
    char line[96], digits[24];
    size_t len = strlen(text), n = 0;

    memcpy(line, text, len);
    if (number >= 0) {
        do {
            digits[n++] = (char)('0' + number % 10);
            number /= 10;
        } while (number > 0);
        while (n > 0)
            line[len++] = digits[--n];
    }
    line[len++] = '\n';
    (void)!write(STDERR_FILENO, line, len);
}

/* Reads a decimal number at *p, moving past it and the spaces after it. */
static long read_number(const char **p)
{
    long value = 0;

    while (**p >= '0' && **p <= '9')
        value = value * 10 + (*(*p)++ - '0');
    while (**p == ' ' || **p == '\n')
        (*p)++;
    return value;
}

static void arm(int signo)
{
    char text[96];
    const char *p = text;
    ssize_t len;
    int fd, saved = errno;

    (void)signo;
    fd = control_path != NULL ? open(control_path, O_RDONLY | O_CLOEXEC) : -1;
    if (fd < 0) {
        say("failmalloc: cannot open the control file", -1);
        errno = saved;
        return;
    }
    len = read(fd, text, sizeof(text) - 1);
    (void)close(fd);
    text[len > 0 ? len : 0] = '\0';

    atomic_store(&fail_left, 0);
    atomic_store(&skip_left, read_number(&p));
    atomic_store(&min_size, (size_t)read_number(&p));
    atomic_store(&failures, 0);
    atomic_store(&fail_left, read_number(&p));
    say("failmalloc: armed", -1);
    errno = saved;
}

static void disarm(int signo)
{
    int saved = errno;

    (void)signo;
    atomic_store(&fail_left, 0);
    say("failmalloc: disarmed after ", atomic_load(&failures));
    errno = saved;
}

__attribute__((constructor)) static void install(void)
{
    struct sigaction action;

    control_path = getenv("FAILMALLOC_CONTROL");
    memset(&action, 0, sizeof(action));
    action.sa_flags = SA_RESTART;
    action.sa_handler = arm;
    (void)sigaction(SIGUSR1, &action, NULL);
    action.sa_handler = disarm;
    (void)sigaction(SIGUSR2, &action, NULL);
}
