/* A reader for the subset of Python's pickle format that torch.save emits.
 *
 * It runs the pickle opcodes of protocols 2 to 5 that CPython's pickler writes for dicts,
 * lists, tuples, strings, numbers, globals, persistent ids and REDUCE/BUILD calls. The text
 * opcodes of protocol 0 other than GLOBAL, INT, LONG, FLOAT, PUT and GET are rejected, and so
 * are sets, extension codes and out-of-band buffers. Python objects become PickleObjects,
 * owned by the Pickle that created them and freed by pickle_free().
 *
 * The caller interprets what Python would import: persistent ids and calls of globals other
 * than collections.OrderedDict go to callbacks, which return objects of kind PICKLE_OPAQUE.
 * Every read is bounds-checked and allocations grow only with the input, so a malformed or
 * truncated pickle yields an error message naming the input and the byte offset. The tests
 * check this by cutting and corrupting pickles at every byte.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

typedef enum PickleKind {
    PICKLE_NONE,
    PICKLE_BOOL,
    PICKLE_INT,       /* fits int64 */
    PICKLE_BIG_INT,   /* LONG1/LONG4 over 8 bytes: little-endian two's complement bytes in text */
    PICKLE_FLOAT,
    PICKLE_STRING,    /* str, as UTF-8 in text */
    PICKLE_BYTES,
    PICKLE_TUPLE,
    PICKLE_LIST,
    PICKLE_DICT,      /* dict or collections.OrderedDict, in insertion order */
    PICKLE_GLOBAL,    /* an unresolved module.name reference */
    PICKLE_OPAQUE,    /* made by a callback */
} PickleKind;

typedef struct PickleObject PickleObject;
struct PickleObject {
    PickleKind kind;
    PickleObject *next_allocated;  /* the owning Pickle's list of objects */
    union {
        bool boolean;
        int64_t integer;
        double real;
        struct {
            char *data;            /* NUL-terminated, but may contain NUL bytes */
            size_t size;
        } text;                    /* PICKLE_STRING, PICKLE_BYTES, PICKLE_BIG_INT */
        struct {
            PickleObject **items;
            size_t count, capacity;
        } sequence;                /* PICKLE_TUPLE, PICKLE_LIST */
        struct {
            PickleObject **keys, **values;
            size_t count, capacity;
        } dict;
        struct {
            char *module, *name;
        } global;
        struct {
            int tag;               /* the callback's type code */
            void *payload;         /* memory from pickle_alloc() */
        } opaque;
    };
};

typedef struct Pickle Pickle;

typedef struct PickleCallbacks {
    void *context;
    /* Returns the object for a persistent id (BINPERSID), or NULL after pickle_fail(). */
    PickleObject *(*persistent_load)(Pickle *pickle, PickleObject *pid, void *context);
    /* Returns the result of calling `callable` (a PICKLE_GLOBAL) with the tuple `args`, for
     * REDUCE and NEWOBJ, or NULL after pickle_fail(). */
    PickleObject *(*call)(Pickle *pickle, const PickleObject *callable, PickleObject *args, void *context);
} PickleCallbacks;

/* Creates a reader; `label` (usually the file path) starts every error message. */
Pickle *pickle_new(const char *label);
void pickle_free(Pickle *pickle);

/* Runs one pickle from data[*pos] up to and including its STOP opcode and returns its value
 * in *result. On success *pos is the offset just after STOP. Each call starts with an empty
 * stack and memo, like a new pickle.Unpickler, but objects from earlier calls stay valid. */
bool pickle_load(Pickle *pickle, const uint8_t *data, size_t size, size_t *pos,
                 const PickleCallbacks *callbacks, PickleObject **result);
/* The message of the last failure. */
const char *pickle_error(const Pickle *pickle);

/* For callbacks: new objects and memory owned by the pickle. */
PickleObject *pickle_new_object(Pickle *pickle, PickleKind kind);
void *pickle_alloc(Pickle *pickle, size_t bytes);
/* Records an error at the current opcode's offset and returns false. */
bool pickle_fail(Pickle *pickle, const char *fmt, ...) MG_PRINTF(2, 3);

/* The Python type name of a kind, for messages ("dict", "tuple", ...). */
const char *pickle_kind_name(PickleKind kind);
/* True when obj is a PICKLE_GLOBAL naming module.name. */
bool pickle_is_global(const PickleObject *obj, const char *module, const char *name);
