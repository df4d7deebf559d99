/* registry.c: the table of job types the engine can run (see dx_job_runner.h).
 *
 * One line per type in `builtin` below; dx_job_register adds or replaces
 * entries at start-up (tests, plug-ins). Threading: register before workers
 * start; lookups afterwards are read-only. */
#include <pthread.h>
#include <string.h>

#include "dx_job_runner.h"

#define MAX_TYPES 32

typedef struct {
  char type[32];
  dx_job_handler fn;
} entry;

static const struct {
  const char *type;
  dx_job_handler fn;
} builtin[] = {
    {"probe", dx_job_probe}, /* re-read a track's file and refresh its audio facts */
    {"sleep", dx_job_sleep}, /* diagnostic: sleep in progress steps (tests, loop benchmarks) */
    {"separate", dx_job_separate}, /* split a track into stems with a named model */
    {"analyze", dx_job_analyze},   /* tempo, key, loudness, timbre features of a track */
};

static entry table[MAX_TYPES];
static int table_n;
static pthread_once_t table_once = PTHREAD_ONCE_INIT;
static const char *names[MAX_TYPES + 1];

static int valid_type(const char *t) {
  size_t n = t ? strlen(t) : 0;
  if (!n || n >= sizeof table[0].type) return 0;
  for (; *t; t++)
    if (!((*t >= 'a' && *t <= 'z') || (*t >= '0' && *t <= '9') || *t == '_')) return 0;
  return 1;
}

static void rebuild_names(void) {
  for (int i = 0; i < table_n; i++) names[i] = table[i].type;
  names[table_n] = NULL;
}

static void fill_table(void) {
  for (size_t i = 0; i < sizeof builtin / sizeof builtin[0] && table_n < MAX_TYPES; i++) {
    strcpy(table[table_n].type, builtin[i].type);
    table[table_n++].fn = builtin[i].fn;
  }
  rebuild_names();
}

static void init_table(void) { pthread_once(&table_once, fill_table); }

dx_status dx_job_register(const char *type, dx_job_handler fn) {
  if (!valid_type(type) || !fn) return DX_ERR_INVALID;
  init_table();
  for (int i = 0; i < table_n; i++)
    if (!strcmp(table[i].type, type)) {
      table[i].fn = fn;
      return DX_OK;
    }
  if (table_n >= MAX_TYPES) return DX_ERR_TOO_LARGE;
  strcpy(table[table_n].type, type);
  table[table_n++].fn = fn;
  rebuild_names();
  return DX_OK;
}

dx_job_handler dx_job_handler_find(const char *type) {
  init_table();
  for (int i = 0; type && i < table_n; i++)
    if (!strcmp(table[i].type, type)) return table[i].fn;
  return NULL;
}

const char *const *dx_job_types(void) {
  init_table();
  return names;
}
