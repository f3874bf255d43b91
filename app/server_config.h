/* The settings of `leandiff serve` (filled from the flags by cmd_serve.c,
 * read by every other server file). Plain data, no functions. */
#ifndef LD_APP_SERVER_CONFIG_H
#define LD_APP_SERVER_CONFIG_H

#include <stddef.h>

typedef struct {
    const char *model_dir, *decoder_dir;
    const char *host;
    int port;             /* 0: any free port (printed at start) */
    int threads;          /* compute threads, 0 = all cores */
    int max_queue;        /* jobs waiting (not counting the running one) */
    const char *api_key;  /* NULL: no authentication */
    const char *outputs;  /* folder for saved PNGs, NULL: keep in memory only */
    const char *lora_dir; /* where <lora:NAME:SCALE> prompt tags find NAME.safetensors, NULL: tags refused */
    const char *taesd_dir; /* AutoencoderTiny folder for the previews (SDXL family), NULL: the cheap projection */
    size_t max_body;      /* request body limit in bytes */
    int max_size;         /* width and height limit */
    int max_steps;
    int max_batch;        /* images per request */
    int history;          /* finished jobs kept in memory */
    int max_connections;
    int per_ip_limit;     /* simultaneous connections from one address */
    int header_timeout;   /* seconds a connection may sit idle before its request headers are complete */
    int idle_timeout;     /* seconds a connection may sit idle afterwards (body, between answers) */
    size_t drain_limit;   /* bodies over max_body up to this size are read and dropped so the client sees the 413 */
    const char *cors_origins[8]; /* --cors-origin values ("*" for any); none: same origin only */
    int n_cors;
    int access_log;       /* one line per request on stderr */
} server_config;

#endif
