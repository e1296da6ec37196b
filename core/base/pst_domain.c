/*
 * pst_domain.c -- the one form in which domains are compared (public
 * API, postern_module.h): relay control, recipient tables and any module
 * that matches domains use it, so "Example.TEST", "example.test" and an
 * IDNA domain in U-label or A-label form all compare the same.
 *
 * IDNA needs libidn2 (optional at build time, see configure): without it
 * a non-ASCII domain has no form and never matches anything.
 */

#include "pst_core.h"

#if (PST_HAVE_IDN2)
#include <idn2.h>
#endif


int
pst_domain_idna(void)
{
#if (PST_HAVE_IDN2)
    return 1;
#else
    return 0;
#endif
}


static int
pst_domain_literal(char *in, size_t n, u_char *out, size_t size)
{
    char    addr[INET6_ADDRSTRLEN];
    u_char  bin[16];
    int     k;

    /* [192.0.2.1] or [IPv6:2001:db8::1], re-printed canonically */
    if (in[n - 1] != ']') {
        return -1;
    }
    in[n - 1] = '\0';

    if (n > 7 && strncasecmp(in + 1, "IPv6:", 5) == 0) {
        if (inet_pton(AF_INET6, in + 6, bin) != 1
            || inet_ntop(AF_INET6, bin, addr, sizeof(addr)) == NULL)
        {
            return -1;
        }
        k = snprintf((char *) out, size, "[ipv6:%s]", addr);
    } else {
        if (inet_pton(AF_INET, in + 1, bin) != 1
            || inet_ntop(AF_INET, bin, addr, sizeof(addr)) == NULL)
        {
            return -1;
        }
        k = snprintf((char *) out, size, "[%s]", addr);
    }

    return (k > 0 && (size_t) k < size) ? k : -1;
}


int
pst_domain_normalize(const u_char *d, size_t n, u_char *out, size_t size)
{
    char    in[PST_DOMAIN_MAX + 1];
    size_t  i;
    int     idn;

    if (n == 0 || n > PST_DOMAIN_MAX || size < PST_DOMAIN_MAX + 1) {
        return -1;
    }

    memcpy(in, d, n);
    in[n] = '\0';

    if (in[0] == '[') {
        return pst_domain_literal(in, n, out, size);
    }

    idn = 0;
    for (i = 0; i < n; i++) {
        if ((u_char) in[i] >= 0x80) {
            idn = 1;
        }
        if ((i == 0 || in[i - 1] == '.') && n - i >= 4
            && strncasecmp(in + i, "xn--", 4) == 0)
        {
            idn = 1;           /* an A-label: validate it, as for U-labels */
        }
    }

    if (!idn) {
        /* letters, digits, hyphens (and the underscores of DNS names);
         * an empty label ("a..b", ".a") is no domain; a final dot is the
         * caller's to allow or refuse */
        if (in[0] == '.' || strstr(in, "..") != NULL
            || strspn(in, "abcdefghijklmnopqrstuvwxyz"
                          "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") != n)
        {
            return -1;
        }
        for (i = 0; i <= n; i++) {
            out[i] = pst_tolower((u_char) in[i]);
        }
        return (int) n;
    }

#if (PST_HAVE_IDN2)
    {
        char  *a;
        int    k;

        /* UTS #46 mapping (case folding, full-width dots...) then the
         * IDNA2008 rules; A-labels are decoded and checked as well */
        if (idn2_to_ascii_8z(in, &a, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT)
            != IDN2_OK)
        {
            return -1;
        }
        k = (int) strlen(a);
        if ((size_t) k >= size) {
            idn2_free(a);
            return -1;
        }
        memcpy(out, a, (size_t) k + 1);
        idn2_free(a);
        return k;
    }
#else
    return -1;
#endif
}
