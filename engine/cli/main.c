/* main.c: the `demix` command line. One table of subcommands; each entry
 * names a function `int dx_cmd_<name>(int argc, char **argv)` (argv[0] is the
 * subcommand) whose return value is the exit status. To add a subcommand,
 * declare its function below and add one line to the table.
 * Single-threaded. */
#include <stdio.h>
#include <string.h>

#include "dx_cli.h"
#include "dx_util.h"

int dx_cmd_analyze(int argc, char **argv);
int dx_cmd_config(int argc, char **argv);
int dx_cmd_db(int argc, char **argv);
int dx_cmd_models(int argc, char **argv);
int dx_cmd_separate(int argc, char **argv);
int dx_cmd_token(int argc, char **argv);
int dx_cmd_user(int argc, char **argv);

typedef struct {
  const char *name;
  int (*fn)(int argc, char **argv);
  const char *help;
} dx_cli_command;

static const dx_cli_command commands[] = {
    {"analyze", dx_cmd_analyze,
     "analyze FILE|DIR... [--json|--jsonl|--csv] [--features tempo,key,energy,spectral,mfcc,chroma,loudness|all] [--device cpu|cuda|auto] [-j N]"},
    {"config", dx_cmd_config, "config: the resolved configuration (file and DEMIX_* environment)"},
    {"db", dx_cmd_db, "db migrate | db status: apply or list schema migrations"},
    {"models", dx_cmd_models, "models list | models fetch NAME...: separation models, installed or not; download one"},
    {"separate", dx_cmd_separate,
     "separate [-n MODEL] [-o OUT] [--filename PATTERN] [--two-stems STEM] [--shifts N] [--float32|--int24] "
     "[--flac|--mp3] [--clip-mode MODE] TRACK|DIR... (--help)"},
    {"token", dx_cmd_token,
     "token create --user NAME [--role user|admin|superadmin] [--name LABEL] | token revoke PREFIX | token list [--user NAME]"},
    {"user", dx_cmd_user, "user list: users with their roles and active tokens"},
};

static void usage(FILE *f) {
  fprintf(f, "usage: demix COMMAND [ARGS]\n\ncommands:\n");
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
  fprintf(f, "\nConfiguration: var/demix.conf (or DEMIX_CONFIG) and DEMIX_<KEY> variables.\n");
}

int main(int argc, char **argv) {
  dx_log_init("demix");
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  if (!strcmp(argv[1], "help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    usage(stdout);
    return 0;
  }
  if (!strcmp(argv[1], "--version")) {
    printf("demix %s\n", DEMIX_VERSION);
    return 0;
  }
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
  dx_cli_error("unknown command '%s' (try: demix help)", argv[1]);
  return 2;
}
