/*
 * milter_msg.c -- the end of data for a milter: the header fields as
 * stored (exact white space; our Received: first), end of headers, the
 * body in chunks of at most 64 KiB read from the store one at a time
 * (never the whole message in memory), end of message, and the
 * modifications the filter asks for there, handed to the core's
 * message edit calls (applied before the commit).
 */

#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include "milter.h"

static int milter_msg_header(milter_conn_t *m, const milter_field_t *f);
static int milter_msg_body(milter_conn_t *m);
static int milter_msg_next_frame(milter_conn_t *m, int *wait);
static u_char *milter_msg_read_headers(milter_sess_t *ms, size_t *len);
static void milter_addr(const char *p, size_t n, pst_str_t *out);
static int milter_msg_edit(milter_conn_t *m, int cmd, const char **a,
    size_t *l, int na, uint32_t index);
static int milter_msg_envelope(milter_conn_t *m, int cmd, const char **a,
    size_t *l, int na);


/* The stored header section (without the empty line), in the
 * transaction's memory; ms->body_off set.  NULL on failure. */
static u_char *
milter_msg_read_headers(milter_sess_t *ms, size_t *len)
{
    u_char   *buf, *p, *eol, *end, *n, *copy;
    size_t    size = 0, cap = 16384;
    ssize_t   r;

    buf = malloc(cap);
    if (buf == NULL) {
        return NULL;
    }

    /* until CRLF CRLF, the end of the message, or the limit */
    end = NULL;
    while (end == NULL) {
        if (size == cap) {
            if (cap >= MILTER_HDR_MAX || (n = realloc(buf, cap * 2)) == NULL) {
                break;
            }
            buf = n;
            cap *= 2;
        }
        r = pst_msg_read(ms->s, (off_t) size, buf + size, cap - size);
        if (r < 0) {
            free(buf);
            return NULL;
        }
        if (r == 0) {
            break;
        }
        size += (size_t) r;
        for (p = buf; p < buf + size; p = eol + 1) {
            eol = memchr(p, '\n', (size_t) (buf + size - p));
            if (eol == NULL) {
                break;
            }
            if (eol - p <= 1) {
                end = p;
                break;
            }
        }
    }

    if (end == NULL) {
        end = buf + size;              /* headers only, or over the limit */
        ms->body_off = (off_t) size;
    } else {
        ms->body_off = (off_t) (end - buf) + (end[0] == '\r' ? 2 : 1);
    }

    *len = (size_t) (end - buf);
    copy = pst_palloc(pst_tx_pool(ms->s), *len + 1);
    if (copy != NULL) {
        memcpy(copy, buf, *len);
    }
    free(buf);
    return copy;
}


/* Read the stored header section once per message into fields. */
int
milter_msg_fields(milter_sess_t *ms)
{
    milter_field_t  *f;
    u_char          *p, *eol, *end, *colon;
    size_t           len;

    ms->nfields = 0;
    if (pst_tx_pool(ms->s) == NULL
        || (p = milter_msg_read_headers(ms, &len)) == NULL)
    {
        return PST_ERROR;
    }
    ms->fields = pst_palloc(pst_tx_pool(ms->s),
                            (len / 2 + 1) * sizeof(milter_field_t));
    if (ms->fields == NULL) {
        return PST_ERROR;
    }
    end = p + len;

    f = NULL;
    for ( ; p < end; p = eol) {
        eol = memchr(p, '\n', (size_t) (end - p));
        eol = eol ? eol + 1 : end;
        if ((*p == ' ' || *p == '\t') && f != NULL) {
            f->value.len = (size_t) (eol - f->value.data);
            continue;
        }
        colon = memchr(p, ':', (size_t) (eol - p));
        if (colon == NULL) {
            f = NULL;                  /* not a field: not sent */
            continue;
        }
        f = &ms->fields[ms->nfields++];
        f->name.data = p;
        f->name.len = (size_t) (colon - p);
        while (f->name.len && (p[f->name.len - 1] == ' '
                               || p[f->name.len - 1] == '\t'))
        {
            f->name.len--;
        }
        f->value.data = colon + 1;
        f->value.len = (size_t) (eol - colon - 1);
    }

    return PST_OK;
}


/* "Name\0value\0": the value as stored, the line breaks of its folds
 * as LF (as Sendmail and Postfix send them), without its last line
 * end, and without leading white space unless HDR_LEADSPC. */
static int
milter_msg_header(milter_conn_t *m, const milter_field_t *f)
{
    const u_char  *p, *end;
    u_char         c;

    p = f->value.data;
    end = p + f->value.len;
    while (end > p && (end[-1] == '\n' || end[-1] == '\r')) {
        end--;
    }
    if (!(m->protocol & SMFIP_HDR_LEADSPC)) {
        while (p < end && (*p == ' ' || *p == '\t')) {
            p++;
        }
    }

    if (milter_frame_begin(&m->out, SMFIC_HEADER) != 0
        || milter_put_str(&m->out, f->name.data, f->name.len) != 0)
    {
        return PST_ERROR;
    }
    for ( ; p < end; p++) {
        if (*p == '\r' && p + 1 < end && p[1] == '\n') {
            continue;
        }
        c = *p ? *p : ' ';
        if (milter_put(&m->out, &c, 1) != 0) {
            return PST_ERROR;
        }
    }
    if (milter_put(&m->out, "", 1) != 0) {
        return PST_ERROR;
    }
    return milter_frame_end(&m->out);
}


/* One body chunk: 1 sent, 0 the body is over, -1 failed. */
static int
milter_msg_body(milter_conn_t *m)
{
    u_char   buf[MILTER_CHUNK_MAX];
    ssize_t  n;

    n = pst_msg_read(m->ms->s, m->ms->body_off + m->off, buf, sizeof(buf));
    if (n < 0) {
        return -1;
    }
    if (n == 0) {
        return 0;
    }
    m->off += n;
    if (milter_frame(&m->out, SMFIC_BODY, buf, (size_t) n) != 0) {
        return -1;
    }
    return 1;
}


/* Queue the next frame of the end of data: 1 queued (*wait: a reply
 * is due), 0 nothing more (the end of message was sent), -1 failed. */
static int
milter_msg_next_frame(milter_conn_t *m, int *wait)
{
    milter_sess_t  *ms = m->ms;
    int             rc;

    for ( ;; ) {
        switch (m->mstep) {

        case MILTER_M_HEADERS:
            if ((m->protocol & SMFIP_NOHDRS) || m->field >= ms->nfields) {
                m->mstep = MILTER_M_EOH;
                continue;
            }
            *wait = !(m->protocol & SMFIP_NR_HDR);
            return milter_msg_header(m, &ms->fields[m->field++]) == PST_OK
                   ? 1 : -1;

        case MILTER_M_EOH:
            m->mstep = MILTER_M_BODY;
            if (m->protocol & SMFIP_NOEOH) {
                continue;
            }
            *wait = !(m->protocol & SMFIP_NR_EOH);
            return milter_put_macros(m, SMFIM_EOH, SMFIC_EOH) == PST_OK
                   && milter_frame(&m->out, SMFIC_EOH, NULL, 0) == 0
                   ? 1 : -1;

        case MILTER_M_BODY:
            rc = (m->protocol & SMFIP_NOBODY) ? 0 : milter_msg_body(m);
            if (rc == 0) {
                m->mstep = MILTER_M_EOM;
                continue;
            }
            *wait = !(m->protocol & SMFIP_NR_BODY);
            /* unanswered chunks: the next is read once this one has left */
            m->draining = !*wait;
            return rc;

        case MILTER_M_EOM:
            m->mstep = MILTER_M_DONE;
            *wait = 1;
            return milter_put_macros(m, SMFIM_EOM, SMFIC_BODYEOB) == PST_OK
                   && milter_frame(&m->out, SMFIC_BODYEOB, NULL, 0) == 0
                   ? 1 : -1;

        default:
            return 0;
        }
    }
}


int
milter_msg_step(milter_conn_t *m)
{
    int  rc, wait;

    for ( ;; ) {
        wait = 0;
        rc = milter_msg_next_frame(m, &wait);
        if (rc == 0) {
            return 0;
        }
        if (rc < 0) {
            milter_fail(m, "cannot send the message");
            return -1;
        }
        if (milter_send(m, wait) != PST_OK) {
            milter_fail(m, "write failed");
            return -1;
        }
        if (wait || (m->draining && m->out.len)) {
            return 1;
        }
        m->draining = 0;
    }
}


static void
milter_addr(const char *p, size_t n, pst_str_t *out)
{
    if (n >= 2 && p[0] == '<' && p[n - 1] == '>') {
        p++;
        n -= 2;
    }
    out->data = (u_char *) p;
    out->len = n;
}


int
milter_msg_modify(milter_conn_t *m, int cmd, const u_char *data, size_t len)
{
    const char  *a[3];
    size_t       l[3];
    uint32_t     index = 0;
    int          na;

    switch (cmd) {
    case SMFIR_ADDRCPT: case SMFIR_ADDRCPT_PAR: case SMFIR_DELRCPT:
    case SMFIR_CHGFROM: case SMFIR_ADDHEADER: case SMFIR_INSHEADER:
    case SMFIR_CHGHEADER: case SMFIR_REPLBODY: case SMFIR_QUARANTINE:
        break;
    default:
        return 0;
    }

    if (m->mstep != MILTER_M_DONE) {
        milter_fail(m, "sent a modification before the end of message");
        return 1;
    }

    if (cmd == SMFIR_REPLBODY) {
        if (!(m->actions & SMFIF_CHGBODY)
            || pst_msg_replace_body(m->ms->s, data, len) != PST_OK)
        {
            milter_fail(m, "could not replace the body");
        }
        return 1;
    }

    if (cmd == SMFIR_INSHEADER || cmd == SMFIR_CHGHEADER) {
        if (len < 4) {
            milter_fail(m, "sent a malformed header change");
            return 1;
        }
        memcpy(&index, data, 4);
        index = ntohl(index);
        data += 4;
        len -= 4;
    }

    na = milter_strings(data, len, a, l, 3);
    if (na < 1) {
        milter_fail(m, "sent a malformed modification");
        return 1;
    }

    if (milter_msg_edit(m, cmd, a, l, na, index) != PST_OK) {
        milter_fail(m, "sent a modification that was refused");
    }
    return 1;
}


/* The envelope: sender, recipients, and the quarantine mark. */
static int
milter_msg_envelope(milter_conn_t *m, int cmd, const char **a, size_t *l,
    int na)
{
    static const uint32_t  need[] = { SMFIF_QUARANTINE, SMFIF_ADDRCPT,
                                      SMFIF_ADDRCPT_PAR, SMFIF_DELRCPT,
                                      SMFIF_CHGFROM };
    static const char      cmds[] = { SMFIR_QUARANTINE, SMFIR_ADDRCPT,
                                      SMFIR_ADDRCPT_PAR, SMFIR_DELRCPT,
                                      SMFIR_CHGFROM };
    pst_session_t         *s = m->ms->s;
    pst_str_t              x, y, *py;
    size_t                 i;

    /* the action the request needs must have been negotiated */
    i = 0;
    while (i < sizeof(cmds) && cmds[i] != cmd) {
        i++;
    }
    if (i == sizeof(cmds) || !(m->actions & need[i])) {
        return PST_ERROR;
    }

    milter_addr(a[0], l[0], &x);
    y.data = (u_char *) (na > 1 ? a[1] : "");
    y.len = na > 1 ? l[1] : 0;
    py = na > 1 ? &y : NULL;

    switch (cmd) {
    case SMFIR_QUARANTINE:
        milter_log(m, PST_LOG_NOTICE, "quarantine: %.*s", (int) l[0], a[0]);
        m->ms->hold = 1;
        return PST_OK;
    case SMFIR_ADDRCPT:
    case SMFIR_ADDRCPT_PAR:
        return pst_tx_add_rcpt(s, &x, py);
    case SMFIR_DELRCPT:
        return pst_tx_del_rcpt(s, &x) == PST_ERROR ? PST_ERROR : PST_OK;
    default:
        return pst_tx_set_sender(s, &x, py);
    }
}


/* Header fields: add, insert at index, change the index-th of a name. */
static int
milter_msg_edit(milter_conn_t *m, int cmd, const char **a, size_t *l,
    int na, uint32_t index)
{
    pst_session_t  *s = m->ms->s;
    pst_str_t       x, y;
    u_char         *v;
    int             lead;

    if (cmd != SMFIR_ADDHEADER && cmd != SMFIR_INSHEADER
        && cmd != SMFIR_CHGHEADER)
    {
        return milter_msg_envelope(m, cmd, a, l, na);
    }

    if (!(m->actions & (cmd == SMFIR_CHGHEADER ? SMFIF_CHGHDRS
                                               : SMFIF_ADDHDRS))
        || na != 2)
    {
        return PST_ERROR;
    }
    x.data = (u_char *) a[0];
    x.len = l[0];
    if (cmd == SMFIR_CHGHEADER && l[1] == 0) {
        return pst_msg_change_header(s, &x, index, NULL);
    }

    /* what follows the colon: a space unless the filter gives its own */
    lead = !(m->protocol & SMFIP_HDR_LEADSPC);
    v = pst_palloc(pst_tx_pool(s), l[1] + 1);
    if (v == NULL) {
        return PST_ERROR;
    }
    v[0] = ' ';
    memcpy(v + lead, a[1], l[1]);
    y.data = v;
    y.len = l[1] + (size_t) lead;

    if (cmd == SMFIR_CHGHEADER) {
        return pst_msg_change_header(s, &x, index ? index : 1, &y);
    }
    return pst_msg_insert_header(s, cmd == SMFIR_ADDHEADER
                                    ? PST_MSG_HEADER_END : index, &x, &y);
}
