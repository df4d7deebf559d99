/* main.c: demixd, the resident engine.
 *
 *   demixd [--workers N] [--pidfile PATH] [--device cpu|cuda|auto] [--once]
 *          [--grace SECONDS] [--types TYPE,...]
 *
 * N worker threads (cfg engine_workers), each with its own connection,
 * compute backend and lease keeper, loop: claim a job, run its handler,
 * finish the row. The main thread binds the wake-up socket (engine_socket),
 * wakes workers when a datagram arrives (they also poll every poll_ms, since
 * several engines on several hosts share one database), requeues lapsed
 * leases, and keeps this engine's row in table engines fresh.
 * SIGTERM/SIGINT: stop claiming, let running jobs finish within the grace
 * period (--grace, or shutdown_grace_seconds in the configuration, default 20 s), then cancel
 * them through their progress checks and give them back to the queue; a
 * second signal skips the grace period. SIGHUP: restart in place the same
 * way (running jobs finish within the grace period or go back to the
 * queue), then the program executes itself anew with the same arguments and
 * pid, reading the configuration again. The engine restarts itself likewise
 * when a worker's GPU context is lost (a CUDA error after which its backend
 * cannot be opened again): only a new process gets a working context, and a
 * GPU that stays broken makes the new process fail at start instead of
 * looping. --once: work until no job is
 * runnable, then exit. --types limits the job types this engine claims
 * (default: every registered type, e.g. probe, sleep, analyze, separate).
 * Threading: signals are handled on the main thread only (workers block them). */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dx_daemon.h"
#include "dx_job_runner.h"

#define MAX_WORKERS 64
#define HARD_STOP_SECONDS 10.0

static volatile sig_atomic_t g_signals; /* SIGTERM/SIGINT received */
static volatile sig_atomic_t g_hup;     /* SIGHUP received: restart */
static void on_signal(int sig) {
  if (sig == SIGHUP) g_hup = 1;
  else g_signals++;
}

typedef struct {
  dx_config cfg;
  int nworkers, once;
  double grace;
  char pidfile[DX_CONFIG_STR];
  char typebuf[512];
  const char *types[33]; /* --types, NULL-terminated; types[0] NULL: all registered */
  dx_job_worker *workers[MAX_WORKERS];
  pthread_t threads[MAX_WORKERS];
  int index[MAX_WORKERS];
  pthread_mutex_t mu;
  pthread_cond_t cv;
  /* under mu */
  unsigned wake_gen;
  int stopping;
  int exited; /* worker threads that returned */
  int stuck;  /* worker threads left running at exit */
  int restart; /* a worker lost its GPU context: restart the process */
  char **args; /* argv as given, for a restart */
} daemon_t;

static daemon_t D;

static void usage(FILE *f) {
  fprintf(f, "usage: demixd [--workers N] [--pidfile PATH] [--device cpu|cuda|auto] [--once] [--grace SECONDS]\n"
             "              [--types TYPE,...]\n");
}

static void timed_wait(double seconds) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  double t = (double)ts.tv_sec + ts.tv_nsec * 1e-9 + seconds;
  ts.tv_sec = (time_t)t;
  ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
  pthread_cond_timedwait(&D.cv, &D.mu, &ts);
}

static void *worker_main(void *arg) {
  int i = *(int *)arg;
  dx_job_worker *w = D.workers[i];
  int idle_errors = 0;
  for (;;) {
    pthread_mutex_lock(&D.mu);
    int stop = D.stopping;
    unsigned gen = D.wake_gen;
    pthread_mutex_unlock(&D.mu);
    if (stop) break;
    int ran = 0;
    dx_errbuf err = {{0}};
    dx_status st = dx_job_worker_run_next(w, &ran, &err);
    if (st != DX_OK) {
      if (idle_errors++ % 30 == 0) DX_WARN("worker %d: %s", i, err.msg[0] ? err.msg : dx_strerror(st));
    } else {
      idle_errors = 0;
    }
    if (dx_job_worker_device_lost(w)) {
      DX_ERROR("worker %d lost its GPU context: restarting the engine", i);
      pthread_mutex_lock(&D.mu);
      D.restart = 1;
      pthread_cond_broadcast(&D.cv);
      pthread_mutex_unlock(&D.mu);
      break;
    }
    if (ran) continue;
    if (D.once && (st == DX_OK || idle_errors > 10)) break; /* drained, or the database stays away */
    pthread_mutex_lock(&D.mu);
    if (!D.stopping && D.wake_gen == gen) timed_wait(st == DX_OK ? D.cfg.poll_ms / 1000.0 : 1.0);
    pthread_mutex_unlock(&D.mu);
  }
  pthread_mutex_lock(&D.mu);
  D.exited++;
  pthread_cond_broadcast(&D.cv);
  pthread_mutex_unlock(&D.mu);
  return NULL;
}

static void wake_workers(void) {
  pthread_mutex_lock(&D.mu);
  D.wake_gen++;
  pthread_cond_broadcast(&D.cv);
  pthread_mutex_unlock(&D.mu);
}

static int restart_requested(void) {
  pthread_mutex_lock(&D.mu);
  int r = D.restart;
  pthread_mutex_unlock(&D.mu);
  return r || g_hup;
}

static int running_jobs(void) {
  int n = 0;
  char id[DX_UUID_LEN];
  for (int i = 0; i < D.nworkers; i++) n += dx_job_worker_current(D.workers[i], id);
  return n;
}

static int parse_args(int argc, char **argv, const char **device, int *workers) {
  static const struct option opts[] = {
      {"workers", required_argument, 0, 'w'}, {"pidfile", required_argument, 0, 'p'},
      {"device", required_argument, 0, 'd'},  {"once", no_argument, 0, 'o'},
      {"grace", required_argument, 0, 'g'},   {"types", required_argument, 0, 't'},
      {"help", no_argument, 0, 'h'},
      {0, 0, 0, 0}};
  int c;
  char *end;
  while ((c = getopt_long(argc, argv, "w:p:d:og:t:h", opts, NULL)) != -1) {
    switch (c) {
    case 'w':
      *workers = (int)strtol(optarg, &end, 10);
      if (*end || *workers < 1 || *workers > MAX_WORKERS) {
        fprintf(stderr, "demixd: --workers must be 1-%d\n", MAX_WORKERS);
        return 2;
      }
      break;
    case 'p': snprintf(D.pidfile, sizeof D.pidfile, "%s", optarg); break;
    case 'd':
      if (strcmp(optarg, "cpu") && strcmp(optarg, "cuda") && strcmp(optarg, "auto")) {
        fprintf(stderr, "demixd: --device must be cpu, cuda or auto\n");
        return 2;
      }
      *device = optarg;
      break;
    case 'o': D.once = 1; break;
    case 'g':
      D.grace = strtod(optarg, &end);
      if (*end || D.grace < 0) {
        fprintf(stderr, "demixd: --grace must be a number of seconds\n");
        return 2;
      }
      break;
    case 't': {
      snprintf(D.typebuf, sizeof D.typebuf, "%s", optarg);
      int n = 0;
      for (char *save = NULL, *t = strtok_r(D.typebuf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (!dx_job_handler_find(t) || n >= 32) {
          fprintf(stderr, "demixd: --types: no job type '%s'\n", t);
          return 2;
        }
        D.types[n++] = t;
      }
      D.types[n] = NULL;
      break;
    }
    case 'h': usage(stdout); exit(0);
    default: usage(stderr); return 2;
    }
  }
  if (optind < argc) {
    usage(stderr);
    return 2;
  }
  return 0;
}

/* Stop claiming, wait out the grace period, then cancel and release. */
static void shutdown_workers(dx_db *db) {
  pthread_mutex_lock(&D.mu);
  D.stopping = 1;
  pthread_cond_broadcast(&D.cv);
  double t0 = dx_now();
  int aborted = 0;
  while (D.exited < D.nworkers) {
    double now = dx_now();
    if (!aborted && (now - t0 >= D.grace || g_signals > 1)) {
      pthread_mutex_unlock(&D.mu);
      DX_INFO("grace period over: stopping running jobs and giving them back to the queue");
      for (int i = 0; i < D.nworkers; i++) dx_job_worker_abort(D.workers[i]);
      pthread_mutex_lock(&D.mu);
      aborted = 1;
      t0 = now;
      continue;
    }
    if (aborted && now - t0 >= HARD_STOP_SECONDS) break;
    timed_wait(0.1);
  }
  int left = D.nworkers - D.exited;
  pthread_mutex_unlock(&D.mu);
  if (left == 0) {
    for (int i = 0; i < D.nworkers; i++) pthread_join(D.threads[i], NULL);
    return;
  }
  /* Handlers that ignore their progress checks: give their jobs back so
   * another engine takes them; the process exits under them. */
  for (int i = 0; i < D.nworkers; i++) {
    dx_errbuf err = {{0}};
    char id[DX_UUID_LEN];
    if (!dx_job_worker_current(D.workers[i], id)) continue;
    DX_WARN("worker %d did not stop; releasing job %s", i, id);
    if (db && dx_job_worker_release_stuck(D.workers[i], db, &err) != DX_OK)
      DX_WARN("could not release job %s: %s", id, err.msg);
  }
  D.stuck = left;
}

/* The arguments as given (getopt may reorder argv), for a restart. */
static char **copy_args(int argc, char **argv) {
  char **a = calloc((size_t)argc + 1, sizeof *a);
  if (!a) return NULL;
  for (int i = 0; i < argc; i++)
    if (!(a[i] = strdup(argv[i]))) return NULL; /* the process exits on failure: nothing to free */
  return a;
}

int main(int argc, char **argv) {
  dx_log_init("demixd");
  signal(SIGPIPE, SIG_IGN);
  D.args = copy_args(argc, argv); /* kept for the life of the process */
  if (!D.args) {
    DX_ERROR("out of memory");
    return 1;
  }
  const char *device = NULL;
  int workers = 0;
  D.grace = -1; /* --grace wins over the configuration */
  int rc = parse_args(argc, argv, &device, &workers);
  if (rc) return rc;

  dx_errbuf err = {{0}};
  dx_status st = dx_config_load(&D.cfg, &err);
  if (st != DX_OK) {
    DX_ERROR("configuration: %s", err.msg);
    return 1;
  }
  if (device) snprintf(D.cfg.device, sizeof D.cfg.device, "%s", device);
  if (D.grace < 0) D.grace = D.cfg.shutdown_grace_seconds;
  D.nworkers = workers ? workers : D.cfg.engine_workers;
  if (D.nworkers < 1) D.nworkers = 1;
  if (D.nworkers > MAX_WORKERS) D.nworkers = MAX_WORKERS;
  if (D.cfg.poll_ms < 10) D.cfg.poll_ms = 10;

  if (*D.pidfile && (st = dx_pidfile_write(D.pidfile, &err)) != DX_OK) {
    DX_ERROR("%s", err.msg);
    return 1;
  }
  pthread_mutex_init(&D.mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&D.cv, &ca);

  /* Workers and their keepers inherit a mask that blocks the stop signals. */
  sigset_t stopset, oldset;
  sigemptyset(&stopset);
  sigaddset(&stopset, SIGTERM);
  sigaddset(&stopset, SIGINT);
  sigaddset(&stopset, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &stopset, &oldset);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);

  dx_db *db = NULL;
  int sock = -1, opened = 0;
  dx_engine_row row;
  memset(&row, 0, sizeof row);
  int registered = 0, restart = 0;
  rc = 1;
  const char *const *types = D.types[0] ? D.types : dx_job_types();
  if ((st = dx_db_open(&D.cfg, &db, &err)) != DX_OK) {
    DX_ERROR("%s", err.msg);
    goto out;
  }
  for (int i = 0; i < D.nworkers; i++, opened++) {
    dx_job_worker_params p = {.index = i, .device = D.cfg.device, .types = types};
    if ((st = dx_job_worker_open(&D.cfg, &p, &D.workers[i], &err)) != DX_OK) {
      DX_ERROR("worker %d: %s", i, err.msg);
      goto out;
    }
  }
  dx_backend *be = dx_job_worker_backend(D.workers[0]);
  char typelist[512] = "";
  for (int i = 0; types[i]; i++)
    snprintf(typelist + strlen(typelist), sizeof typelist - strlen(typelist), "%s%s", i ? "," : "", types[i]);
  row.device = be->kind == DX_DEVICE_CUDA ? "cuda" : "cpu";
  row.gpu = be->kind == DX_DEVICE_CUDA ? be->device_desc : NULL;
  row.workers = D.nworkers;
  row.job_types = typelist;
  if (dx_engine_register(db, &row, &err) == DX_OK) registered = 1;
  else DX_WARN("cannot register in table engines (is schema/002_engines.sql applied?): %s", err.msg);

  if (!D.once) {
    char dir[DX_CONFIG_STR];
    snprintf(dir, sizeof dir, "%s", D.cfg.engine_socket);
    dx_mkdirs(dirname(dir));
    if (dx_job_wake_listen(D.cfg.engine_socket, &sock, &err) != DX_OK)
      DX_WARN("no wake-up socket (%s); polling every %d ms", err.msg, D.cfg.poll_ms);
  }

  /* Lapsed leases first, so a restarted engine picks its old jobs up again. */
  int lapsed = 0;
  if (dx_job_requeue_lapsed(db, &lapsed, &err) == DX_OK && lapsed)
    DX_INFO("returned %d job(s) with lapsed leases to the queue", lapsed);

  for (int i = 0; i < D.nworkers; i++) {
    D.index[i] = i;
    if (pthread_create(&D.threads[i], NULL, worker_main, &D.index[i]) != 0) {
      DX_ERROR("cannot start worker thread %d", i);
      D.nworkers = i;
      shutdown_workers(db);
      goto out;
    }
  }
  pthread_sigmask(SIG_SETMASK, &oldset, NULL);
  DX_INFO("started: %d worker(s) on %s%s%s, lease %d s, poll %d ms, socket %s, types %s", D.nworkers, row.device,
          row.gpu ? " " : "", row.gpu ? row.gpu : "", D.cfg.lease_seconds, D.cfg.poll_ms,
          sock >= 0 ? D.cfg.engine_socket : "(none)", typelist);

  double hb = D.cfg.heartbeat_seconds > 0 ? D.cfg.heartbeat_seconds : 5;
  double reap = D.cfg.lease_seconds / 2.0;
  if (reap > hb) reap = hb;
  if (reap < 0.5) reap = 0.5;
  double next_hb = dx_now() + hb, next_reap = dx_now() + reap;
  while (!g_signals && !restart_requested()) {
    if (D.once) {
      pthread_mutex_lock(&D.mu);
      int done = D.exited >= D.nworkers;
      if (!done) timed_wait(0.2);
      pthread_mutex_unlock(&D.mu);
      if (done) break;
    } else if (dx_job_wake_wait(sock, D.cfg.poll_ms < 500 ? D.cfg.poll_ms : 500)) {
      wake_workers();
    }
    double now = dx_now();
    if (now >= next_hb) {
      next_hb = now + hb;
      if (registered && dx_engine_heartbeat(db, &row, running_jobs(), &err) != DX_OK)
        DX_WARN("engine heartbeat: %s", err.msg);
    }
    if (now >= next_reap) {
      next_reap = now + reap;
      if (dx_job_requeue_lapsed(db, &lapsed, &err) != DX_OK) DX_WARN("requeue lapsed leases: %s", err.msg);
      else if (lapsed) {
        DX_INFO("returned %d job(s) with lapsed leases to the queue", lapsed);
        wake_workers();
      }
    }
  }
  restart = !g_signals && restart_requested();
  if (g_signals || restart)
    DX_INFO("%s: no new jobs; waiting up to %.1f s for running ones", restart ? "restarting" : "stopping", D.grace);
  shutdown_workers(db);
  restart = restart && !g_signals; /* a stop signal during the wait wins */
  rc = 0;

out:
  if (!D.stuck)
    for (int i = 0; i < opened; i++) dx_job_worker_close(D.workers[i]);
  if (registered) dx_engine_unregister(db, &row, NULL);
  if (sock >= 0) {
    close(sock);
    unlink(D.cfg.engine_socket);
  }
  dx_db_close(db);
  if (rc == 0 && restart) {
    /* Same pid, so the pid file stays; the signal mask here is the one
     * demixd started with, the handlers go back to their defaults. */
    DX_INFO("restarting: executing %s again", D.args[0]);
    execv("/proc/self/exe", D.args);
    DX_ERROR("cannot restart: execv: %s", strerror(errno));
    rc = 1;
  }
  if (*D.pidfile) dx_pidfile_remove(D.pidfile);
  DX_INFO("exited");
  if (D.stuck) _exit(rc); /* stuck handlers: do not wait for them */
  return rc;
}
