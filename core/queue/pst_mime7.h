/*
 * pst_mime7.h -- 8-bit to 7-bit downgrade of a MIME message (RFC 6152
 * section 3, RFC 2045/2046), for a next hop without 8BITMIME.
 * Pure functions on memory: no I/O, callable from any process.
 */

#ifndef PST_MIME7_H
#define PST_MIME7_H

/* 1 when msg[0..len) has any octet >= 0x80 (or NUL); 0 when 7-bit. */
int pst_mime7_needed(const u_char *msg, size_t len);

/* Rewrite an 8-bit MIME message as 7-bit: every leaf part whose body has
 * 8-bit octets is re-encoded (quoted-printable for text types, base64
 * otherwise) with its Content-Transfer-Encoding replaced; multipart
 * boundaries kept; a non-MIME 8-bit body becomes text/plain;
 * charset=unknown-8bit in quoted-printable, with MIME-Version added.
 * Other header lines are never changed.  PST_OK and *out (the caller
 * pst_buf_destroy()s it); PST_DECLINED when it cannot be done (8-bit
 * octets in a header, nesting deeper than 20, output over max bytes):
 * *why says why (a static string) and the caller fails 5.6.3;
 * PST_ERROR: no memory.  Output lines never exceed 998 octets and end
 * in CRLF. */
int pst_mime7_convert(const u_char *msg, size_t len, size_t max,
    pst_buf_t **out, const char **why);

#endif /* PST_MIME7_H */
