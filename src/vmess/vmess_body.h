/*
 * The body codec's internals, shared by its three files: vmess_body.c
 * (keying, sealing), vmess_body_open.c (opening) and vmess_response.c
 * (the response header).  Not part of the core's API, which is vmess.h.
 */

#ifndef VMESS_BODY_H
#define VMESS_BODY_H

#include <openssl/evp.h>

#include "vmess.h"

#define VMESS_BODY_READ_LEN     0   /* collecting a length field */
#define VMESS_BODY_READ_DATA    1   /* collecting Sealed || Padding */
#define VMESS_BODY_FAILED       2   /* an error ended the stream */

#define VMESS_CFB_UNSET         0
#define VMESS_CFB_ENCRYPT       1
#define VMESS_CFB_DECRYPT       2

#define VMESS_TAG_LEN           16
#define VMESS_FNV_LEN           4
#define VMESS_NONCE_LEN         12
#define VMESS_LEN_FIELD         2
#define VMESS_LEN_FIELD_SEALED  (2 + VMESS_TAG_LEN)
#define VMESS_PAD_MAX           63


int vmess_aead_seal(EVP_CIPHER_CTX *ctx, const uint8_t *nonce,
    const uint8_t *in, size_t len, uint8_t *out, uint8_t *tag);
int vmess_aead_open(EVP_CIPHER_CTX *ctx, const uint8_t *nonce,
    const uint8_t *in, size_t len, uint8_t *out);
int vmess_cipher_update(EVP_CIPHER_CTX *ctx, uint8_t *out,
    const uint8_t *in, size_t len);
int vmess_body_cfb_start(vmess_body_t *b, int role);
int vmess_body_cfb_copy(vmess_body_t *b, int role, uint8_t *out,
    const uint8_t *in, size_t len);
void vmess_body_forget_key(vmess_body_t *b);
void vmess_body_nonce(uint8_t nonce[VMESS_NONCE_LEN], uint16_t count,
    const uint8_t iv[16]);
int vmess_body_nonce_check(const vmess_body_t *b);
void vmess_body_count(vmess_body_t *b);


#endif /* VMESS_BODY_H */
