/* Loading, validating and printing JSON model configs. */
#include "config.h"

#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Where a value sits in the file, for messages: "<file>: generator[3].heads: ...". */
typedef struct JsonPath {
    const char *source;
    char text[160];
} JsonPath;

/* Appends `suffix` to a path, cutting it at the buffer size (paths are short in practice). */
static JsonPath path_append(const JsonPath *parent, const char *separator, const char *suffix)
{
    JsonPath p = *parent;
    size_t n = strlen(p.text);
    if (n && separator) n += (size_t)snprintf(p.text + n, sizeof p.text - n, "%s", separator);
    if (n < sizeof p.text) snprintf(p.text + n, sizeof p.text - n, "%s", suffix);
    return p;
}

static JsonPath path_child(const JsonPath *parent, const char *key)
{
    return path_append(parent, ".", key);
}

static JsonPath path_index(const JsonPath *parent, int index)
{
    char suffix[16];
    snprintf(suffix, sizeof suffix, "[%d]", index);
    return path_append(parent, NULL, suffix);
}

#define config_error(path, ...) config_fail((path), mg_format(__VA_ARGS__))

static noreturn void config_fail(const JsonPath *path, char *message)
{
    if (path->text[0]) mg_fatal("%s: %s: %s", path->source, path->text, message);
    mg_fatal("%s: %s", path->source, message);
}

static const char *json_type_name(const cJSON *item)
{
    if (cJSON_IsNumber(item)) return "a number";
    if (cJSON_IsString(item)) return "a string";
    if (cJSON_IsBool(item)) return "a boolean";
    if (cJSON_IsArray(item)) return "an array";
    if (cJSON_IsObject(item)) return "an object";
    if (cJSON_IsNull(item)) return "null";
    return "an invalid value";
}

/* Rejects any key of `object` that is not in `allowed` (a NULL-terminated list). */
static void check_keys(const JsonPath *path, const cJSON *object, const char *const *allowed)
{
    const cJSON *item;
    cJSON_ArrayForEach(item, object) {
        bool known = false;
        for (int i = 0; allowed[i]; i++) known |= strcmp(item->string, allowed[i]) == 0;
        if (known) continue;
        char list[512] = "";
        for (int i = 0; allowed[i]; i++) {
            strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
            strncat(list, allowed[i], sizeof list - strlen(list) - 1);
        }
        JsonPath p = path_child(path, item->string);
        config_error(&p, "unknown key (expected one of: %s)", list);
    }
}

static const cJSON *require_object(const JsonPath *path, const cJSON *item)
{
    if (!cJSON_IsObject(item)) config_error(path, "expected an object, found %s", json_type_name(item));
    return item;
}

/* Returns the member `key`, or NULL when it is absent and optional. */
static const cJSON *member(const JsonPath *path, const cJSON *object, const char *key, bool required)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, key);
    if (!item && required) {
        JsonPath p = path_child(path, key);
        config_error(&p, "missing (required)");
    }
    return item;
}

static double get_number(const JsonPath *path, const cJSON *object, const char *key, bool required,
                         double fallback, double min, double max)
{
    const cJSON *item = member(path, object, key, required);
    if (!item) return fallback;
    JsonPath p = path_child(path, key);
    if (!cJSON_IsNumber(item)) config_error(&p, "expected a number, found %s", json_type_name(item));
    double v = item->valuedouble;
    if (!(v >= min && v <= max)) config_error(&p, "value %g out of range (expected %g to %g)", v, min, max);
    return v;
}

static int get_int(const JsonPath *path, const cJSON *object, const char *key, bool required, int fallback,
                   int min, int max)
{
    const cJSON *item = member(path, object, key, required);
    if (!item) return fallback;
    JsonPath p = path_child(path, key);
    if (!cJSON_IsNumber(item) || item->valuedouble != floor(item->valuedouble))
        config_error(&p, "expected an integer, found %s", cJSON_IsNumber(item) ? "a fraction" : json_type_name(item));
    double v = item->valuedouble;
    if (v < min || v > max) config_error(&p, "value %g out of range (expected %d to %d)", v, min, max);
    return (int)v;
}

static bool get_bool(const JsonPath *path, const cJSON *object, const char *key, bool fallback)
{
    const cJSON *item = member(path, object, key, false);
    if (!item) return fallback;
    if (!cJSON_IsBool(item)) {
        JsonPath p = path_child(path, key);
        config_error(&p, "expected true or false, found %s", json_type_name(item));
    }
    return cJSON_IsTrue(item);
}

/* Reads an integer or a [height, width] pair. */
static void get_pair(const JsonPath *path, const cJSON *object, const char *key, bool required, int fallback,
                     int min, int *h, int *w)
{
    const cJSON *item = member(path, object, key, required);
    *h = *w = fallback;
    if (!item) return;
    JsonPath p = path_child(path, key);
    if (cJSON_IsArray(item)) {
        if (cJSON_GetArraySize(item) != 2) config_error(&p, "expected an integer or [height, width]");
        int values[2];
        for (int i = 0; i < 2; i++) {
            const cJSON *v = cJSON_GetArrayItem(item, i);
            if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < min || v->valuedouble > 4096)
                config_error(&p, "expected [height, width] with integers from %d to 4096", min);
            values[i] = (int)v->valuedouble;
        }
        *h = values[0];
        *w = values[1];
        return;
    }
    *h = *w = get_int(path, object, key, true, fallback, min, 4096);
}

/* ---- layers ------------------------------------------------------------------------- */

typedef struct LayerTypeInfo {
    const char *name;
    const char *keys[8];  /* allowed keys besides "type", NULL-terminated */
} LayerTypeInfo;

static const LayerTypeInfo layer_types[LAYER_TYPE_COUNT] = {
    [LAYER_LINEAR] = {"linear", {"out", "bias"}},
    [LAYER_TO_TOKENS] = {"to_tokens", {"height", "width", "dim"}},
    [LAYER_TO_IMAGE] = {"to_image", {"channels", "height", "width"}},
    [LAYER_FLATTEN] = {"flatten", {NULL}},
    [LAYER_POS_EMBED] = {"pos_embed", {NULL}},
    [LAYER_CLASS_TOKEN] = {"class_token", {NULL}},
    [LAYER_TRANSFORMER] = {"transformer", {"depth", "heads", "mlp_ratio"}},
    [LAYER_TOKENS_TO_IMAGE] = {"tokens_to_image", {NULL}},
    [LAYER_IMAGE_TO_TOKENS] = {"image_to_tokens", {NULL}},
    [LAYER_PIXEL_SHUFFLE] = {"pixel_shuffle", {"factor"}},
    [LAYER_PATCH_MERGE] = {"patch_merge", {NULL}},
    [LAYER_SELECT_TOKEN] = {"select_token", {"index"}},
    [LAYER_MEAN_TOKENS] = {"mean_tokens", {NULL}},
    [LAYER_CONV] = {"conv", {"out", "kernel", "stride", "padding", "bias"}},
    [LAYER_CONV_TRANSPOSE] = {"conv_transpose", {"out", "kernel", "stride", "padding", "bias"}},
    [LAYER_BATCH_NORM] = {"batch_norm", {"eps", "momentum"}},
    [LAYER_LAYER_NORM] = {"layer_norm", {"eps"}},
    [LAYER_RELU] = {"relu", {NULL}},
    [LAYER_LEAKY_RELU] = {"leaky_relu", {"slope"}},
    [LAYER_GELU] = {"gelu", {NULL}},
    [LAYER_TANH] = {"tanh", {NULL}},
};

const char *layer_type_name(LayerType type)
{
    return layer_types[type].name;
}

static LayerType parse_layer_type(const JsonPath *path, const cJSON *layer)
{
    const cJSON *type = member(path, layer, "type", true);
    JsonPath p = path_child(path, "type");
    if (!cJSON_IsString(type)) config_error(&p, "expected a string, found %s", json_type_name(type));
    for (int t = 0; t < LAYER_TYPE_COUNT; t++) {
        if (strcmp(type->valuestring, layer_types[t].name) == 0) return (LayerType)t;
    }
    char list[512] = "";
    for (int t = 0; t < LAYER_TYPE_COUNT; t++) {
        strncat(list, t ? ", " : "", sizeof list - strlen(list) - 1);
        strncat(list, layer_types[t].name, sizeof list - strlen(list) - 1);
    }
    config_error(&p, "unknown layer type \"%s\" (expected one of: %s)", type->valuestring, list);
}

static LayerSpec parse_layer(const JsonPath *path, const cJSON *layer)
{
    require_object(path, layer);
    LayerSpec s = {.type = parse_layer_type(path, layer)};
    const char *allowed[10] = {"type"};
    for (int i = 0; layer_types[s.type].keys[i]; i++) allowed[i + 1] = layer_types[s.type].keys[i];
    check_keys(path, layer, allowed);

    switch (s.type) {
    case LAYER_LINEAR:
        s.out = get_int(path, layer, "out", true, 0, 1, 1 << 24);
        s.bias = get_bool(path, layer, "bias", true);
        break;
    case LAYER_TO_TOKENS:
        s.height = get_int(path, layer, "height", true, 0, 1, 4096);
        s.width = get_int(path, layer, "width", true, 0, 1, 4096);
        s.dim = get_int(path, layer, "dim", true, 0, 1, 1 << 16);
        break;
    case LAYER_TO_IMAGE:
        s.channels = get_int(path, layer, "channels", true, 0, 1, 1 << 16);
        s.height = get_int(path, layer, "height", true, 0, 1, 4096);
        s.width = get_int(path, layer, "width", true, 0, 1, 4096);
        break;
    case LAYER_TRANSFORMER:
        s.depth = get_int(path, layer, "depth", true, 0, 1, 1000);
        s.heads = get_int(path, layer, "heads", true, 0, 1, 1024);
        s.mlp_ratio = get_number(path, layer, "mlp_ratio", false, 4.0, 0.01, 64.0);
        break;
    case LAYER_PIXEL_SHUFFLE:
        s.factor = get_int(path, layer, "factor", false, 2, 1, 16);
        break;
    case LAYER_SELECT_TOKEN:
        s.index = get_int(path, layer, "index", false, 0, 0, 1 << 20);
        break;
    case LAYER_CONV:
    case LAYER_CONV_TRANSPOSE:
        s.out = get_int(path, layer, "out", true, 0, 1, 1 << 16);
        get_pair(path, layer, "kernel", true, 0, 1, &s.kernel_h, &s.kernel_w);
        s.stride = get_int(path, layer, "stride", false, 1, 1, 64);
        get_pair(path, layer, "padding", false, 0, 0, &s.padding_h, &s.padding_w);
        s.bias = get_bool(path, layer, "bias", true);
        break;
    case LAYER_BATCH_NORM:
        s.eps = get_number(path, layer, "eps", false, 1e-5, 1e-12, 1.0);
        s.momentum = get_number(path, layer, "momentum", false, 0.1, 0.0, 1.0);
        break;
    case LAYER_LAYER_NORM:
        s.eps = get_number(path, layer, "eps", false, 1e-5, 1e-12, 1.0);
        break;
    case LAYER_LEAKY_RELU:
        s.slope = get_number(path, layer, "slope", true, 0.0, 0.0, 1.0);
        break;
    default:
        break;
    }
    return s;
}

static NetworkSpec parse_network(const JsonPath *parent, const cJSON *root, const char *key)
{
    JsonPath path = path_child(parent, key);
    const cJSON *list = member(parent, root, key, true);
    if (!cJSON_IsArray(list)) config_error(&path, "expected an array of layers, found %s", json_type_name(list));
    NetworkSpec net = {.count = cJSON_GetArraySize(list)};
    if (net.count == 0) config_error(&path, "the layer list is empty");
    net.layers = mg_calloc((size_t)net.count, sizeof *net.layers);
    for (int i = 0; i < net.count; i++) {
        JsonPath p = path_index(&path, i);
        net.layers[i] = parse_layer(&p, cJSON_GetArrayItem(list, i));
    }
    return net;
}

/* ---- init and training ------------------------------------------------------------- */

static InitSpec parse_init(const JsonPath *parent, const cJSON *root)
{
    InitSpec init = {.weight_std = 0.02, .batch_norm_weight_std = 0.0, .embedding_std = 0.02};
    const cJSON *object = member(parent, root, "init", false);
    if (!object) return init;
    JsonPath path = path_child(parent, "init");
    require_object(&path, object);
    check_keys(&path, object, (const char *const[]){"weight_std", "batch_norm_weight_std", "embedding_std", NULL});
    init.weight_std = get_number(&path, object, "weight_std", false, init.weight_std, 0.0, 10.0);
    init.batch_norm_weight_std =
        get_number(&path, object, "batch_norm_weight_std", false, init.batch_norm_weight_std, 0.0, 10.0);
    init.embedding_std = get_number(&path, object, "embedding_std", false, init.embedding_std, 0.0, 10.0);
    return init;
}

static unsigned parse_augment(const JsonPath *parent, const cJSON *object)
{
    const cJSON *list = member(parent, object, "diffaugment", false);
    if (!list) return 0;
    JsonPath path = path_child(parent, "diffaugment");
    if (!cJSON_IsArray(list))
        config_error(&path, "expected an array such as [\"color\", \"translation\", \"cutout\"], found %s",
                     json_type_name(list));
    unsigned flags = 0;
    const cJSON *item;
    int i = 0;
    cJSON_ArrayForEach(item, list) {
        JsonPath p = path_index(&path, i++);
        if (!cJSON_IsString(item)) config_error(&p, "expected a string, found %s", json_type_name(item));
        if (!strcmp(item->valuestring, "color"))
            flags |= AUGMENT_COLOR;
        else if (!strcmp(item->valuestring, "translation"))
            flags |= AUGMENT_TRANSLATION;
        else if (!strcmp(item->valuestring, "cutout"))
            flags |= AUGMENT_CUTOUT;
        else
            config_error(&p, "unknown augmentation \"%s\" (expected color, translation or cutout)", item->valuestring);
    }
    return flags;
}

static TrainingSpec parse_training(const JsonPath *parent, const cJSON *root)
{
    JsonPath path = path_child(parent, "training");
    const cJSON *object = require_object(&path, member(parent, root, "training", true));
    check_keys(&path, object,
               (const char *const[]){"loss", "batch_size", "lr", "beta1", "beta2", "adam_eps", "d_steps", "ema_decay",
                                     "diffaugment", "hflip", "seed", "steps", "log_interval", "sample_interval",
                                     "checkpoint_interval", NULL});
    TrainingSpec t = {0};

    const cJSON *loss = member(&path, object, "loss", true);
    JsonPath loss_path = path_child(&path, "loss");
    if (!cJSON_IsString(loss)) config_error(&loss_path, "expected a string, found %s", json_type_name(loss));
    if (!strcmp(loss->valuestring, "non_saturating"))
        t.loss = LOSS_NON_SATURATING;
    else if (!strcmp(loss->valuestring, "hinge"))
        t.loss = LOSS_HINGE;
    else
        config_error(&loss_path, "unknown loss \"%s\" (expected non_saturating or hinge)", loss->valuestring);

    t.batch_size = get_int(&path, object, "batch_size", false, 64, 2, 65536);
    t.lr = get_number(&path, object, "lr", true, 0.0, 0.0, 1.0);
    t.beta1 = get_number(&path, object, "beta1", true, 0.0, 0.0, 0.999999);
    t.beta2 = get_number(&path, object, "beta2", true, 0.0, 0.0, 0.999999);
    t.adam_eps = get_number(&path, object, "adam_eps", false, 1e-8, 0.0, 1.0);
    t.d_steps = get_int(&path, object, "d_steps", false, 1, 1, 100);
    t.ema_decay = get_number(&path, object, "ema_decay", false, 0.0, 0.0, 0.999999999);
    t.augment = parse_augment(&path, object);
    t.hflip = get_bool(&path, object, "hflip", true);
    t.seed = (unsigned long long)get_number(&path, object, "seed", false, 0.0, 0.0, 9007199254740991.0);
    t.steps = (long)get_number(&path, object, "steps", true, 0.0, 1.0, 1e12);
    t.log_interval = get_int(&path, object, "log_interval", false, 50, 1, 1 << 30);
    t.sample_interval = get_int(&path, object, "sample_interval", false, 500, 1, 1 << 30);
    t.checkpoint_interval = get_int(&path, object, "checkpoint_interval", false, 1000, 1, 1 << 30);
    return t;
}

/* ---- top level --------------------------------------------------------------------- */

/* Converts cJSON's error position into a line and column. */
static void parse_error_position(const char *text, const char *at, int *line, int *column)
{
    *line = 1;
    *column = 1;
    for (const char *p = text; p < at && *p; p++) {
        if (*p == '\n') {
            (*line)++;
            *column = 1;
        } else {
            (*column)++;
        }
    }
}

void config_parse(const char *text, const char *source, ModelConfig *config)
{
    memset(config, 0, sizeof *config);
    config->source = mg_strdup(source);
    config->text = mg_strdup(text);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(text, &end, true);
    if (!root) {
        int line, column;
        parse_error_position(text, end ? end : cJSON_GetErrorPtr(), &line, &column);
        mg_fatal("%s: invalid JSON at line %d, column %d", source, line, column);
    }
    JsonPath path = {.source = source};
    require_object(&path, root);
    check_keys(&path, root,
               (const char *const[]){"name", "image_size", "channels", "latent_dim", "generator", "discriminator",
                                     "init", "training", NULL});

    const cJSON *name = member(&path, root, "name", false);
    if (name && !cJSON_IsString(name)) {
        JsonPath p = path_child(&path, "name");
        config_error(&p, "expected a string, found %s", json_type_name(name));
    }
    config->name = mg_strdup(name ? name->valuestring : "unnamed");
    config->image_size = get_int(&path, root, "image_size", true, 0, 1, 4096);
    config->channels = get_int(&path, root, "channels", false, 3, 1, 4);
    config->latent_dim = get_int(&path, root, "latent_dim", true, 0, 1, 1 << 16);
    config->generator = parse_network(&path, root, "generator");
    config->discriminator = parse_network(&path, root, "discriminator");
    config->init = parse_init(&path, root);
    config->training = parse_training(&path, root);
    cJSON_Delete(root);
}

void config_load(const char *path, ModelConfig *config)
{
    char *text = mg_read_file(path, NULL);
    if (!text) mg_fatal("cannot read config %s: %s", path, strerror(errno));
    config_parse(text, path, config);
    free(text);
}

void config_free(ModelConfig *config)
{
    free(config->source);
    free(config->text);
    free(config->name);
    free(config->generator.layers);
    free(config->discriminator.layers);
    memset(config, 0, sizeof *config);
}

const char *loss_type_name(LossType loss)
{
    return loss == LOSS_HINGE ? "hinge" : "non_saturating";
}

void augment_format(unsigned augment, char *buf, int size)
{
    snprintf(buf, (size_t)size, "%s%s%s%s", augment & AUGMENT_COLOR ? "color " : "",
             augment & AUGMENT_TRANSLATION ? "translation " : "", augment & AUGMENT_CUTOUT ? "cutout " : "",
             augment ? "" : "off");
    size_t n = strlen(buf);
    if (n && buf[n - 1] == ' ') buf[n - 1] = '\0';
}

void config_print(const ModelConfig *c)
{
    const TrainingSpec *t = &c->training;
    char augment[64];
    augment_format(t->augment, augment, sizeof augment);
    printf("config %s (%s)\n", c->name, c->source);
    printf("  image            %dx%dx%d\n", c->channels, c->image_size, c->image_size);
    printf("  latent_dim       %d\n", c->latent_dim);
    printf("  init             weight_std %g, batch_norm_weight_std %g, embedding_std %g\n", c->init.weight_std,
           c->init.batch_norm_weight_std, c->init.embedding_std);
    printf("  loss             %s\n", loss_type_name(t->loss));
    printf("  adam             lr %g, betas (%g, %g), eps %g\n", t->lr, t->beta1, t->beta2, t->adam_eps);
    printf("  batch_size       %d\n", t->batch_size);
    printf("  d_steps          %d\n", t->d_steps);
    if (t->ema_decay > 0)
        printf("  ema_decay        %g\n", t->ema_decay);
    else
        printf("  ema_decay        off\n");
    printf("  diffaugment      %s\n", augment);
    printf("  hflip            %s\n", t->hflip ? "on" : "off");
    printf("  seed             %llu\n", t->seed);
    printf("  steps            %ld\n", t->steps);
    printf("  intervals        log %d, samples %d, checkpoints %d\n", t->log_interval, t->sample_interval,
           t->checkpoint_interval);
}

/* Settings that a resumed run may change. */
static const char *const resumable_keys[] = {"steps", "log_interval", "sample_interval", "checkpoint_interval"};

static void drop_resumable_keys(cJSON *root)
{
    cJSON *training = cJSON_GetObjectItemCaseSensitive(root, "training");
    for (size_t i = 0; training && i < MG_ARRAY_LEN(resumable_keys); i++)
        cJSON_DeleteItemFromObjectCaseSensitive(training, resumable_keys[i]);
}

/* Finds the first path where a and b differ; returns false when they are equal. */
static bool first_difference(const cJSON *a, const cJSON *b, JsonPath *path)
{
    if (cJSON_IsObject(a) && cJSON_IsObject(b)) {
        const cJSON *item;
        cJSON_ArrayForEach(item, a) {
            JsonPath p = path_child(path, item->string);
            if (first_difference(item, cJSON_GetObjectItemCaseSensitive(b, item->string), &p)) {
                *path = p;
                return true;
            }
        }
        cJSON_ArrayForEach(item, b) {
            if (!cJSON_GetObjectItemCaseSensitive(a, item->string)) {
                *path = path_child(path, item->string);
                return true;
            }
        }
        return false;
    }
    if (cJSON_IsArray(a) && cJSON_IsArray(b)) {
        int n = cJSON_GetArraySize(a), m = cJSON_GetArraySize(b);
        for (int i = 0; i < n || i < m; i++) {
            JsonPath p = path_index(path, i);
            if (i >= n || i >= m || first_difference(cJSON_GetArrayItem(a, i), cJSON_GetArrayItem(b, i), &p)) {
                *path = p;
                return true;
            }
        }
        return false;
    }
    return !(a && b && cJSON_Compare(a, b, true));
}

bool config_same_model(const char *a, const char *b, char *difference, int size)
{
    cJSON *ja = cJSON_Parse(a), *jb = cJSON_Parse(b);
    if (!ja || !jb) mg_panic("config_same_model on invalid JSON");
    drop_resumable_keys(ja);
    drop_resumable_keys(jb);
    JsonPath path = {.source = ""};
    bool differs = first_difference(ja, jb, &path);
    if (differs) snprintf(difference, (size_t)size, "%s", path.text[0] ? path.text : "(top level)");
    cJSON_Delete(ja);
    cJSON_Delete(jb);
    return !differs;
}
