/* wake.c: the engine's wake-up datagram socket (see dx_jobs.h).
 *
 * Responders call dx_job_wake after an enqueue: one byte sent to demixd's
 * AF_UNIX SOCK_DGRAM socket, non-blocking, every error ignored (engines also
 * poll the database). demixd binds the socket with dx_job_wake_listen and
 * waits on it with dx_job_wake_wait.
 * Threading: any thread; the functions keep no state. */
#include "dx_jobs.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static int make_addr(const char *path, struct sockaddr_un *sa) {
  if (!path || !*path || strlen(path) >= sizeof sa->sun_path) return 0;
  memset(sa, 0, sizeof *sa);
  sa->sun_family = AF_UNIX;
  memcpy(sa->sun_path, path, strlen(path) + 1);
  return 1;
}

void dx_job_wake(const char *engine_socket) {
  struct sockaddr_un sa;
  if (!make_addr(engine_socket, &sa)) return;
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  char b = 'w';
  (void)!sendto(fd, &b, 1, MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *)&sa, sizeof sa);
  close(fd);
}

/* 1 when a process receives on the socket at path (a datagram is accepted
 * or its queue is full), 0 when the file is stale. */
static int socket_live(const struct sockaddr_un *sa) {
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  char b = 'w';
  ssize_t r = sendto(fd, &b, 1, MSG_DONTWAIT | MSG_NOSIGNAL, (const struct sockaddr *)sa, sizeof *sa);
  int e = errno;
  close(fd);
  return r == 1 || e == EAGAIN || e == EWOULDBLOCK;
}

dx_status dx_job_wake_listen(const char *path, int *fd_out, dx_errbuf *err) {
  *fd_out = -1;
  struct sockaddr_un sa;
  if (!make_addr(path, &sa)) return dx_fail(err, DX_ERR_CONFIG, "engine socket path is empty or too long");
  struct stat stt;
  if (lstat(path, &stt) == 0) {
    if (!S_ISSOCK(stt.st_mode)) return dx_fail(err, DX_ERR_EXISTS, "%s exists and is not a socket", path);
    if (socket_live(&sa)) return dx_fail(err, DX_ERR_EXISTS, "another engine receives on %s", path);
    if (unlink(path) != 0 && errno != ENOENT)
      return dx_fail(err, DX_ERR_IO, "cannot remove stale socket %s: %s", path, strerror(errno));
  }
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return dx_fail(err, DX_ERR_IO, "socket: %s", strerror(errno));
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    int e = errno;
    close(fd);
    if (e == EADDRINUSE) return dx_fail(err, DX_ERR_EXISTS, "another engine bound %s", path);
    return dx_fail(err, DX_ERR_IO, "cannot bind %s: %s", path, strerror(e));
  }
  chmod(path, 0666); /* responders may run as another user */
  *fd_out = fd;
  return DX_OK;
}

int dx_job_wake_wait(int fd, int timeout_ms) {
  if (timeout_ms < 0) timeout_ms = 0;
  if (fd < 0) {
    struct timespec ts = {timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    return 0;
  }
  struct pollfd p = {.fd = fd, .events = POLLIN};
  int r = poll(&p, 1, timeout_ms);
  if (r <= 0 || !(p.revents & POLLIN)) return 0;
  char buf[64];
  int got = 0;
  while (recv(fd, buf, sizeof buf, MSG_DONTWAIT) >= 0) got = 1;
  return got;
}
