/*
 * check_milter.c -- the milter wire format (modules/milter/milter_codec.c):
 * frames built and cut back in any split, lengths out of bounds refused,
 * the option negotiation reply with its macro lists, NUL-ended string
 * lists, reply codes checked and flattened, macro lists.
 */

#include "check_util.h"
#include "check_suites.h"

#include "../../modules/milter/milter_codec.h"


START_TEST(test_frame_roundtrip)
{
    milter_buf_t   b = { 0 };
    const u_char  *data;
    size_t         len, off, split;
    ssize_t        k;
    int            cmd;

    ck_assert_int_eq(milter_frame_begin(&b, SMFIC_HEADER), 0);
    ck_assert_int_eq(milter_put_str(&b, "Subject", 7), 0);
    /* a NUL inside a string ends it: never a string split in two */
    ck_assert_int_eq(milter_put_str(&b, "a\0b", 3), 0);
    ck_assert_int_eq(milter_frame_end(&b), 0);
    ck_assert_int_eq(milter_frame(&b, SMFIC_EOH, NULL, 0), 0);
    ck_assert_int_eq(milter_frame_begin(&b, SMFIC_OPTNEG), 0);
    ck_assert_int_eq(milter_put_u32(&b, 6), 0);
    ck_assert_int_eq(milter_put_u16(&b, 25), 0);
    ck_assert_int_eq(milter_frame_end(&b), 0);

    ck_assert_uint_eq(b.len, 4 + 1 + 8 + 2 + 4 + 1 + 4 + 1 + 6);
    ck_assert_int_eq(memcmp(b.data, "\0\0\0\x0bLSubject\0a\0", 15), 0);

    /* cut back from any prefix: 0 until the frame is whole */
    for (split = 0; split < 15; split++) {
        k = milter_frame_parse(b.data, split, &cmd, &data, &len);
        ck_assert_int_eq(k, 0);
    }
    off = 0;
    k = milter_frame_parse(b.data, b.len, &cmd, &data, &len);
    ck_assert_int_eq(k, 15);
    ck_assert_int_eq(cmd, 'L');
    ck_assert_uint_eq(len, 10);
    off += (size_t) k;
    k = milter_frame_parse(b.data + off, b.len - off, &cmd, &data, &len);
    ck_assert_int_eq(k, 5);
    ck_assert_int_eq(cmd, 'N');
    ck_assert_uint_eq(len, 0);
    off += (size_t) k;
    k = milter_frame_parse(b.data + off, b.len - off, &cmd, &data, &len);
    ck_assert_int_eq(k, 11);
    ck_assert_int_eq(memcmp(data, "\0\0\0\x06\0\x19", 6), 0);

    milter_buf_consume(&b, 15);
    ck_assert_int_eq(b.data[4], 'N');
    milter_buf_free(&b);
}
END_TEST


START_TEST(test_frame_bounds)
{
    u_char         in[8];
    const u_char  *data;
    size_t         len;
    int            cmd;
    milter_buf_t   b = { 0 };
    static u_char  big[MILTER_FRAME_MAX + 1];

    /* length 0 (not even a command letter) and over the limit */
    memcpy(in, "\0\0\0\0x", 5);
    ck_assert_int_eq(milter_frame_parse(in, 5, &cmd, &data, &len), -1);
    memcpy(in, "\xff\xff\xff\xff" "a", 5);
    ck_assert_int_eq(milter_frame_parse(in, 5, &cmd, &data, &len), -1);
    memcpy(in, "\0\x10\0\x02" "a", 5);
    ck_assert_int_eq(milter_frame_parse(in, 5, &cmd, &data, &len), -1);

    /* the encoder refuses a frame over the limit, and keeps what it had */
    ck_assert_int_eq(milter_frame(&b, 'c', NULL, 0), 0);
    ck_assert_int_eq(milter_frame(&b, SMFIC_BODY, big, sizeof(big)), -1);
    ck_assert_uint_eq(b.len, 5);
    ck_assert_int_eq(milter_frame(&b, SMFIC_BODY, big, 65535), 0);
    ck_assert_uint_eq(b.len, 5 + 5 + 65535);
    milter_buf_free(&b);
}
END_TEST


START_TEST(test_optneg)
{
    milter_optneg_t  o;
    static const u_char  v6[] =
        "\0\0\0\x06" "\0\0\x01\xff" "\0\x10\0\x80"
        "\0\0\0\x00" "j {client_addr}\0"
        "\0\0\0\x02" "{mail_addr} i\0";
    static const u_char  bad_stage[] =
        "\0\0\0\x06" "\0\0\0\x01" "\0\0\0\0" "\0\0\0\x09" "i\0";

    ck_assert_int_eq(milter_parse_optneg(v6, sizeof(v6) - 1, &o), 0);
    ck_assert_uint_eq(o.version, 6);
    ck_assert_uint_eq(o.actions, 0x1ff);
    ck_assert_uint_eq(o.protocol, 0x100080);
    ck_assert_uint_eq(o.macros_len[0], 15);
    ck_assert_int_eq(memcmp(o.macros[2], "{mail_addr} i", 13), 0);
    ck_assert_ptr_null(o.macros[1]);
    ck_assert_int_eq(milter_macro_listed(o.macros[0], o.macros_len[0],
                                         "{client_addr}"), 1);
    ck_assert_int_eq(milter_macro_listed(o.macros[0], o.macros_len[0],
                                         "i"), 0);

    /* version 2 filters send only the three numbers */
    ck_assert_int_eq(milter_parse_optneg(v6, 12, &o), 0);
    ck_assert_int_eq(milter_parse_optneg(v6, 11, &o), -1);
    /* a list without its NUL, a stage that does not exist */
    ck_assert_int_eq(milter_parse_optneg(v6, sizeof(v6) - 2, &o), -1);
    ck_assert_int_eq(milter_parse_optneg(bad_stage, sizeof(bad_stage) - 1,
                                         &o), -1);
}
END_TEST


START_TEST(test_strings)
{
    const char  *a[3];
    size_t       l[3];

    ck_assert_int_eq(milter_strings((u_char *) "<a@b>\0NOTIFY=NEVER\0", 19,
                                    a, l, 3), 2);
    ck_assert_uint_eq(l[0], 5);
    ck_assert_str_eq(a[1], "NOTIFY=NEVER");
    ck_assert_int_eq(milter_strings((u_char *) "", 0, a, l, 3), 0);
    /* the last string without its NUL; more strings than room */
    ck_assert_int_eq(milter_strings((u_char *) "a\0b", 3, a, l, 3), -1);
    ck_assert_int_eq(milter_strings((u_char *) "a\0b\0c\0d\0", 8, a, l, 3),
                     -1);
}
END_TEST


typedef struct {
    tstr_t                       in;
    int                          rc;
    int                          code;
    const char                  *ecode;
    const char                  *text;
} replycode_case_t;

static const replycode_case_t  replycode_cases[] = {
    { T("550 5.7.1 Spam\0"), 0, 550, "5.7.1", "Spam" },
    { T("451 try later\0"), 0, 451, "", "try later" },
    { T("554\0"), 0, 554, "", "" },
    /* an enhanced code of the other class is text, not a code */
    { T("550 4.7.1 mixed\0"), 0, 550, "", "4.7.1 mixed" },
    /* several lines become one, their prefixes dropped */
    { T("550-5.7.1 first\r\n550 5.7.1 second\0"), 0, 550, "5.7.1",
      "first second" },
    /* what a reply injection looks like: the CR LF never survives */
    { T("550 5.7.1 a\r\n250 ok\0"), 0, 550, "5.7.1", "a 250 ok" },
    { T("250 ok\0"), -1, 0, NULL, NULL },
    { T("5x0 no\0"), -1, 0, NULL, NULL },
    { T("55\0"), -1, 0, NULL, NULL },
    { T("550x\0"), -1, 0, NULL, NULL },
};


START_TEST(test_replycode)
{
    const replycode_case_t  *c = &replycode_cases[_i];
    char                     ecode[16], text[64];
    int                      code, rc;

    rc = milter_parse_replycode((u_char *) c->in.data, c->in.len, &code,
                                ecode, sizeof(ecode), text, sizeof(text));
    ck_assert_int_eq(rc, c->rc);
    if (rc == 0) {
        ck_assert_int_eq(code, c->code);
        ck_assert_str_eq(ecode, c->ecode);
        ck_assert_str_eq(text, c->text);
    }
}
END_TEST


START_TEST(test_replycode_truncated)
{
    char  ecode[16], text[8];
    int   code;

    ck_assert_int_eq(milter_parse_replycode((u_char *) "550 5.7.1 a long"
                                            " text\0", 22, &code, ecode,
                                            sizeof(ecode), text,
                                            sizeof(text)), 0);
    ck_assert_str_eq(text, "a long ");
}
END_TEST


Suite *
suite_milter(void)
{
    Suite  *s = suite_create("milter");
    TCase  *tc = tcase_create("codec");

    tcase_add_test(tc, test_frame_roundtrip);
    tcase_add_test(tc, test_frame_bounds);
    tcase_add_test(tc, test_optneg);
    tcase_add_test(tc, test_strings);
    tcase_add_loop_test(tc, test_replycode, 0,
                        sizeof(replycode_cases) / sizeof(replycode_cases[0]));
    tcase_add_test(tc, test_replycode_truncated);
    suite_add_tcase(s, tc);
    return s;
}
