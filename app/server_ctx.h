/* What every route of `leandiff serve` sees: the settings, the loaded
 * model's name and family, and the job table. Data only (set up by
 * cmd_serve.c and server_run()). */
#ifndef LD_APP_SERVER_CTX_H
#define LD_APP_SERVER_CTX_H

#include "server_config.h"
#include "server_jobs.h"

typedef struct {
    server_config cfg;
    const char *model_name; /* ld_pipeline_model_name */
    const char *family;     /* ld_pipeline_family: "sdxl", "wuerstchen", "stable-cascade" */
    job_table jobs;
} server_ctx;

#endif
