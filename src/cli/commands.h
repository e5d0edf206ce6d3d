/* Subcommands of the `spqr` CLI. Each returns the process exit code. */
#ifndef SPQR_CLI_COMMANDS_H
#define SPQR_CLI_COMMANDS_H

int cmd_quantize_matrix(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_import(int argc, char **argv);

int cmd_perplexity(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_bench_kernel(int argc, char **argv);
int cmd_bench(int argc, char **argv);

#endif
