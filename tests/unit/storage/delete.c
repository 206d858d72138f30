/*
 * delete.c — storage unit tests for deletion and the log dir's bookkeeping:
 * delete then reopen (empty again; a reader's dup'd fd still reads), waiters
 * of a deleted log, leftovers removed at open ("-delete" dirs, .tmp and
 * .cleaned files), and when the clean-shutdown marker may be written.
 */
#include "st_test.h"

#include <dirent.h>

static bool dir_has_suffix(const char *dir, const char *suffix) {
    DIR *d = opendir(dir);
    bool found = false;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t n = strlen(de->d_name), k = strlen(suffix);
        if (n >= k && !strcmp(de->d_name + n - k, suffix)) found = true;
    }
    closedir(d);
    return found;
}

static void test_delete_reopen(void **state) {
    (void)state;
    char *dir = stt_mkdtemp();
    st_mgr_t *m;
    assert_int_equal(st_mgr_open(dir, &m), 0);
    st_log_config_t c = stt_cfg(2000, 256);
    st_log_t *l;
    assert_int_equal(st_log_open(m, "del", 2, &c, &l), 0);
    for (int i = 0; i < 20; i++) stt_append(l, 1, 3, 100, 80, 1000);
    assert_int_equal(stt_durable(l, 60), 0);
    st_read_t r;
    assert_int_equal(st_log_read(l, 0, 1 << 20, true, &r), 0);
    assert_true(r.len > 0);
    stt_wait_t w;
    stt_wait_init(&w);
    assert_int_equal(st_log_sync_wait(l, 1000, stt_wait_cb, &w), 0);
    assert_int_equal(st_log_delete(l), 0);
    assert_int_equal(stt_wait_done(&w), RB_UNKNOWN_TOPIC_OR_PARTITION);
    char p[4200];
    snprintf(p, sizeof(p), "%s/del-2", dir);
    assert_int_equal(access(p, F_OK), -1);
    assert_false(dir_has_suffix(dir, "-delete"));
    /* the reader's fd outlives the files */
    stt_b_t b[64];
    assert_true(stt_parse_read(&r, b, 64) >= 1);
    assert_int_equal(b[0].base, 0);
    /* not in the checkpoint any more */
    assert_int_equal(st_mgr_checkpoint(m), 0);
    char *txt;
    size_t tl;
    snprintf(p, sizeof(p), "%s/recovery-point-offset-checkpoint", dir);
    assert_int_equal(rb_read_file(p, &txt, &tl), 0);
    assert_string_equal(txt, "0\n0\n");
    free(txt);
    /* reopening the name gives an empty log */
    assert_int_equal(st_log_open(m, "del", 2, &c, &l), 0);
    st_log_state_t s;
    st_log_state(l, &s);
    assert_int_equal(s.log_end_offset, 0);
    assert_int_equal(s.nsegments, 1);
    assert_int_equal(stt_append(l, 1, 1, 1, 1, 1000), 0);
    assert_int_equal(stt_durable(l, 1), 0);
    st_log_close(l);
    st_mgr_close(m);
    stt_rmdir(dir);
}

static void touch(const char *path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "x", 1), 1);
    close(fd);
}

static void test_leftovers(void **state) {
    (void)state;
    char *dir = stt_mkdtemp();
    char p[4300];
    snprintf(p, sizeof(p), "%s/t-0.0123abcd-delete", dir);
    assert_int_equal(mkdir(p, 0755), 0);
    snprintf(p, sizeof(p), "%s/t-0.0123abcd-delete/00000000000000000000.log", dir);
    touch(p);
    snprintf(p, sizeof(p), "%s/recovery-point-offset-checkpoint.tmp", dir);
    touch(p);
    snprintf(p, sizeof(p), "%s/t-1", dir);
    assert_int_equal(mkdir(p, 0755), 0);
    snprintf(p, sizeof(p), "%s/t-1/00000000000000000000.log.cleaned", dir);
    touch(p);
    snprintf(p, sizeof(p), "%s/t-1/00000000000000000000.index.tmp", dir);
    touch(p);
    /* an index without its .log goes at log open */
    snprintf(p, sizeof(p), "%s/t-1/00000000000000000042.index", dir);
    touch(p);
    st_mgr_t *m;
    assert_int_equal(st_mgr_open(dir, &m), 0);
    assert_false(dir_has_suffix(dir, "-delete"));
    assert_false(dir_has_suffix(dir, ".tmp"));
    snprintf(p, sizeof(p), "%s/t-1", dir);
    assert_false(dir_has_suffix(p, ".cleaned"));
    assert_false(dir_has_suffix(p, ".tmp"));
    st_log_config_t c = stt_cfg(2000, 256);
    st_log_t *l;
    assert_int_equal(st_log_open(m, "t", 1, &c, &l), 0);
    snprintf(p, sizeof(p), "%s/t-1/00000000000000000042.index", dir);
    assert_int_equal(access(p, F_OK), -1);
    st_log_close(l);
    st_mgr_close(m);
    stt_rmdir(dir);
}

/* The marker is written only if every partition dir is known good: clean at
 * start, or opened (recovered) in this session. */
static void test_marker_rules(void **state) {
    (void)state;
    char *dir = stt_mkdtemp();
    char marker[4300];
    snprintf(marker, sizeof(marker), "%s/.kafka_cleanShutdown", dir);
    st_mgr_t *m;
    st_log_config_t c = stt_cfg(2000, 256);
    st_log_t *a, *b;
    assert_int_equal(st_mgr_open(dir, &m), 0);
    assert_int_equal(st_log_open(m, "a", 0, &c, &a), 0);
    assert_int_equal(st_log_open(m, "b", 0, &c, &b), 0);
    stt_append(a, 1, 1, 1, 1, 1000);
    stt_append(b, 1, 1, 1, 1, 1000);
    st_mgr_close(m); /* closes both */
    assert_int_equal(access(marker, F_OK), 0);
    /* clean start, nothing opened: still clean */
    assert_int_equal(st_mgr_open(dir, &m), 0);
    st_mgr_close(m);
    assert_int_equal(access(marker, F_OK), 0);
    /* unclean start, only one partition opened: no marker */
    unlink(marker);
    assert_int_equal(st_mgr_open(dir, &m), 0);
    assert_int_equal(st_log_open(m, "a", 0, &c, &a), 0);
    st_mgr_close(m);
    assert_int_equal(access(marker, F_OK), -1);
    /* unclean start, both opened: marker */
    assert_int_equal(st_mgr_open(dir, &m), 0);
    assert_int_equal(st_log_open(m, "a", 0, &c, &a), 0);
    assert_int_equal(st_log_open(m, "b", 0, &c, &b), 0);
    st_log_close(a);
    st_mgr_close(m);
    assert_int_equal(access(marker, F_OK), 0);
    /* the checkpoint kept both (a closed early, b at mgr close) */
    char p[4300], *txt;
    size_t tl;
    snprintf(p, sizeof(p), "%s/recovery-point-offset-checkpoint", dir);
    assert_int_equal(rb_read_file(p, &txt, &tl), 0);
    assert_non_null(strstr(txt, "a 0 1\n"));
    assert_non_null(strstr(txt, "b 0 1\n"));
    assert_int_equal(strncmp(txt, "0\n2\n", 4), 0);
    free(txt);
    stt_rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_delete_reopen),
        cmocka_unit_test(test_leftovers),
        cmocka_unit_test(test_marker_rules),
    };
    rb_log_min_level = RB_LOG_ERROR;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
