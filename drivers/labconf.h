/* labconf — the lab definition: instruments, furnace register maps, stations.
 *
 * One libconfig file (config/lab.conf is the embedded default) describes a lab for labsim,
 * the drivers and labloopd. This module loads it into plain structs with every reference
 * resolved (an instrument's furnace map is copied into the instrument), checks every value
 * it can check (ranges, required fields per driver kind, unknown keys in the groups that
 * carry limits and maps, so that a misspelt `max_temp` is an error rather than no limit),
 * and writes a lab definition back (labsim fills in the real pty paths and ports and writes
 * the copy that labloopd and the tests load).
 *
 * Errors name the source and the line: "lab.conf:42: instrument 'furnace': map 'x' is not
 * defined". `@include` is refused (a lab definition is one file; it also keeps the fuzz
 * target from opening files).
 *
 * Format (see config/lab.conf and docs/drivers.md for every key):
 *   lab: { name; instruments = ( {...}, ... ); maps = { NAME = {...}; ... };
 *          stations = ( {...}, ... ); daemon = { stations_endpoint; }; }
 * Unknown keys are errors inside an instrument, its `limits`, a map and a station; an
 * instrument may carry a `sim` group (labsim's fault and physics settings) that this loader
 * ignores and does not write back.
 */
#ifndef LABCONF_H
#define LABCONF_H

#include "common/ll_error.h"

#include <stdbool.h>
#include <stdio.h>

#define LABCONF_NAME_MAX 64
#define LABCONF_TEXT_MAX 256
#define LABCONF_MAX_INSTRUMENTS 16
#define LABCONF_MAX_MAPS 8
#define LABCONF_MAX_STATIONS 32
#define LABCONF_MAX_RESERVOIRS 8
#define LABCONF_MAX_PLACES 16
#define LABCONF_MAX_WELLS 96 /* the robot's DEST_WELL is 0..95 */
#define LABCONF_MAX_KINDS 8
#define LABCONF_MAX_PV_ERROR_CODES 16

/* The driver an instrument needs; the config spells them as in labconf_driver_name(). */
enum labconf_driver {
    LABCONF_DRIVER_ROBOT_MODBUS_TCP = 1, /* "modbus_tcp_robot" (hardware.md §3.3) */
    LABCONF_DRIVER_FURNACE_MODBUS_RTU,   /* "modbus_rtu_furnace" (hardware.md §1.3) */
    LABCONF_DRIVER_COATER_SPN1,          /* "spn1_coater" (hardware.md §2.3) */
};

/* Programmer status enumeration of a furnace controller (values as the map defines them). */
struct labconf_program_status_values {
    int reset, run, hold, end;
};

/* Program end-type enumeration. */
struct labconf_end_type_values {
    int off, dwell, sp2, reset;
};

/* Bit numbers (0..15) in the status register; optional in a map (group `status_bits`),
 * defaults are the Eurotherm 3200's: alarm1 0, sensor_break 5, loop_break 6, program_end 9,
 * over_range 10. */
struct labconf_status_bits {
    int alarm1, sensor_break, loop_break, program_end, over_range;
};

/* A furnace controller's register map: PDU addresses (0-based on the wire, 0..65535) and
 * scales (engineering value = raw * scale; temperatures and rates are signed 16-bit raw). */
struct labconf_furnace_map {
    char name[LABCONF_NAME_MAX];
    int pv, target_sp, output, working_sp, alarm1, program_status, remote_sp, sp_rate, status,
        auto_manual, end_type;
    int seg_dwell, seg_target, seg_rate; /* the one-segment anneal program */
    double temp_scale;                   /* °C per raw unit */
    double rate_scale;                   /* °C/min per raw unit */
    double dwell_scale;                  /* minutes per raw unit */
    struct labconf_program_status_values program_status_values;
    struct labconf_end_type_values end_type_values;
    struct labconf_status_bits status_bits;
    /* Garbage the controller may put in its registers (reliability.md B8; optional keys):
     * `pv_error_codes = [ 0x8002, ... ]`, raw PV values that are error codes, not
     * temperatures (the Omega/Delta family's 0x8002-0x8006, hardware.md §1.2); and
     * `temp_range_c = [ LO, HI ]`, the documented input range: a PV or working setpoint
     * outside it is not a temperature. Absent: no codes; any signed 16-bit value. */
    int pv_error_codes[LABCONF_MAX_PV_ERROR_CODES]; /* 0..65535 */
    int n_pv_error_codes;
    bool has_temp_range;
    double temp_min_c, temp_max_c; /* when has_temp_range: finite, min < max */
    int line;                      /* source line of the map's definition */
};

/* Limits; a field an instrument kind does not use is 0. */
struct labconf_limits {
    double max_volume_ul;       /* robot: per reservoir per dispense */
    double max_total_volume_ul; /* robot: sum over reservoirs per dispense */
    double max_temp_c;          /* furnace */
    double max_ramp_c_min;      /* furnace */
    double safe_setpoint_c;     /* furnace: the setpoint of the safe state */
    double max_rpm;             /* coater */
    double max_accel_rpm_s;     /* coater */
};

/* A named place the robot can reach, with its slot number. */
struct labconf_place {
    char name[LABCONF_NAME_MAX];
    int slot;
};

/* One instrument. Fields a driver kind does not use keep their defaults. */
struct labconf_instrument {
    char name[LABCONF_NAME_MAX];
    enum labconf_driver driver;
    /* Modbus TCP */
    char host[LABCONF_TEXT_MAX];
    int port;    /* 0..65535; 0 means "labsim picks one" (not connectable) */
    int unit_id; /* 0..255, default 255 */
    int base;    /* register base added to every robot address, default 0 */
    /* serial (Modbus RTU and SPN/1) */
    char device[LABCONF_TEXT_MAX];
    int baud;      /* default 9600 (furnace) / 115200 (coater) */
    char parity;   /* 'N', 'E' or 'O'; default 'N' */
    int data_bits; /* 5..8, default 8 */
    int stop_bits; /* 1..2, default 1 */
    int slave;     /* Modbus RTU slave id 1..247, default 1 */
    /* furnace map, resolved (a copy of lab.maps[map_name]) */
    char map_name[LABCONF_NAME_MAX];
    struct labconf_furnace_map map;
    /* furnace: how an anneal program ends, "reset" (default) or "sp2"; both leave the
     * controller at its safe setpoint without the host; "sp2" leaves the program status at
     * "end" (an unambiguous end) instead of back in reset */
    char anneal_end_type[8];
    /* furnace, for the daemon (docs/daemon.md "Loading a sample into a hot furnace"): a
     * sample is moved into the furnace only once its PV is at most the sample's anneal
     * setpoint + load_tolerance_c (default 5 °C; 0..500), and a wait longer than
     * load_wait_warn_min minutes of instrument time (default 60; > 0) is a warning event */
    double load_tolerance_c;
    double load_wait_warn_min;
    /* timing */
    int response_timeout_ms; /* default 500 */
    int byte_timeout_ms;     /* default 100 */
    int step_timeout_s;      /* default 300: a step running longer has failed */
    int poll_ms;             /* default 250: how often the daemon polls a running step */
    struct labconf_limits limits;
    char reservoirs[LABCONF_MAX_RESERVOIRS][LABCONF_NAME_MAX]; /* robot: reservoir 1..8 */
    int n_reservoirs;
    struct labconf_place places[LABCONF_MAX_PLACES]; /* robot */
    int n_places;
    /* robot: the wells of its rack (1..LABCONF_MAX_WELLS, default 96; A1 = 0 row-major).
     * labloopd gives each new sample the lowest well that holds no sample (docs/daemon.md
     * "The rack") */
    int wells;
    int line; /* source line of the instrument's definition */
};

/* A measurement station (ZeroMQ; docs/protocol.md). */
struct labconf_station {
    char name[LABCONF_NAME_MAX];
    char kinds[LABCONF_MAX_KINDS][LABCONF_NAME_MAX];
    int n_kinds;
    char place[LABCONF_NAME_MAX]; /* a robot place name */
    int line;
};

/* A whole lab definition. Allocated by the loaders; free with labconf_free(). Plain data:
 * a caller may change fields (labsim sets device and port) and write it back. */
struct labconf {
    char name[LABCONF_NAME_MAX];
    char source[LABCONF_TEXT_MAX]; /* file name, or the name given to labconf_load_string */
    struct labconf_instrument instruments[LABCONF_MAX_INSTRUMENTS];
    int n_instruments;
    struct labconf_furnace_map maps[LABCONF_MAX_MAPS];
    int n_maps;
    struct labconf_station stations[LABCONF_MAX_STATIONS];
    int n_stations;
    char stations_endpoint[LABCONF_TEXT_MAX]; /* daemon.stations_endpoint */
};

/* Loads the lab definition in the file at path. On success *ret_lab is a new labconf
 * (free with labconf_free()). Errors: -ENOENT/-EACCES (file), -EINVAL (syntax or a bad
 * value; reterr says "FILE:LINE: problem"), -ENOMEM. */
int labconf_load_file(const char *path, struct labconf **ret_lab, struct ll_error *reterr);

/* Loads a lab definition from text; source_name stands for the file name in messages and
 * in lab->source (NULL: "<string>"). Same results as labconf_load_file(). */
int labconf_load_string(const char *text,
                        const char *source_name,
                        struct labconf **ret_lab,
                        struct ll_error *reterr);

/* The embedded default lab (the same definition as config/lab.conf; a unit test checks
 * that the two load to the same structs). Returns a static string. */
const char *labconf_default_text(void);

/* Loads the embedded default lab (source name "<default lab>"). */
int labconf_load_default(struct labconf **ret_lab, struct ll_error *reterr);

/* Writes lab as a libconfig lab definition that labconf_load_*() reads back to equal
 * structs. Returns 0, -EINVAL for a value that cannot be written, or -EIO. */
int labconf_write(const struct labconf *lab, FILE *out, struct ll_error *reterr);

/* Writes lab to path atomically (a temporary file in the same folder, then rename). */
int labconf_write_file(const struct labconf *lab, const char *path, struct ll_error *reterr);

/* Frees *lab and sets *lab to NULL; NULL and *lab == NULL are no-ops. */
void labconf_free(struct labconf **lab);

/* The instrument, map or station called name, or NULL; the pointer points into lab. To
 * change an instrument (labsim sets device and port), use labconf_instrument_index(). */
const struct labconf_instrument *labconf_find_instrument(const struct labconf *lab,
                                                         const char *name);
const struct labconf_furnace_map *labconf_find_map(const struct labconf *lab, const char *name);
const struct labconf_station *labconf_find_station(const struct labconf *lab, const char *name);

/* Index of the instrument called name in lab->instruments, or -ENOENT. */
int labconf_instrument_index(const struct labconf *lab, const char *name);

/* The first instrument with the given driver kind, or NULL. */
const struct labconf_instrument *labconf_find_driver(const struct labconf *lab,
                                                     enum labconf_driver driver);

/* The slot of place name on instrument inst (a robot), or -ENOENT. */
int labconf_place_slot(const struct labconf_instrument *inst, const char *name);

/* The configuration spelling of a driver kind ("modbus_tcp_robot", ...), or "?" */
const char *labconf_driver_name(enum labconf_driver driver);

#endif
