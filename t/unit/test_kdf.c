/*
 * Known-answer tests: UUID, cmdKey, alter IDs, KDF, AuthID, checksums,
 * dynamic port IDs.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmess.h"
#include "unit.h"


static void
test_ids(void)
{
    char        text[37];
    size_t      len, i, count;
    uint8_t     id[16], key[16], prev[16], next[16];
    uint8_t    *want;
    const char *uuid;

    uuid = vec_str("ids.uuid");
    ok(uuid != NULL, "ids.json loaded");
    if (uuid == NULL) {
        return;
    }

    ok(vmess_uuid_parse(uuid, strlen(uuid), id) == VMESS_OK, "parse uuid");
    want = vec_hex(&len, "ids.uuid_bytes");
    ok(unit_mem_eq(id, 16, want, len), "uuid bytes");
    free(want);

    vmess_uuid_format(id, text);
    ok(strcmp(text, uuid) == 0, "uuid format round trip");

    ok(vmess_uuid_parse("b831381d63244d53ad4f8cda48b30811", 32, key)
       == VMESS_OK && memcmp(key, id, 16) == 0, "uuid without dashes");
    ok(vmess_uuid_parse("b831381d-6324-4d53-ad4f-8cda48b3081", 35, key)
       == VMESS_ERR_BAD_UUID, "short uuid refused");
    ok(vmess_uuid_parse("b831381d-6324-4d53-ad4f-8cda48b3081g", 36, key)
       == VMESS_ERR_BAD_UUID, "non-hex uuid refused");
    ok(vmess_uuid_parse("b831381d06324-4d53-ad4f-8cda48b30811", 36, key)
       == VMESS_ERR_BAD_UUID, "misplaced dash refused");

    ok(vmess_cmd_key(id, key) == VMESS_OK, "cmd key computed");
    want = vec_hex(&len, "ids.cmd_key");
    ok(unit_mem_eq(key, 16, want, len), "cmd key");
    free(want);

    count = (size_t) vec_int("ids.alter_ids.count");
    ok(count == 4, "four alter ids in vectors");
    memcpy(prev, id, 16);

    for (i = 0; i < count; i++) {
        ok(vmess_alter_id_next(prev, next) == VMESS_OK, "alter id %zu", i);
        want = vec_hex(&len, "ids.alter_ids.%zu.bytes", i);
        ok(unit_mem_eq(next, 16, want, len), "alter id %zu bytes", i);
        free(want);

        vmess_cmd_key(next, key);
        want = vec_hex(&len, "ids.alter_ids.%zu.cmd_key", i);
        ok(unit_mem_eq(key, 16, want, len), "alter id %zu cmd key", i);
        free(want);

        memcpy(prev, next, 16);
    }
}


static void
test_kdf(void)
{
    size_t          i, j, n, len, key_len, count;
    uint8_t         out[32];
    uint8_t        *key, *want, *parts[4];
    vmess_bytes_t   path[4];

    count = (size_t) vec_int("kdf.cases.count");
    ok(count >= 13, "kdf cases present (%zu)", count);

    for (i = 0; i < count; i++) {
        key = vec_hex(&key_len, "kdf.cases.%zu.key", i);
        n = (size_t) vec_int("kdf.cases.%zu.path_hex.count", i);

        for (j = 0; j < n && j < 4; j++) {
            parts[j] = vec_hex(&len, "kdf.cases.%zu.path_hex.%zu", i, j);
            path[j].data = parts[j];
            path[j].len = len;
        }

        want = vec_hex(&len, "kdf.cases.%zu.kdf", i);

        ok(key != NULL && want != NULL
           && vmess_kdf(key, key_len, path, n, out) == VMESS_OK
           && unit_mem_eq(out, 32, want, len),
           "kdf case %zu (depth %zu)", i, n);

        for (j = 0; j < n && j < 4; j++) {
            free(parts[j]);
        }

        free(key);
        free(want);
    }

    ok(vmess_kdf(out, 16, path, 5, out) == VMESS_ERR_INVALID,
       "kdf depth over 4 refused");
}


static void
test_authid(void)
{
    size_t    len;
    uint8_t   key[16], authid[16];
    uint8_t  *cmd_key, *want, *rnd;

    cmd_key = vec_hex(&len, "authid.cmd_key");
    rnd = vec_hex(&len, "authid.random");

    ok(vmess_authid_key(cmd_key, key) == VMESS_OK, "authid key computed");
    want = vec_hex(&len, "authid.aes_key");
    ok(unit_mem_eq(key, 16, want, len), "authid key");
    free(want);

    ok(vmess_authid_seal(key, vec_int("authid.timestamp"), rnd, authid)
       == VMESS_OK, "authid sealed");
    want = vec_hex(&len, "authid.authid");
    ok(unit_mem_eq(authid, 16, want, len), "authid");
    free(want);

    want = vec_hex(&len, "authid.plain");
    ok(want != NULL
       && vmess_crc32(want, 12) == (uint32_t) strtoul(
              vec_str("authid.crc32_ieee"), NULL, 16),
       "crc32 of authid plaintext");
    free(want);

    free(cmd_key);
    free(rnd);
}


static void
test_checksums(void)
{
    ok(vmess_fnv1a((const uint8_t *) "a", 1) == 0xe40c292c, "fnv1a of 'a'");
    ok(vmess_fnv1a(NULL, 0) == 0x811c9dc5, "fnv1a of nothing");
    ok(vmess_crc32((const uint8_t *) "123456789", 9) == 0xcbf43926,
       "crc32 check value");
}


/* expected bytes computed with Perl's Digest::SHA (hmac_sha256), then the
 * version and variant bits set by hand */

static void
test_dynamic_id(void)
{
    uint8_t            id[16], want[16], got[16], other[16];
    static const char  secret[] = "a dynamic port secret";

    unit_hex_decode("b831381d63244d53ad4f8cda48b30811", id, sizeof(id));
    unit_hex_decode("8045a213f688478db39917e6bfe271d4", want, sizeof(want));

    ok(vmess_dynamic_id((const uint8_t *) secret, sizeof(secret) - 1,
                        29466000, id, got)
       == VMESS_OK, "dynamic id computed");
    ok(unit_mem_eq(got, 16, want, 16), "dynamic id bytes");

    vmess_dynamic_id((const uint8_t *) secret, sizeof(secret) - 1, 29466001,
                     id, other);
    ok(memcmp(got, other, 16) != 0, "next period, other id");

    vmess_dynamic_id((const uint8_t *) secret, sizeof(secret) - 2, 29466000,
                     id, other);
    ok(memcmp(got, other, 16) != 0, "other secret, other id");
}


int
main(void)
{
    vec_load();

    test_ids();
    test_kdf();
    test_authid();
    test_checksums();
    test_dynamic_id();

    return unit_done();
}
