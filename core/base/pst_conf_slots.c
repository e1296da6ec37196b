/*
 * pst_conf_slots.c -- directive setters for what plugins keep asking
 * for (postern_module.h, ABI 1.2 additions): a regular expression
 * (PCRE2, compiled once, JIT when the CPU allows) and a domain list
 * (IDNA to A-labels, lower case, ".example.com" for subdomains), with
 * their matchers.
 */

#include "pst_core.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

struct pst_regex_s {
    pcre2_code                  *code;
};


static void
pst_regex_free(void *data)
{
    pcre2_code_free(data);
}


char *
pst_conf_set_regex_slot(pst_conf_t *cf, const pst_command_t *cmd,
    void *conf)
{
    pst_regex_t  **rp = (pst_regex_t **) ((u_char *) conf + cmd->offset);
    pst_str_t     *a = cf->args->elts;
    PCRE2_UCHAR    msg[256];
    PCRE2_SIZE     off;
    int            err;

    if (*rp != NULL && *rp != PST_CONF_UNSET_PTR) {
        return "is duplicate";
    }
    *rp = pst_pcalloc(cf->pool, sizeof(pst_regex_t));
    if (*rp == NULL) {
        return PST_CONF_ERROR;
    }
    (*rp)->code = pcre2_compile(a[1].data, a[1].len, PCRE2_UTF, &err, &off,
                                NULL);
    if ((*rp)->code == NULL) {
        pcre2_get_error_message(err, msg, sizeof(msg));
        pst_conf_error(cf, "invalid regular expression \"%s\": %s at offset"
                       " %zu", a[1].data, (char *) msg, (size_t) off);
        return PST_CONF_ERROR;
    }
    if (pst_pool_cleanup_add(cf->pool, pst_regex_free, (*rp)->code)
        != PST_OK)
    {
        pcre2_code_free((*rp)->code);
        return PST_CONF_ERROR;
    }
    (void) pcre2_jit_compile((*rp)->code, PCRE2_JIT_COMPLETE);
    return PST_CONF_OK;
}


int
pst_regex_match(const pst_regex_t *re, const u_char *s, size_t n)
{
    static __thread pcre2_match_data  *md;
    int                                rc;

    if (md == NULL) {
        md = pcre2_match_data_create(1, NULL);
        if (md == NULL) {
            return -1;
        }
    }
    rc = pcre2_match(re->code, s, n, 0, 0, md, NULL);
    if (rc >= 0) {
        return 1;
    }
    return rc == PCRE2_ERROR_NOMATCH ? 0 : -1;
}


char *
pst_conf_set_domain_array_slot(pst_conf_t *cf, const pst_command_t *cmd,
    void *conf)
{
    pst_array_t  **ap = (pst_array_t **) ((u_char *) conf + cmd->offset);
    pst_str_t     *a = cf->args->elts, *d;
    u_char         norm[PST_DOMAIN_MAX + 2];
    pst_uint_t     i;
    size_t         dot;
    int            n;

    if (*ap == PST_CONF_UNSET_PTR || *ap == NULL) {
        *ap = pst_array_create(cf->pool, 4, sizeof(pst_str_t));
        if (*ap == NULL) {
            return PST_CONF_ERROR;
        }
    }
    for (i = 1; i < cf->args->nelts; i++) {
        dot = (a[i].len > 1 && a[i].data[0] == '.');
        n = pst_domain_normalize(a[i].data + dot, a[i].len - dot,
                                 norm + dot, sizeof(norm) - dot);
        if (n <= 0 || memchr(norm + dot, '.', (size_t) n) == NULL
            || norm[dot] == '.' || norm[dot + n - 1] == '.')
        {
            pst_conf_error(cf, "\"%s\" is not a domain (example.com, or"
                           " .example.com for its subdomains)", a[i].data);
            return PST_CONF_ERROR;
        }
        norm[0] = dot ? '.' : norm[0];
        d = pst_array_push(*ap);
        if (d == NULL) {
            return PST_CONF_ERROR;
        }
        d->len = (size_t) n + dot;
        d->data = pst_palloc(cf->pool, d->len + 1);
        if (d->data == NULL) {
            return PST_CONF_ERROR;
        }
        memcpy(d->data, norm, d->len);
        d->data[d->len] = '\0';
    }
    return PST_CONF_OK;
}


int
pst_domain_listed(const pst_array_t *list, const u_char *domain, size_t len)
{
    u_char      norm[PST_DOMAIN_MAX + 1];
    pst_str_t  *d;
    pst_uint_t  i;
    int         n;

    if (list == NULL || list == PST_CONF_UNSET_PTR) {
        return 0;
    }
    n = pst_domain_normalize(domain, len, norm, sizeof(norm));
    if (n <= 0) {
        return 0;
    }
    d = list->elts;
    for (i = 0; i < list->nelts; i++) {
        if (d[i].data[0] != '.') {
            if (d[i].len == (size_t) n && memcmp(d[i].data, norm, n) == 0) {
                return 1;
            }
        } else if ((size_t) n > d[i].len
                   && memcmp(norm + n - d[i].len, d[i].data, d[i].len) == 0)
        {
            return 1;                       /* a subdomain */
        }
    }
    return 0;
}
