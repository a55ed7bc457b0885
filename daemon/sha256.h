/* sha256 — SHA-256 (FIPS 180-4) of a byte buffer, for the hash of every raw station payload.
 *
 * None of our dependencies exports a hash function, so this is a small, plain
 * implementation of the FIPS 180-4 algorithm (one pass over a complete buffer; no streaming).
 * It is checked against the FIPS test vectors ("abc", the empty string, the 448-bit message
 * and one million 'a') in tests/unit/test_sha256.c. Used only for integrity (the store keeps
 * sha256(raw) next to every raw measurement so a station can prove what it sent), never for
 * security decisions.
 */
#ifndef SHA256_H
#define SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_DIGEST_LEN 32
#define SHA256_HEX_LEN 65 /* 64 hex digits and the terminating NUL */

/* Computes the SHA-256 digest of data[0..len) into ret_digest. */
void sha256(const void *data, size_t len, uint8_t ret_digest[SHA256_DIGEST_LEN]);

/* Computes the digest and writes it as 64 lowercase hex digits and a NUL into ret_hex. */
void sha256_hex(const void *data, size_t len, char ret_hex[SHA256_HEX_LEN]);

#endif
