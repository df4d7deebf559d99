/* dx_cli.h: what the `demix` subcommands share.
 *
 * Every subcommand is a function `int dx_cmd_<name>(int argc, char **argv)`
 * listed once in the table in main.c; argv[0] is the subcommand's own name
 * and the return value is the process exit status (0 success, 1 failure,
 * 2 usage error). Single-threaded: the command line runs one command. */
#ifndef DX_CLI_H
#define DX_CLI_H

#include <stddef.h>

#include "dx_config.h"
#include "dx_db.h"

/* Print "demix: <message>" and a newline to stderr. */
void dx_cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Load the configuration into *cfg; on failure print why and return 1,
 * else 0. */
int dx_cli_config(dx_config *cfg);

/* Load the configuration and open the database. On success *db is open (the
 * caller closes it with dx_db_close) and 0 is returned; on failure the
 * reason is printed, *db is NULL and 1 is returned. */
int dx_cli_open_db(dx_config *cfg, dx_db **db);

/* Find the value of option `name` (e.g. "--user") in argv: accepts
 * "--user VALUE" and "--user=VALUE". Returns NULL when absent; sets *bad when
 * the option is present without a value. */
const char *dx_cli_opt(int argc, char **argv, const char *name, int *bad);

/* The audio files a batch command works through. */
typedef struct {
  char *path; /* as given, or ARG/REL/NAME for a file found in folder argument ARG */
  char *rel;  /* the folders between ARG and the file ("" for a file given itself or at ARG's top) */
} dx_cli_input;

typedef struct {
  dx_cli_input *v;
  size_t n, cap;
  int unreadable; /* a folder could not be read (said on stderr; its files are missing) */
  int folders;    /* folder arguments added */
  /* folders the walk does not enter (dx_cli_inputs_skip): device, inode */
  struct {
    unsigned long long dev, ino;
  } skip[2];
  int n_skip;
} dx_cli_inputs;

/* Append what argument arg names: a folder's audio files at any depth
 * (each folder's entries in name order; hidden entries and links to
 * folders are not entered; audio: not hidden, ending in wav, wave, flac,
 * ogg, oga, opus, mp3, aif or aiff in any case), anything else as given (a missing or
 * undecodable file fails when its turn comes). 0, or 1 when out of memory
 * (said on stderr). Free with dx_cli_inputs_free. */
int dx_cli_inputs_add(dx_cli_inputs *l, const char *arg);
void dx_cli_inputs_free(dx_cli_inputs *l);
/* Leave folder dir out when a folder argument's walk meets it below the
 * argument (`separate`'s output folder, so `demix separate -o stems .`
 * does not separate earlier stems again); a folder named as an argument is
 * still walked. Nothing when dir does not exist (yet) or two are set. */
void dx_cli_inputs_skip(dx_cli_inputs *l, const char *dir);

#endif
