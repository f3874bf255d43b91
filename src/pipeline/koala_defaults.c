/* KOALA-Lightning or KOALA defaults from the model's own files (see koala_defaults.h). */
#include "pipeline/koala_defaults.h"

#include "io/fileio.h"
#include "io/model_folder.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int mentions_lightning(const char *s, size_t n) {
    static const char word[] = "lightning";
    for (size_t i = 0; i + sizeof word - 1 <= n; i++) {
        size_t k = 0;
        while (k < sizeof word - 1 && tolower((unsigned char)s[i + k]) == word[k]) k++;
        if (k == sizeof word - 1) return 1;
    }
    return 0;
}

/* The _name_or_path of a parsed config mentions Lightning. */
static int name_or_path_says(const json_t *cfg, char *value, size_t len) {
    const char *s = json_string_value(json_object_get(cfg, "_name_or_path"));
    if (!s || !mentions_lightning(s, strlen(s))) return 0;
    snprintf(value, len, "%s", s);
    return 1;
}

/* The model card's title (its first "# " heading, after any YAML front
 * matter) mentions Lightning. A card that only lists other models in its
 * text does not count. */
static int card_title_says(const char *dir, char *title, size_t len) {
    char path[4200];
    snprintf(path, sizeof path, "%s/README.md", dir);
    if (!ld_file_exists(path)) return 0;
    char *text = NULL;
    size_t n = 0;
    if (ld_read_file(NULL, path, &text, &n, 1 << 20) != LD_OK) return 0;
    int found = 0;
    for (char *line = text; line && line < text + n;) {
        char *end = memchr(line, '\n', (size_t)(text + n - line));
        size_t ll = end ? (size_t)(end - line) : (size_t)(text + n - line);
        if (ll >= 2 && line[0] == '#' && line[1] == ' ') {
            found = mentions_lightning(line, ll);
            if (found) snprintf(title, len, "%.*s", (int)(ll > 200 ? 200 : ll), line);
            break;
        }
        line = end ? end + 1 : NULL;
    }
    free(text);
    return found;
}

ld_status ld_koala_defaults_detect(ld_ctx *ctx, const char *dir, const json_t *model_index, const char *unet_dir,
                                   const char *stored_spacing, ld_koala_defaults *out) {
    memset(out, 0, sizeof *out);
    char v[220];
    if (stored_spacing && !strcmp(stored_spacing, "trailing")) {
        out->lightning = 1;
        snprintf(out->why, sizeof out->why, "scheduler_config.json has timestep_spacing \"trailing\"");
        return LD_OK;
    }
    if (name_or_path_says(model_index, v, sizeof v)) {
        snprintf(out->why, sizeof out->why, "model_index.json _name_or_path \"%.180s\"", v);
    } else {
        json_t *ucfg = NULL;
        LD_TRY(ld_component_config(ctx, unet_dir, &ucfg));
        if (name_or_path_says(ucfg, v, sizeof v))
            snprintf(out->why, sizeof out->why, "unet/config.json _name_or_path \"%.180s\"", v);
        json_decref(ucfg);
        if (!out->why[0] && card_title_says(dir, v, sizeof v))
            snprintf(out->why, sizeof out->why, "README.md title \"%.200s\"", v);
    }
    if (out->why[0]) {
        out->lightning = 1;
        out->spacing_override = "trailing"; /* the card's from_config(..., timestep_spacing="trailing") */
    } else {
        snprintf(out->why, sizeof out->why,
                 "no Lightning in scheduler_config.json, model_index.json, unet/config.json or the README.md title");
    }
    return LD_OK;
}
