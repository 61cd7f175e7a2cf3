/* Inputs of the model targets that need several files: a JSON document (TFJS model.json or a
 * face-api weights manifest), FUZZ_SEP, then the weights. The JSON is written as given and the
 * weights under every shard path its manifest names (only plain names: the loaders refuse
 * the others themselves), so a mutated manifest still finds its weights. */
#ifndef MIEN_FUZZ_MODEL_FILES_H
#define MIEN_FUZZ_MODEL_FILES_H

#include "fuzz.h"

#include <cJSON.h>
#include <string.h>

/* Write the JSON part as fuzz_dir()/json_name and the weights under each shard path of the
 * manifest found at manifest_key (NULL: the JSON is the manifest itself). Returns the JSON's
 * path or NULL. */
static inline const char *fuzz_model_files(const uint8_t *data, size_t size,
                                           const char *json_name, const char *manifest_key,
                                           char *path, size_t path_size) {
    size_t n1, off2;
    fuzz_split(data, size, FUZZ_SEP, &n1, &off2);
    if (!fuzz_write(json_name, data, n1, path, path_size)) return NULL;
    cJSON *root = cJSON_ParseWithLength((const char *)data, n1);
    const cJSON *groups = manifest_key ? cJSON_GetObjectItemCaseSensitive(root, manifest_key) : root;
    const cJSON *grp;
    int written = 0;
    if (!cJSON_IsArray(groups)) groups = NULL;
    cJSON_ArrayForEach(grp, groups) {
        const cJSON *p, *paths = cJSON_GetObjectItemCaseSensitive(grp, "paths");
        if (!cJSON_IsArray(paths)) paths = NULL;
        cJSON_ArrayForEach(p, paths) {
            if (!cJSON_IsString(p) || !*p->valuestring || strchr(p->valuestring, '/') ||
                strstr(p->valuestring, "..") || strlen(p->valuestring) > 64 || written >= 4)
                continue;
            char wpath[256];
            /* Several shards get the whole blob each: the loader then checks the sizes. */
            fuzz_write(p->valuestring, data + off2, size - off2, wpath, sizeof wpath);
            written++;
        }
    }
    cJSON_Delete(root);
    return path;
}

#endif
