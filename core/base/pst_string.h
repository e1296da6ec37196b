/*
 * pst_string.h -- counted strings and the encodings SMTP needs.
 *
 * pst_str_t is {len, data}; bytes from the wire are never assumed to be
 * NUL-terminated.  Encoders write into caller buffers and return the
 * number of bytes written (or -1 when the input is malformed or the
 * output does not fit).
 */

#ifndef PST_STRING_H
#define PST_STRING_H

#define pst_tolower(c)                                                       \
    (u_char) (((c) >= 'A' && (c) <= 'Z') ? ((c) | 0x20) : (c))
#define pst_toupper(c)                                                       \
    (u_char) (((c) >= 'a' && (c) <= 'z') ? ((c) & ~0x20) : (c))

void pst_strlow(u_char *dst, const u_char *src, size_t n);
/* Parse a non-negative decimal integer of the whole string; -1 if not a
 * number or larger than max. */
int64_t pst_atoi(const u_char *p, size_t n, int64_t max);

/* base64 (RFC 4648), strict: no whitespace, correct padding. */
size_t pst_base64_encoded_length(size_t n);
size_t pst_base64_encode(u_char *dst, const u_char *src, size_t n);
ssize_t pst_base64_decode(u_char *dst, const u_char *src, size_t n);

/* xtext (RFC 3461 section 4).  decode rejects malformed input. */
ssize_t pst_xtext_decode(u_char *dst, const u_char *src, size_t n);
/* Encoded length of src, and the encoder (dst must hold that many). */
size_t pst_xtext_encoded_length(const u_char *src, size_t n);
size_t pst_xtext_encode(u_char *dst, const u_char *src, size_t n);

/* Address to text without port ("192.0.2.1", "2001:db8::1"). */
size_t pst_sock_ntop(const struct sockaddr *sa, u_char *text, size_t len,
    int with_port);

/* Copy a string with control characters (and non-ASCII when ascii_only)
 * replaced by '?', for logs and trace headers.  Returns bytes written. */
size_t pst_sanitize(u_char *dst, size_t size, const u_char *src, size_t n);

/* Copy bytes escaped for a log line: \r \n \t \\ and \xNN for other
 * control characters and non-ASCII; the output (NUL-terminated) stops
 * before an escape that would not fit.  Returns bytes written. */
size_t pst_escape(u_char *dst, size_t size, const u_char *src, size_t n);

/* A name that goes into headers, log lines and protocol parameters
 * as it is (node_name, XP-NODE): 1 to PST_NAME_MAX bytes of letters,
 * digits, '-', '_' and '.', the first a letter or a digit.  64 is
 * Linux's HOST_NAME_MAX, so a host name fits.  PST_OK or PST_ERROR. */
#define PST_NAME_MAX             64
int pst_name_check(const u_char *p, size_t n);

/* RFC 5322 date: "Sun, 22 Nov 2026 20:55:39 +0000". */
size_t pst_rfc5322_date(time_t t, u_char *buf, size_t size);

#endif /* PST_STRING_H */
