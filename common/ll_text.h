/* ll_text — small text helpers shared by the folders. */
#ifndef LL_TEXT_H
#define LL_TEXT_H

#include <stddef.h>

/* The number of bytes of s to keep when quoting at most max bytes of it ("%.*s") without
 * cutting a UTF-8 character: min(strlen(s), max), moved back to the start of a multibyte
 * character the cut would split. A message that quotes outside text goes into JSON, whose
 * strings must be valid UTF-8 (jansson refuses the rest). */
size_t ll_utf8_cut(const char *s, size_t max);

/* Replaces, in place, every byte of s that does not belong to a well-formed UTF-8 character
 * (RFC 3629: no overlong forms, no surrogates, at most U+10FFFF) with '?', so that text from
 * outside (a cut message, bytes a device sent) can go into JSON. Returns the number of bytes
 * replaced. */
size_t ll_utf8_sanitize(char *s);

/* Parses s as a whole decimal number in [min, max]: optional sign, digits, nothing else (no
 * spaces, no trailing text). Returns 0 with *ret set, or -EINVAL (not a number, trailing text,
 * out of range). For numbers typed by people, where atoi's silent 0 would be a wrong id. */
int ll_parse_int(const char *s, long long min, long long max, long long *ret);

/* 1 if host names this machine's loopback interface (127.x.y.z, ::1 or [::1], localhost),
 * else 0. */
int ll_host_is_loopback(const char *host);

#endif
