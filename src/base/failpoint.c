/* failpoint.c — named fault-injection points driven by RILL_FAILPOINTS (base.h). */
#include "base.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#define FP_MAX 16

typedef struct {
    char name[64];
    int err;
    long skip;  /* passing hits left before failing */
    long count; /* failing hits left; -1 forever */
} fp_t;

static pthread_mutex_t fp_lock = PTHREAD_MUTEX_INITIALIZER;
static fp_t fp_tab[FP_MAX];
static int fp_n;
static atomic_int fp_state; /* 0 not loaded, 1 none configured, 2 some */

static int fp_errno_of(const char *s) {
    static const struct { const char *n; int e; } names[] = {
        {"ENOSPC", ENOSPC}, {"EIO", EIO}, {"EDQUOT", EDQUOT}, {"EROFS", EROFS}, {"EAGAIN", EAGAIN}, {"EINTR", EINTR},
    };
    for (size_t i = 0; i < RB_ARRAY_LEN(names); i++)
        if (!strcmp(s, names[i].n)) return names[i].e;
    return atoi(s);
}

void rb_failpoint_reload(void) {
    pthread_mutex_lock(&fp_lock);
    fp_n = 0;
    const char *env = getenv("RILL_FAILPOINTS");
    if (env && *env) {
        char *dup = strdup(env), *save = NULL;
        for (char *tok = strtok_r(dup, ",", &save); tok && fp_n < FP_MAX; tok = strtok_r(NULL, ",", &save)) {
            char *eq = strchr(tok, '=');
            if (!eq) continue;
            *eq = 0;
            fp_t *f = &fp_tab[fp_n];
            snprintf(f->name, sizeof(f->name), "%s", tok);
            f->skip = 0;
            f->count = -1;
            char *star = strchr(eq + 1, '*');
            if (star) { *star = 0; f->count = atol(star + 1); }
            char *at = strchr(eq + 1, '@');
            if (at) { *at = 0; f->skip = atol(at + 1); }
            f->err = fp_errno_of(eq + 1);
            if (f->err > 0) fp_n++;
        }
        free(dup);
    }
    atomic_store(&fp_state, fp_n ? 2 : 1);
    pthread_mutex_unlock(&fp_lock);
}

int rb_failpoint(const char *name) {
    int st = atomic_load_explicit(&fp_state, memory_order_relaxed);
    if (st == 0) {
        rb_failpoint_reload();
        st = atomic_load(&fp_state);
    }
    if (st != 2) return 0;
    int err = 0;
    pthread_mutex_lock(&fp_lock);
    for (int i = 0; i < fp_n; i++) {
        fp_t *f = &fp_tab[i];
        if (strcmp(f->name, name)) continue;
        if (f->skip > 0) { f->skip--; break; }
        if (f->count == 0) break;
        if (f->count > 0) f->count--;
        err = f->err;
        break;
    }
    pthread_mutex_unlock(&fp_lock);
    return err;
}
