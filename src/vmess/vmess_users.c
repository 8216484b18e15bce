/*
 * User table: per-user keys, AuthID trial, legacy time-window index.
 */

#include <string.h>

#include <openssl/crypto.h>

#include "vmess.h"


int
vmess_user_init(vmess_user_t *u, const uint8_t id[16], uint16_t alter_ids,
    void *data)
{
    int  rc;

    memset(u, 0, sizeof(vmess_user_t));
    memcpy(u->id, id, 16);
    u->alter_ids = alter_ids;
    u->data = data;

    rc = vmess_cmd_key(u->id, u->cmd_key);
    if (rc != VMESS_OK) {
        return rc;
    }

    rc = vmess_authid_key(u->cmd_key, u->authid_key);
    if (rc != VMESS_OK) {
        return rc;
    }

    /* the key schedule is made once: a trial is then one block */
    u->authid_ctx = EVP_CIPHER_CTX_new();

    if (u->authid_ctx == NULL
        || !EVP_DecryptInit_ex(u->authid_ctx, EVP_aes_128_ecb(), NULL,
                               u->authid_key, NULL)
        || !EVP_CIPHER_CTX_set_padding(u->authid_ctx, 0))
    {
        vmess_user_free(u);
        return VMESS_ERR_CRYPTO;
    }

    return VMESS_OK;
}


void
vmess_user_free(vmess_user_t *u)
{
    EVP_CIPHER_CTX_free(u->authid_ctx);
    OPENSSL_cleanse(u, sizeof(vmess_user_t));
}
