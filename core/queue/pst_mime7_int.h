/*
 * pst_mime7_int.h -- shared between pst_mime7.c (the walk over the MIME
 * tree) and pst_mime7_enc.c (the encoders).
 */

#ifndef PST_MIME7_INT_H
#define PST_MIME7_INT_H

typedef struct {
    pst_buf_t           *out;
    size_t               max;        /* bytes of output at most */
    const char          *why;        /* a static string, for DECLINED */
} pst_m7_t;

/* Append n bytes: PST_OK, PST_DECLINED (over max), PST_ERROR (memory). */
int pst_m7_put(pst_m7_t *c, const void *p, size_t n);
/* The body p[0..n) encoded, lines of at most 76 octets ending in CRLF;
 * the input's CRLFs stay hard line breaks in quoted-printable. */
int pst_m7_qp(pst_m7_t *c, const u_char *p, size_t n);
int pst_m7_base64(pst_m7_t *c, const u_char *p, size_t n);

#endif /* PST_MIME7_INT_H */
