/*
 * gen_corpus.c — writes the seed corpus of the snapshot fuzz target: empty
 * and populated producer tables (one producer, a full 5-batch window, a
 * window spanning the INT32_MAX wrap, many producers), each in both modes,
 * plus a truncated one, and (version 2) a marker-only producer and an open
 * transaction; the v1-* files are version 1 seeds written before version 2.
 * Each file starts with the target's mode byte (see
 * fuzz.c). Not built by CMake; regenerate with:
 *
 *   cmake --build build --target rill_storage
 *   cc -Isrc -Ibuild/gen tests/fuzz/snapshot/gen_corpus.c build/librill_storage.a \
 *      build/librill_proto.a build/librill_base.a -lpthread -lz -llz4 -lzstd -lsnappy -o /tmp/gen_snap
 *   /tmp/gen_snap tests/fuzz/snapshot/corpus
 */
#include <stdio.h>
#include <stdlib.h>

#include "storage/storage.h"

static void put(const char *dir, const char *name, int mode, const rb_buf_t *b, size_t len) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s-m%d", dir, name, mode);
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); exit(1); }
    fputc(mode, f);
    fwrite(b->p, 1, len, f);
    fclose(f);
}

static void emit(const char *dir, const char *name, const st_ptab_t *t, int64_t off) {
    rb_buf_t b;
    rb_buf_init(&b);
    st_pt_encode(t, off, &b);
    put(dir, name, 0, &b, b.len);
    put(dir, name, 1, &b, b.len);
    rb_buf_free(&b);
}

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    const char *d = argv[1];
    st_ptab_t t = {0};
    emit(d, "empty", &t, 0);
    st_pt_record(&t, 7, 0, 0, 4, 100, 104, 1000);
    emit(d, "one", &t, 105);
    for (int i = 1; i < 5; i++) st_pt_record(&t, 7, 0, i * 5, i * 5 + 4, 100 + i * 5, 104 + i * 5, 2000);
    emit(d, "window", &t, 125);
    st_pt_record(&t, 9, 3, INT32_MAX - 1, 1, 300, 303, 3000);
    emit(d, "wrap", &t, 304);
    for (int64_t pid = 10; pid < 60; pid++) st_pt_record(&t, pid, (int16_t)(pid % 4), 0, (int32_t)pid, pid * 10, pid * 10 + pid, 4000);
    emit(d, "many", &t, 1000);
    st_pt_fence(&t, 70, 5, 5000);     /* a producer only a marker told about */
    st_pt_set_txn(&t, 12, 1200);      /* an open transaction */
    emit(d, "txn", &t, 1300);
    rb_buf_t b;
    rb_buf_init(&b);
    st_pt_encode(&t, 1000, &b);
    put(d, "truncated", 1, &b, b.len / 2);
    rb_buf_free(&b);
    st_pt_free(&t);
    return 0;
}
