/* Unit tests for daemon/settings.c: the shipped config/labloopd.conf gives the documented
 * values, keys not given keep their defaults, and a broken file names its line. */
#include "daemon/settings.h"
#include "ll_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_settings_shipped_file_gives_documented_values(void **state)
{
    (void)state;
    const char *src = getenv("LL_SOURCE_DIR");
    if (src == NULL)
        skip();
    char path[1024];
    snprintf(path, sizeof(path), "%s/config/labloopd.conf", src);
    struct settings s;
    struct ll_error err;
    settings_defaults(&s);
    assert_int_equal(settings_load(path, &s, &err), 0);
    assert_string_equal(s.db, "/var/lib/labloop/labloop.db");
    assert_string_equal(s.run_dir, "/run/labloop");
    assert_int_equal(s.group_commit_ms, 2);
    assert_int_equal(s.log_level, 6);
    assert_int_equal(s.store_alarm_s, 30);
}

static void test_settings_keys_override_and_absent_keys_keep_defaults(void **state)
{
    (void)state;
    char path[] = "/tmp/test_settings.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    write_file(path, "daemon: {\n  store_alarm_s = 5;\n  poll_ms = 20;\n};\n");
    struct settings s;
    struct ll_error err;
    settings_defaults(&s);
    assert_int_equal(settings_load(path, &s, &err), 0);
    assert_int_equal(s.store_alarm_s, 5);
    assert_int_equal(s.poll_ms, 20);
    assert_int_equal(s.group_commit_ms, 2); /* not in the file */
    assert_string_equal(s.db, SETTINGS_DEFAULT_DB);

    write_file(path, "daemon: {\n  store_alarm_s = ;\n};\n");
    settings_defaults(&s);
    assert_true(settings_load(path, &s, &err) < 0);
    assert_non_null(strstr(err.msg, ":2"));
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_settings_shipped_file_gives_documented_values),
        cmocka_unit_test(test_settings_keys_override_and_absent_keys_keep_defaults),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
