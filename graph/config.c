/* config.c — config records: a table of a struct's fields gives its
 * "key=value" text, strict parsing and the resume check (dagflow.h). */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dagflow.h"

static void *at(void *config, const df_config_field *f) { return (char *)config + f->offset; }
static const void *cat(const void *config, const df_config_field *f) { return (const char *)config + f->offset; }

static int enum_count(const df_config_field *f)
{
    int n = 0;
    while (f->names && f->names[n]) n++;
    return n;
}

/* The field's value as text, as the file holds it (bool: "1"/"0", or with
 * words, "true"/"false" for messages). */
static df_status value_text(const df_config_field *f, const void *config, bool words, char *buf, size_t cap)
{
    const void *p = cat(config, f);
    switch (f->type) {
    case DF_CONFIG_INT: snprintf(buf, cap, "%d", *(const int *)p); break;
    case DF_CONFIG_INT64: snprintf(buf, cap, "%" PRId64, *(const int64_t *)p); break;
    case DF_CONFIG_U64: snprintf(buf, cap, "%" PRIu64, *(const uint64_t *)p); break;
    case DF_CONFIG_FLOAT: snprintf(buf, cap, words ? "%g" : "%.9g", (double)*(const float *)p); break;
    case DF_CONFIG_BOOL: {
        bool v = *(const bool *)p != f->negate;
        snprintf(buf, cap, "%s", words ? (v ? "true" : "false") : (v ? "1" : "0"));
        break;
    }
    case DF_CONFIG_ENUM: {
        int v = *(const int *)p;
        if (v < 0 || v >= enum_count(f)) return df_error(DF_ERR_ARG, "config: %s has no name for %d", f->key, v);
        snprintf(buf, cap, "%s", f->names[v]);
        break;
    }
    case DF_CONFIG_STRING:
        if (strnlen(p, f->size) == f->size || strchr(p, '\n'))
            return df_error(DF_ERR_ARG, "config: %s is not a one-line string", f->key);
        snprintf(buf, cap, "%s", (const char *)p);
        break;
    default: return df_error(DF_ERR_ARG, "config: %s has an unknown type %d", f->key, (int)f->type);
    }
    return DF_OK;
}

int df_config_format(const df_config_field *fields, int n, int version, const void *config, char *buf, size_t cap)
{
    size_t len = (size_t)snprintf(buf, cap, "format=%d\n", version);
    for (int i = 0; i < n && len < cap; i++) {
        char value[512];
        if (value_text(&fields[i], config, false, value, sizeof value) != DF_OK) return -1;
        len += (size_t)snprintf(buf + len, cap - len, "%s=%s\n", fields[i].key, value);
    }
    if (len >= cap) {
        df_error(DF_ERR_RANGE, "config: the text needs more than %zu bytes", cap);
        return -1;
    }
    return (int)len;
}

/* Strict numbers: the whole value, in range (a corrupt value is an error, not a silent 0). */
static bool parse_value(const df_config_field *f, const char *v, void *p)
{
    char *end;
    errno = 0;
    switch (f->type) {
    case DF_CONFIG_INT: {
        long x = strtol(v, &end, 10);
        if (!*v || *end || errno || x < INT_MIN || x > INT_MAX) return false;
        *(int *)p = (int)x;
        return true;
    }
    case DF_CONFIG_INT64: {
        long long x = strtoll(v, &end, 10);
        if (!*v || *end || errno) return false;
        *(int64_t *)p = x;
        return true;
    }
    case DF_CONFIG_U64: {
        unsigned long long x = strtoull(v, &end, 10);
        if (!*v || *v == '-' || *end || errno) return false;
        *(uint64_t *)p = x;
        return true;
    }
    case DF_CONFIG_FLOAT: {
        float x = strtof(v, &end);
        if (!*v || *end || errno || !isfinite(x)) return false;
        *(float *)p = x;
        return true;
    }
    case DF_CONFIG_BOOL: {
        bool one = !strcmp(v, "1") || !strcmp(v, "true");
        if (!one && strcmp(v, "0") && strcmp(v, "false")) return false;
        *(bool *)p = one != f->negate;
        return true;
    }
    case DF_CONFIG_ENUM:
        for (int i = 0; f->names && f->names[i]; i++)
            if (!strcmp(f->names[i], v)) return *(int *)p = i, true;
        return false;
    case DF_CONFIG_STRING:
        if (strlen(v) >= f->size) return false;
        memcpy(p, v, strlen(v) + 1);
        return true;
    }
    return false;
}

static int find_key(const df_config_field *fields, int n, const char *key)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(fields[i].key, key)) return i;
    return -1;
}

static df_status parse_line(const df_config_field *fields, int n, char *line, void *config, int *version, bool *seen)
{
    char *eq = strchr(line, '=');
    if (!eq) return df_error(DF_ERR_FORMAT, "config line \"%.40s\" has no '='", line);
    *eq = 0;
    const char *key = line, *v = eq + 1;
    if (!strcmp(key, "format")) {
        const df_config_field format = {.key = "format", .type = DF_CONFIG_INT};
        return parse_value(&format, v, version) ? DF_OK : df_error(DF_ERR_FORMAT, "config has a bad format: \"%.40s\"", v);
    }
    int i = find_key(fields, n, key);
    if (i < 0) return df_error(DF_ERR_FORMAT, "config has an unknown key \"%.40s\"", key);
    if (!parse_value(&fields[i], v, at(config, &fields[i])))
        return df_error(DF_ERR_FORMAT, "config has a bad %s: \"%.40s\"", key, v);
    seen[i] = true;
    return DF_OK;
}

df_status df_config_parse(const df_config_field *fields, int n, const char *text, size_t len, void *config,
                          int *version)
{
    char *buf = malloc(len + 1);
    bool *seen = calloc((size_t)n + 1, sizeof *seen);
    df_status st = buf && seen ? DF_OK : df_error(DF_ERR_NOMEM, "config: out of memory");
    if (st == DF_OK) {
        memcpy(buf, text, len);
        buf[len] = 0;
        if (memchr(buf, 0, len)) st = df_error(DF_ERR_FORMAT, "config holds a NUL byte");
    }
    *version = 0;
    for (char *line = buf, *next; st == DF_OK && line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        st = parse_line(fields, n, line, config, version, seen);
    }
    for (int i = 0; i < n && st == DF_OK; i++)
        if (fields[i].required && !seen[i]) st = df_error(DF_ERR_FORMAT, "config is incomplete: no %s", fields[i].key);
    free(buf);
    free(seen);
    return st;
}

static bool differs(const df_config_field *f, const void *a, const void *b)
{
    const void *x = cat(a, f), *y = cat(b, f);
    switch (f->type) {
    case DF_CONFIG_INT:
    case DF_CONFIG_ENUM: return *(const int *)x != *(const int *)y;
    case DF_CONFIG_INT64: return *(const int64_t *)x != *(const int64_t *)y;
    case DF_CONFIG_U64: return *(const uint64_t *)x != *(const uint64_t *)y;
    case DF_CONFIG_FLOAT: return *(const float *)x != *(const float *)y;
    case DF_CONFIG_BOOL: return *(const bool *)x != *(const bool *)y;
    case DF_CONFIG_STRING: return strncmp(x, y, f->size) != 0;
    }
    return true;
}

df_status df_config_compare(const df_config_field *fields, int n, const void *saved, const void *now,
                            const df_config_field **changed)
{
    int n_changed = 0;
    for (int i = 0; i < n; i++) {
        const df_config_field *f = &fields[i];
        if ((f->applies && !f->applies(saved)) || !differs(f, saved, now)) continue;
        if (f->may_change) {
            if (changed) changed[n_changed++] = f;
            continue;
        }
        char was[512], is[512];
        if (value_text(f, saved, true, was, sizeof was) != DF_OK || value_text(f, now, true, is, sizeof is) != DF_OK)
            return DF_ERR_ARG;
        if (changed) changed[n_changed] = NULL;
        if (!f->flag) return df_error(DF_ERR_STATE, "it has %s=%s, this run has %s=%s", f->key, was, f->key, is);
        if (f->about) return df_error(DF_ERR_STATE, "its --%s differs (%s: %s, this run's %s)", f->flag, f->about, was, is);
        return df_error(DF_ERR_STATE, "it was trained with --%s %s, this run has --%s %s", f->flag, was, f->flag, is);
    }
    if (changed) changed[n_changed] = NULL;
    return DF_OK;
}

static double number(const df_config_field *f, const void *config)
{
    const void *p = cat(config, f);
    switch (f->type) {
    case DF_CONFIG_INT:
    case DF_CONFIG_ENUM: return *(const int *)p;
    case DF_CONFIG_INT64: return (double)*(const int64_t *)p;
    case DF_CONFIG_U64: return (double)*(const uint64_t *)p;
    case DF_CONFIG_FLOAT: return *(const float *)p;
    default: return 0;
    }
}

static df_status out_of_range(const df_config_field *f, double v)
{
    char name[128], range[96];
    snprintf(name, sizeof name, f->flag ? "--%s" : "%s", f->flag ? f->flag : f->key);
    if (isinf(f->max)) snprintf(range, sizeof range, ">= %g", f->min);
    else snprintf(range, sizeof range, "in [%g, %g%c", f->min, f->max, f->below_max ? ')' : ']');
    return df_error(DF_ERR_ARG, "%s must be %s, got %g", name, range, v);
}

df_status df_config_check(const df_config_field *fields, int n, const void *config)
{
    for (int i = 0; i < n; i++) {
        const df_config_field *f = &fields[i];
        double v = number(f, config);
        if (f->type == DF_CONFIG_ENUM && (v < 0 || v >= enum_count(f))) {
            char names[256] = "";
            for (int k = 0; k < enum_count(f); k++)
                snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", k ? ", " : "", f->names[k]);
            return df_error(DF_ERR_ARG, "%s%s must be one of %s; got %g", f->flag ? "--" : "",
                            f->flag ? f->flag : f->key, names, v);
        }
        if (f->type == DF_CONFIG_FLOAT && !isfinite(v)) return out_of_range(f, v);
        if (f->min < f->max && !(v >= f->min && (f->below_max ? v < f->max : v <= f->max))) return out_of_range(f, v);
    }
    return DF_OK;
}

df_status df_config_put(df_checkpoint *ck, const char *name, const df_config_field *fields, int n, int version,
                        const void *config)
{
    char text[8192];
    int len = df_config_format(fields, n, version, config, text, sizeof text);
    return len < 0 ? DF_ERR_ARG : df_checkpoint_put_blob(ck, name, text, (size_t)len);   /* its message stands */
}

df_status df_config_get(const df_checkpoint *ck, const char *name, const df_config_field *fields, int n, void *config,
                        int *version)
{
    const void *data;
    size_t len;
    df_status st = df_checkpoint_get_blob(ck, name, &data, &len);
    return st == DF_OK ? df_config_parse(fields, n, data, len, config, version) : st;
}

df_status df_config_record_put(const df_config_record *r, df_checkpoint *ck)
{
    if (!r || !r->fields || !r->values) return df_error(DF_ERR_ARG, "df_config_record_put: null argument");
    return df_config_put(ck, r->name ? r->name : "config", r->fields, r->n_fields, r->version, r->values);
}

/* The saved record's format (a record without a format line is format 1)
 * against the one this program reads. */
static df_status check_version(const df_config_record *r, int version)
{
    if (version == 0) version = 1;
    if (version == r->version) return DF_OK;
    return df_error(DF_ERR_FORMAT, "written by %s %s (checkpoint format %d, this one reads %d)%s%s",
                    version < r->version ? "an older" : "a newer", r->program ? r->program : "program", version,
                    r->version, r->format_hint ? ": " : "", r->format_hint ? r->format_hint : "");
}

df_status df_config_record_check(const df_config_record *r, const df_checkpoint *ck)
{
    if (!r || !r->fields || !r->values || !r->size)
        return df_error(DF_ERR_ARG, "df_config_record_check: null argument");
    void *saved = malloc(r->size);
    if (!saved) return df_error(DF_ERR_NOMEM, "out of memory reading a config record");
    memcpy(saved, r->values, r->size);   /* keys the saved record lacks keep this run's values */
    int version;
    df_status st = df_config_get(ck, r->name ? r->name : "config", r->fields, r->n_fields, saved, &version);
    if (st == DF_OK) st = check_version(r, version);
    if (st == DF_OK) st = df_config_compare(r->fields, r->n_fields, saved, r->values, NULL);
    free(saved);
    return st;
}
