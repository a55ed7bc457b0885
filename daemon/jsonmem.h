/* jsonmem — whether jansson ran out of memory.
 *
 * The problem. jansson (2.14, Debian 12) does not always say when an allocation fails. Inside
 * json_loads() a failed allocation comes back as no error text at all, or as a syntax error
 * ("string or '}' expected near '\"a\"'"); and when its lexer cannot grow the buffer that holds
 * the text of a token, it drops the character and goes on, so that "0.12345678901234567891"
 * parses as 0.12345678901235679 and a key loses a letter, with no error. A daemon that believed
 * it would reject a good measurement for bad JSON, or store numbers computed from digits the
 * station never sent.
 *
 * The idea. jansson takes its allocator from json_set_alloc_funcs(). jsonmem_install() puts one
 * in front of the one already installed (malloc by default) that counts, per thread, the
 * allocations that failed. Code that parses or builds JSON reads jsonmem_failures() before and
 * after; any difference means the result cannot be trusted, whatever jansson returned, and the
 * caller fails with -ENOMEM instead (and retries later).
 *
 * Program code only (daemon/): the allocator is process-wide state. store_open() and
 * ingest_new() install it, so every user of the store and of ingest has it.
 */
#ifndef DAEMON_JSONMEM_H
#define DAEMON_JSONMEM_H

#include <stdint.h>

/* Installs the counting allocator, once per process (later calls do nothing). Call it before
 * other threads use jansson. */
void jsonmem_install(void);

/* How many allocations jansson asked for on this thread failed, since the thread started. Only
 * differences mean something. */
uint64_t jsonmem_failures(void);

#endif
