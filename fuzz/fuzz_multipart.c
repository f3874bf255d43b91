/* libFuzzer target: the multipart/form-data parser of POST /v1/images/edits
 * (app/multipart.c) and the upload decoder behind it (app/server_upload.c).
 * The input's first line is the Content-Type header value, the rest the
 * body. Either an error or parts lying inside the body, in order, with
 * NUL-terminated names; every part that is accepted goes through the upload
 * decoder, which gives an error or a picture within the limits. */
#include "multipart.h"
#include "server_upload.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nl = memchr(data, '\n', size < 200 ? size : 200);
    if (!nl) return 0;
    char ct[201];
    memcpy(ct, data, (size_t)(nl - data));
    ct[nl - data] = 0;
    const uint8_t *body = nl + 1;
    const size_t len = size - (size_t)(body - data);
    /* a copy of exactly len bytes, so ASan sees any read past the body */
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy) return 0;
    memcpy(copy, body, len);
    char boundary[MULTIPART_BOUNDARY_MAX + 1], err[256];
    mp_part parts[4];
    int n = -1;
    if (multipart_boundary(ct, boundary, err, sizeof err)) {
        if (strlen(boundary) == 0 || strlen(boundary) > MULTIPART_BOUNDARY_MAX) abort();
        if (multipart_parse(boundary, copy, len, parts, 4, &n, err, sizeof err)) {
            if (n < 1 || n > 4) abort();
            const uint8_t *prev = copy;
            for (int i = 0; i < n; i++) {
                const mp_part *p = &parts[i];
                if (p->data < prev || p->data + p->len > copy + len || !p->name[0]) abort();
                if (strlen(p->name) >= sizeof p->name || strlen(p->filename) >= sizeof p->filename) abort();
                if (multipart_get(parts, n, p->name) > p) abort();
                prev = p->data + p->len;
                upload_image im;
                if (upload_decode("part", p->data, p->len, &im, err, sizeof err)) {
                    if (im.width < 1 || im.height < 1 || im.width > UPLOAD_MAX_SIDE || im.height > UPLOAD_MAX_SIDE ||
                        (unsigned long long)im.width * im.height > UPLOAD_MAX_PIXELS || !im.rgb)
                        abort();
                    uint8_t *m = upload_mask_rgb(&im, i & 1);
                    free(m);
                    upload_image_free(&im);
                }
            }
        } else if (!err[0]) {
            abort(); /* a refusal always says why */
        }
    }
    free(copy);
    return 0;
}
