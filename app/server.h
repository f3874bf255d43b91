/* `leandiff serve`: the HTTP server's shared types and the calls between its
 * files.
 *
 *   cmd_serve.c          flags -> server_config, opens the pipeline, server_run()
 *   server.c             libmicrohttpd setup, auth, body limit, routing, replies
 *   server_jobs.c        the job queue, the single worker thread, progress
 *   server_json.c        request bodies -> gen_request (400 naming the field)
 *   server_image.c       PNG encoding, infotext, base64, saving outputs
 *   server_api_a1111.c   /sdapi/v1/... (AUTOMATIC1111-compatible)
 *   server_api_openai.c  /v1/images/generations, /v1/models
 *   server_api_native.c  /api/v1/jobs... (async jobs, SSE progress)
 *   web/index.html       the page at /, embedded into the binary
 *
 * Threads: libmicrohttpd runs one thread per connection; one worker thread
 * runs the jobs in order, each with all compute threads. Everything about
 * jobs is guarded by one mutex (server_jobs.c); a condition variable is
 * broadcast on every change, which synchronous requests and event streams
 * wait on.
 */
#ifndef LD_APP_SERVER_H
#define LD_APP_SERVER_H

#include "leandiff.h"

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#if MHD_VERSION >= 0x00097002
typedef enum MHD_Result mhd_result;
#else
typedef int mhd_result;
#endif

typedef struct {
    const char *model_dir, *decoder_dir;
    const char *host;
    int port;             /* 0: any free port (printed at start) */
    int threads;          /* compute threads, 0 = all cores */
    int max_queue;        /* jobs waiting (not counting the running one) */
    const char *api_key;  /* NULL: no authentication */
    const char *outputs;  /* folder for saved PNGs, NULL: keep in memory only */
    size_t max_body;      /* request body limit in bytes */
    int max_size;         /* width and height limit */
    int max_steps;
    int max_batch;        /* images per request */
    int history;          /* finished jobs kept in memory */
    int max_connections;
} server_config;

/* ---- a generation request, validated ------------------------------------ */

#define SERVER_SAMPLER_MAX 32

typedef struct {
    char *prompt;          /* owned */
    char *negative_prompt; /* owned, NULL = none given */
    int width, height;     /* 0: model default */
    int steps;             /* 0: model default */
    double cfg_scale;      /* < 0: model default */
    int prior_steps;       /* Wuerstchen / Cascade; 0: default */
    double prior_cfg_scale;
    char sampler[SERVER_SAMPLER_MAX]; /* library name ("euler", "euler_a"), "" = default */
    int64_t seed;          /* -1: random (resolved when queued) */
    int count;             /* images, each with seed + i */
} gen_request;

typedef enum { REQ_A1111, REQ_OPENAI, REQ_NATIVE } req_dialect;

void gen_request_init(gen_request *r);
void gen_request_free(gen_request *r);

/* ---- jobs (server_jobs.c) ---------------------------------------------- */

typedef enum { JOB_QUEUED, JOB_RUNNING, JOB_DONE, JOB_FAILED, JOB_CANCELLED } job_state;

typedef struct {
    unsigned char *png;
    size_t png_len;
    ld_gen_info info;
    char *infotext;
    char file[256];        /* saved file name inside --outputs, "" if not saved */
} job_image;

typedef struct job job;
struct job {
    char id[33];
    int refs;              /* holders: the job table, the worker, each HTTP thread */
    int listed;            /* still in the job table */
    job_state state;
    gen_request req;
    uint64_t seed;         /* resolved first seed */
    char api[16];          /* "a1111", "openai", "native": for the log and the page */
    double created, started, finished;
    /* progress of the running job */
    int image;             /* index of the image being made */
    char stage[16];
    int step, total;       /* within the current stage */
    double fraction;       /* 0..1 over the whole job */
    int cancel;            /* set by DELETE / interrupt / shutdown / client gone */
    unsigned version;      /* bumped on every change (event streams) */
    job_image *images;     /* req.count entries once running */
    int n_images;          /* finished so far */
    int error_status;      /* HTTP status for a failed job (400 bad parameters, 500 otherwise) */
    char error[512];
    job *next_queued;
};

typedef struct server server;

int jobs_start(server *s);     /* starts the worker; 0 on failure (message on stderr) */
void jobs_stop(server *s);     /* cancels everything and joins the worker */
void jobs_free(server *s);     /* frees the job table (after the HTTP daemon stopped) */

/* Queues a job that takes over req (req is reset). Returns the job with a
 * reference for the caller, or NULL with *retry_after set when the queue is
 * full (or the server is stopping). */
job *jobs_submit(server *s, gen_request *req, const char *api, int *retry_after);
/* Finds a job by id and takes a reference; NULL if unknown. */
job *jobs_get(server *s, const char *id);
void jobs_put(server *s, job *j);
/* Asks a job to stop: a queued job is dropped, a running one stops at its
 * next step. Returns 0 if it had already finished. */
int jobs_cancel(server *s, job *j);
/* Cancels the running job (A1111 interrupt); 1 if there was one. */
int jobs_interrupt(server *s);
/* Waits until the job finishes or the server stops; while waiting, calls
 * gone(user) every ~200 ms and cancels the job if it returns nonzero (the
 * client disconnected). */
void jobs_wait(server *s, job *j, int (*gone)(void *), void *user);
/* Waits (up to timeout_ms) until j->version differs from seen. Returns the
 * current version. Call with the lock held. */
unsigned jobs_wait_change(server *s, job *j, unsigned seen, int timeout_ms);
void jobs_lock(server *s);
void jobs_unlock(server *s);
/* JSON view of a job (lock held). */
json_t *job_to_json(server *s, const job *j);
/* One finished image of a job: the values used, infotext, file, url. */
json_t *job_image_json(const server *s, const job *j, int i);
const char *job_state_name(job_state st);
/* Fills the A1111 progress answer (takes the lock). */
json_t *jobs_progress_json(server *s);
/* Finished and running jobs, newest first (takes the lock). */
json_t *jobs_list_json(server *s);

/* ---- the server --------------------------------------------------------- */

struct server {
    server_config cfg;
    ld_pipeline *pipe;
    const char *family;     /* ld_pipeline_family */
    const char *model_name;
    struct MHD_Daemon *daemon;
    int stopping;
    /* jobs (guarded by mu) */
    pthread_mutex_t mu;
    pthread_cond_t changed;
    pthread_cond_t work;
    pthread_t worker;
    int worker_started;
    job *queue_head, *queue_tail;
    int queued;
    job *running;
    job **table;           /* live jobs: queued, running and the last cfg.history finished */
    int n_table, cap_table;
    double mean_seconds;   /* running mean of job time per image, for Retry-After */
};

/* Runs until SIGINT / SIGTERM; returns the process exit status. */
int server_run(server *s);

/* ---- request handling (server.c) ---------------------------------------- */

typedef struct {
    struct MHD_Connection *conn;
    const char *method;
    const char *path;
    const char *body;       /* NUL-terminated, may be empty */
    size_t body_len;
} server_req;

/* Every reply goes through these. They take ownership of body / j. */
/* Adds the common headers, queues and releases resp. */
mhd_result server_queue(server_req *r, unsigned status, struct MHD_Response *resp);
mhd_result reply_json(server_req *r, unsigned status, json_t *j);
mhd_result reply_error(server_req *r, unsigned status, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
mhd_result reply_bytes(server_req *r, unsigned status, const char *content_type, void *data, size_t len,
                       int copy);
mhd_result reply_busy(server_req *r, int retry_after);
mhd_result reply_method(server_req *r, const char *allow);
/* 1 if the client closed its side of the connection. */
int server_client_gone(void *conn);

/* Synchronous generation (A1111 txt2img, OpenAI generations; in
 * server_api_a1111.c): validate the body, queue, wait (cancelling if the
 * client goes away), answer build(job, body) or the job's error. */
mhd_result run_sync(server *s, server_req *r, req_dialect d, const char *api,
                    json_t *(*build)(server *, job *, void *body));
/* The job's PNGs in base64: strings, or objects {key: string} if key. */
json_t *images_b64(const job *j, const char *key);

/* Routes: each returns MHD_YES / MHD_NO, or -1 if the path is not theirs. */
int api_a1111(server *s, server_req *r);
int api_openai(server *s, server_req *r);
int api_native(server *s, server_req *r);

/* ---- validation (server_json.c) ----------------------------------------- */

/* Parses r->body as a JSON object; on failure replies 400 and returns NULL. */
json_t *server_parse_body(server_req *r, mhd_result *res);

/* Fills req from the body; on a bad field writes a message naming it into
 * err / field and returns 0. */
int gen_request_from_json(const server *s, req_dialect d, const json_t *body, gen_request *req, char *err,
                          size_t errn, char *field, size_t fieldn);

/* ---- images (server_image.c) -------------------------------------------- */

/* PNG with the A1111 "parameters" text chunk. Returns 0 on failure. */
int server_png_encode(ld_ctx *ctx, const ld_image *img, const char *infotext, unsigned char **png, size_t *len);
/* A1111 infotext of one image (malloc'ed), NULL on failure (message on ctx). */
char *server_infotext(ld_ctx *ctx, const gen_request *req, const ld_gen_info *info);
/* malloc'ed NUL-terminated base64. */
char *base64_encode(const unsigned char *data, size_t len);
/* Writes png into the outputs folder under a name made here; the name goes to
 * file. Returns 0 on failure (logged). */
int server_save_png(const server *s, const job *j, int index, const unsigned char *png, size_t len, char *file,
                    size_t filen);

double server_now(void);

#endif
