/* main.c: demix-fcgi, the FastCGI responder.
 *
 *   demix-fcgi [--socket PATH] [--workers N] [--pidfile PATH]
 *
 * The parent binds the unix socket (mode 0666 so nginx workers can connect),
 * writes the pidfile and pre-forks N workers; it restarts a worker that dies
 * and runs in the foreground. Each worker loops on FCGX_Accept_r with its own
 * database connection and request pool. SIGTERM (or SIGINT): the parent
 * passes SIGTERM on; a worker finishes the request it is in (SIGTERM is
 * blocked while it handles one), stops accepting and exits; the parent then
 * removes the socket and the pidfile and exits 0. A worker also retires after
 * WORKER_MAX_REQUESTS requests and is replaced.
 * A streamed body (a stems archive, up to gigabytes) is sent by a process
 * forked for it, a sender, so a client that downloads slowly holds that
 * process and never a responder: nginx passes such bodies on at the
 * client's pace without a temporary copy (nginx.conf.in). At most
 * fcgi_senders run at once, counted in memory the parent shares with its
 * workers; past that a download is answered 503 BUSY with Retry-After.
 * Threading: single-threaded processes. */
#include <errno.h>
#include <fcgiapp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dx_fcgi.h"

const char *dx_fcgi_version(void);

#define MAX_WORKERS 256
/* A worker exits after this many requests and the parent starts a fresh one,
 * so a slow leak inside a decoding library cannot grow without bound. */
#define WORKER_MAX_REQUESTS 100000L
/* Seconds a client is told to wait when every sender is busy. */
#define SENDERS_BUSY_RETRY "10"

/* --- worker ------------------------------------------------------------------ */

static volatile sig_atomic_t worker_stop;

static void worker_on_term(int sig) {
  (void)sig;
  worker_stop = 1;
  FCGX_ShutdownPending();
}

static int fcgi_write(void *ctx, const char *data, size_t n) {
  FCGX_Stream *out = ctx;
  if (n == 0) return FCGX_FFlush(out) ? -1 : 0;
  return FCGX_PutStr(data, (int)n, out) == (int)n ? 0 : -1;
}

static long fcgi_read(void *ctx, char *buf, size_t n) {
  FCGX_Stream *in = ctx;
  if (n > 1 << 20) n = 1 << 20;
  return FCGX_GetStr(buf, (int)n, in);
}

static const char *param(FCGX_Request *fr, const char *name) {
  const char *v = FCGX_GetParam(name, fr->envp);
  return v ? v : "";
}

/* The senders of all workers: their count, in memory the parent maps
 * shared before it forks them. A worker takes a place before it forks a
 * sender; the sender gives it back itself as it ends (also when SIGTERM
 * ends it), so the count is right at once whichever worker is busy. One
 * that a signal killed first cannot: whoever reaps it gives its place back
 * (its worker, or the parent, which adopts the senders of a worker that
 * exited: PR_SET_CHILD_SUBREAPER). */
typedef struct {
  atomic_int *running; /* the shared count */
  int max;
  int listen_fd;
} senders;

static atomic_int *running_of_this_sender; /* set in a sender only */

static void sender_on_term(int sig) {
  (void)sig;
  atomic_fetch_sub(running_of_this_sender, 1);
  _exit(1);
}

/* A reaped child that a signal ended had not given its place back. */
static void reaped_sender(atomic_int *running, int status) {
  if (WIFSIGNALED(status)) atomic_fetch_sub(running, 1);
}

/* Reap every sender of this process that has ended (async-signal-safe). */
static void reap_senders(atomic_int *running) {
  int status;
  while (waitpid(-1, &status, WNOHANG) > 0) reaped_sender(running, status);
}

/* A worker reaps its senders as they end (SIGCHLD), so the place of one a
 * signal killed comes back at once, also while the worker waits for
 * requests. The signal is blocked while a request is handled (the
 * database client's calls run undisturbed) and the handler restarts what
 * it interrupts (SA_RESTART: the accept() libfcgi waits in). */
static atomic_int *running_of_this_worker;

static void worker_on_child(int sig) {
  (void)sig;
  int saved = errno;
  reap_senders(running_of_this_worker);
  errno = saved;
}

/* 1 when a sender may start (its place taken), 0 when all are busy. */
static int take_sender(senders *s) {
  if (atomic_fetch_add(s->running, 1) < s->max) return 1;
  atomic_fetch_sub(s->running, 1);
  return 0;
}

/* Send r's response from a child process and let this worker go on: the
 * child owns the connection (the worker closes its copy without shutting
 * it down: FCGX_Detach) and ends the FastCGI request itself. The child
 * uses nothing but the response's files: never the database connection it
 * inherits, and _exit so that nothing is said on it. 1 when handed off, 0
 * when the fork failed (the worker sends it itself). */
static int hand_off(FCGX_Request *fr, dx_req *r, senders *s) {
  pid_t pid = fork();
  if (pid < 0) {
    atomic_fetch_sub(s->running, 1);
    DX_WARN("fork for a download: %s; sending it from the responder", strerror(errno));
    return 0;
  }
  if (pid == 0) {
    close(s->listen_fd);
    running_of_this_sender = s->running;
    signal(SIGCHLD, SIG_DFL); /* a sender has no children */
    signal(SIGTERM, sender_on_term);
    sigset_t term;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    sigprocmask(SIG_UNBLOCK, &term, NULL);
    int rc = dx_resp_send(r, fcgi_write, fr->out);
    FCGX_Finish_r(fr);
    sigprocmask(SIG_BLOCK, &term, NULL); /* the place is given back once */
    atomic_fetch_sub(s->running, 1);
    _exit(rc ? 1 : 0);
  }
  FCGX_Detach(fr);
  FCGX_Free(fr, 1);
  return 1;
}

/* 1 when the response went to a sender (the request is gone from fr). */
static int handle(FCGX_Request *fr, dx_worker *w, dx_pool *pool, senders *snd) {
  dx_req r;
  memset(&r, 0, sizeof r);
  r.pool = pool;
  r.w = w;
  r.cfg = w->cfg;
  r.method = param(fr, "REQUEST_METHOD");
  if (!*r.method) r.method = "GET";
  const char *path = param(fr, "DOCUMENT_URI");
  if (!*path) {
    const char *uri = param(fr, "REQUEST_URI");
    const char *q = strchr(uri, '?');
    path = q ? dx_pool_strndup(pool, uri, (size_t)(q - uri)) : uri;
  }
  r.path = path && *path ? path : "/";
  r.query_string = param(fr, "QUERY_STRING");
  const char *ct = param(fr, "CONTENT_TYPE");
  r.content_type = *ct ? ct : NULL;
  const char *auth = param(fr, "HTTP_AUTHORIZATION");
  r.authorization = *auth ? auth : NULL;
  const char *cl = param(fr, "CONTENT_LENGTH");
  char *end = NULL;
  r.content_length = *cl ? strtoll(cl, &end, 10) : -1;
  if (*cl && (*end || r.content_length < 0)) r.content_length = -1;
  const char *bf = param(fr, "REQUEST_BODY_FILE");
  r.body_file = *bf ? bf : NULL;
  r.read_body = fcgi_read;
  r.read_ctx = fr->in;
  dx_dispatch(&r, dx_routes, dx_routes_count);
  if (r.resp.body_fn && strcmp(r.method, "HEAD") != 0) {
    reap_senders(snd->running); /* one that ended while SIGCHLD was blocked */
    if (!take_sender(snd)) {
      DX_WARN("%s %s: all %d senders are busy", r.method, r.path, snd->max);
      r.resp.nheaders = 0; /* the download's own (Content-Disposition...) */
      dx_resp_status(&r, DX_ERR_BUSY, "too many downloads and event streams at once; try again shortly");
      dx_resp_header(&r, "Retry-After", SENDERS_BUSY_RETRY);
    } else if (hand_off(fr, &r, snd)) {
      return 1;
    } else if (r.resp.stream_len == DX_STREAM_LIVE) { /* never from a responder: it could last an hour */
      r.resp.nheaders = 0;
      dx_resp_status(&r, DX_ERR_BUSY, "cannot start a stream now; try again shortly");
      dx_resp_header(&r, "Retry-After", SENDERS_BUSY_RETRY);
    }
  }
  if (r.resp.status >= 500) DX_WARN("%s %s -> %d", r.method, r.path, r.resp.status);
  dx_resp_send(&r, fcgi_write, fr->out);
  return 0;
}

static int worker_main(int listen_fd, const dx_config *cfg, atomic_int *running) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = worker_on_term;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL); /* no SA_RESTART: accept() returns EINTR */
  signal(SIGINT, SIG_IGN);       /* the parent turns ^C into SIGTERM */
  signal(SIGPIPE, SIG_IGN);
  running_of_this_worker = running;
  sa.sa_handler = worker_on_child;
  sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
  sigaction(SIGCHLD, &sa, NULL);
  sigset_t busy; /* blocked while a request is handled */
  sigemptyset(&busy);
  sigaddset(&busy, SIGTERM);
  sigaddset(&busy, SIGCHLD);
  sigprocmask(SIG_UNBLOCK, &busy, NULL);

  dx_worker w;
  memset(&w, 0, sizeof w);
  w.cfg = cfg;
  w.senders_running = running;
  w.senders_max = cfg->fcgi_senders > 0 ? cfg->fcgi_senders : 1;
  dx_worker_db(&w);
  dx_pool *pool = dx_pool_create(64 << 10);
  FCGX_Request fr;
  if (!pool || FCGX_InitRequest(&fr, listen_fd, FCGI_FAIL_ACCEPT_ON_INTR)) return 1;
  int errors = 0;
  long served = 0;
  senders snd = {running, w.senders_max, listen_fd};
  while (!worker_stop && served < WORKER_MAX_REQUESTS) {
    int rc = FCGX_Accept_r(&fr);
    if (rc < 0) {
      if (worker_stop) break;
      if (++errors > 100) {
        DX_ERROR("accept keeps failing (%d); worker exits", rc);
        break;
      }
      continue;
    }
    errors = 0;
    served++;
    sigprocmask(SIG_BLOCK, &busy, NULL);
    if (!handle(&fr, &w, pool, &snd)) FCGX_Finish_r(&fr);
    dx_pool_reset(pool);
    sigprocmask(SIG_UNBLOCK, &busy, NULL); /* a SIGTERM or SIGCHLD that came meanwhile lands here */
  }
  FCGX_Free(&fr, 0);
  dx_pool_destroy(pool);
  dx_db_close(w.db);
  json_object_put(w.health_engine);
  return 0;
}

/* --- parent ------------------------------------------------------------------ */

static void usage(FILE *f) {
  fprintf(f,
          "usage: demix-fcgi [--socket PATH] [--workers N] [--pidfile PATH]\n"
          "  FastCGI responder for nginx. Defaults come from the demix configuration\n"
          "  (fcgi_socket, fcgi_workers; pidfile <run_dir>/demix-fcgi.pid).\n");
}

/* 1 when something accepts connections on the unix socket path. */
static int socket_alive(const char *path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
  int ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
  close(fd);
  return ok;
}

static void dirname_of(const char *path, char *out, size_t n) {
  snprintf(out, n, "%s", path);
  char *s = strrchr(out, '/');
  if (s && s != out) *s = 0;
  else if (s) s[1] = 0;
  else snprintf(out, n, ".");
}

static pid_t spawn(int listen_fd, const dx_config *cfg, atomic_int *running, const sigset_t *parent_mask) {
  pid_t pid = fork();
  if (pid == 0) {
    sigprocmask(SIG_SETMASK, parent_mask, NULL);
    _exit(worker_main(listen_fd, cfg, running));
  }
  return pid;
}

int main(int argc, char **argv) {
  dx_log_init("demix-fcgi");
  const char *sock_arg = NULL, *pid_arg = NULL;
  int workers = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--socket") && i + 1 < argc) sock_arg = argv[++i];
    else if (!strcmp(argv[i], "--pidfile") && i + 1 < argc) pid_arg = argv[++i];
    else if (!strcmp(argv[i], "--workers") && i + 1 < argc) {
      char *end;
      long v = strtol(argv[++i], &end, 10);
      if (*end || v < 1 || v > MAX_WORKERS) {
        fprintf(stderr, "demix-fcgi: --workers must be 1..%d\n", MAX_WORKERS);
        return 2;
      }
      workers = (int)v;
    } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      usage(stdout);
      return 0;
    } else if (!strcmp(argv[i], "--version")) {
      printf("demix-fcgi %s\n", dx_fcgi_version());
      return 0;
    } else {
      usage(stderr);
      return 2;
    }
  }
  static dx_config cfg;
  dx_errbuf err;
  if (dx_config_load(&cfg, &err) != DX_OK) {
    DX_ERROR("configuration: %s", err.msg);
    return 1;
  }
  if (!workers) workers = cfg.fcgi_workers > 0 ? (cfg.fcgi_workers < MAX_WORKERS ? cfg.fcgi_workers : MAX_WORKERS) : 4;
  char sock_path[DX_CONFIG_STR], pid_path[DX_CONFIG_STR + 32], dir[DX_CONFIG_STR + 32];
  snprintf(sock_path, sizeof sock_path, "%s", sock_arg ? sock_arg : cfg.fcgi_socket);
  if (pid_arg) snprintf(pid_path, sizeof pid_path, "%s", pid_arg);
  else snprintf(pid_path, sizeof pid_path, "%s/demix-fcgi.pid", cfg.run_dir);
  if (!*sock_path || strlen(sock_path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
    DX_ERROR("socket path '%s' is empty or too long", sock_path);
    return 1;
  }
  struct stat sb;
  if (lstat(sock_path, &sb) == 0) {
    if (!S_ISSOCK(sb.st_mode)) {
      DX_ERROR("%s exists and is not a socket", sock_path);
      return 1;
    }
    if (socket_alive(sock_path)) {
      DX_ERROR("another responder is listening on %s", sock_path);
      return 1;
    }
    unlink(sock_path);
  }
  dirname_of(sock_path, dir, sizeof dir);
  dx_mkdirs(dir);
  dirname_of(pid_path, dir, sizeof dir);
  dx_mkdirs(dir);
  snprintf(dir, sizeof dir, "%s/tmp", cfg.storage_dir);
  if (dx_mkdirs(dir) != DX_OK) DX_WARN("cannot create %s", dir);

  if (FCGX_Init()) {
    DX_ERROR("FCGX_Init failed");
    return 1;
  }
  int listen_fd = FCGX_OpenSocket(sock_path, 1024);
  if (listen_fd < 0) {
    DX_ERROR("cannot listen on %s", sock_path);
    return 1;
  }
  if (chmod(sock_path, 0666)) DX_WARN("chmod %s: %s", sock_path, strerror(errno));
  FILE *pf = fopen(pid_path, "w");
  if (!pf || fprintf(pf, "%d\n", (int)getpid()) < 0 || fclose(pf)) {
    DX_ERROR("cannot write pidfile %s", pid_path);
    unlink(sock_path);
    return 1;
  }

  /* The parent takes its signals synchronously with sigtimedwait. */
  sigset_t mask, old;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGCHLD);
  sigaddset(&mask, SIGHUP);
  sigprocmask(SIG_BLOCK, &mask, &old);
  signal(SIGPIPE, SIG_IGN);

  atomic_int *running = mmap(NULL, sizeof *running, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (running == MAP_FAILED) {
    DX_ERROR("cannot map the senders' count: %s", strerror(errno));
    unlink(sock_path);
    unlink(pid_path);
    return 1;
  }
  /* the senders of a worker that exits come here, to be reaped and counted */
  if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) DX_WARN("PR_SET_CHILD_SUBREAPER: %s", strerror(errno));
  pid_t pids[MAX_WORKERS] = {0};
  double started[MAX_WORKERS] = {0};
  for (int i = 0; i < workers; i++) {
    pids[i] = spawn(listen_fd, &cfg, running, &old);
    started[i] = dx_now();
  }
  DX_INFO("listening on %s with %d workers (pid %d)", sock_path, workers, (int)getpid());

  int stopping = 0;
  double stop_at = 0, last_term = 0;
  for (;;) {
    struct timespec ts = {0, 250 * 1000 * 1000};
    int sig = sigtimedwait(&mask, NULL, &ts);
    if ((sig == SIGTERM || sig == SIGINT) && !stopping) {
      stopping = 1;
      stop_at = dx_now();
      DX_INFO("stopping: waiting for workers to finish their requests");
    }
    /* Reap and restart. */
    pid_t pid;
    int status;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
      int was_worker = 0;
      for (int i = 0; i < workers; i++) {
        if (pids[i] != pid) continue;
        was_worker = 1;
        pids[i] = 0;
        if (!stopping) {
          int recycled = WIFEXITED(status) && WEXITSTATUS(status) == 0; /* after WORKER_MAX_REQUESTS */
          if (WIFSIGNALED(status)) DX_WARN("worker %d died from signal %d; restarting", (int)pid, WTERMSIG(status));
          else if (!recycled) DX_WARN("worker %d exited with %d; restarting", (int)pid, WEXITSTATUS(status));
          if (!recycled && dx_now() - started[i] < 1.0) sleep(1); /* a worker that dies at once: do not spin */
          pids[i] = spawn(listen_fd, &cfg, running, &old);
          started[i] = dx_now();
        }
      }
      if (!was_worker) reaped_sender(running, status); /* adopted from a worker that exited */
    }
    if (!stopping) continue;
    int alive = 0;
    for (int i = 0; i < workers; i++) alive += pids[i] > 0;
    if (!alive) break;
    double now = dx_now();
    if (now - stop_at > 60.0) {
      for (int i = 0; i < workers; i++)
        if (pids[i] > 0) kill(pids[i], SIGKILL);
    } else if (now - last_term >= 1.0) {
      /* Sent again each second: a worker between its stop check and accept() misses one. */
      for (int i = 0; i < workers; i++)
        if (pids[i] > 0) kill(pids[i], SIGTERM);
      last_term = now;
    }
  }
  close(listen_fd);
  unlink(sock_path);
  unlink(pid_path);
  DX_INFO("stopped");
  return 0;
}
