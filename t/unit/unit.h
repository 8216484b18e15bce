/*
 * Unit-test support: TAP output and the flattened known-answer vectors
 * (t/unit/flatten_vectors.pl).  Tests print TAP; t/unit.t runs them.
 */

#ifndef UNIT_H
#define UNIT_H

#include <stddef.h>
#include <stdint.h>


#define ok(cond, ...)   unit_ok((cond) != 0, __FILE__, __LINE__, __VA_ARGS__)

int unit_ok(int pass, const char *file, int line, const char *fmt, ...);
/* prints the plan and returns the exit status: 0 if all passed */
int unit_done(void);
void unit_diag(const char *fmt, ...);

/* loads $VMESS_VECTORS (default objs/vectors.txt); exits on failure */
void vec_load(void);
/* value of "file.path.key", or NULL; printf-style key */
const char *vec_str(const char *fmt, ...);
long long vec_int(const char *fmt, ...);
/* hex value decoded into a malloc'ed buffer (free it); *len its size;
 * NULL if the key is missing */
uint8_t *vec_hex(size_t *len, const char *fmt, ...);

int unit_hex_decode(const char *hex, uint8_t *out, size_t cap);
/* compares and on mismatch prints both in hex as a diagnostic */
int unit_mem_eq(const void *got, size_t got_len, const void *want,
    size_t want_len);

#endif /* UNIT_H */
