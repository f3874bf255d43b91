/* The local executor of `leandiff serve` (server_exec.h): one worker thread
 * that runs the jobs in order on a pipeline this process opened, each image
 * with all compute threads, through ld_generate.
 *
 *     server_executor *ex = exec_local_new(pipe, cfg.outputs, cfg.lora_dir);   // NULL: out of memory
 *     jobs_init(&table, &cfg, family, ex);    // starts the worker
 *     ...
 *     jobs_stop(&table);                      // joins it
 *     ex->free(ex);
 */
#ifndef LD_APP_SERVER_EXEC_LOCAL_H
#define LD_APP_SERVER_EXEC_LOCAL_H

#include "leandiff.h"
#include "server_exec.h"

/* outputs: folder every image is also saved into, or NULL. Both borrowed. */
server_executor *exec_local_new(ld_pipeline *pipe, const char *outputs, const char *lora_dir);

#endif
