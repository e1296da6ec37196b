/*
 * fuzz_mta_sts.c -- libFuzzer harness for MTA-STS's parsers
 * (pst_mta_sts_parse.c), whose input a remote web server and DNS zone
 * control: the policy file, the TXT records and the MX host matched.
 * Whatever they hold: no crash, and an accepted policy is sane (a known
 * mode, max_age within a year, at most PST_STS_MAX_MX lower-case
 * patterns of 1 to 253 bytes, some when the mode is not none).
 *
 * Input: byte 0 splits the rest: the first (byte 0 * 4) bytes are the
 * host name and the TXT strings (NUL-separated), the rest the policy.
 */

#include "pst_core.h"
#include "pst_mta_sts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pst_sts_policy_t  p;
    char              head[1024 + 1], id[33];
    const char       *txt[8];
    size_t            split, i, n;
    pst_uint_t        k, ntxt = 0;

    if (size < 1) {
        return 0;
    }
    split = pst_min((size_t) data[0] * 4, size - 1);
    split = pst_min(split, sizeof(head) - 1);
    memcpy(head, data + 1, split);
    head[split] = '\0';

    /* the host, then the TXT strings */
    for (i = strlen(head) + 1; i < split && ntxt < 8; i += n + 1) {
        txt[ntxt++] = head + i;
        n = strlen(head + i);
    }
    if (pst_sts_txt_id(txt, ntxt, id, sizeof(id)) == PST_OK
        && (strlen(id) == 0 || strlen(id) > 32))
    {
        abort();
    }

    if (pst_sts_parse(data + 1 + split, size - 1 - split, &p) != PST_OK) {
        return 0;
    }
    if ((p.mode != PST_STS_NONE && p.mode != PST_STS_TESTING
         && p.mode != PST_STS_ENFORCE)
        || p.max_age < 0 || p.max_age > PST_STS_MAX_AGE
        || p.nmx > PST_STS_MAX_MX || (p.mode != PST_STS_NONE && p.nmx == 0))
    {
        abort();
    }
    for (k = 0; k < p.nmx; k++) {
        n = strlen(p.mx[k]);
        if (n == 0 || n > 253) {
            abort();
        }
        for (i = 0; i < n; i++) {
            if (p.mx[k][i] >= 'A' && p.mx[k][i] <= 'Z') {
                abort();
            }
        }
    }
    (void) pst_sts_mx_match(&p, head);
    pst_sts_policy_free(&p);
    return 0;
}
