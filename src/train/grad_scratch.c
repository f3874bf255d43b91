/* The backward ops' scratch pool (see grad_scratch.h). */
#include "train/grad_scratch.h"

#include "base/status.h"

#include <pthread.h>
#include <stdlib.h>

#define SLOTS 16

typedef struct {
    void *p;
    size_t size;
    int busy;
} slot;

static slot g_slots[SLOTS];
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

void *grad_scratch_get(size_t bytes) {
    if (bytes == 0) bytes = 1;
    pthread_mutex_lock(&g_lock);
    int best = -1, idle = -1;
    for (int i = 0; i < SLOTS; i++) {
        if (g_slots[i].busy) continue;
        if (g_slots[i].p && g_slots[i].size >= bytes && (best < 0 || g_slots[i].size < g_slots[best].size)) best = i;
        if (idle < 0 || (!g_slots[i].p && g_slots[idle].p) || (g_slots[idle].p && g_slots[i].size < g_slots[idle].size))
            idle = i;
    }
    void *p = NULL;
    if (best >= 0) { /* the smallest free buffer that fits */
        g_slots[best].busy = 1;
        p = g_slots[best].p;
    } else if (idle >= 0) { /* grow the smallest free slot */
        free(g_slots[idle].p);
        ld_calloc_huge(NULL, &g_slots[idle].p, bytes, ""); /* huge pages: see base/status.h; NULL on failure */
        g_slots[idle].size = g_slots[idle].p ? bytes : 0;
        g_slots[idle].busy = g_slots[idle].p != NULL;
        p = g_slots[idle].p;
    }
    pthread_mutex_unlock(&g_lock);
    return p ? p : malloc(bytes); /* every slot busy: an unpooled buffer */
}

void grad_scratch_put(void *p) {
    if (!p) return;
    pthread_mutex_lock(&g_lock);
    for (int i = 0; i < SLOTS; i++)
        if (g_slots[i].p == p) {
            g_slots[i].busy = 0;
            pthread_mutex_unlock(&g_lock);
            return;
        }
    pthread_mutex_unlock(&g_lock);
    free(p);
}

void grad_scratch_release(void) {
    pthread_mutex_lock(&g_lock);
    for (int i = 0; i < SLOTS; i++)
        if (!g_slots[i].busy) {
            free(g_slots[i].p);
            g_slots[i].p = NULL;
            g_slots[i].size = 0;
        }
    pthread_mutex_unlock(&g_lock);
}
