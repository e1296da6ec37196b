/*
 * fuzz_milter.c -- libFuzzer harness for what the milter client reads
 * from a filter (modules/milter/milter_codec.c): frames cut from the
 * stream the way milter_conn.c cuts them, and each frame through the
 * parser its letter selects (OPTNEG reply, NUL-ended strings of a
 * modification, reply code, macro lists).
 *
 * Invariants checked besides the sanitizers: a frame never claims more
 * bytes than it was given and re-encodes to the same bytes; a reply code
 * is 4xx or 5xx, its enhanced code of the same class or empty, its text
 * without CR, LF or NUL; OPTNEG macro lists lie inside the frame.
 *
 * The codec is plain C without the Postern API: it is compiled into the
 * harness directly.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../modules/milter/milter_codec.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static void
fz_check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_milter: invariant failed: %s\n", what);
        abort();
    }
}


static void
fz_frame(int cmd, const u_char *d, size_t len)
{
    milter_optneg_t  o;
    const char      *a[3];
    size_t           l[3], i;
    char             ecode[16], text[384];
    int              code, n;

    switch (cmd) {

    case SMFIC_OPTNEG:
        if (milter_parse_optneg(d, len, &o) == 0) {
            for (i = 0; i < MILTER_STAGES; i++) {
                if (o.macros[i] != NULL) {
                    fz_check(o.macros[i] >= d
                             && o.macros[i] + o.macros_len[i] < d + len,
                             "macro list inside the frame");
                    (void) milter_macro_listed(o.macros[i], o.macros_len[i],
                                               "{client_addr}");
                }
            }
        }
        break;

    case SMFIR_REPLYCODE:
        if (milter_parse_replycode(d, len, &code, ecode, sizeof(ecode),
                                   text, sizeof(text)) == 0)
        {
            fz_check(code >= 400 && code <= 599, "reply class");
            fz_check(ecode[0] == '\0' || ecode[0] == '0' + code / 100,
                     "enhanced code class");
            fz_check(strpbrk(text, "\r\n") == NULL, "CR or LF in text");
            fz_check(strlen(text) < sizeof(text), "text bound");
        }
        break;

    default:
        n = milter_strings(len >= 4 ? d + 4 : d, len >= 4 ? len - 4 : len,
                           a, l, 3);
        fz_check(n <= 3, "string count");
        for (i = 0; n > 0 && i < (size_t) n; i++) {
            fz_check(strlen(a[i]) == l[i], "string length");
        }
        break;
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    milter_buf_t   b = { 0 };
    const u_char  *d;
    size_t         len, off;
    ssize_t        k;
    int            cmd;

    for (off = 0; off < size; off += (size_t) k) {
        k = milter_frame_parse(data + off, size - off, &cmd, &d, &len);
        if (k <= 0) {
            break;
        }
        fz_check((size_t) k <= size - off && (size_t) k == len + 5,
                 "frame length");

        /* the encoder gives the same bytes back */
        b.len = 0;
        b.start = 0;
        fz_check(milter_frame(&b, cmd, d, len) == 0, "re-encode");
        fz_check(b.len == (size_t) k && memcmp(b.data, data + off, b.len) == 0,
                 "re-encoded frame differs");

        fz_frame(cmd, d, len);
    }

    milter_buf_free(&b);
    return 0;
}
