/* measurement — parse and validate one station message (docs/protocol.md, version 1).
 *
 * This is the one parser of station messages: labloopd runs every frame a station sends
 * through measurement_parse(), `labloop analyze` runs files through it, and the fuzz target
 * tests/fuzz/fuzz_measurement.c hammers it. It accepts the three station → daemon types
 * (`hello`, `heartbeat`, `measurement`) and checks everything docs/protocol.md promises:
 * the version, the type, the station name, seq, request, kind, sample, time, and the data of
 * each kind (required fields, finite numbers, positive areas, equal array lengths within the
 * documented limits, strictly increasing stability times). On failure the ll_error message
 * is one sentence that starts with the JSON path of the offending field, e.g.
 * "data.sweeps[0].voltage_v[12]: not a finite number"; the daemon sends it back verbatim as
 * the `reason` of a `rejected` ack. A message above MEASUREMENT_MAX_BYTES fails with
 * -EMSGSIZE and the message "oversize".
 *
 * The parsed struct is plain data, owned by the caller, read-only after parsing; its arrays
 * are allocated with it and released by measurement_free(). The accessors below exist for
 * code that only needs the header fields.
 *
 * Owner: the measurement-analysis helper (issue 4). Depends on jansson.
 */
#ifndef MODELS_MEASUREMENT_H
#define MODELS_MEASUREMENT_H

#include "common/ll_error.h"

#include <stddef.h>
#include <stdint.h>

#define MEASUREMENT_PROTOCOL_VERSION 1
#define MEASUREMENT_MAX_BYTES ((size_t)4 * 1024 * 1024) /* 4 MiB: larger is "oversize" */
#define MEASUREMENT_NAME_MAX 64                         /* station, request, sample: 1..64 bytes */
#define MEASUREMENT_MAX_POINTS 100000                   /* per array, every kind */
#define MEASUREMENT_JV_MIN_POINTS 3
#define MEASUREMENT_JV_MAX_SWEEPS 2
#define MEASUREMENT_EIS_MIN_POINTS 5
#define MEASUREMENT_EIS_MAX_SPECTRA 32
#define MEASUREMENT_STABILITY_MIN_POINTS 2

enum measurement_type {
    MEASUREMENT_TYPE_HELLO = 1,
    MEASUREMENT_TYPE_HEARTBEAT = 2,
    MEASUREMENT_TYPE_MEASUREMENT = 3,
};

enum measurement_kind {
    MEASUREMENT_KIND_NONE = 0, /* hello and heartbeat carry no kind */
    MEASUREMENT_KIND_JV = 1,
    MEASUREMENT_KIND_EIS = 2,
    MEASUREMENT_KIND_STABILITY = 3,
};

enum measurement_direction {
    MEASUREMENT_DIRECTION_FORWARD = 1, /* Jsc -> Voc */
    MEASUREMENT_DIRECTION_REVERSE = 2, /* Voc -> Jsc */
};

struct measurement_jv_sweep {
    enum measurement_direction direction;
    size_t n_points;
    double *voltage_v;      /* n_points, as sent (unsorted allowed) */
    double *current_ma_cm2; /* n_points, either sign convention */
};

struct measurement_jv {
    double irradiance_mw_cm2; /* > 0 */
    double area_cm2;          /* > 0 */
    size_t n_sweeps;          /* 1 or 2; two sweeps have different directions */
    struct measurement_jv_sweep sweeps[MEASUREMENT_JV_MAX_SWEEPS];
};

struct measurement_eis_spectrum {
    double temperature_c; /* > -273.15 */
    size_t n_points;
    double *frequency_hz; /* n_points, > 0 */
    double *z_real_ohm;   /* n_points */
    double *z_imag_ohm;   /* n_points, Z'' as measured (negative when capacitive) */
};

struct measurement_eis {
    double thickness_cm; /* > 0 */
    double area_cm2;     /* > 0 */
    size_t n_spectra;    /* 1 .. MEASUREMENT_EIS_MAX_SPECTRA */
    struct measurement_eis_spectrum *spectra;
};

struct measurement_stability {
    char protocol[MEASUREMENT_NAME_MAX + 1]; /* e.g. "ISOS-L-1"; empty when not sent */
    size_t n_points;
    double *time_h;         /* n_points, >= 0, strictly increasing */
    double *normalised_pce; /* n_points, finite */
};

struct measurement {
    int version; /* always MEASUREMENT_PROTOCOL_VERSION after a successful parse */
    enum measurement_type type;
    char station[MEASUREMENT_NAME_MAX + 1];
    /* The station's sequence epoch, "" when not sent: seq is unique per (station, epoch), so a
     * station that lost its seq state and starts at 1 again under a new epoch is not mistaken
     * for a resend (docs/protocol.md). Any message type may carry it. */
    char epoch[MEASUREMENT_NAME_MAX + 1];
    /* hello: the kinds the station measures, as a bit set of (1u << enum measurement_kind);
     * unknown kind names are ignored (forward compatibility). */
    unsigned hello_kinds;
    /* measurement only (zero / empty otherwise): */
    int64_t seq; /* >= 1 */
    char request[MEASUREMENT_NAME_MAX + 1];
    enum measurement_kind kind;
    char sample[MEASUREMENT_NAME_MAX + 1];
    char time[40];              /* RFC 3339 UTC text as sent, e.g. "2026-11-25T17:40:03.120Z" */
    struct measurement_jv jv;   /* valid when kind == MEASUREMENT_KIND_JV */
    struct measurement_eis eis; /* valid when kind == MEASUREMENT_KIND_EIS */
    struct measurement_stability stability; /* valid when kind == MEASUREMENT_KIND_STABILITY */
};

/* Parses and validates one station message of len bytes (need not be NUL-terminated).
 * On success stores a new measurement in *ret (free with measurement_free()) and returns 0.
 * On failure *ret is NULL, the return is negative and reterr (may be NULL) holds one
 * sentence starting with the field path:
 *   -EMSGSIZE         len > MEASUREMENT_MAX_BYTES; message "oversize"
 *   -EPROTONOSUPPORT  "v" is not 1; message "v: unsupported version 2"
 *   -EINVAL           malformed JSON or any schema violation
 *   -ENOMEM           out of memory */
int measurement_parse(const char *json,
                      size_t len,
                      struct measurement **ret,
                      struct ll_error *reterr);

/* Best-effort "seq" of a message that failed to parse, for the `rejected` ack: the integer
 * seq >= 1 when json is a readable JSON object holding one, 0 otherwise. Never fails. */
int64_t measurement_seq_hint(const char *json, size_t len);

/* Best-effort "epoch" of a message that failed to parse, for the `rejected` ack: copied into
 * out when json is a readable JSON object holding a valid one, "" otherwise. Never fails. */
void measurement_epoch_hint(const char *json, size_t len, char out[MEASUREMENT_NAME_MAX + 1]);

/* Frees *m and everything it owns, and sets *m to NULL. NULL or *m == NULL is a no-op. */
void measurement_free(struct measurement **m);

/* Header accessors (m must not be NULL). Strings are owned by m; "" when absent. */
enum measurement_type measurement_type(const struct measurement *m);
const char *measurement_station(const struct measurement *m);
int64_t measurement_seq(const struct measurement *m);       /* 0 unless a measurement */
const char *measurement_epoch(const struct measurement *m); /* "" when not sent */
const char *measurement_request(const struct measurement *m);
enum measurement_kind measurement_kind(const struct measurement *m);
const char *measurement_sample(const struct measurement *m);
const char *measurement_time(const struct measurement *m);
/* The message's time as milliseconds since 1970-01-01T00:00:00Z (a leap second :60 counts as
 * the next second's start). */
int64_t measurement_time_ms(const struct measurement *m);

/* Names as in the protocol ("hello", "jv", "forward" ...); "?" for values out of range. */
const char *measurement_type_name(enum measurement_type type);
const char *measurement_kind_name(enum measurement_kind kind);
const char *measurement_direction_name(enum measurement_direction direction);

/* Maps a kind name ("jv", "eis", "stability") to its enum; MEASUREMENT_KIND_NONE if unknown. */
enum measurement_kind measurement_kind_from_name(const char *name);

#endif
