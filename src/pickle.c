/* Pickle opcode interpreter (see pickle.h). Opcode meanings follow CPython's
 * Lib/pickletools.py, which documents every opcode and its argument encoding. */
#include "pickle.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_PROTOCOL = 5 };

typedef struct PayloadBlock {
    struct PayloadBlock *next;
    max_align_t data[];
} PayloadBlock;

struct Pickle {
    char *label;
    char error[1024];
    PickleObject *objects;     /* every object created, newest first */
    PayloadBlock *payloads;

    /* State of the pickle being run. */
    const uint8_t *data;
    size_t size, pos;
    size_t opcode_pos;         /* offset of the opcode being run, for messages */
    PickleObject **stack;
    size_t depth, stack_capacity;
    size_t *marks;             /* stack depths saved by MARK */
    size_t mark_count, mark_capacity;
    PickleObject **memo;
    size_t memo_capacity, memo_count;
};

const char *pickle_kind_name(PickleKind kind)
{
    static const char *names[] = {"None", "bool", "int", "int", "float", "str", "bytes", "tuple", "list", "dict",
                                  "global", "object"};
    return kind < MG_ARRAY_LEN(names) ? names[kind] : "unknown";
}

Pickle *pickle_new(const char *label)
{
    Pickle *p = mg_calloc(1, sizeof *p);
    p->label = mg_strdup(label);
    return p;
}

static void free_object_contents(PickleObject *obj)
{
    switch (obj->kind) {
    case PICKLE_STRING:
    case PICKLE_BYTES:
    case PICKLE_BIG_INT:
        free(obj->text.data);
        break;
    case PICKLE_TUPLE:
    case PICKLE_LIST:
        free(obj->sequence.items);
        break;
    case PICKLE_DICT:
        free(obj->dict.keys);
        free(obj->dict.values);
        break;
    case PICKLE_GLOBAL:
        free(obj->global.module);
        free(obj->global.name);
        break;
    default:
        break;
    }
}

void pickle_free(Pickle *p)
{
    if (!p) return;
    for (PickleObject *obj = p->objects, *next; obj; obj = next) {
        next = obj->next_allocated;
        free_object_contents(obj);
        free(obj);
    }
    for (PayloadBlock *b = p->payloads, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    free(p->stack);
    free(p->marks);
    free(p->memo);
    free(p->label);
    free(p);
}

const char *pickle_error(const Pickle *p) { return p->error; }

PickleObject *pickle_new_object(Pickle *p, PickleKind kind)
{
    PickleObject *obj = mg_calloc(1, sizeof *obj);
    obj->kind = kind;
    obj->next_allocated = p->objects;
    p->objects = obj;
    return obj;
}

void *pickle_alloc(Pickle *p, size_t bytes)
{
    PayloadBlock *b = mg_calloc(1, sizeof *b + bytes);
    b->next = p->payloads;
    p->payloads = b;
    return b->data;
}

bool pickle_fail(Pickle *p, const char *fmt, ...)
{
    char message[768];
    va_list args;
    va_start(args, fmt);
    vsnprintf(message, sizeof message, fmt, args);
    va_end(args);
    snprintf(p->error, sizeof p->error, "%s: invalid pickle at byte %zu: %s", p->label, p->opcode_pos, message);
    return false;
}

bool pickle_is_global(const PickleObject *obj, const char *module, const char *name)
{
    return obj && obj->kind == PICKLE_GLOBAL && strcmp(obj->global.module, module) == 0 &&
           strcmp(obj->global.name, name) == 0;
}

/* ---- reading opcode arguments ---- */

/* Checks that n more bytes are available, reporting a truncated input otherwise. */
static bool need(Pickle *p, uint64_t n)
{
    if (n <= p->size - p->pos) return true;
    snprintf(p->error, sizeof p->error,
             "%s: truncated data: the pickle opcode at byte %zu needs %llu more bytes, but the input ends at byte %zu",
             p->label, p->opcode_pos, (unsigned long long)n, p->size);
    return false;
}

static uint64_t read_le(Pickle *p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) v |= (uint64_t)p->data[p->pos + i] << (8 * i);
    p->pos += (size_t)bytes;
    return v;
}

/* Reads an unsigned little-endian argument of `bytes` bytes. */
static bool read_uint(Pickle *p, int bytes, uint64_t *v)
{
    if (!need(p, (uint64_t)bytes)) return false;
    *v = read_le(p, bytes);
    return true;
}

/* Reads a newline-terminated argument of the text opcodes into a new NUL-terminated string. */
static char *read_line(Pickle *p)
{
    const uint8_t *start = p->data + p->pos;
    const uint8_t *newline = memchr(start, '\n', p->size - p->pos);
    if (!newline) {
        snprintf(p->error, sizeof p->error,
                 "%s: truncated data: the pickle opcode at byte %zu has no end of line before the input ends at byte %zu",
                 p->label, p->opcode_pos, p->size);
        return NULL;
    }
    size_t n = (size_t)(newline - start);
    char *line = mg_malloc(n + 1);
    memcpy(line, start, n);
    line[n] = '\0';
    p->pos += n + 1;
    return line;
}

/* ---- stack, marks and memo ---- */

static void push(Pickle *p, PickleObject *obj)
{
    if (p->depth == p->stack_capacity) {
        p->stack_capacity = p->stack_capacity ? 2 * p->stack_capacity : 64;
        p->stack = mg_realloc(p->stack, p->stack_capacity * sizeof *p->stack);
    }
    p->stack[p->depth++] = obj;
}

/* The lowest stack index that pop and peek may reach: items below the last MARK belong to
 * enclosing constructs. */
static size_t stack_floor(const Pickle *p) { return p->mark_count ? p->marks[p->mark_count - 1] : 0; }

static PickleObject *pop(Pickle *p)
{
    if (p->depth <= stack_floor(p)) {
        pickle_fail(p, "stack underflow");
        return NULL;
    }
    return p->stack[--p->depth];
}

static PickleObject *peek(Pickle *p)
{
    if (p->depth <= stack_floor(p)) {
        pickle_fail(p, "stack underflow");
        return NULL;
    }
    return p->stack[p->depth - 1];
}

/* Removes the last mark and returns the stack index where the marked items start. */
static bool pop_mark(Pickle *p, size_t *start)
{
    if (p->mark_count == 0) return pickle_fail(p, "no MARK on the stack");
    *start = p->marks[--p->mark_count];
    return true;
}

static bool memo_put(Pickle *p, uint64_t index, PickleObject *obj)
{
    /* A pickler numbers memo entries from 0 with at most one entry per opcode, so an index
     * beyond the input size cannot come from a valid pickle. */
    if (index > p->size) return pickle_fail(p, "memo index %llu out of range", (unsigned long long)index);
    if (index >= p->memo_capacity) {
        size_t capacity = p->memo_capacity ? p->memo_capacity : 64;
        while (capacity <= index) capacity *= 2;
        p->memo = mg_realloc(p->memo, capacity * sizeof *p->memo);
        memset(p->memo + p->memo_capacity, 0, (capacity - p->memo_capacity) * sizeof *p->memo);
        p->memo_capacity = capacity;
    }
    if (!p->memo[index]) p->memo_count++;
    p->memo[index] = obj;
    return true;
}

static bool memo_get(Pickle *p, uint64_t index)
{
    if (index >= p->memo_capacity || !p->memo[index]) {
        return pickle_fail(p, "memo entry %llu was never stored", (unsigned long long)index);
    }
    push(p, p->memo[index]);
    return true;
}

/* ---- object construction ---- */

static void sequence_append(PickleObject *seq, PickleObject *item)
{
    if (seq->sequence.count == seq->sequence.capacity) {
        seq->sequence.capacity = seq->sequence.capacity ? 2 * seq->sequence.capacity : 4;
        seq->sequence.items = mg_realloc(seq->sequence.items, seq->sequence.capacity * sizeof(PickleObject *));
    }
    seq->sequence.items[seq->sequence.count++] = item;
}

static void dict_set(PickleObject *dict, PickleObject *key, PickleObject *value)
{
    if (dict->dict.count == dict->dict.capacity) {
        dict->dict.capacity = dict->dict.capacity ? 2 * dict->dict.capacity : 8;
        dict->dict.keys = mg_realloc(dict->dict.keys, dict->dict.capacity * sizeof(PickleObject *));
        dict->dict.values = mg_realloc(dict->dict.values, dict->dict.capacity * sizeof(PickleObject *));
    }
    dict->dict.keys[dict->dict.count] = key;
    dict->dict.values[dict->dict.count] = value;
    dict->dict.count++;
}

static PickleObject *new_int(Pickle *p, int64_t v)
{
    PickleObject *obj = pickle_new_object(p, PICKLE_INT);
    obj->integer = v;
    return obj;
}

static PickleObject *new_text(Pickle *p, PickleKind kind, const void *data, size_t size)
{
    PickleObject *obj = pickle_new_object(p, kind);
    obj->text.data = mg_malloc(size + 1);
    if (size) memcpy(obj->text.data, data, size);
    obj->text.data[size] = '\0';
    obj->text.size = size;
    return obj;
}

/* Pushes a str or bytes object whose length argument has `length_bytes` bytes. */
static bool load_text(Pickle *p, PickleKind kind, int length_bytes)
{
    uint64_t n;
    if (!read_uint(p, length_bytes, &n) || !need(p, n)) return false;
    push(p, new_text(p, kind, p->data + p->pos, (size_t)n));
    p->pos += (size_t)n;
    return true;
}

/* LONG1/LONG4: little-endian two's complement of n bytes. */
static bool load_long(Pickle *p, int length_bytes)
{
    uint64_t n;
    if (!read_uint(p, length_bytes, &n)) return false;
    if (length_bytes == 4 && n > INT32_MAX) return pickle_fail(p, "negative LONG4 length");
    if (!need(p, n)) return false;
    const uint8_t *bytes = p->data + p->pos;
    if (n > 8) {
        push(p, new_text(p, PICKLE_BIG_INT, bytes, (size_t)n));
    } else {
        uint64_t v = 0;
        for (uint64_t i = 0; i < n; i++) v |= (uint64_t)bytes[i] << (8 * i);
        if (n > 0 && n < 8 && (bytes[n - 1] & 0x80)) v |= ~(uint64_t)0 << (8 * n);
        push(p, new_int(p, (int64_t)v));
    }
    p->pos += (size_t)n;
    return true;
}

/* INT and LONG in text form; INT "00" and "01" are False and True. */
static bool load_text_int(Pickle *p, bool is_int_opcode)
{
    char *line = read_line(p);
    if (!line) return false;
    if (is_int_opcode && (strcmp(line, "00") == 0 || strcmp(line, "01") == 0)) {
        PickleObject *obj = pickle_new_object(p, PICKLE_BOOL);
        obj->boolean = line[1] == '1';
        push(p, obj);
        free(line);
        return true;
    }
    size_t n = strlen(line);
    if (n > 0 && line[n - 1] == 'L') line[n - 1] = '\0';
    char *end;
    errno = 0;
    long long v = strtoll(line, &end, 10);
    bool ok = end != line && *end == '\0' && errno == 0;
    free(line);
    if (!ok) return pickle_fail(p, "invalid or out-of-range integer literal");
    push(p, new_int(p, v));
    return true;
}

static bool load_global(Pickle *p, char *module, char *name)
{
    PickleObject *obj = pickle_new_object(p, PICKLE_GLOBAL);
    obj->global.module = module;
    obj->global.name = name;
    push(p, obj);
    return true;
}

/* Replaces the stack items from index `start` up with one tuple of them. */
static bool load_tuple(Pickle *p, size_t start)
{
    PickleObject *tuple = pickle_new_object(p, PICKLE_TUPLE);
    for (size_t i = start; i < p->depth; i++) sequence_append(tuple, p->stack[i]);
    p->depth = start;
    push(p, tuple);
    return true;
}

static bool load_tuple_n(Pickle *p, size_t n)
{
    if (p->depth < stack_floor(p) + n) return pickle_fail(p, "stack underflow");
    return load_tuple(p, p->depth - n);
}

static bool set_items(Pickle *p, PickleObject *dict, size_t start)
{
    if (dict->kind != PICKLE_DICT) return pickle_fail(p, "SETITEM target is a %s, not a dict", pickle_kind_name(dict->kind));
    if ((p->depth - start) % 2 != 0) return pickle_fail(p, "odd number of items for a dict");
    for (size_t i = start; i < p->depth; i += 2) dict_set(dict, p->stack[i], p->stack[i + 1]);
    p->depth = start;
    return true;
}

static bool append_items(Pickle *p, PickleObject *list, size_t start)
{
    if (list->kind != PICKLE_LIST) return pickle_fail(p, "APPEND target is a %s, not a list", pickle_kind_name(list->kind));
    for (size_t i = start; i < p->depth; i++) sequence_append(list, p->stack[i]);
    p->depth = start;
    return true;
}

/* Calls a global for REDUCE or NEWOBJ. collections.OrderedDict is handled here, everything
 * else by the caller's callback. */
static bool call_global(Pickle *p, const PickleCallbacks *cb, PickleObject *callable, PickleObject *args)
{
    if (callable->kind != PICKLE_GLOBAL) {
        return pickle_fail(p, "cannot call a %s, only a global", pickle_kind_name(callable->kind));
    }
    if (args->kind != PICKLE_TUPLE) return pickle_fail(p, "call arguments are a %s, not a tuple", pickle_kind_name(args->kind));

    if (pickle_is_global(callable, "collections", "OrderedDict")) {
        PickleObject *dict = pickle_new_object(p, PICKLE_DICT);
        if (args->sequence.count == 1 && args->sequence.items[0]->kind == PICKLE_LIST) {
            /* OrderedDict([(key, value), ...]) */
            const PickleObject *pairs = args->sequence.items[0];
            for (size_t i = 0; i < pairs->sequence.count; i++) {
                const PickleObject *pair = pairs->sequence.items[i];
                if ((pair->kind != PICKLE_TUPLE && pair->kind != PICKLE_LIST) || pair->sequence.count != 2) {
                    return pickle_fail(p, "OrderedDict item %zu is not a (key, value) pair", i);
                }
                dict_set(dict, pair->sequence.items[0], pair->sequence.items[1]);
            }
        } else if (args->sequence.count != 0) {
            return pickle_fail(p, "unsupported arguments to collections.OrderedDict");
        }
        push(p, dict);
        return true;
    }

    PickleObject *result = cb && cb->call ? cb->call(p, callable, args, cb->context) : NULL;
    if (!result) {
        if (!cb || !cb->call) pickle_fail(p, "unsupported call of %s.%s", callable->global.module, callable->global.name);
        return false;
    }
    push(p, result);
    return true;
}

/* ---- the interpreter loop ---- */

static bool run_opcode(Pickle *p, uint8_t op, const PickleCallbacks *cb, bool *stop)
{
    uint64_t n;
    size_t start = 0;
    PickleObject *a, *b, *c;
    switch (op) {
    case 0x80: /* PROTO */
        if (!read_uint(p, 1, &n)) return false;
        if (n > MAX_PROTOCOL) return pickle_fail(p, "unsupported pickle protocol %llu", (unsigned long long)n);
        return true;
    case 0x95: /* FRAME: a length prefix that only matters for streaming readers */
        return read_uint(p, 8, &n);
    case '.': /* STOP */
        *stop = true;
        return true;
    case '(': /* MARK */
        if (p->mark_count == p->mark_capacity) {
            p->mark_capacity = p->mark_capacity ? 2 * p->mark_capacity : 16;
            p->marks = mg_realloc(p->marks, p->mark_capacity * sizeof *p->marks);
        }
        p->marks[p->mark_count++] = p->depth;
        return true;
    case '0': /* POP: the top item, or the last mark when nothing is above it */
        if (p->mark_count && p->depth == p->marks[p->mark_count - 1]) return pop_mark(p, &start);
        return pop(p) != NULL;
    case '1': /* POP_MARK */
        if (!pop_mark(p, &start)) return false;
        p->depth = start;
        return true;
    case '2': /* DUP */
        if (!(a = peek(p))) return false;
        push(p, a);
        return true;

    case 'N': /* NONE */
        push(p, pickle_new_object(p, PICKLE_NONE));
        return true;
    case 0x88: /* NEWTRUE */
    case 0x89: /* NEWFALSE */
        a = pickle_new_object(p, PICKLE_BOOL);
        a->boolean = op == 0x88;
        push(p, a);
        return true;
    case 'J': /* BININT: signed 4 bytes */
        if (!read_uint(p, 4, &n)) return false;
        push(p, new_int(p, (int32_t)(uint32_t)n));
        return true;
    case 'K': /* BININT1 */
        if (!read_uint(p, 1, &n)) return false;
        push(p, new_int(p, (int64_t)n));
        return true;
    case 'M': /* BININT2 */
        if (!read_uint(p, 2, &n)) return false;
        push(p, new_int(p, (int64_t)n));
        return true;
    case 0x8a: /* LONG1 */
        return load_long(p, 1);
    case 0x8b: /* LONG4 */
        return load_long(p, 4);
    case 'I': /* INT */
        return load_text_int(p, true);
    case 'L': /* LONG */
        return load_text_int(p, false);
    case 'G': { /* BINFLOAT: big-endian double */
        if (!need(p, 8)) return false;
        uint64_t bits = 0;
        for (int i = 0; i < 8; i++) bits = bits << 8 | p->data[p->pos + (size_t)i];
        p->pos += 8;
        a = pickle_new_object(p, PICKLE_FLOAT);
        memcpy(&a->real, &bits, 8);
        push(p, a);
        return true;
    }
    case 'F': { /* FLOAT */
        char *line = read_line(p);
        if (!line) return false;
        char *end;
        double v = strtod(line, &end);
        bool ok = end != line && *end == '\0';
        free(line);
        if (!ok) return pickle_fail(p, "invalid float literal");
        a = pickle_new_object(p, PICKLE_FLOAT);
        a->real = v;
        push(p, a);
        return true;
    }

    case 'X': /* BINUNICODE */
        return load_text(p, PICKLE_STRING, 4);
    case 0x8c: /* SHORT_BINUNICODE */
        return load_text(p, PICKLE_STRING, 1);
    case 0x8d: /* BINUNICODE8 */
        return load_text(p, PICKLE_STRING, 8);
    case 'T': /* BINSTRING: a Python 2 str, read as text */
        return load_text(p, PICKLE_STRING, 4);
    case 'U': /* SHORT_BINSTRING */
        return load_text(p, PICKLE_STRING, 1);
    case 'B': /* BINBYTES */
        return load_text(p, PICKLE_BYTES, 4);
    case 'C': /* SHORT_BINBYTES */
        return load_text(p, PICKLE_BYTES, 1);
    case 0x8e: /* BINBYTES8 */
    case 0x96: /* BYTEARRAY8 */
        return load_text(p, PICKLE_BYTES, 8);

    case ')': /* EMPTY_TUPLE */
        push(p, pickle_new_object(p, PICKLE_TUPLE));
        return true;
    case 't': /* TUPLE */
        return pop_mark(p, &start) && load_tuple(p, start);
    case 0x85: /* TUPLE1 */
        return load_tuple_n(p, 1);
    case 0x86: /* TUPLE2 */
        return load_tuple_n(p, 2);
    case 0x87: /* TUPLE3 */
        return load_tuple_n(p, 3);
    case ']': /* EMPTY_LIST */
        push(p, pickle_new_object(p, PICKLE_LIST));
        return true;
    case 'l': /* LIST */
        if (!pop_mark(p, &start)) return false;
        a = pickle_new_object(p, PICKLE_LIST);
        if (!append_items(p, a, start)) return false;
        push(p, a);
        return true;
    case 'a': /* APPEND */
        if (!(b = pop(p)) || !(a = peek(p))) return false;
        if (a->kind != PICKLE_LIST) return pickle_fail(p, "APPEND target is a %s, not a list", pickle_kind_name(a->kind));
        sequence_append(a, b);
        return true;
    case 'e': /* APPENDS */
        if (!pop_mark(p, &start)) return false;
        if (start == 0 || start <= stack_floor(p)) return pickle_fail(p, "APPENDS without a list below the mark");
        return append_items(p, p->stack[start - 1], start);
    case '}': /* EMPTY_DICT */
        push(p, pickle_new_object(p, PICKLE_DICT));
        return true;
    case 'd': /* DICT */
        if (!pop_mark(p, &start)) return false;
        a = pickle_new_object(p, PICKLE_DICT);
        if (!set_items(p, a, start)) return false;
        push(p, a);
        return true;
    case 's': /* SETITEM */
        if (p->depth < stack_floor(p) + 3) return pickle_fail(p, "stack underflow");
        return set_items(p, p->stack[p->depth - 3], p->depth - 2);
    case 'u': /* SETITEMS */
        if (!pop_mark(p, &start)) return false;
        if (start == 0 || start <= stack_floor(p)) return pickle_fail(p, "SETITEMS without a dict below the mark");
        return set_items(p, p->stack[start - 1], start);

    case 'c': { /* GLOBAL: "module\nname\n" */
        char *module = read_line(p);
        if (!module) return false;
        char *name = read_line(p);
        if (!name) {
            free(module);
            return false;
        }
        return load_global(p, module, name);
    }
    case 0x93: /* STACK_GLOBAL */
        if (!(b = pop(p)) || !(a = pop(p))) return false;
        if (a->kind != PICKLE_STRING || b->kind != PICKLE_STRING) return pickle_fail(p, "STACK_GLOBAL needs two strings");
        return load_global(p, mg_strdup(a->text.data), mg_strdup(b->text.data));
    case 'R': /* REDUCE */
        if (!(b = pop(p)) || !(a = pop(p))) return false;
        return call_global(p, cb, a, b);
    case 0x81: /* NEWOBJ: cls.__new__(cls, *args), treated as a call */
        if (!(b = pop(p)) || !(a = pop(p))) return false;
        return call_global(p, cb, a, b);
    case 0x92: /* NEWOBJ_EX */
        if (!(c = pop(p)) || !(b = pop(p)) || !(a = pop(p))) return false;
        if (c->kind != PICKLE_DICT || c->dict.count != 0) return pickle_fail(p, "NEWOBJ_EX with keyword arguments");
        return call_global(p, cb, a, b);
    case 'b': /* BUILD: sets attributes such as OrderedDict._metadata, which a state dict does not need */
        if (!(b = pop(p)) || !(a = peek(p))) return false;
        return true;

    case 'p': { /* PUT */
        char *line = read_line(p);
        if (!line) return false;
        char *end;
        unsigned long long index = strtoull(line, &end, 10);
        bool ok = end != line && *end == '\0';
        free(line);
        if (!ok) return pickle_fail(p, "invalid memo index");
        return (a = peek(p)) && memo_put(p, index, a);
    }
    case 'q': /* BINPUT */
        return read_uint(p, 1, &n) && (a = peek(p)) && memo_put(p, n, a);
    case 'r': /* LONG_BINPUT */
        return read_uint(p, 4, &n) && (a = peek(p)) && memo_put(p, n, a);
    case 0x94: /* MEMOIZE */
        return (a = peek(p)) && memo_put(p, p->memo_count, a);
    case 'g': { /* GET */
        char *line = read_line(p);
        if (!line) return false;
        char *end;
        unsigned long long index = strtoull(line, &end, 10);
        bool ok = end != line && *end == '\0';
        free(line);
        if (!ok) return pickle_fail(p, "invalid memo index");
        return memo_get(p, index);
    }
    case 'h': /* BINGET */
        return read_uint(p, 1, &n) && memo_get(p, n);
    case 'j': /* LONG_BINGET */
        return read_uint(p, 4, &n) && memo_get(p, n);

    case 'Q': /* BINPERSID */
        if (!(a = pop(p))) return false;
        if (!cb || !cb->persistent_load) return pickle_fail(p, "unexpected persistent id");
        if (!(b = cb->persistent_load(p, a, cb->context))) return false;
        push(p, b);
        return true;

    default:
        if (op >= 0x20 && op < 0x7f) return pickle_fail(p, "unsupported pickle opcode '%c' (0x%02x)", op, op);
        return pickle_fail(p, "unsupported pickle opcode 0x%02x", op);
    }
}

bool pickle_load(Pickle *p, const uint8_t *data, size_t size, size_t *pos, const PickleCallbacks *callbacks,
                 PickleObject **result)
{
    p->data = data;
    p->size = size;
    p->pos = *pos;
    p->depth = 0;
    p->mark_count = 0;
    p->memo_count = 0;
    if (p->memo) memset(p->memo, 0, p->memo_capacity * sizeof *p->memo);
    p->error[0] = '\0';
    *result = NULL;

    bool stop = false;
    while (!stop) {
        p->opcode_pos = p->pos;
        if (p->pos >= p->size) {
            snprintf(p->error, sizeof p->error,
                     "%s: truncated data: the pickle at byte %zu has no STOP opcode before the input ends at byte %zu",
                     p->label, *pos, p->size);
            return false;
        }
        uint8_t op = p->data[p->pos++];
        if (!run_opcode(p, op, callbacks, &stop)) return false;
    }
    if (p->depth != 1 || p->mark_count != 0) {
        return pickle_fail(p, "STOP with %zu items and %zu marks on the stack; expected one item", p->depth, p->mark_count);
    }
    *result = p->stack[0];
    *pos = p->pos;
    return true;
}
