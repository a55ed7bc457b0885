/* ll_text — small text helpers shared by the folders. */
#ifndef LL_TEXT_H
#define LL_TEXT_H

#include <stddef.h>

/* The number of bytes of s to keep when quoting at most max bytes of it ("%.*s") without
 * cutting a UTF-8 character: min(strlen(s), max), moved back to the start of a multibyte
 * character the cut would split. A message that quotes outside text goes into JSON, whose
 * strings must be valid UTF-8 (jansson refuses the rest). */
size_t ll_utf8_cut(const char *s, size_t max);

#endif
