/* The pickle opcode interpreter on hand-written pickles, including opcodes that torch.save
 * does not emit but CPython's pickler can. */
#include <stdlib.h>
#include <string.h>

#include "pickle.h"
#include "test.h"
#include "util.h"

/* Renders an object like Python's repr, for comparisons. */
static void render(const PickleObject *obj, char *out, size_t size)
{
    size_t n = strlen(out);
    if (n + 1 >= size) return;
    char *at = out + n;
    size_t left = size - n;
    switch (obj->kind) {
    case PICKLE_NONE:
        snprintf(at, left, "None");
        break;
    case PICKLE_BOOL:
        snprintf(at, left, obj->boolean ? "True" : "False");
        break;
    case PICKLE_INT:
        snprintf(at, left, "%lld", (long long)obj->integer);
        break;
    case PICKLE_BIG_INT:
        snprintf(at, left, "<int of %zu bytes>", obj->text.size);
        break;
    case PICKLE_FLOAT:
        snprintf(at, left, "%g", obj->real);
        break;
    case PICKLE_STRING:
        snprintf(at, left, "'%s'", obj->text.data);
        break;
    case PICKLE_BYTES:
        snprintf(at, left, "b'%s'", obj->text.data);
        break;
    case PICKLE_GLOBAL:
        snprintf(at, left, "%s.%s", obj->global.module, obj->global.name);
        break;
    case PICKLE_OPAQUE:
        snprintf(at, left, "<opaque>");
        break;
    case PICKLE_TUPLE:
    case PICKLE_LIST:
        snprintf(at, left, obj->kind == PICKLE_TUPLE ? "(" : "[");
        for (size_t i = 0; i < obj->sequence.count; i++) {
            if (i) strncat(out, ", ", size - strlen(out) - 1);
            render(obj->sequence.items[i], out, size);
        }
        if (obj->kind == PICKLE_TUPLE && obj->sequence.count == 1) strncat(out, ",", size - strlen(out) - 1);
        strncat(out, obj->kind == PICKLE_TUPLE ? ")" : "]", size - strlen(out) - 1);
        break;
    case PICKLE_DICT:
        snprintf(at, left, "{");
        for (size_t i = 0; i < obj->dict.count; i++) {
            if (i) strncat(out, ", ", size - strlen(out) - 1);
            render(obj->dict.keys[i], out, size);
            strncat(out, ": ", size - strlen(out) - 1);
            render(obj->dict.values[i], out, size);
        }
        strncat(out, "}", size - strlen(out) - 1);
        break;
    }
}

/* Runs one pickle (a string literal, so embedded NULs need the explicit size). */
static bool run(const char *bytes, size_t size, char *out, size_t out_size)
{
    Pickle *p = pickle_new("test.pkl");
    PickleObject *result;
    size_t pos = 0;
    out[0] = '\0';
    bool ok = pickle_load(p, (const uint8_t *)bytes, size, &pos, NULL, &result);
    if (ok) {
        render(result, out, out_size);
        if (pos != size) snprintf(out, out_size, "stopped at byte %zu of %zu", pos, size);
    } else {
        snprintf(out, out_size, "%s", pickle_error(p));
    }
    pickle_free(p);
    return ok;
}

#define PICKLE(literal) literal, sizeof literal - 1

TEST(pickle_builds_python_values)
{
    static const struct {
        const char *bytes;
        size_t size;
        const char *expected;
    } cases[] = {
        {PICKLE("\x80\x02(K\x01M\x00\x01J\xff\xff\xff\xffl."), "[1, 256, -1]"},
        {PICKLE("I01\n."), "True"},
        {PICKLE("I-5\n."), "-5"},
        {PICKLE("L123L\n."), "123"},
        {PICKLE("F2.5\n."), "2.5"},
        {PICKLE("G@\x04\x00\x00\x00\x00\x00\x00."), "2.5"},
        {PICKLE("\x8a\x01\xff."), "-1"},
        {PICKLE("\x8a\x00."), "0"},
        {PICKLE("\x8a\x02\x00\x80."), "-32768"},
        {PICKLE("\x8a\x03\x00\x80\x00."), "32768"},
        {PICKLE("\x8b\x09\x00\x00\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09."), "<int of 9 bytes>"},
        {PICKLE("K\x07p0\n0g0\n."), "7"},
        {PICKLE("K\x07q\x03\x30h\x03."), "7"},
        {PICKLE("K\x07r\x08\x00\x00\x00\x30j\x08\x00\x00\x00."), "7"},
        {PICKLE("K\x01\x94\x30h\x00."), "1"},
        {PICKLE("K\x01\x32K\x02\x87."), "(1, 1, 2)"},
        {PICKLE("K\x01\x85."), "(1,)"},
        {PICKLE("K\x09(K\x01K\x02" "1."), "9"},
        {PICKLE("K\x09(0."), "9"},
        {PICKLE("(U\x01" "aK\x01T\x01\x00\x00\x00" "bK\x02" "d."), "{'a': 1, 'b': 2}"},
        {PICKLE("}(X\x01\x00\x00\x00k\x8c\x01vu."), "{'k': 'v'}"},
        {PICKLE("]K\x01" "a(K\x02K\x03" "e."), "[1, 2, 3]"},
        {PICKLE("C\x03" "abcB\x01\x00\x00\x00z\x86."), "(b'abc', b'z')"},
        {PICKLE("\x8d\x02\x00\x00\x00\x00\x00\x00\x00hi."), "'hi'"},
        {PICKLE("\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00N\x88\x89\x87."), "(None, True, False)"},
        {PICKLE("ccollections\nOrderedDict\n)R."), "{}"},
        {PICKLE("ccollections\nOrderedDict\n)}\x92."), "{}"},
        {PICKLE("ccollections\nOrderedDict\n]U\x01" "aK\x01\x86" "a\x85R."), "{'a': 1}"},
        {PICKLE("\x8c\x0b" "collections\x8c\x0bOrderedDict\x93)\x81}b."), "{}"},
        {PICKLE("cbuiltins\nprint\n."), "builtins.print"},
    };
    for (size_t c = 0; c < MG_ARRAY_LEN(cases); c++) {
        char out[512];
        bool ok = run(cases[c].bytes, cases[c].size, out, sizeof out);
        CHECK_MSG(ok, "case %zu: %s", c, out);
        CHECK_MSG(strcmp(out, cases[c].expected) == 0, "case %zu: %s, expected %s", c, out, cases[c].expected);
    }
}

TEST(pickle_rejects_invalid_input)
{
    static const struct {
        const char *bytes;
        size_t size;
        const char *message;
    } cases[] = {
        {PICKLE(""), "truncated data: the pickle at byte 0 has no STOP opcode"},
        {PICKLE("K\x01K\x02."), "invalid pickle at byte 4: STOP with 2 items and 0 marks on the stack"},
        {PICKLE("t."), "invalid pickle at byte 0: no MARK on the stack"},
        {PICKLE("h\x05."), "memo entry 5 was never stored"},
        {PICKLE("r\xff\xff\xff\x7f."), "stack underflow"},
        {PICKLE("K\x01r\xff\xff\xff\x7f."), "memo index 2147483647 out of range"},
        {PICKLE("S'x'\n."), "unsupported pickle opcode 'S' (0x53)"},
        {PICKLE("\x8f."), "unsupported pickle opcode 0x8f"},
        {PICKLE("\x80\x06."), "unsupported pickle protocol 6"},
        {PICKLE("(K\x01" "a."), "stack underflow"},
        {PICKLE("}K\x01s."), "stack underflow"},
        {PICKLE("]K\x01K\x02s."), "SETITEM target is a list, not a dict"},
        {PICKLE("}(K\x01" "e."), "APPEND target is a dict, not a list"},
        {PICKLE("}(K\x01u."), "odd number of items for a dict"},
        {PICKLE("cfoo\nba"), "truncated data: the pickle opcode at byte 0 has no end of line"},
        {PICKLE("X\x10\x00\x00\x00" "abc"), "truncated data: the pickle opcode at byte 0 needs 16 more bytes, but the input ends at byte 8"},
        {PICKLE("J\x01\x02"), "needs 4 more bytes"},
        {PICKLE("K\x01)R."), "cannot call a int, only a global"},
        {PICKLE("cbuiltins\neval\n)R."), "unsupported call of builtins.eval"},
        {PICKLE("ccollections\nOrderedDict\nK\x01\x85R."), "unsupported arguments to collections.OrderedDict"},
        {PICKLE("K\x01Q."), "unexpected persistent id"},
        {PICKLE("I1x\n."), "invalid or out-of-range integer literal"},
        {PICKLE("L99999999999999999999\n."), "invalid or out-of-range integer literal"},
        {PICKLE("\x8b\xff\xff\xff\xff."), "negative LONG4 length"},
    };
    for (size_t c = 0; c < MG_ARRAY_LEN(cases); c++) {
        char out[512];
        bool ok = run(cases[c].bytes, cases[c].size, out, sizeof out);
        CHECK_MSG(!ok, "case %zu was accepted: %s", c, out);
        CHECK_STR_CONTAINS(out, "test.pkl: ");
        CHECK_STR_CONTAINS(out, cases[c].message);
    }
}

TEST(pickle_objects_outlive_each_load)
{
    static const char first[] = "X\x05\x00\x00\x00" "firstq\x00.";
    static const char second[] = "h\x00.";
    Pickle *p = pickle_new("test.pkl");
    PickleObject *a, *b;
    size_t pos = 0;
    CHECK(pickle_load(p, (const uint8_t *)first, sizeof first - 1, &pos, NULL, &a));
    /* A new load starts with an empty memo, like a new Unpickler. */
    pos = 0;
    CHECK(!pickle_load(p, (const uint8_t *)second, sizeof second - 1, &pos, NULL, &b));
    CHECK_STR_CONTAINS(pickle_error(p), "memo entry 0 was never stored");
    CHECK(a->kind == PICKLE_STRING);
    CHECK(strcmp(a->text.data, "first") == 0);
    pickle_free(p);
}
