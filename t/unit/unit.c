/*
 * Unit-test support: TAP and vector lookup.
 */

#define _POSIX_C_SOURCE 200809L

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "unit.h"


typedef struct {
    char   *key;
    char   *value;
} vec_entry_t;


static int           tests_run;
static int           tests_failed;
static vec_entry_t  *entries;
static size_t        n_entries;


static int vec_cmp(const void *a, const void *b);
static const char *vec_vlookup(const char *fmt, va_list ap);
static void unit_print_hex(const char *label, const void *p, size_t len);


int
unit_ok(int pass, const char *file, int line, const char *fmt, ...)
{
    va_list  ap;

    tests_run++;
    printf("%sok %d - ", pass ? "" : "not ", tests_run);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");

    if (!pass) {
        tests_failed++;
        printf("#   failed at %s line %d\n", file, line);
    }

    fflush(stdout);
    return pass;
}


void
unit_diag(const char *fmt, ...)
{
    va_list  ap;

    printf("# ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}


int
unit_done(void)
{
    printf("1..%d\n", tests_run);
    return tests_failed ? 1 : 0;
}


static int
vec_cmp(const void *a, const void *b)
{
    return strcmp(((const vec_entry_t *) a)->key,
                  ((const vec_entry_t *) b)->key);
}


void
vec_load(void)
{
    FILE         *f;
    char         *line, *sp;
    size_t        cap, n, alloc;
    ssize_t       got;
    const char   *path;
    vec_entry_t  *e;

    path = getenv("VMESS_VECTORS");
    if (path == NULL) {
        path = "objs/vectors.txt";
    }

    f = fopen(path, "r");
    if (f == NULL) {
        printf("Bail out! cannot open vectors %s\n", path);
        exit(2);
    }

    line = NULL;
    cap = 0;
    n = 0;
    alloc = 0;

    while ((got = getline(&line, &cap, f)) > 0) {
        if (line[got - 1] == '\n') {
            line[got - 1] = '\0';
        }

        sp = strchr(line, ' ');
        if (sp == NULL) {
            continue;
        }

        if (n == alloc) {
            alloc = alloc ? alloc * 2 : 1024;
            e = realloc(entries, alloc * sizeof(vec_entry_t));
            if (e == NULL) {
                printf("Bail out! out of memory\n");
                exit(2);
            }
            entries = e;
        }

        *sp = '\0';
        entries[n].key = strdup(line);
        entries[n].value = strdup(sp + 1);
        n++;
    }

    free(line);
    fclose(f);

    qsort(entries, n, sizeof(vec_entry_t), vec_cmp);
    n_entries = n;
}


static const char *
vec_vlookup(const char *fmt, va_list ap)
{
    char          key[512];
    vec_entry_t   probe, *e;

    vsnprintf(key, sizeof(key), fmt, ap);
    probe.key = key;

    e = bsearch(&probe, entries, n_entries, sizeof(vec_entry_t), vec_cmp);

    return e ? e->value : NULL;
}


const char *
vec_str(const char *fmt, ...)
{
    va_list      ap;
    const char  *v;

    va_start(ap, fmt);
    v = vec_vlookup(fmt, ap);
    va_end(ap);

    return v;
}


long long
vec_int(const char *fmt, ...)
{
    va_list      ap;
    const char  *v;

    va_start(ap, fmt);
    v = vec_vlookup(fmt, ap);
    va_end(ap);

    return v ? strtoll(v, NULL, 0) : -1;
}


int
unit_hex_decode(const char *hex, uint8_t *out, size_t cap)
{
    size_t        i, n;
    unsigned int  byte;

    n = strlen(hex);
    if (n % 2 || n / 2 > cap) {
        return -1;
    }

    for (i = 0; i < n / 2; i++) {
        if (sscanf(hex + 2 * i, "%2x", &byte) != 1) {
            return -1;
        }
        out[i] = (uint8_t) byte;
    }

    return (int) (n / 2);
}


uint8_t *
vec_hex(size_t *len, const char *fmt, ...)
{
    va_list      ap;
    uint8_t     *out;
    const char  *v;

    va_start(ap, fmt);
    v = vec_vlookup(fmt, ap);
    va_end(ap);

    if (v == NULL) {
        return NULL;
    }

    out = malloc(strlen(v) / 2 + 1);
    if (out == NULL || unit_hex_decode(v, out, strlen(v) / 2) < 0) {
        free(out);
        return NULL;
    }

    *len = strlen(v) / 2;
    return out;
}


static void
unit_print_hex(const char *label, const void *p, size_t len)
{
    size_t          i;
    const uint8_t  *b = p;

    printf("#   %s (%zu): ", label, len);
    for (i = 0; i < len && i < 96; i++) {
        printf("%02x", b[i]);
    }
    printf("%s\n", len > 96 ? "..." : "");
}


int
unit_mem_eq(const void *got, size_t got_len, const void *want,
    size_t want_len)
{
    if (got_len == want_len && memcmp(got, want, got_len) == 0) {
        return 1;
    }

    unit_print_hex("got ", got, got_len);
    unit_print_hex("want", want, want_len);
    return 0;
}
