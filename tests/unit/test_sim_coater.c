/* sim_coater: the SPN/1 device of labsim (hardware.md §2.3): the worked examples byte for
 * byte, the replay cache, states and interlocks, the watchdog, interlock faults. */
#include "common/ll_crc.h"
#include "ll_test.h"
#include "simulators/sim_coater.h"
#include "simulators/sim_fault.h"

#include <stdio.h>
#include <string.h>

static char reply[512];

static unsigned crc_of(const char *text)
{
    return ll_crc16_ccitt_false((const uint8_t *)text, strlen(text));
}

static const char *send_line(struct sim_coater *c, const char *line, int64_t now_ms)
{
    size_t n = sim_coater_line(c, line, strlen(line), now_ms, reply, sizeof(reply));
    reply[n] = '\0';
    return reply;
}

/* Frames body with the next SEQ and returns the reply body (between SEQ and '*'). */
static const char *cmd(struct sim_coater *c, unsigned *seq, const char *body, int64_t now_ms)
{
    char text[200], line[220];
    snprintf(text, sizeof(text), "%u %s", ++*seq, body);
    snprintf(line, sizeof(line), "%s*%04X", text, crc_of(text));
    send_line(c, line, now_ms);
    static char out[512];
    const char *sp = strchr(reply, ' ');
    const char *star = strrchr(reply, '*');
    if (sp == NULL || star == NULL || star < sp)
        return "";
    snprintf(out, sizeof(out), "%.*s", (int)(star - sp - 1), sp + 1);
    return out;
}

static void test_sim_coater_examples_byte_for_byte(void **state)
{
    (void)state;
    struct sim_coater c;
    sim_coater_init(&c, 8000, 5000, NULL);
    assert_string_equal(send_line(&c, "17 RCP 3 STAGE 1 500 1000 5*8DA8", 0),
                        "17 OK RCP 3 STAGE 1*F22D\r\n");
    unsigned seq = 100;
    assert_string_equal(cmd(&c, &seq, "ARM", 0), "OK ARM");
    assert_string_equal(send_line(&c, "18 RUN 3 J000042*5B77", 0), "18 OK RUN 3 J000042*E413\r\n");
    assert_non_null(strstr(send_line(&c, "19 STATUS?*07EC", 0),
                           "19 OK STATE=RUNNING JOB=J000042 RCP=3 STAGE=1"));
    assert_int_equal(strncmp(send_line(&c, "21 WD 30*1A78", 0), "21 OK WD 30*", 12), 0);
    /* a bad CRC with a readable SEQ: E01; without one: silence */
    assert_int_equal(strncmp(send_line(&c, "22 WD 30*1A79", 0), "22 ERR E01 BAD_CRC*", 19), 0);
    assert_int_equal(sim_coater_line(&c, "x WD 30*1A78", 12, 0, reply, sizeof(reply)), 0);
    assert_int_equal(sim_coater_line(&c, "123456 ID?*0000", 15, 0, reply, sizeof(reply)), 0);
}

static void test_sim_coater_replay_cache_holds_eight(void **state)
{
    (void)state;
    struct sim_coater c;
    sim_coater_init(&c, 8000, 5000, NULL);
    unsigned seq = 0;
    assert_string_equal(cmd(&c, &seq, "RCP 1 STAGE 1 1000 1000 1", 0), "OK RCP 1 STAGE 1");
    char first[64];
    snprintf(first,
             sizeof(first),
             "1 RCP 1 STAGE 1 1000 1000 1*%04X",
             crc_of("1 RCP 1 STAGE 1 1000 1000 1"));
    /* replay: cached reply, not executed (stage 2 would be refused if the recipe changed) */
    assert_string_equal(cmd(&c, &seq, "RCP 1 CLEAR", 0), "OK RCP 1 CLEAR");
    assert_int_equal(strncmp(send_line(&c, first, 0), "1 OK RCP 1 STAGE 1*", 19), 0);
    assert_string_equal(cmd(&c, &seq, "RCP? 1", 0), "OK RCP 1 N=0");
    for (int i = 0; i < 7; i++)
        cmd(&c, &seq, "ID?", 0);
    /* nine frames later the first one has left the cache: executed again */
    assert_int_equal(strncmp(send_line(&c, first, 0), "1 OK RCP 1 STAGE 1*", 19), 0);
    assert_string_equal(cmd(&c, &seq, "RCP? 1", 0), "OK RCP 1 N=1 S1=1000,1000,1");
    /* the same SEQ with another body */
    char other[64];
    char text[32];
    snprintf(text, sizeof(text), "%u ID?", seq);
    snprintf(other, sizeof(other), "%s*%04X", text, crc_of(text));
    assert_non_null(strstr(send_line(&c, other, 0), "ERR E04 SEQ_REUSED"));
}

static void test_sim_coater_run_states_and_limits(void **state)
{
    (void)state;
    struct sim_coater c;
    sim_coater_init(&c, 6000, 3000, NULL);
    unsigned seq = 0;
    assert_string_equal(cmd(&c, &seq, "RUN 2 J1", 0), "ERR E04 STATE");
    assert_string_equal(cmd(&c, &seq, "ARM", 0), "OK ARM");
    assert_string_equal(cmd(&c, &seq, "RUN 2 J1", 0), "ERR E10 RECIPE_EMPTY");
    assert_string_equal(cmd(&c, &seq, "RCP 2 STAGE 1 7000 1000 5", 0), "ERR E03 RANGE");
    assert_string_equal(cmd(&c, &seq, "RCP 2 STAGE 2 1000 1000 5", 0), "ERR E03 RANGE");
    assert_string_equal(cmd(&c, &seq, "RCP 2 STAGE 1 1000 1000 10", 0), "OK RCP 2 STAGE 1");
    assert_string_equal(cmd(&c, &seq, "RCP 2 STAGE 2 5000 2000 20", 0), "OK RCP 2 STAGE 2");
    assert_string_equal(cmd(&c, &seq, "RCP 2 STAGE x 5000 2000 20", 0), "ERR E02 SYNTAX");
    assert_string_equal(cmd(&c, &seq, "SPIN", 0), "ERR E02 UNKNOWN_VERB");
    assert_string_equal(cmd(&c, &seq, "RUN 2 J1", 0), "OK RUN 2 J1");
    assert_string_equal(cmd(&c, &seq, "RUN 2 J1", 0), "OK RUN 2 J1");
    assert_string_equal(cmd(&c, &seq, "RUN 2 J2", 0), "ERR E04 STATE");
    sim_coater_advance(&c, 12.0, 0);
    assert_non_null(strstr(cmd(&c, &seq, "STATUS?", 0), "STATE=RUNNING JOB=J1 RCP=2 STAGE=2"));
    sim_coater_advance(&c, 30.0, 0);
    assert_true(c.run_finished);
    assert_string_equal(cmd(&c, &seq, "LAST?", 0), "OK JOB=J1 RESULT=OK PEAK=5000 DUR=32.5");
    assert_int_equal(c.n_runs, 1);
    /* the last job id again, even from DONE: a no-op */
    assert_string_equal(cmd(&c, &seq, "RUN 2 J1", 0), "OK RUN 2 J1");
    assert_int_equal(c.runs[0].n, 1);
    /* abort mid-run */
    assert_string_equal(cmd(&c, &seq, "ARM", 0), "OK ARM");
    assert_string_equal(cmd(&c, &seq, "RUN 2 J2", 0), "OK RUN 2 J2");
    sim_coater_advance(&c, 3.0, 0);
    assert_string_equal(cmd(&c, &seq, "ABORT", 0), "OK ABORT");
    sim_coater_advance(&c, 5.0, 0);
    assert_string_equal(cmd(&c, &seq, "LAST?", 0), "OK JOB=J2 RESULT=ABORTED PEAK=1000 DUR=3.5");
}

static void test_sim_coater_interlocks_and_watchdog(void **state)
{
    (void)state;
    struct sim_coater c;
    sim_coater_init(&c, 8000, 5000, NULL);
    unsigned seq = 0;
    cmd(&c, &seq, "RCP 1 STAGE 1 3000 1000 20", 0);
    assert_string_equal(cmd(&c, &seq, "VAC OFF", 0), "OK VAC OFF");
    assert_string_equal(cmd(&c, &seq, "ARM", 0), "ERR E06 VACUUM_LOST");
    assert_string_equal(cmd(&c, &seq, "VAC ON", 0), "OK VAC ON");
    assert_string_equal(cmd(&c, &seq, "WD 2", 0), "OK WD 2");
    assert_string_equal(cmd(&c, &seq, "ARM", 1000), "OK ARM");
    assert_string_equal(cmd(&c, &seq, "RUN 1 J7", 1500), "OK RUN 1 J7");
    sim_coater_advance(&c, 1.0, 3000);
    assert_int_equal(c.state, SIM_COATER_RUNNING);
    sim_coater_advance(&c, 1.0, 3600); /* 2.1 s of real time without a frame */
    sim_coater_advance(&c, 5.0, 3700);
    assert_int_equal(c.state, SIM_COATER_ERROR);
    assert_non_null(
        strstr(cmd(&c, &seq, "STATUS?", 3800), "STATE=ERROR JOB=J7 RCP=0 STAGE=0 RPM=0"));
    assert_non_null(strstr(reply, "ERR=E08"));
    assert_string_equal(cmd(&c, &seq, "LAST?", 3800), "OK JOB=J7 RESULT=E08 PEAK=1000 DUR=1.5");
    assert_string_equal(cmd(&c, &seq, "ARM", 3800), "ERR E04 STATE");
    assert_string_equal(cmd(&c, &seq, "LID OPEN", 3800), "OK LID OPEN");
    assert_string_equal(cmd(&c, &seq, "CLR", 3800), "ERR E05 LID_OPEN");
    assert_string_equal(cmd(&c, &seq, "LID CLOSE", 3800), "OK LID CLOSE");
    assert_string_equal(cmd(&c, &seq, "CLR", 3800), "OK CLR");
    assert_int_equal(c.state, SIM_COATER_IDLE);
}

static void test_sim_coater_fault_script_stops_run(void **state)
{
    (void)state;
    struct sim_faults f;
    assert_int_equal(sim_faults_init(&f, "coater.vacuum@job=J9", 5, NULL), 0);
    struct sim_coater c;
    sim_coater_init(&c, 8000, 5000, &f);
    unsigned seq = 0;
    cmd(&c, &seq, "RCP 1 STAGE 1 3000 1000 20", 0);
    cmd(&c, &seq, "ARM", 0);
    assert_string_equal(cmd(&c, &seq, "RUN 1 J8", 0), "OK RUN 1 J8");
    sim_coater_advance(&c, 30.0, 0);
    assert_int_equal(c.state, SIM_COATER_DONE);
    cmd(&c, &seq, "ARM", 0);
    assert_string_equal(cmd(&c, &seq, "RUN 1 J9", 0), "OK RUN 1 J9");
    sim_coater_advance(&c, 30.0, 0);
    assert_int_equal(c.state, SIM_COATER_ERROR);
    assert_string_equal(cmd(&c, &seq, "LAST?", 0), "OK JOB=J9 RESULT=E06 PEAK=3000 DUR=11.5");
    assert_string_equal(cmd(&c, &seq, "CLR", 0), "ERR E06 VACUUM_LOST");
}

/* coater.no_reply@job=ID: only the reply to that job's RUN is dropped; the run is executed
 * and cached, so the same frame again gets the cached reply (docs/instruments.md §6). */
static void test_sim_coater_no_reply_at_job(void **state)
{
    (void)state;
    struct sim_faults f;
    assert_int_equal(sim_faults_init(&f, "coater.no_reply@job=J2", 5, NULL), 0);
    struct sim_coater c;
    sim_coater_init(&c, 8000, 5000, &f);
    unsigned seq = 0;
    assert_string_equal(cmd(&c, &seq, "RCP 1 STAGE 1 2000 1000 5", 0), "OK RCP 1 STAGE 1");
    assert_string_equal(cmd(&c, &seq, "ARM", 0), "OK ARM");
    assert_string_equal(cmd(&c, &seq, "RUN 1 J1", 0), "OK RUN 1 J1");
    sim_coater_advance(&c, 30.0, 0);
    assert_int_equal(c.state, SIM_COATER_DONE);
    assert_string_equal(cmd(&c, &seq, "ARM", 0), "OK ARM");

    char text[64], line[80];
    snprintf(text, sizeof(text), "%u RUN 1 J2", ++seq);
    snprintf(line, sizeof(line), "%s*%04X", text, crc_of(text));
    assert_int_equal(sim_coater_line(&c, line, strlen(line), 0, reply, sizeof(reply)), 0);
    assert_int_equal(c.state, SIM_COATER_RUNNING); /* executed all the same */
    assert_string_equal(c.job, "J2");
    /* the host's retry of the same frame: the cached reply, not a second run */
    char want[64];
    snprintf(want, sizeof(want), "%u OK RUN 1 J2*", seq);
    assert_int_equal(strncmp(send_line(&c, line, 0), want, strlen(want)), 0);
    /* the rule fired once: other frames are answered */
    assert_non_null(strstr(cmd(&c, &seq, "STATUS?", 0), "STATE=RUNNING JOB=J2"));
    sim_coater_advance(&c, 30.0, 0);
    assert_string_equal(cmd(&c, &seq, "ARM", 0), "OK ARM");
    assert_string_equal(cmd(&c, &seq, "RUN 1 J3", 0), "OK RUN 1 J3");
    int hits = -1;
    for (int i = 0; i < f.n_names; i++)
        if (strcmp(f.names[i].name, "coater.no_reply") == 0)
            hits = (int)f.names[i].hits;
    assert_int_equal(hits, 1);
}

int main(void)
{
    ll_test_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sim_coater_examples_byte_for_byte),
        cmocka_unit_test(test_sim_coater_replay_cache_holds_eight),
        cmocka_unit_test(test_sim_coater_run_states_and_limits),
        cmocka_unit_test(test_sim_coater_interlocks_and_watchdog),
        cmocka_unit_test(test_sim_coater_fault_script_stops_run),
        cmocka_unit_test(test_sim_coater_no_reply_at_job),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
