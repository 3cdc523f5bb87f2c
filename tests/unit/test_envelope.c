/* core/wire/plx_envelope: packing, unpacking, and the unknown fields it
 * drops so that nothing it cannot check is forwarded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "plx_test.h"

#include "plx_envelope.h"

static plx_msg_t *msg_of(const uint8_t *bytes, size_t n)
{
    plx_msg_t *m = plx_msg_new((uint32_t)n);
    assert_non_null(m);
    memcpy(plx_msg_env(m), bytes, n);
    return m;
}

static void test_round_trip(void **state)
{
    (void)state;
    Plexa__Execute ex = PLEXA__EXECUTE__INIT;
    ex.code = "a = 1";
    Plexa__Envelope env;
    plx_envelope_set(&env, 7, 3, PLEXA__ENVELOPE__BODY_EXECUTE, &ex);
    plx_err_t err = {0};
    plx_msg_t *m = plx_envelope_pack(&env, &err);
    assert_non_null(m);
    Plexa__Envelope *back = plx_envelope_unpack(m, &err);
    assert_non_null(back);
    assert_int_equal(back->id, 7);
    assert_int_equal(back->reply_to, 3);
    assert_string_equal(back->execute->code, "a = 1");
    assert_string_equal(plx_envelope_body_name(back), "execute");
    plx_envelope_free(&back);
    assert_null(back);
    plx_msg_destroy(&m);
}

/* fuzz_dispatch's first finding: a Shutdown followed by unknown fields,
 * one of them field 0 in a non-minimal tag (80 00), which protobuf-c
 * accepts but writes back as a 00 byte its own parser refuses. Unknown
 * fields are dropped at every level, so re-packing gives valid bytes. */
static void test_unknown_fields_are_dropped(void **state)
{
    (void)state;
    static const uint8_t bytes[] = {0x7a, 0x00, 0x80, 0xcc, 0xef, 0x03, 0x03,
                                    0x80, 0x00, 0x00, 0x7a, 0x00};
    plx_msg_t *m = msg_of(bytes, sizeof bytes);
    plx_err_t err = {0};
    Plexa__Envelope *env = plx_envelope_unpack(m, &err);
    assert_non_null(env);
    assert_int_equal(env->body_case, PLEXA__ENVELOPE__BODY_SHUTDOWN);
    assert_int_equal(env->base.n_unknown_fields, 0);
    plx_msg_t *again = plx_envelope_pack(env, &err);
    Plexa__Envelope *back = plx_envelope_unpack(again, &err);
    assert_non_null(back);
    plx_envelope_free(&back);
    plx_envelope_free(&env);
    plx_msg_destroy(&again);
    plx_msg_destroy(&m);

    /* nested: Push{values: [NamedValue{name: "a", <field 9: 1>}]} */
    static const uint8_t nested[] = {0xaa, 0x01, 0x07, 0x0a, 0x05, 0x0a, 0x01, 'a', 0x48, 0x01};
    m = msg_of(nested, sizeof nested);
    env = plx_envelope_unpack(m, &err);
    assert_non_null(env);
    assert_int_equal(env->push->n_values, 1);
    assert_string_equal(env->push->values[0]->name, "a");
    assert_int_equal(env->push->values[0]->base.n_unknown_fields, 0);
    plx_envelope_free(&env);
    plx_msg_destroy(&m);
}

static void test_malformed(void **state)
{
    (void)state;
    static const uint8_t bytes[] = {0xff, 0xff, 0xff};
    plx_msg_t *m = msg_of(bytes, sizeof bytes);
    plx_err_t err = {0};
    assert_null(plx_envelope_unpack(m, &err));
    assert_int_equal(err.code, PLX_EPROTO);
    assert_string_equal(err.msg, "malformed envelope (3 bytes)");
    plx_msg_destroy(&m);
}

/* Wire bytes are built back to front: each level prepends its tag and
 * length in front of what it wraps, in linear time. */
typedef struct rbuf {
    uint8_t *base;
    size_t   pos, cap;   /* data is base[pos..cap) */
} rbuf_t;

static void prepend(rbuf_t *r, const uint8_t *p, size_t n)
{
    assert_true(n <= r->pos);
    r->pos -= n;
    memcpy(r->base + r->pos, p, n);
}

/* Wrap everything so far as length-delimited field `tag` (tag byte(s)). */
static void wrap(rbuf_t *r, const uint8_t *tag, size_t taglen)
{
    uint8_t v[10];
    size_t l = r->cap - r->pos, n = 0;
    do {
        v[n++] = (uint8_t)((l & 0x7f) | (l > 0x7f ? 0x80 : 0));
        l >>= 7;
    } while (l);
    prepend(r, v, n);
    prepend(r, tag, taglen);
}

/* Push{values: [NamedValue{name: "a", value: Value{list: ValueList{items:
 * [Value{list: ...}]}}}]} nested `levels` lists deep, innermost Value none. */
static plx_msg_t *nested_lists(int levels)
{
    rbuf_t r = {.cap = (size_t)levels * 16 + 64};
    r.base = malloc(r.cap);
    r.pos = r.cap;
    static const uint8_t none[] = {0x40, 0x01};         /* Value.none = true */
    static const uint8_t items[] = {0x0a}, list[] = {0x32}, value[] = {0x12},
                         values[] = {0x0a}, push[] = {0xaa, 0x01}, name[] = {0x0a, 0x01, 'a'};
    prepend(&r, none, sizeof none);
    for (int i = 0; i < levels; i++) {
        wrap(&r, items, sizeof items);   /* ValueList.items */
        wrap(&r, list, sizeof list);     /* Value.list */
    }
    wrap(&r, value, sizeof value);       /* NamedValue.value */
    prepend(&r, name, sizeof name);      /* NamedValue.name = "a" */
    wrap(&r, values, sizeof values);     /* Push.values */
    wrap(&r, push, sizeof push);         /* Envelope.push */
    plx_msg_t *m = msg_of(r.base + r.pos, r.cap - r.pos);
    free(r.base);
    return m;
}

/* Deep nesting would recurse protobuf-c's unpack once per level (a 16 MiB
 * envelope: millions of levels, a stack overflow that kills the
 * controller for everyone); it is refused before unpacking. */
static void test_nesting_depth(void **state)
{
    (void)state;
    plx_err_t err = {0};
    plx_msg_t *ok = nested_lists(16);   /* what the Python encoder may send */
    Plexa__Envelope *env = plx_envelope_unpack(ok, &err);
    assert_non_null(env);
    assert_int_equal(env->push->values[0]->value->kind_case, PLEXA__VALUE__KIND_LIST);
    plx_envelope_free(&env);
    plx_msg_destroy(&ok);
    plx_msg_t *deep = nested_lists(200000);
    assert_null(plx_envelope_unpack(deep, &err));
    assert_int_equal(err.code, PLX_EPROTO);
    assert_non_null(strstr(err.msg, "nests messages more than 64 levels deep"));
    plx_msg_destroy(&deep);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_round_trip),
    cmocka_unit_test(test_unknown_fields_are_dropped),
    cmocka_unit_test(test_malformed),
    cmocka_unit_test(test_nesting_depth),
};

PLX_TEST_SUITE(NULL, NULL, PLX_TEST_GROUP("envelope", tests, NULL, NULL))
