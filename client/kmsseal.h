/*
 * kmsseal.h: libkmsclient internals of kmsseal.c for the unit tests.
 *
 * Not installed, not exported (the library's version script keeps only
 * kms_*): a fixed nonce is how a test reproduces the published Lockbox
 * vectors byte for byte, and never what an application should do.
 */
#ifndef KMSD_KMSSEAL_H
#define KMSD_KMSSEAL_H

#include <stddef.h>

#include "kmsclient.h"

/* kms_box_seal with the caller's KMS_BOX_NONCE_LEN nonce instead of a
 * random one. */
int kmsseal_seal_nonce(const unsigned char key[KMS_DATA_KEY_LEN],
    const unsigned char nonce[KMS_BOX_NONCE_LEN], const void *pt, size_t len,
    const void *ad, size_t ad_len, unsigned char **ret_box,
    size_t *ret_box_len, kms_error *err);

#endif
