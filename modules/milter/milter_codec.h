/*
 * milter_codec.h -- the milter wire format (Sendmail's libmilter
 * protocol, version 6): frames, command and reply letters, option
 * negotiation, and the parsers of what a filter may send.
 *
 * Pure code: no I/O, no Postern API, so that the unit test and the
 * fuzz target link it alone.  A frame is a 32-bit length in network
 * order (the command letter included), the letter, then the data.
 */

#ifndef MILTER_CODEC_H
#define MILTER_CODEC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define MILTER_VERSION          6
#define MILTER_FRAME_MAX        (1024 * 1024)  /* data bytes we accept */
#define MILTER_CHUNK_MAX        65535          /* body chunk we send */

/* MTA -> filter */
#define SMFIC_ABORT             'A'
#define SMFIC_BODY              'B'
#define SMFIC_CONNECT           'C'
#define SMFIC_MACRO             'D'
#define SMFIC_BODYEOB           'E'
#define SMFIC_HELO              'H'
#define SMFIC_QUIT_NC           'K'
#define SMFIC_HEADER            'L'
#define SMFIC_MAIL              'M'
#define SMFIC_EOH               'N'
#define SMFIC_OPTNEG            'O'
#define SMFIC_QUIT              'Q'
#define SMFIC_RCPT              'R'
#define SMFIC_DATA              'T'
#define SMFIC_UNKNOWN           'U'

/* filter -> MTA */
#define SMFIR_ADDRCPT           '+'
#define SMFIR_DELRCPT           '-'
#define SMFIR_ADDRCPT_PAR       '2'
#define SMFIR_SHUTDOWN          '4'
#define SMFIR_ACCEPT            'a'
#define SMFIR_REPLBODY          'b'
#define SMFIR_CONTINUE          'c'
#define SMFIR_DISCARD           'd'
#define SMFIR_CHGFROM           'e'
#define SMFIR_CONN_FAIL         'f'
#define SMFIR_ADDHEADER         'h'
#define SMFIR_INSHEADER         'i'
#define SMFIR_SETSYMLIST        'l'
#define SMFIR_CHGHEADER         'm'
#define SMFIR_PROGRESS          'p'
#define SMFIR_QUARANTINE        'q'
#define SMFIR_REJECT            'r'
#define SMFIR_SKIP              's'
#define SMFIR_TEMPFAIL          't'
#define SMFIR_REPLYCODE         'y'

/* address families in SMFIC_CONNECT */
#define SMFIA_UNKNOWN           'U'
#define SMFIA_UNIX              'L'
#define SMFIA_INET              '4'
#define SMFIA_INET6             '6'

/* actions the filter may take (negotiated) */
#define SMFIF_ADDHDRS           0x0001
#define SMFIF_CHGBODY           0x0002
#define SMFIF_ADDRCPT           0x0004
#define SMFIF_DELRCPT           0x0008
#define SMFIF_CHGHDRS           0x0010
#define SMFIF_QUARANTINE        0x0020
#define SMFIF_CHGFROM           0x0040
#define SMFIF_ADDRCPT_PAR       0x0080
#define SMFIF_SETSYMLIST        0x0100
#define MILTER_ACTIONS          0x01ff

/* protocol steps the filter does not want, or answers not */
#define SMFIP_NOCONNECT         0x00000001
#define SMFIP_NOHELO            0x00000002
#define SMFIP_NOMAIL            0x00000004
#define SMFIP_NORCPT            0x00000008
#define SMFIP_NOBODY            0x00000010
#define SMFIP_NOHDRS            0x00000020
#define SMFIP_NOEOH             0x00000040
#define SMFIP_NR_HDR            0x00000080
#define SMFIP_NOUNKNOWN         0x00000100
#define SMFIP_NODATA            0x00000200
#define SMFIP_SKIP              0x00000400
#define SMFIP_RCPT_REJ          0x00000800
#define SMFIP_NR_CONN           0x00001000
#define SMFIP_NR_HELO           0x00002000
#define SMFIP_NR_MAIL           0x00004000
#define SMFIP_NR_RCPT           0x00008000
#define SMFIP_NR_DATA           0x00010000
#define SMFIP_NR_UNKN           0x00020000
#define SMFIP_NR_EOH            0x00040000
#define SMFIP_NR_BODY           0x00080000
#define SMFIP_HDR_LEADSPC       0x00100000
/* what this client offers: every step, every "no reply", leading space */
#define MILTER_PROTOCOL         0x001ff7ff

/* macro stages of SMFIR_SETSYMLIST / the OPTNEG reply */
#define SMFIM_CONNECT           0
#define SMFIM_HELO              1
#define SMFIM_ENVFROM           2
#define SMFIM_ENVRCPT           3
#define SMFIM_DATA              4
#define SMFIM_EOM               5
#define SMFIM_EOH               6
#define MILTER_STAGES           7

/* A growable output buffer (malloc). */
typedef struct {
    u_char                      *data;
    size_t                       len;
    size_t                       size;
    size_t                       start;     /* of the frame being built */
} milter_buf_t;

void milter_buf_free(milter_buf_t *b);
/* Drop the first n bytes (sent). */
void milter_buf_consume(milter_buf_t *b, size_t n);

/* Build one frame: begin, put pieces, end (fills the length).  Each
 * returns 0, or -1 when out of memory or the frame grows too big; after
 * -1 the buffer holds what it held before milter_frame_begin(). */
int milter_frame_begin(milter_buf_t *b, int cmd);
int milter_put(milter_buf_t *b, const void *data, size_t n);
/* A C string of the protocol: the bytes up to n or a NUL, then NUL. */
int milter_put_str(milter_buf_t *b, const void *s, size_t n);
int milter_put_u32(milter_buf_t *b, uint32_t v);
int milter_put_u16(milter_buf_t *b, uint16_t v);
int milter_frame_end(milter_buf_t *b);
void milter_frame_cancel(milter_buf_t *b);
/* A whole frame with raw data. */
int milter_frame(milter_buf_t *b, int cmd, const void *data, size_t n);

/* Cut one frame out of p..p+n.  Returns the bytes it used (> 0) and
 * sets *cmd, *data, *len; 0 when more bytes are needed; -1 for a frame
 * that cannot be (length 0 or over MILTER_FRAME_MAX). */
ssize_t milter_frame_parse(const u_char *p, size_t n, int *cmd,
    const u_char **data, size_t *len);

/* The OPTNEG reply: version, actions, protocol, then (version 6)
 * requested macro lists per stage.  0 or -1 when malformed. */
typedef struct {
    uint32_t                     version;
    uint32_t                     actions;
    uint32_t                     protocol;
    const u_char                *macros[MILTER_STAGES];  /* NUL ended */
    size_t                       macros_len[MILTER_STAGES];
} milter_optneg_t;

int milter_parse_optneg(const u_char *data, size_t len, milter_optneg_t *o);

/* Split data into NUL-terminated strings: every byte must belong to a
 * string ended by a NUL.  Returns how many (at most max), or -1. */
int milter_strings(const u_char *data, size_t len, const char **out,
    size_t *lens, int max);

/* SMFIR_REPLYCODE text "550 5.7.1 text" (first line, or lines joined):
 * code 4xx/5xx, enhanced code when present and well formed, text.
 * 0 or -1.  ecode gets "" when absent; text is copied (no CR/LF). */
int milter_parse_replycode(const u_char *data, size_t len, int *code,
    char *ecode, size_t esize, char *text, size_t tsize);

/* One macro name ("i", "{daemon_name}") found in a space separated
 * list: 1 or 0. */
int milter_macro_listed(const u_char *list, size_t len, const char *name);

#endif /* MILTER_CODEC_H */
