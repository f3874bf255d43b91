/* The routes of `leandiff serve`, one file per API. Each returns MHD_YES /
 * MHD_NO, or -1 if the path is not theirs (server.c then tries the next).
 *
 *   server_api_a1111.c   /sdapi/v1/...   AUTOMATIC1111-compatible
 *   server_api_openai.c  /v1/...         OpenAI images
 *   server_api_native.c  /api/v1/...     jobs, events (SSE), status
 */
#ifndef LD_APP_SERVER_API_H
#define LD_APP_SERVER_API_H

#include "server_ctx.h"
#include "server_http.h"

int api_a1111(server_ctx *s, server_req *r);
int api_openai(server_ctx *s, server_req *r);
int api_native(server_ctx *s, server_req *r);

#endif
