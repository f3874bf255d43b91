/* Subcommands of the `leandiff` program. Each lives in its own app/cmd_*.c
 * and is listed in the table in app/main.c. A command returns the process
 * exit status: 0 success, 1 failure (message already on stderr), 2 usage. */
#ifndef LD_APP_COMMANDS_H
#define LD_APP_COMMANDS_H

int cmd_inspect(int argc, char **argv);
int cmd_init_random(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_distill(int argc, char **argv);
int cmd_worker(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_batch(int argc, char **argv);

#endif
